package main

// The game scenario: player data through the whole platform, on the real
// Postgres (when it answers; else the memory store, said in the report)
// and Redis.
//
// In this process: yellow, one broker, the BrokerList, the login service
// (cheap argon2) and one game instance, every internal link mutual TLS,
// as `noon dev` and `noon cluster` run. Login and game each get a fresh
// Postgres schema (dropped at the end) and a Redis key prefix of their own
// (deleted at the end).
//
// Wallet changes are server paths (a room rewarding a winner, a purchase):
// a process holding a service:room certificate calls game.Grant and
// game.Spend (alternating grants of 2 and spends of 1, each with its own
// idempotency key) over its TLS link to the game instance, from
// gameCallers goroutines at once, for one hot player (every change waits
// for the player's row lock) and across gamePlayers players (each created
// by a grant before the measurement). Leaderboard submits are
// game.SubmitScoreFor on a board of gamePlayers players, the same way.
// game.AroundMe is a client's: gameConns players logged in through the
// broker, each with a score on the board, ask it in a closed loop.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/edge/client"
	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/yellow"
)

// Settings of the game scenario.
const (
	// gamePlayers are the players of the "many players" wallet case and of
	// the board (-quick: gameQuickPlayers).
	gamePlayers      = 10_000
	gameQuickPlayers = 1_000
	// gameCallers are the concurrent server-path callers.
	gameCallers = 32
	// gameConns are the client connections asking AroundMe.
	gameConns = 32
	// gameBoard is the benchmark's board: the best score, highest first.
	gameBoard = "bench"
	// gameCallTimeout bounds one call.
	gameCallTimeout = 10 * time.Second
)

// gameReport is the game scenario in the JSON file.
type gameReport struct {
	Postgres string       `json:"postgres"`
	Redis    string       `json:"redis"`
	Setup    string       `json:"setup"`
	Results  []gameResult `json:"results,omitempty"`
	Cleanup  string       `json:"cleanup,omitempty"`
	Skipped  string       `json:"skipped,omitempty"`
}

