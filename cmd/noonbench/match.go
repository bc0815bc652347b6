package main

// The match scenario: tickets per second from match.Start to
// "@match.Matched", and the time to match, through the whole platform on
// the real Redis.
//
// In this process: yellow, one broker, the BrokerList, the login service
// (in-memory accounts, sessions in Redis, cheap argon2 so that logging the
// players in is quick), two room instances (in-memory rooms, leases in
// Redis) and two match instances sharing Redis, every internal link mutual
// TLS, as `noon dev` and `noon cluster` run. Every service writes under a
// Redis key prefix of its own (noonbench:<random>:...), deleted at the
// end.
//
// The players are client connections through the broker, each logged in
// as its own user. To hold more waiting players than this process may
// open files (two per connection: client and broker), each connection
// keeps one ticket in each of several queues (bench0, bench1, ...; every
// queue matches sessions of 4 players), so -match-players 10000 is 2,500
// connections with 4 tickets each.
//
// Two cases per player count:
//
//   - closed loop: every (connection, queue) starts a ticket, waits for
//     its "@match.Matched" and starts the next at once: the throughput, in
//     tickets matched per second, and the time from match.Start to the
//     push;
//   - open loop at -match-rate tickets per second: tickets are started at
//     that rate (by idle (connection, queue) slots), and each push's
//     latency is measured from the match.Start of the session's last
//     ticket, the one that filled it, to the push: the matchmaker's own
//     delay, without the wait for other players.
//
// Redis commands per ticket come from the server's INFO counters over the
// measured interval (every client of the server counts: run it on a Redis
// nothing else uses).

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/match"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/yellow"
)

// Settings of the match scenario.
const (
	// defaultMatchPlayers are the waiting players benchmarked (-match-players).
	defaultMatchPlayers = "1000,10000"
	// defaultMatchRate is the open loop's tickets per second (-match-rate).
	defaultMatchRate = 5000
	// matchSessionSize is every bench queue's players per session.
	matchSessionSize = 4
	// maxMatchConns bounds the player connections: two file descriptors
	// each in this process.
	maxMatchConns = 2500
	// matchRegisterAtOnce is how many players register and log in at once.
	matchRegisterAtOnce = 32
	// matchStartTimeout bounds one match.Start call.
	matchStartTimeout = 10 * time.Second
	// matchPushBuffer is each connection's push queue: room events come
	// too.
	matchPushBuffer = 4096
	// matchAim and matchLatencyAim are the aims: tickets per second
	// on this 2-core machine, and the open loop's p99.
	matchAim        = 20000
	matchLatencyAim = 50 * time.Millisecond
)

// matchReport is the match scenario in the JSON file.
type matchReport struct {
	Redis       string `json:"redis"`
	RedisPrefix string `json:"redis_prefix,omitempty"`
	// Setup says what ran.
	Setup   string        `json:"setup"`
	Results []matchResult `json:"results,omitempty"`
	Cleanup string        `json:"cleanup,omitempty"`
	Skipped string        `json:"skipped,omitempty"`
}

// matchResult is one case at one player count.
type matchResult struct {
	// Mode is "closed" or "open".
	Mode    string `json:"mode"`
	Players int    `json:"players"`
	Conns   int    `json:"conns"`
	Queues  int    `json:"queues"`
	// RateAsked is the open loop's rate (0 in the closed loop).
	RateAsked   float64 `json:"rate_asked,omitempty"`
	DurationSec float64 `json:"duration_s"`
	// Matched is the Matched pushes received in the measured interval;
	// TicketsPerSec is Matched / DurationSec.
	Matched       uint64  `json:"matched"`
	TicketsPerSec float64 `json:"tickets_per_s"`
	// P50Ms, P99Ms: match.Start to the push (closed loop), or the
	// session's last match.Start to the push (open loop).
	P50Ms float64 `json:"p50_ms"`
	P99Ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
	// RedisCmdsPerTicket is Redis's commands processed in the interval per
	// ticket matched; EvalsPerTicket the scripts among them.
	RedisCmdsPerTicket float64 `json:"redis_cmds_per_ticket"`
	EvalsPerTicket     float64 `json:"evals_per_ticket"`
	CPUPercent         float64 `json:"cpu_percent"`
	Errors             uint64  `json:"errors"`
	FirstError         string  `json:"first_error,omitempty"`
}

