// Command noonchaos is the chaos suite: a black-box run of a real
// multi-process cluster on this machine (yellow, 2 brokers, 2 login, 2 echo
// and 2 room instances from bin/noon, mutual TLS on every internal link,
// its own redis-server with an append-only file, a fresh database on the
// local Postgres behind a fault proxy) under load (bots playing race31 in
// rooms, echo callers, login callers, through the Go client), with each
// fault injected in turn: kill -9 of an echo instance, of a room owner, of
// a broker, of yellow (then restarted); a Redis restart; a Postgres outage
// (the proxy cuts and refuses every connection); a SIGTERM drain; a
// scale-out. Per fault it counts requests, errors by code, hangs (no
// answer by the deadline + 2 s), acknowledged room actions missing from
// the room's log afterwards, push gaps and recovery time, prints a table,
// and exits 1 on any hang or loss.
//
// Usage:
//
//	noonchaos [-short] [-noon bin/noon] [-config configs/cluster.yaml] [-postgres URL]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are noonchaos's flags.
type options struct {
	short      bool
	noon       string
	config     string
	postgres   string
	pairs      int
	echoers    int
	loginers   int
	phase      time.Duration
	pace       time.Duration
	actPace    time.Duration
	keep       bool
	failOnGaps bool
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("noonchaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.BoolVar(&o.short, "short", false, "run every fault briefly (about 2 minutes in all, for CI); the full run takes 4-5 minutes")
	fs.StringVar(&o.noon, "noon", "bin/noon", "the noon `binary` to run")
	fs.StringVar(&o.config, "config", "configs/cluster.yaml", "the config `file` every process reads (the suite's own -set flags override it)")
	pg := os.Getenv("NOON_POSTGRES_URL")
	if pg == "" {
		pg = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	fs.StringVar(&o.postgres, "postgres", pg, "`URL` of a database on the Postgres server to use (the run creates a database of its own there and drops it at the end)")
	fs.IntVar(&o.pairs, "pairs", 6, "pairs of bots playing rooms")
	fs.IntVar(&o.echoers, "echo", 4, "echo callers")
	fs.IntVar(&o.loginers, "login", 2, "login callers")
	fs.DurationVar(&o.phase, "phase", 0, "length of each fault's phase (0: 9s with -short, 26s without)")
	fs.DurationVar(&o.pace, "pace", 10*time.Millisecond, "pause between two requests of one worker (a login caller pauses 10 times this)")
	fs.DurationVar(&o.actPace, "act-pace", 60*time.Millisecond, "least pause between two moves of a pair: each bot moves every other turn, so 60ms keeps a member within room's default member_rate (10 events/s, bursts of 20)")
	fs.BoolVar(&o.keep, "keep", false, "keep the run's directory (process logs, certificates) and database instead of removing them")
	// A push missed across a reconnect is replayed (room.Get since_seq):
	// an event still missing after that is a failure.
	fs.BoolVar(&o.failOnGaps, "fail-on-push-gaps", true, "exit 1 on push gaps (events neither pushed nor replayed by room.Get since_seq); -fail-on-push-gaps=false only reports them")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if o.phase == 0 {
		o.phase = 26 * time.Second
		if o.short {
			o.phase = 9 * time.Second
		}
	}
	// The whole run is bounded: phases, plus start-up and checks.
	limit := 4*time.Minute + 12*o.phase
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	go func() {
		select {
		case <-sig:
			fmt.Fprintln(stderr, "noonchaos: signal: stopping")
			cancel()
		case <-ctx.Done():
		}
	}()
	r, err := runSuite(ctx, o, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "noonchaos: %v\n", err)
		return 1
	}
	if r.failed(o.failOnGaps) {
		fmt.Fprintln(stdout, "FAIL: hangs, lost acknowledged actions, push gaps or processes that exited by themselves (see above)")
		return 1
	}
	fmt.Fprintln(stdout, "PASS: no hang, no acknowledged action lost, no push gap")
	return 0
}

// phase is one fault injected under load, after lead of quiet load; inject
// returns the time recovery is measured from (the kill, or the end of an
// outage) and the kinds of requests it affects.
type phase struct {
	name   string
	kinds  []string
	inject func(ctx context.Context) (time.Time, error)

	start, fault, ref, end time.Time
}

func runSuite(ctx context.Context, o options, out io.Writer) (*result, error) {
	began := time.Now()
	bin, err := filepath.Abs(o.noon)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s: %w (run make build)", o.noon, err)
	}
	dir, err := os.MkdirTemp("", "noonchaos-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if o.keep {
			fmt.Fprintf(out, "run directory kept: %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()
	fmt.Fprintf(out, "noonchaos: starting the cluster (run directory %s)\n", dir)
	c, err := newCluster(ctx, bin, o.config, o.postgres, dir, out)
	if err != nil {
		return nil, err
	}
	defer c.close(o.keep)
	if err := c.up(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "noonchaos: cluster up in %.1fs\n", time.Since(began).Seconds())

	st := &stats{}
	l := &load{brokers: c.brokers, deadline: 5 * time.Second, grace: 2 * time.Second,
		target: 60, pace: o.pace, actPace: o.actPace, st: st, run: "c" + strconv.FormatInt(time.Now().Unix()%1e6, 36)}
	lctx, lcancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := 0; i < o.pairs; i++ {
		wg.Add(1)
		go func(w int) { defer wg.Done(); l.pair(lctx, w) }(1000 + 2*i)
	}
	for i := 0; i < o.echoers; i++ {
		wg.Add(1)
		go func(w int) { defer wg.Done(); l.echoCaller(lctx, w) }(2000 + i)
	}
	for i := 0; i < o.loginers; i++ {
		wg.Add(1)
		go func(w int) { defer wg.Done(); l.loginCaller(lctx, w) }(3000 + i)
	}
	stopLoad := func() {
		lcancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			fmt.Fprintln(out, "noonchaos: some workers did not stop within 30s")
		}
	}

	phases := c.phases(o)
	lead := o.phase / 5
	for _, p := range phases {
		if ctx.Err() != nil {
			break
		}
		p.start = time.Now()
		sleepCtx(ctx, lead)
		p.fault = time.Now()
		fmt.Fprintf(out, "noonchaos: %s\n", p.name)
		ref, err := p.inject(ctx)
		if err != nil {
			stopLoad()
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		p.ref = ref
		sleepCtx(ctx, time.Until(p.start.Add(o.phase)))
		p.end = time.Now()
	}
	stopLoad()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("stopped before the end: %w", ctx.Err())
	}
	r := &result{phases: phases, exited: c.exitedByThemselves()}
	if err := r.check(ctx, c, st); err != nil {
		return nil, err
	}
	r.print(out, st)
	fmt.Fprintf(out, "noonchaos: ran %.0fs (%d phases of %v)\n", time.Since(began).Seconds(), len(phases), o.phase)
	return r, nil
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
