package main

// The friends scenario: friends.List with presence of a player with 200
// friends, through the whole platform on the real Postgres and Redis.
//
// In this process: yellow, one broker, the BrokerList, the login service
// (cheap argon2, so that logging the players in is quick) and the friends
// service, every internal link mutual TLS, as `noon dev` and `noon
// cluster` run them. Both services keep their tables in schemas of the
// run's own (noonbench_<random>_login, ..._friends), dropped at the end,
// and their keys under a Redis prefix of the run's own, deleted at the
// end.
//
// Each measuring connection is a player with 200 friends: the same 100
// online friends (real users logged in on connections of their own) and
// 100 offline ones of its own (ids no connection uses). Then:
//
//   - List: every connection calls friends.List (limit 200: one page is
//     the whole list, each friend with its presence) back to back: lists
//     per second and each call's latency, at 1 and 16 connections (or
//     -conns);
//   - presence: one of the online friends' connections closes and a new
//     one logs in, friendsPresenceSamples times (the brokers' resume grace
//     is 0 here, so the close is an Offline at the next tick): the time
//     from the login's reply to the player's @friends.Online push, p50 and
//     p99.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/edge/client"
	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/friends"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/yellow"
)

// Settings of the friends scenario.
const (
	// friendsPerPlayer is each measuring player's friends; half are online.
	friendsPerPlayer = 200
	// friendsPresenceSamples is how many logins of a friend the presence
	// case times (quickPresenceSamples with -quick).
	friendsPresenceSamples = 200
	quickPresenceSamples   = 20
	// friendsSetupAtOnce is how many players register, log in or get
	// their friends at once.
	friendsSetupAtOnce = 16
	// friendsPushTimeout bounds the wait for one presence push.
	friendsPushTimeout = 10 * time.Second
)

// defaultFriendsConns are the List case's connection counts without
// -conns.
var defaultFriendsConns = []int{1, 16}

// friendsReport is the friends scenario in the JSON file.
type friendsReport struct {
	Postgres string `json:"postgres"`
	Redis    string `json:"redis"`
	// Schemas and RedisPrefix are where the run kept its data (removed at
	// the end).
	Schemas     []string `json:"schemas,omitempty"`
	RedisPrefix string   `json:"redis_prefix,omitempty"`
	// Setup says what ran.
	Setup   string         `json:"setup,omitempty"`
	List    []bench.Result `json:"list,omitempty"`
	Online  *pushLatency   `json:"online,omitempty"`
	Cleanup string         `json:"cleanup,omitempty"`
	Skipped string         `json:"skipped,omitempty"`
}