// matchStack is the platform of the scenario.
type matchStack struct {
	p      *platform.Platform
	rdb    *redis.Client
	prefix string
	mains  []chan error
}

// startMatchStack starts the platform with queues bench0..bench<queues-1>
// and waits until the broker routes every service.
func startMatchStack(ctx context.Context, log *slog.Logger, rdb *redis.Client, queues int) (_ *matchStack, err error) {
	ms := &matchStack{rdb: rdb, prefix: "noonbench:" + randomHex(6) + ":"}
	defer func() {
		if err != nil {
			ms.close(ctx)
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
	blopts := brokerlist.NewOptions()
	blopts.Addr = "127.0.0.1:0"

	lsec := login.Module.NewSection().(*services.Config[login.Options])
	lsec.Service.HTTPAddr = "127.0.0.1:0"
	lsec.Service.Argon2 = argonOptions(argonCheap)
	lsec.Service.Throttle.PerAccount.Max = 0
	lsec.Service.Throttle.PerAddress.Max = 0
	lsec.Service.Throttle.PerAccountAddress.Max, lsec.Service.Throttle.ShedQueue, lsec.Service.Throttle.MaxQueue = 0, 0, login.MaxShedQueue
	lsec.Service.RedisPrefix = ms.prefix + "login:"
	lsec.Service.SessionTTL = loginSessionTTL
	rsec := room.Module.NewSection().(*services.Config[room.Options])
	rsec.Service.RedisPrefix = ms.prefix + "room:"
	rsec.Service.MaxRooms = 1_000_000
	rsec.Service.IdleEvict = 2 * time.Second // matched rooms nobody plays leave memory
	msec := match.Module.NewSection().(*services.Config[match.Options])
	msec.Service.RedisPrefix = ms.prefix + "match:"
	msec.Service.Queues = nil
	for i := range queues {
		msec.Service.Queues = append(msec.Service.Queues, match.QueueOptions{
			Name: "bench" + strconv.Itoa(i), MinPlayers: matchSessionSize, MaxPlayers: matchSessionSize,
		})
	}
	for _, sec := range []services.Section{lsec, rsec, msec} {
		sec.Runtime().Concurrency = 4096
	}
	if ms.p, err = platform.New(ctx, platform.Options{
		Yellow:     yopts,
		Broker:     bopts,
		BrokerList: blopts,
		Modules:    []services.Module{login.Module, room.Module, match.Module},
		Sections:   map[string]services.Section{login.Name: lsec, room.Name: rsec, match.Name: msec},
		Instances:  map[string]int{room.Name: 2, match.Name: 2},
		Env:        services.Env{Redis: rdb},
		Log:        log,
		TLS:        ca,
	}); err != nil {
		return nil, err
	}
	for _, d := range ms.p.Daemons {
		done := make(chan error, 1)
		ms.mains = append(ms.mains, done)
		go func() { done <- d.Main() }()
	}
	rctx, cancel := context.WithTimeout(ctx, routableTimeout)
	defer cancel()
	if err := ms.p.Ready(rctx); err != nil {
		return nil, fmt.Errorf("the platform is not ready after %v: %w", routableTimeout, err)
	}
	// Directives reach a broker only once it follows every matchmaker's
	// PUB socket.
	for ms.p.Broker.SessionFeeds(match.Name) < 2 {
		select {
		case <-rctx.Done():
			return nil, fmt.Errorf("the broker does not follow both matchmakers after %v", routableTimeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return ms, nil
}

// close stops the platform and deletes the run's keys; it says what it
// deleted.
func (ms *matchStack) close(ctx context.Context) string {
	if ms.p != nil {
		ms.p.Exit()
	}
	for _, done := range ms.mains {
		waitDone(done)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	n, err := deleteKeys(ctx, ms.rdb, ms.prefix)
	if err != nil {
		return fmt.Sprintf("deleting the keys under %s: %v (%d deleted)", ms.prefix, err, n)
	}
	return fmt.Sprintf("deleted %d keys under %s", n, ms.prefix)
}

// matchPlayer is one player connection with its tickets, one per queue.
type matchPlayer struct {
	c    *client.Client
	user string
	// matched gets, per queue, the tickets of that queue matched on this
	// connection.
	matched []chan *matchpb.Ticket
}

// connectPlayers registers and logs in n players through the broker and
// starts their push readers.
func connectPlayers(ctx context.Context, addr string, n, queues int, prog *progress) ([]*matchPlayer, error) {
	players := make([]*matchPlayer, n)
	id := randomHex(4)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, matchRegisterAtOnce)
		done  atomic.Int64
	)
	for i := range players {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p, err := connectPlayer(ctx, addr, fmt.Sprintf("mb%s_%d", id, i), queues)
			if err != nil {
				once.Do(func() { first = err })
				return
			}
			players[i] = p
			if d := done.Add(1); d%500 == 0 {
				prog.logf("match: %d of %d players logged in", d, n)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		closePlayers(players)
		return nil, first
	}
	return players, nil
}

// connectPlayer connects, registers and logs in one player.
func connectPlayer(ctx context.Context, addr, name string, queues int) (*matchPlayer, error) {
	opts := client.DefaultOptions()
	opts.Push = true
	opts.PushQueue = matchPushBuffer
	opts.ClientName = "noonbench"
	c, err := client.Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	lc := loginrpc.NewClient(c.CallThrift)
	if _, err := lc.Register(ctx, &loginpb.RegisterRequest{Username: name, Password: loginPassword}); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	rep, err := lc.Login(ctx, &loginpb.LoginRequest{Username: name, Password: loginPassword})
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	p := &matchPlayer{c: c, user: rep.GetUserID()}
	for range queues {
		p.matched = append(p.matched, make(chan *matchpb.Ticket, 4))
	}
	go p.readPushes()
	return p, nil
}

// readPushes hands each Matched push to its queue's channel and drops the
// rest (the rooms' events).
func (p *matchPlayer) readPushes() {
	for {
		select {
		case push := <-p.c.Pushes():
			if push.Type != matchrpc.Service+".Matched" {
				continue
			}
			var m matchpb.Matched
			if err := thriftx.Unmarshal(push.Payload, &m); err != nil {
				continue
			}
			q, ok := strings.CutPrefix(m.GetTicket().GetQueue(), "bench")
			i, err := strconv.Atoi(q)
			if !ok || err != nil || i < 0 || i >= len(p.matched) {
				continue
			}
			p.matched[i] <- m.GetTicket()
		case <-p.c.Done():
			return
		}
	}
}

// closePlayers closes every connection.
func closePlayers(players []*matchPlayer) {
	for _, p := range players {
		if p != nil {
			_ = p.c.Close()
		}
	}
}

// matchRun is one case's shared state.
type matchRun struct {
	hist     bench.Histogram
	matched  atomic.Uint64
	measure  atomic.Bool // inside the measured interval
	errs     atomic.Uint64
	errOnce  sync.Once
	firstErr string
	// starts holds, per (user, queue), when its current ticket was
	// started; last, per match session, the latest start among its
	// players, taken at its first push (open loop).
	mu     sync.Mutex
	starts map[string]time.Time
	last   map[string]time.Time
}

func (r *matchRun) fail(err error) {
	r.errs.Add(1)
	r.errOnce.Do(func() { r.firstErr = errText(err) })
}

// lastStart returns when the last ticket of t's session was started.
func (r *matchRun) lastStart(t *matchpb.Ticket) time.Time {
	m := t.GetMatch()
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.last[m.GetSession()]; ok {
		return at
	}
	var at time.Time
	for _, u := range m.GetPlayers() {
		if s := r.starts[u+"/"+t.GetQueue()]; s.After(at) {
			at = s
		}
	}
	r.last[m.GetSession()] = at
	return at
}

// slot plays one (player, queue): start a ticket, wait for its match,
// again, until ctx ends; with pace, each start first takes a token from
// it.
func (r *matchRun) slot(ctx context.Context, p *matchPlayer, q int, pace <-chan struct{}) {
	mc := matchrpc.NewClient(p.c.CallThrift)
	queue := "bench" + strconv.Itoa(q)
	key := p.user + "/" + queue
	for ctx.Err() == nil {
		if pace != nil {
			select {
			case <-pace:
			case <-ctx.Done():
				return
			}
		}
		start := time.Now()
		if pace != nil {
			r.mu.Lock()
			r.starts[key] = start
			r.mu.Unlock()
		}
		sctx, cancel := context.WithTimeout(ctx, matchStartTimeout)
		rep, err := mc.Start(sctx, &matchpb.StartRequest{Queue: queue})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("%s: %w", matchrpc.MethodStart, err))
			}
			return
		}
		ticket := rep.GetTicket().GetID()
		for {
			var t *matchpb.Ticket
			select {
			case t = <-p.matched[q]:
			case <-ctx.Done():
				return
			}
			if t.GetID() != ticket {
				continue // an earlier run's ticket
			}
			if r.measure.Load() {
				r.matched.Add(1)
				from := start
				if pace != nil {
					from = r.lastStart(t)
				}
				r.hist.Record(time.Since(from))
			}
			break
		}
	}
}

// redisCounters returns the server's commands processed and script calls
// so far.
func redisCounters(ctx context.Context, rdb *redis.Client) (cmds, evals uint64) {
	info, err := rdb.Info(ctx, "stats", "commandstats").Result()
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			cmds, _ = strconv.ParseUint(v, 10, 64)
		}
		for _, c := range []string{"cmdstat_evalsha:", "cmdstat_eval:"} {
			if v, ok := strings.CutPrefix(line, c); ok {
				if calls, ok := strings.CutPrefix(strings.Split(v, ",")[0], "calls="); ok {
					n, _ := strconv.ParseUint(calls, 10, 64)
					evals += n
				}
			}
		}
	}
	return cmds, evals
}

