package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
	"github.com/noonhq/noon/edge/frame"
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/internal/logging"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// loadScenarios are the closed-loop scenarios, in the order each
// connection count runs them.
var loadScenarios = []string{scenarioRaw, scenarioRelay, scenarioNoon, scenarioNoonPlain}

// run runs every selected scenario, prints the report on stdout and writes
// it as JSON.
func run(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	log, err := logging.New(logging.Options{Level: cfg.logLevel}, stderr)
	if err != nil {
		return fmt.Errorf("-log: %w", err)
	}
	rep := newReport(cfg)
	prog := newProgress(stderr)
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	var (
		echoSrv *bench.EchoServer
		relay   *bench.Relay
		noon    *noonStack   // TLS links
		plain   *noonStack   // plain links
		stores  *loginStores // owned by runLogin once it runs
	)
	defer func() {
		if plain != nil {
			plain.close()
		}
		if relay != nil {
			relay.Close()
		}
		if echoSrv != nil {
			echoSrv.Close()
		}
		if stores != nil {
			stores.close()
		}
		if noon != nil {
			noon.close()
		}
	}()
	if cfg.has(scenarioLogin) {
		stores, err = openLoginStores(ctx, cfg)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			line := skippedLine(cfg, err)
			prog.logf("%s", line)
			rep.Login = &loginReport{Postgres: postgresName(cfg.postgresURL), Redis: redisName(cfg.redisAddr), Skipped: line}
		}
	}
	if cfg.has(scenarioRaw) || cfg.has(scenarioRelay) {
		if echoSrv, err = bench.NewEchoServer("127.0.0.1:0"); err != nil {
			return fmt.Errorf("echo server: %w", err)
		}
	}
	if cfg.has(scenarioRelay) {
		if relay, err = bench.NewRelay("127.0.0.1:0", echoSrv.Addr()); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	if cfg.has(scenarioNoon) || cfg.has(scenarioIdle) || stores != nil {
		prog.logf("starting yellow, an echo instance and a broker in this process (TLS links)")
		noon, err = startNoon(ctx, log, slices.Max(cfg.conns)*cfg.pipeline, true)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			prog.logf("noon: %v", err)
			for _, s := range []string{scenarioNoon, scenarioIdle, scenarioLogin} {
				if cfg.has(s) && (s != scenarioLogin || stores != nil) {
					rep.unavailable(s, err)
				}
			}
		} else {
			prog.logf("broker on %s, echo instance %s, yellow %s", noon.addr(), noon.echo.InstanceID(), noon.y.RouterEndpoint())
		}
	}
	if cfg.has(scenarioNoonPlain) {
		prog.logf("starting a second platform with plain links")
		if plain, err = startNoon(ctx, log, slices.Max(cfg.conns)*cfg.pipeline, false); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			prog.logf("noon-plain: %v", err)
			rep.unavailable(scenarioNoonPlain, err)
		}
	}

	var todo []string
	for _, s := range loadScenarios {
		if cfg.has(s) {
			todo = append(todo, s)
		}
	}
	total, i := cfg.rounds*len(todo)*len(cfg.conns), 0
	for round := range cfg.rounds {
		for _, conns := range cfg.conns {
			for _, s := range todo {
				i++
				var addr string
				switch s {
				case scenarioRaw:
					addr = echoSrv.Addr()
				case scenarioRelay:
					addr = relay.Addr()
				case scenarioNoon:
					if noon == nil {
						continue
					}
					addr = noon.addr()
				case scenarioNoonPlain:
					if plain == nil {
						continue
					}
					addr = plain.addr()
				}
				res, err := bench.Run(ctx, bench.Config{
					Scenario: s,
					Addr:     addr,
					Conns:    conns,
					Pipeline: cfg.pipeline,
					Payload:  cfg.payload,
					Warmup:   cfg.warmup,
					Duration: cfg.duration,
					Progress: prog.scenario(i, total, s, conns),
				})
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					prog.logf("[%d/%d] %s conns=%d: %v", i, total, s, conns, err)
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s at %d connections failed: %v", s, conns, err))
					continue
				}
				rep.AllResults = append(rep.AllResults, roundResult{Round: round + 1, Result: res})
				prog.logf("[%d/%d] %-5s conns=%-4d %9.0f req/s  p50 %s  p99 %s  p99.9 %s  CPU %.0f%%  errors %d",
					i, total, s, conns, res.RPS, fmtUs(res.P50Us), fmtUs(res.P99Us), fmtUs(res.P999Us), res.CPUPercent, res.Errors)
			}
		}
	}
	rep.Results = medians(rep.AllResults)
	rep.Ratios = ratios(rep.Results)

	if plain != nil {
		plain.close()
		plain = nil
	}
	if relay != nil {
		relay.Close()
		relay = nil
	}
	if echoSrv != nil {
		echoSrv.Close()
		echoSrv = nil
	}
	if cfg.has(scenarioIdle) && noon != nil {
		idle, err := runIdle(ctx, cfg, noon, prog)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			prog.logf("idle: %v", err)
			rep.Notes = append(rep.Notes, fmt.Sprintf("idle test failed: %v", err))
		default:
			rep.Idle = idle
			prog.logf("[idle] %d connections: broker memory %.0f B per idle connection", idle.Conns, idle.ServerPerConnBytes)
		}
	}
	if stores != nil && noon != nil {
		st := stores
		stores = nil // runLogin closes it
		lr, err := runLogin(ctx, cfg, log, noon, st, prog)
		rep.Login = lr
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			prog.logf("login: %v", err)
			rep.unavailable(scenarioLogin, err)
		}
	}
	if cfg.has(scenarioMatch) {
		mr, err := runMatch(ctx, cfg, log, prog)
		rep.Match = mr
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			prog.logf("match: %v", err)
			rep.unavailable(scenarioMatch, err)
		case mr.Skipped != "":
			prog.logf("%s", mr.Skipped)
		}
	}
	if cfg.has(scenarioFriends) {
		st, err := openLoginStores(ctx, cfg)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			line := "friends: skipped" + strings.TrimPrefix(skippedLine(cfg, err), "login: skipped")
			prog.logf("%s", line)
			rep.Friends = &friendsReport{Postgres: postgresName(cfg.postgresURL), Redis: redisName(cfg.redisAddr), Skipped: line}
		default:
			fr, err := runFriends(ctx, cfg, log, st, prog)
			rep.Friends = fr
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case err != nil:
				prog.logf("friends: %v", err)
				rep.unavailable(scenarioFriends, err)
			}
		}
	}
	if cfg.has(scenarioGame) {
		gr, err := runGame(ctx, cfg, log, prog)
		rep.Game = gr
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			prog.logf("game: %v", err)
			rep.unavailable(scenarioGame, err)
		case gr.Skipped != "":
			prog.logf("%s", gr.Skipped)
		}
	}
	if cfg.has(scenarioPay) {
		pr, err := runPay(ctx, cfg, log, prog)
		rep.Pay = pr
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			prog.logf("pay: %v", err)
			rep.unavailable(scenarioPay, err)
		case pr.Skipped != "":
			prog.logf("%s", pr.Skipped)
		}
	}
	rep.Finished = time.Now()

	printReport(stdout, cfg, rep)
	if cfg.jsonPath != "" {
		if err := writeJSON(cfg.jsonPath, rep); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nresults written to %s\n", cfg.jsonPath)
	}
	// Asked for by name, the login scenario must run.
	if cfg.onlyGiven && cfg.has(scenarioLogin) {
		if why, ok := rep.Unavailable[scenarioLogin]; ok {
			return fmt.Errorf("login: %s", why)
		}
		if rep.Login == nil || rep.Login.Skipped != "" {
			return errors.New("login did not run: no Postgres/Redis (see -postgres, -redis)")
		}
	}
	if cfg.onlyGiven && cfg.has(scenarioFriends) {
		if why, ok := rep.Unavailable[scenarioFriends]; ok {
			return fmt.Errorf("friends: %s", why)
		}
		if rep.Friends == nil || rep.Friends.Skipped != "" {
			return errors.New("friends did not run: no Postgres/Redis (see -postgres, -redis)")
		}
	}
	if cfg.onlyGiven && cfg.has(scenarioMatch) {
		if why, ok := rep.Unavailable[scenarioMatch]; ok {
			return fmt.Errorf("match: %s", why)
		}
		if rep.Match == nil || rep.Match.Skipped != "" {
			return errors.New("match did not run: no Redis (see -redis)")
		}
	}
	if cfg.onlyGiven && cfg.has(scenarioGame) {
		if why, ok := rep.Unavailable[scenarioGame]; ok {
			return fmt.Errorf("game: %s", why)
		}
		if rep.Game == nil || rep.Game.Skipped != "" {
			return errors.New("game did not run: no Redis (see -redis)")
		}
	}
	if cfg.onlyGiven && cfg.has(scenarioPay) {
		if why, ok := rep.Unavailable[scenarioPay]; ok {
			return fmt.Errorf("pay: %s", why)
		}
		if rep.Pay == nil || rep.Pay.Skipped != "" {
			return errors.New("pay did not run: no Redis (see -redis)")
		}
	}
	return nil
}