// gameResult is one case.
type gameResult struct {
	Case        string  `json:"case"`
	Callers     int     `json:"callers"`
	Players     int     `json:"players"`
	DurationSec float64 `json:"duration_s"`
	Ops         uint64  `json:"ops"`
	OpsPerSec   float64 `json:"ops_per_s"`
	P50Ms       float64 `json:"p50_ms"`
	P99Ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	CPUPercent  float64 `json:"cpu_percent"`
	Errors      uint64  `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
}

// gameStack is the platform of the scenario and the stores it cleans up.
type gameStack struct {
	p       *platform.Platform
	ca      *pki.Ephemeral
	pool    *pgxpool.Pool // nil: memory stores
	rdb     *redis.Client
	prefix  string
	schemas []string
	mains   []chan error
}

// startGameStack starts yellow, a broker, login and game.
func startGameStack(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool, rdb *redis.Client) (_ *gameStack, err error) {
	gs := &gameStack{pool: pool, rdb: rdb, prefix: "noonbench:" + randomHex(6) + ":"}
	defer func() {
		if err != nil {
			gs.close(ctx)
		}
	}()
	if gs.ca, err = pki.NewEphemeral(); err != nil {
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

	suffix := randomHex(4)
	lsec := login.Module.NewSection().(*services.Config[login.Options])
	lsec.Service.HTTPAddr = ""
	lsec.Service.Argon2 = argonOptions(argonCheap)
	lsec.Service.Throttle.PerAccount.Max = 0
	lsec.Service.Throttle.PerAddress.Max = 0
	lsec.Service.Throttle.PerAccountAddress.Max, lsec.Service.Throttle.ShedQueue, lsec.Service.Throttle.MaxQueue = 0, 0, login.MaxShedQueue
	lsec.Service.RedisPrefix = gs.prefix + "login:"
	lsec.Service.SessionTTL = loginSessionTTL
	lsec.Service.PostgresSchema = "noonbench_login_" + suffix
	gsec := game.Module.NewSection().(*services.Config[game.Options])
	gsec.Service.RedisPrefix = gs.prefix + "game:"
	gsec.Service.PostgresSchema = "noonbench_game_" + suffix
	gsec.Service.Boards = []game.BoardOptions{{ID: gameBoard}}
	if pool != nil {
		gs.schemas = []string{lsec.Service.PostgresSchema, gsec.Service.PostgresSchema}
	}
	for _, sec := range []services.Section{lsec, gsec} {
		sec.Runtime().Concurrency = 4096
	}
	if gs.p, err = platform.New(ctx, platform.Options{
		Yellow:     yopts,
		Broker:     bopts,
		BrokerList: blopts,
		Modules:    []services.Module{login.Module, game.Module},
		Sections:   map[string]services.Section{login.Name: lsec, game.Name: gsec},
		Env:        services.Env{Redis: rdb, Postgres: pool},
		Log:        log,
		TLS:        gs.ca,
	}); err != nil {
		return nil, err
	}
	for _, d := range gs.p.Daemons {
		done := make(chan error, 1)
		gs.mains = append(gs.mains, done)
		go func() { done <- d.Main() }()
	}
	rctx, cancel := context.WithTimeout(ctx, routableTimeout)
	defer cancel()
	if err := gs.p.Ready(rctx); err != nil {
		return nil, fmt.Errorf("the platform is not ready after %v: %w", routableTimeout, err)
	}
	return gs, nil
}

// close stops the platform, drops the schemas and deletes the run's keys;
// it says what it cleaned.
func (gs *gameStack) close(ctx context.Context) string {
	if gs.p != nil {
		gs.p.Exit()
	}
	for _, done := range gs.mains {
		waitDone(done)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var out string
	for _, s := range gs.schemas {
		if _, err := gs.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			out += fmt.Sprintf("dropping schema %s: %v; ", s, err)
		}
	}
	n, err := deleteKeys(ctx, gs.rdb, gs.prefix)
	if err != nil {
		return out + fmt.Sprintf("deleting the keys under %s: %v (%d deleted)", gs.prefix, err, n)
	}
	if len(gs.schemas) > 0 {
		out += fmt.Sprintf("dropped schemas %v; ", gs.schemas)
	}
	return out + fmt.Sprintf("deleted %d keys under %s", n, gs.prefix)
}

// serviceClient returns the game service's stubs for a process holding a
// service:room certificate, and its Client to close.
func (gs *gameStack) serviceClient() (*gamerpc.Client, *services.Client, error) {
	creds, err := gs.ca.Credentials(pki.Identity{Role: pki.RoleService, Name: "room"})
	if err != nil {
		return nil, nil, err
	}
	c := services.NewClient(services.ClientOptions{Yellows: []string{gs.p.Yellow.RouterEndpoint()}, Peer: link.PeerOptions{TLS: creds}})
	return gamerpc.NewClient(c.Call), c, nil
}

// gameLoop runs op from callers goroutines for cfg.warmup, then measures
// cfg.duration: a closed loop; op(i, worker) makes call i.
func gameLoop(ctx context.Context, cfg config, name string, callers, players int, op func(ctx context.Context, i int64, worker int) error) gameResult {
	res := gameResult{Case: name, Callers: callers, Players: players}
	var (
		hist     bench.Histogram
		next     atomic.Int64
		ops      atomic.Uint64
		errs     atomic.Uint64
		measure  atomic.Bool
		errOnce  sync.Once
		firstErr string
		wg       sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1)
				cctx, ccancel := context.WithTimeout(ctx, gameCallTimeout)
				t0 := time.Now()
				err := op(cctx, i, w)
				d := time.Since(t0)
				ccancel()
				switch {
				case err != nil && ctx.Err() == nil:
					errs.Add(1)
					errOnce.Do(func() { firstErr = errText(err) })
				case err == nil && measure.Load():
					ops.Add(1)
					hist.Record(d)
				}
			}
		}()
	}
	select {
	case <-time.After(cfg.warmup):
	case <-ctx.Done():
	}
	cpu0 := cpuTime()
	t0 := time.Now()
	measure.Store(true)
	select {
	case <-time.After(cfg.duration):
	case <-ctx.Done():
	}
	measure.Store(false)
	elapsed := time.Since(t0)
	cpu := cpuTime() - cpu0
	cancel()
	wg.Wait()
	res.DurationSec = elapsed.Seconds()
	res.Ops = ops.Load()
	res.OpsPerSec = float64(res.Ops) / res.DurationSec
	res.P50Ms, res.P99Ms, res.MaxMs = ms(hist.Quantile(0.5)), ms(hist.Quantile(0.99)), ms(hist.Max())
	res.CPUPercent = 100 * cpu.Seconds() / res.DurationSec
	res.Errors, res.FirstError = errs.Load(), firstErr
	return res
}

// runGame runs the game scenario.
func runGame(ctx context.Context, cfg config, log *slog.Logger, prog *progress) (*gameReport, error) {
	gr := &gameReport{Redis: redisName(cfg.redisAddr), Postgres: "none: the memory store"}
	ropts, err := redisOptions(cfg.redisAddr)
	if err != nil {
		return gr, err
	}
	ropts.PoolSize = 64
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		gr.Skipped = fmt.Sprintf("game: skipped, no Redis at %s: %v", gr.Redis, err)
		return gr, nil
	}
	var pool *pgxpool.Pool
	if cfg.postgresURL != "" {
		pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
		p, err := pgxpool.New(pctx, cfg.postgresURL)
		if err == nil {
			err = p.Ping(pctx)
		}
		cancel()
		switch {
		case err == nil:
			pool = p
			defer pool.Close()
			gr.Postgres = postgresName(cfg.postgresURL)
		case p != nil:
			p.Close()
			prog.logf("game: no Postgres (%v): the memory store", err)
		}
	}
	players := gamePlayers
	if cfg.quick {
		players = gameQuickPlayers
	}
	prog.logf("game: starting yellow, a broker, login and game on Postgres %s and Redis %s (TLS links)", gr.Postgres, gr.Redis)
	gs, err := startGameStack(ctx, log, pool, rdb)
	if err != nil {
		return gr, fmt.Errorf("starting the platform: %w", err)
	}
	defer func() { gr.Cleanup = gs.close(ctx); prog.logf("game: %s", gr.Cleanup) }()
	gr.Setup = fmt.Sprintf("one game instance, login, one broker, GOMAXPROCS %d; Postgres %s; Redis %s; server paths as service:room over TLS",
		runtime.GOMAXPROCS(0), gr.Postgres, gr.Redis)
	gc, sc, err := gs.serviceClient()
	if err != nil {
		return gr, err
	}
	defer sc.Close()
	run := randomHex(4)
	user := func(i int64) string { return fmt.Sprintf("nb%s-%05d", run, i%int64(players)) }
	change := func(ctx context.Context, u string, i int64) error {
		key := fmt.Sprintf("k%d", i)
		if i%2 == 0 {
			_, err := gc.Grant(ctx, &gamepb.GrantRequest{UserID: u, Currencies: map[string]int64{"coins": 2}, Reason: "bench", IdempotencyKey: key})
			return err
		}
		_, err := gc.Spend(ctx, &gamepb.SpendRequest{UserID: u, Currencies: map[string]int64{"coins": 1}, Reason: "bench", IdempotencyKey: key})
		return err
	}
	report := func(r gameResult) {
		gr.Results = append(gr.Results, r)
		prog.logf("game: %-22s %6d players: %8.0f/s  p50 %.1f ms  p99 %.1f ms  errors %d %s",
			r.Case, r.Players, r.OpsPerSec, r.P50Ms, r.P99Ms, r.Errors, r.FirstError)
	}

	// Wallet, one hot player: its first grant creates it.
	hot := "nb" + run + "-hot"
	if err := change(ctx, hot, 0); err != nil {
		return gr, fmt.Errorf("the first grant: %w", err)
	}
	var seq atomic.Int64
	seq.Store(1 << 40)
	report(gameLoop(ctx, cfg, "wallet, one hot player", gameCallers, 1, func(ctx context.Context, _ int64, _ int) error {
		return change(ctx, hot, seq.Add(1))
	}))

	// Wallet and the board across players: each created first.
	prog.logf("game: creating %d players (a grant and a score each)", players)
	if err := forEach(ctx, players, gameCallers, func(ctx context.Context, i int64) error {
		if err := change(ctx, user(i), 2*i); err != nil { // even: a grant
			return err
		}
		_, err := gc.SubmitScoreFor(ctx, &gamepb.SubmitScoreForRequest{UserID: user(i), Board: gameBoard, Score: (i * 7919) % 100_000})
		return err
	}); err != nil {
		return gr, fmt.Errorf("creating the players: %w", err)
	}
	report(gameLoop(ctx, cfg, "wallet, many players", gameCallers, players, func(ctx context.Context, i int64, _ int) error {
		return change(ctx, user(i*7919), seq.Add(1))
	}))
	report(gameLoop(ctx, cfg, "leaderboard submit", gameCallers, players, func(ctx context.Context, i int64, _ int) error {
		_, err := gc.SubmitScoreFor(ctx, &gamepb.SubmitScoreForRequest{UserID: user(i * 31), Board: gameBoard, Score: (i * 104729) % 100_000})
		return err
	}))

	// AroundMe from logged-in clients, each with a score.
	conns, err := gameClients(ctx, gs.p.Broker.TCPAddr().String(), run, gc)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if err != nil {
		return gr, err
	}
	report(gameLoop(ctx, cfg, "leaderboard around-me", len(conns), players+len(conns), func(ctx context.Context, _ int64, w int) error {
		_, err := gamerpc.NewClient(conns[w].CallThrift).AroundMe(ctx, &gamepb.AroundMeRequest{Board: gameBoard, N: 5})
		return err
	}))
	return gr, nil
}

// forEach runs fn(i) for i in [0, n) from workers goroutines; the first
// error stops it.
func forEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int64) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				cctx, ccancel := context.WithTimeout(ctx, gameCallTimeout)
				err := fn(cctx, i)
				ccancel()
				if err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// gameClients connects gameConns players through the broker, logs them in
// and gives each a score on the board.
func gameClients(ctx context.Context, addr, run string, gc *gamerpc.Client) ([]*client.Client, error) {
	conns := make([]*client.Client, gameConns)
	err := forEach(ctx, gameConns, 8, func(ctx context.Context, i int64) error {
		c, err := client.Dial(ctx, addr, client.DefaultOptions())
		if err != nil {
			return err
		}
		conns[i] = c
		name := fmt.Sprintf("gb%s_%d", run, i)
		lc := loginrpc.NewClient(c.CallThrift)
		if _, err := lc.Register(ctx, &loginpb.RegisterRequest{Username: name, Password: loginPassword}); err != nil {
			return fmt.Errorf("register %s: %w", name, err)
		}
		rep, err := lc.Login(ctx, &loginpb.LoginRequest{Username: name, Password: loginPassword})
		if err != nil {
			return fmt.Errorf("login %s: %w", name, err)
		}
		_, err = gc.SubmitScoreFor(ctx, &gamepb.SubmitScoreForRequest{UserID: rep.GetUserID(), Board: gameBoard, Score: i * 1000})
		return err
	})
	var out []*client.Client
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, err
}

// printGame writes the game scenario's table.
func printGame(w io.Writer, gr *gameReport) {
	if gr == nil {
		return
	}
	fmt.Fprintf(w, "\nPlayer data (game service; %s)\n", gr.Setup)
	if gr.Skipped != "" {
		fmt.Fprintln(w, gr.Skipped)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tplayers\tcallers\tops/s\tp50 ms\tp99 ms\tmax ms\tCPU %\terrors\t")
	for _, r := range gr.Results {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.1f\t%.0f\t%d\t\n", r.Case, r.Players, r.Callers, r.OpsPerSec, r.P50Ms, r.P99Ms, r.MaxMs, r.CPUPercent, r.Errors)
	}
	_ = tw.Flush()
	for _, r := range gr.Results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "  %s: first error: %s\n", r.Case, r.FirstError)
		}
	}
	fmt.Fprintln(w, "a wallet change is a game.Grant or game.Spend (one Postgres transaction under the player's row lock); submits are game.SubmitScoreFor; around-me is a client's game.AroundMe through the broker")
}