// runMatchCase runs one case on players (queues tickets each, in queues
// bench<first>..) and returns its result; rate 0 is the closed loop. Each
// case has queues of its own: the tickets a case leaves searching when it
// stops do not meet the next case's.
func runMatchCase(ctx context.Context, cfg config, rdb *redis.Client, players []*matchPlayer, first, queues int, rate float64) matchResult {
	res := matchResult{Mode: "closed", Players: len(players) * queues, Conns: len(players), Queues: queues, RateAsked: rate}
	r := &matchRun{starts: map[string]time.Time{}, last: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var pace chan struct{}
	if rate > 0 {
		res.Mode = "open"
		pace = make(chan struct{}, 1024)
		wg.Add(1)
		go func() { // tokens at rate per second, in steps of 1 ms
			defer wg.Done()
			t0, sent := time.Now(), 0
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-tick.C:
					for due := int(now.Sub(t0).Seconds() * rate); sent < due; sent++ {
						select {
						case pace <- struct{}{}:
						default: // every slot busy: the token is lost, as a player would give up
						}
					}
				}
			}
		}()
	}
	for _, p := range players {
		for q := range queues {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.slot(ctx, p, first+q, pace)
			}()
		}
	}
	select {
	case <-time.After(cfg.warmup):
	case <-ctx.Done():
	}
	cmds0, evals0 := redisCounters(ctx, rdb)
	cpu0 := cpuTime()
	t0 := time.Now()
	r.measure.Store(true)
	select {
	case <-time.After(cfg.duration):
	case <-ctx.Done():
	}
	r.measure.Store(false)
	elapsed := time.Since(t0)
	cpu := cpuTime() - cpu0
	cmds1, evals1 := redisCounters(ctx, rdb)
	cancel()
	wg.Wait()

	res.DurationSec = elapsed.Seconds()
	res.Matched = r.matched.Load()
	res.TicketsPerSec = float64(res.Matched) / res.DurationSec
	res.P50Ms = ms(r.hist.Quantile(0.50))
	res.P99Ms = ms(r.hist.Quantile(0.99))
	res.MaxMs = ms(r.hist.Max())
	res.CPUPercent = 100 * cpu.Seconds() / res.DurationSec
	if res.Matched > 0 {
		res.RedisCmdsPerTicket = float64(cmds1-cmds0) / float64(res.Matched)
		res.EvalsPerTicket = float64(evals1-evals0) / float64(res.Matched)
	}
	res.Errors, res.FirstError = r.errs.Load(), r.firstErr
	return res
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cpuTime is this process's CPU time so far (user + system).
func cpuTime() time.Duration {
	u, s := bench.CPUTime()
	return u + s
}