// pushLatency is the presence case's result.
type pushLatency struct {
	Samples int     `json:"samples"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
	MaxMs   float64 `json:"max_ms"`
}

// friendsConns returns the List case's connection counts.
func friendsConns(cfg config) []int {
	if cfg.connsGiven {
		return cfg.conns
	}
	return defaultFriendsConns
}

// friendsStack is the platform of the scenario.
type friendsStack struct {
	p       *platform.Platform
	st      *loginStores
	prefix  string
	schemas []string
	store   friends.Store
	mains   []chan error
}

// startFriendsStack starts the platform on st's Postgres and Redis and
// waits until the broker routes every service and the friends instance
// hears the broker's presence.
func startFriendsStack(ctx context.Context, log *slog.Logger, st *loginStores) (_ *friendsStack, err error) {
	id := randomHex(6)
	fs := &friendsStack{st: st, prefix: "noonbench:" + id + ":"}
	defer func() {
		if err != nil {
			fs.close(ctx)
		}
	}()
	ca, err := pki.NewEphemeral()
	if err != nil {
		return nil, err
	}
	yopts := yellow.NewOptions()
	yopts.RouterAddr, yopts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	bopts := broker.NewOptions()
	bopts.Edge.TCPAddr = "127.0.0.1:0"
	bopts.Edge.WSAddr = ""
	bopts.Edge.Rate = 0
	bopts.Edge.IdleTimeout = benchIdleTimeout
	bopts.ResumeGrace = 0 // a closed connection is offline at the next tick
	blopts := brokerlist.NewOptions()
	blopts.Addr = "127.0.0.1:0"

	lsec := login.Module.NewSection().(*services.Config[login.Options])
	lsec.Service.HTTPAddr = "127.0.0.1:0"
	lsec.Service.Argon2 = argonOptions(argonCheap)
	lsec.Service.Throttle.PerAccount.Max = 0
	lsec.Service.Throttle.PerAddress.Max = 0
	lsec.Service.Throttle.PerAccountAddress.Max, lsec.Service.Throttle.ShedQueue, lsec.Service.Throttle.MaxQueue = 0, 0, login.MaxShedQueue
	lsec.Service.RedisPrefix = fs.prefix + "login:"
	lsec.Service.SessionTTL = loginSessionTTL
	lsec.Service.PostgresSchema = "noonbench_" + id + "_login"
	fsec := friends.Module.NewSection().(*services.Config[friends.Options])
	fsec.Service.RedisPrefix = fs.prefix + "friends:"
	fsec.Service.PostgresSchema = "noonbench_" + id + "_friends"
	fsec.Service.TickInterval = 20 * time.Millisecond
	fs.schemas = []string{lsec.Service.PostgresSchema, fsec.Service.PostgresSchema}
	for _, sec := range []services.Section{lsec, fsec} {
		sec.Runtime().Concurrency = 4096
	}
	if fs.p, err = platform.New(ctx, platform.Options{
		Yellow:     yopts,
		Broker:     bopts,
		BrokerList: blopts,
		Modules:    []services.Module{login.Module, friends.Module},
		Sections:   map[string]services.Section{login.Name: lsec, friends.Name: fsec},
		Env:        services.Env{Postgres: st.pool, Redis: st.rdb},
		Log:        log,
		TLS:        ca,
	}); err != nil {
		return nil, err
	}
	for _, d := range fs.p.Daemons {
		done := make(chan error, 1)
		fs.mains = append(fs.mains, done)
		go func() { done <- d.Main() }()
	}
	rctx, cancel := context.WithTimeout(ctx, routableTimeout)
	defer cancel()
	if err := fs.p.Ready(rctx); err != nil {
		return nil, fmt.Errorf("the platform is not ready after %v: %w", routableTimeout, err)
	}
	// Presence counts only once the friends instance follows the broker.
	admin, err := ca.Credentials(pki.Identity{Role: pki.RoleAdmin})
	if err != nil {
		return nil, err
	}
	w := yellow.Watch(yellow.ClientOptions{Yellows: []string{fs.p.Yellow.RouterEndpoint()}, TLS: admin})
	defer w.Close()
	if err := w.WaitFor(rctx, func() bool {
		insts := w.Instances(friends.Name)
		return len(insts) == 1 && insts[0].GetMeta()[friends.MetaPresenceFeeds] == "1"
	}); err != nil {
		return nil, fmt.Errorf("the friends instance does not hear the broker after %v: %w", routableTimeout, err)
	}
	if fs.store, err = friends.NewPostgresStore(st.pool, fsec.Service.PostgresSchema); err != nil {
		return nil, err
	}
	return fs, nil
}

// close stops the platform, drops the schemas and deletes the run's keys;
// it says what it cleaned up.
func (fs *friendsStack) close(ctx context.Context) string {
	if fs.p != nil {
		fs.p.Exit()
	}
	for _, done := range fs.mains {
		waitDone(done)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var notes []string
	for _, s := range fs.schemas {
		if _, err := fs.st.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			notes = append(notes, fmt.Sprintf("dropping schema %s: %v", s, err))
		}
	}
	n, err := deleteKeys(ctx, fs.st.rdb, fs.prefix)
	if err != nil {
		notes = append(notes, fmt.Sprintf("deleting the keys under %s: %v (%d deleted)", fs.prefix, err, n))
	} else {
		notes = append(notes, fmt.Sprintf("dropped schemas %s, deleted %d keys under %s", strings.Join(fs.schemas, ", "), n, fs.prefix))
	}
	return strings.Join(notes, "; ")
}

// friendsUser is a user logged in on a connection of its own, pushes on.
type friendsUser struct {
	c    *client.Client
	id   string
	name string
}

// logIn registers (when register) and logs name in on a new connection.
func logIn(ctx context.Context, addr, name string, register bool) (*friendsUser, error) {
	opts := client.DefaultOptions()
	opts.Push = true
	opts.ClientName = "noonbench"
	c, err := client.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	lc := loginrpc.NewClient(c.CallThrift)
	if register {
		if _, err := lc.Register(ctx, &loginpb.RegisterRequest{Username: name, Password: loginPassword}); err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
	}
	rep, err := lc.Login(ctx, &loginpb.LoginRequest{Username: name, Password: loginPassword})
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	return &friendsUser{c: c, id: rep.GetUserID(), name: name}, nil
}

// logInAll registers and logs in n users named prefix<i>.
func logInAll(ctx context.Context, addr, prefix string, n int) ([]*friendsUser, error) {
	out := make([]*friendsUser, n)
	err := parallel(n, func(i int) error {
		u, err := logIn(ctx, addr, fmt.Sprintf("%s%d", prefix, i), true)
		out[i] = u
		return err
	})
	if err != nil {
		closeUsers(out)
		return nil, err
	}
	return out, nil
}

func closeUsers(us []*friendsUser) {
	for _, u := range us {
		if u != nil {
			_ = u.c.Close()
		}
	}
}

// parallel runs fn(0..n-1), friendsSetupAtOnce at a time, and returns the
// first error.
func parallel(n int, fn func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, friendsSetupAtOnce)
	)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				once.Do(func() { first = err })
			}
		}()
	}
	wg.Wait()
	return first
}

// befriend makes a and b friends in the store (the scenario's setup, not
// measured).
func (fs *friendsStack) befriend(ctx context.Context, a, b string) error {
	now := time.Now()
	return fs.store.Update(ctx, a, b, func(tx friends.Tx) error {
		if err := tx.Put(ctx, friends.Edge{User: a, Other: b, State: friends.StateFriend, Updated: now}); err != nil {
			return err
		}
		return tx.Put(ctx, friends.Edge{User: b, Other: a, State: friends.StateFriend, Updated: now})
	})
}

// runFriends runs the friends scenario on st (which it closes).
func runFriends(ctx context.Context, cfg config, log *slog.Logger, st *loginStores, prog *progress) (*friendsReport, error) {
	defer st.close()
	fr := &friendsReport{Postgres: postgresName(cfg.postgresURL), Redis: redisName(cfg.redisAddr)}
	conns := friendsConns(cfg)
	players := slices.Max(conns)
	prog.logf("friends: starting yellow, a broker, login and friends on %s and %s (TLS links)", fr.Postgres, fr.Redis)
	fs, err := startFriendsStack(ctx, log, st)
	if err != nil {
		return fr, fmt.Errorf("starting the platform: %w", err)
	}
	fr.Schemas, fr.RedisPrefix = fs.schemas, fs.prefix
	defer func() { fr.Cleanup = fs.close(ctx); prog.logf("friends: %s", fr.Cleanup) }()
	fr.Setup = fmt.Sprintf("login and friends on Postgres and Redis, one broker, GOMAXPROCS %d; each player has %d friends, %d online",
		runtime.GOMAXPROCS(0), friendsPerPlayer, friendsPerPlayer/2)

	addr := fs.p.Broker.TCPAddr().String()
	tag := randomHex(4)
	prog.logf("friends: logging in %d players and %d online friends", players, friendsPerPlayer/2)
	ps, err := logInAll(ctx, addr, "fp"+tag+"_", players)
	if err != nil {
		return fr, err
	}
	defer closeUsers(ps)
	online, err := logInAll(ctx, addr, "fo"+tag+"_", friendsPerPlayer/2)
	if err != nil {
		return fr, err
	}
	defer func() { closeUsers(online) }()
	err = parallel(players, func(i int) error {
		for j, o := range online {
			if err := fs.befriend(ctx, ps[i].id, o.id); err != nil {
				return err
			}
			if err := fs.befriend(ctx, ps[i].id, fmt.Sprintf("off%s-%d-%d", tag, i, j)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fr, fmt.Errorf("befriending: %w", err)
	}
	req := &friendspb.ListRequest{Limit: friendsPerPlayer}
	var rep friendspb.ListReply
	if err := ps[0].c.CallThrift(ctx, friendsrpc.MethodList, req, &rep); err != nil {
		return fr, fmt.Errorf("friends.List: %w", err)
	}
	on := 0
	for _, f := range rep.Friends {
		if f.Online {
			on++
		}
	}
	if len(rep.Friends) != friendsPerPlayer || on != friendsPerPlayer/2 {
		return fr, fmt.Errorf("friends.List shows %d friends, %d online; want %d, %d", len(rep.Friends), on, friendsPerPlayer, friendsPerPlayer/2)
	}

	for _, n := range conns {
		res, err := bench.RunLoop(ctx, bench.LoopConfig{
			Scenario: "friends.List",
			Workers:  n,
			Warmup:   cfg.warmup,
			Duration: cfg.duration,
			Progress: prog.scenario(1, 1, "friends.List", n),
			Op: func(ctx context.Context, w int) error {
				var rep friendspb.ListReply
				if err := ps[w].c.CallThrift(ctx, friendsrpc.MethodList, req, &rep); err != nil {
					return err
				}
				if len(rep.Friends) != friendsPerPlayer {
					return fmt.Errorf("friends.List shows %d friends, want %d", len(rep.Friends), friendsPerPlayer)
				}
				return nil
			},
		})
		if err != nil {
			return fr, err
		}
		fr.List = append(fr.List, res)
		prog.logf("friends: List of %d friends at %d conns: %8.0f lists/s  p50 %s  p99 %s  errors %d",
			friendsPerPlayer, n, res.RPS, fmtUs(res.P50Us), fmtUs(res.P99Us), res.Errors)
		if ctx.Err() != nil {
			return fr, ctx.Err()
		}
	}

	samples := friendsPresenceSamples
	if cfg.quick {
		samples = quickPresenceSamples
	}
	prog.logf("friends: timing %d logins of a friend to the player's @friends.Online", samples)
	lat, err := timeOnline(ctx, addr, ps[0], online, samples)
	if err != nil {
		return fr, err
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return ms(lat[int(p*float64(len(lat)-1))]) }
	fr.Online = &pushLatency{Samples: len(lat), P50Ms: q(0.5), P99Ms: q(0.99), MaxMs: ms(lat[len(lat)-1])}
	prog.logf("friends: login -> @friends.Online p50 %.2f ms  p99 %.2f ms", fr.Online.P50Ms, fr.Online.P99Ms)
	return fr, nil
}

// timeOnline times n logins of online friends (each closed first, and its
// Offline awaited): from the login's reply to the player's @friends.Online
// about it.
func timeOnline(ctx context.Context, addr string, player *friendsUser, online []*friendsUser, n int) ([]time.Duration, error) {
	var out []time.Duration
	for i := range n {
		k := i % len(online)
		u := online[k]
		_ = u.c.Close()
		if err := awaitPush(ctx, player, friends.PushOffline, u.id); err != nil {
			return nil, err
		}
		nu, err := logIn(ctx, addr, u.name, false)
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		online[k] = nu
		if err := awaitPush(ctx, player, friends.PushOnline, u.id); err != nil {
			return nil, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}

// awaitPush waits for the player's push of typ about user, skipping
// others.
func awaitPush(ctx context.Context, player *friendsUser, typ, user string) error {
	timeout := time.NewTimer(friendsPushTimeout)
	defer timeout.Stop()
	for {
		select {
		case p := <-player.c.Pushes():
			if p.Type != typ {
				continue
			}
			var m friendspb.Online // Online and Offline are alike: {1: user_id}
			if thriftx.Unmarshal(p.Payload, &m) == nil && m.UserID == user {
				return nil
			}
		case <-player.c.Done():
			return fmt.Errorf("the player's connection ended: %v", player.c.Err())
		case <-timeout.C:
			return fmt.Errorf("no @%s about %s within %v", typ, user, friendsPushTimeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// printFriends writes the friends scenario's table.
func printFriends(w io.Writer, fr *friendsReport) {
	if fr == nil {
		return
	}
	fmt.Fprintf(w, "\nFriends (friends.List of %d friends with presence, through the broker; %s)\n", friendsPerPlayer, fr.Setup)
	if fr.Skipped != "" {
		fmt.Fprintln(w, fr.Skipped)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "conns\tlists/s\tp50\tp99\tp99.9\tCPU %\terrors\t")
	for _, r := range fr.List {
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%s\t%.0f\t%d\t\n", r.Conns, r.RPS, fmtUs(r.P50Us), fmtUs(r.P99Us), fmtUs(r.P999Us), r.CPUPercent, r.Errors)
	}
	_ = tw.Flush()
	if o := fr.Online; o != nil {
		fmt.Fprintf(w, "a friend's login -> the player's @friends.Online: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d samples)\n", o.P50Ms, o.P99Ms, o.MaxMs, o.Samples)
	}
}