// runIdle holds cfg.idle idle connections on the broker and measures what
// they cost it. Each connection says edge.Hello first, as a real client
// does (client.Dial), and then sends nothing.
func runIdle(ctx context.Context, cfg config, noon *noonStack, prog *progress) (*idleReport, error) {
	hello, err := thriftx.Marshal(&edgeapi.HelloRequest{ProtocolVersion: wire.ProtocolVersion})
	if err != nil {
		return nil, err
	}
	icfg := bench.IdleConfig{
		Addr:     noon.addr(),
		Conns:    cfg.idle,
		Request:  frame.AppendRequest(nil, wire.MethodHello, hello),
		Progress: prog.idle(cfg.idle),
	}
	prog.logf("[idle] %d idle connections from 127.0.0.2 up, %d per source address", cfg.idle, bench.DefaultPerSource)
	res, err := bench.MeasureIdle(ctx, icfg, noon.held)
	if err != nil {
		return nil, err
	}
	return newIdleReport(res), nil
}

// writeJSON writes rep to path, indented.
func writeJSON(path string, rep *report) error {
	b, err := rep.marshal()
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("-json: %w", err)
	}
	return nil
}

// environment describes the machine, for the report's header.
func environment() string {
	return fmt.Sprintf("%s %s/%s, %d CPUs, GOMAXPROCS %d", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
}

// errText is err's text on one line.
func errText(err error) string {
	if err == nil {
		return ""
	}
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