// matchPlayerCounts parses -match-players.
func matchPlayerCounts(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < matchSessionSize || n > 4*maxMatchConns*16 {
			return nil, fmt.Errorf("-match-players %q: want counts from %d to %d", s, matchSessionSize, 4*maxMatchConns*16)
		}
		out = append(out, n)
	}
	return out, nil
}

// runMatch runs the match scenario: for each player count, the closed
// loop, then the open loop at cfg.matchRate.
func runMatch(ctx context.Context, cfg config, log *slog.Logger, prog *progress) (*matchReport, error) {
	mr := &matchReport{Redis: redisName(cfg.redisAddr)}
	counts, err := matchPlayerCounts(cfg.matchPlayers)
	if err != nil {
		return mr, err
	}
	ropts, err := redisOptions(cfg.redisAddr)
	if err != nil {
		return mr, err
	}
	ropts.PoolSize = 64
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		mr.Skipped = fmt.Sprintf("match: skipped, no Redis at %s: %v", mr.Redis, err)
		return mr, nil
	}
	maxQueues := 1
	for _, n := range counts {
		maxQueues = max(maxQueues, (n+maxMatchConns-1)/maxMatchConns)
	}
	prog.logf("match: starting yellow, a broker, login, 2 room and 2 match instances on %s (TLS links)", mr.Redis)
	st, err := startMatchStack(ctx, log, rdb, 2*maxQueues)
	if err != nil {
		return mr, fmt.Errorf("starting the platform: %w", err)
	}
	mr.RedisPrefix = st.prefix
	mr.Setup = fmt.Sprintf("2 match instances, 2 room instances (in-memory rooms), login, one broker, GOMAXPROCS %d; sessions of %d players; Redis %s",
		runtime.GOMAXPROCS(0), matchSessionSize, mr.Redis)
	defer func() { mr.Cleanup = st.close(ctx); prog.logf("match: %s", mr.Cleanup) }()

	addr := st.p.Broker.TCPAddr().String()
	for _, n := range counts {
		queues := (n + maxMatchConns - 1) / maxMatchConns
		conns := n / queues
		prog.logf("match: %d players: %d connections with a ticket in each of %d queues; logging them in", conns*queues, conns, queues)
		players, err := connectPlayers(ctx, addr, conns, 2*maxQueues, prog)
		if err != nil {
			return mr, err
		}
		for i, rate := range []float64{0, float64(cfg.matchRate)} {
			res := runMatchCase(ctx, cfg, rdb, players, i*maxQueues, queues, rate)
			mr.Results = append(mr.Results, res)
			prog.logf("match: %-6s %6d players: %8.0f tickets/s  p50 %.1f ms  p99 %.1f ms  Redis %.1f cmds/ticket (%.2f scripts)  errors %d %s",
				res.Mode, res.Players, res.TicketsPerSec, res.P50Ms, res.P99Ms, res.RedisCmdsPerTicket, res.EvalsPerTicket, res.Errors, res.FirstError)
			if ctx.Err() != nil {
				closePlayers(players)
				return mr, ctx.Err()
			}
		}
		closePlayers(players)
	}
	return mr, nil
}

// printMatch writes the match scenario's table.
func printMatch(w io.Writer, mr *matchReport) {
	if mr == nil {
		return
	}
	fmt.Fprintf(w, "\nMatchmaking (match.Start -> @match.Matched through the broker; %s)\n", mr.Setup)
	if mr.Skipped != "" {
		fmt.Fprintln(w, mr.Skipped)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tplayers\tconns\ttickets/s\tp50 ms\tp99 ms\tmax ms\tRedis cmds/ticket\tscripts/ticket\tCPU %\terrors\t")
	for _, r := range mr.Results {
		mode := "closed loop"
		if r.Mode == "open" {
			mode = fmt.Sprintf("open %.0f/s", r.RateAsked)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.0f\t%d\t\n", mode, r.Players, r.Conns,
			r.TicketsPerSec, r.P50Ms, r.P99Ms, r.MaxMs, r.RedisCmdsPerTicket, r.EvalsPerTicket, r.CPUPercent, r.Errors)
	}
	_ = tw.Flush()
	for _, r := range mr.Results {
		switch r.Mode {
		case "closed":
			fmt.Fprintf(w, "aim %d tickets/s at %d players: %.0f (%s)\n", matchAim, r.Players, r.TicketsPerSec, metOr(r.TicketsPerSec >= matchAim))
		case "open":
			fmt.Fprintf(w, "aim p99 < %v from the last ticket to the push at %.0f tickets/s, %d players: %.1f ms at %.0f/s (%s)\n",
				matchLatencyAim, r.RateAsked, r.Players, r.P99Ms, r.TicketsPerSec, metOr(r.P99Ms < ms(matchLatencyAim)))
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "  %s at %d players: first error: %s\n", r.Mode, r.Players, r.FirstError)
		}
	}
	fmt.Fprintln(w, "the open loop's latency runs from the session's last match.Start to each player's push; Redis counts are the server's (every client)")
}
