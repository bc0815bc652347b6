// Command noonbench is noon's load generator. In one run on this machine,
// in one process, it measures noon against two baselines speaking the same
// pandaparty frames through the same Go client (edge/client):
//
//  1. raw: client -> a Go TCP echo server;
//  2. relay: client -> a two-hop Go TCP frame relay -> the echo server, the
//     floor for any broker on this path;
//  3. noon: client -> broker -> echo service (over ZeroMQ) -> broker ->
//     client, with yellow, one broker and one echo instance started in this
//     process on loopback port 0, every internal link mutual TLS (as noon
//     dev and noon cluster run them);
//  4. noon-plain: the same platform with plain internal links, so that the
//     cost of TLS is measured in the same run (noon / noon-plain);
//
// each closed-loop at every connection count of -conns, and prints one table
// (requests per second, p50 / p99 / p99.9 latency, CPU and memory) and
// noon's ratio to each baseline. Then the idle test: -idle connections held
// by the broker, opened from several 127.0.0.x source addresses, and the
// broker's memory per connection, extrapolated to 100,000 connections.
// Last, when Postgres and Redis answer (-postgres, -redis), the login
// scenario: the login service in this process on the real Postgres (a
// fresh schema, dropped afterwards) and Redis (its own key prefix, deleted
// afterwards), logins per second through the broker and through the HTTP
// API with the default argon2id parameters and with cheap ones, and
// login.Validate per second, at 1 and 16 connections (see login.go).
// When Redis answers, the match scenario: tickets per second from
// match.Start to "@match.Matched" through the broker with two match and two
// room instances, and the time to match (see match.go).
// When Postgres and Redis answer, the friends scenario: friends.List with
// presence of a player with 200 friends through the broker, and a friend's
// login to the @friends.Online push (see friends.go). When Redis answers,
// the game scenario: wallet changes per second for one hot player and
// across 10,000 players, leaderboard submits and AroundMe reads per
// second, p50/p99, on Postgres when it answers (see game.go). When Redis
// answers, the pay scenario: pay.Validate with its grant per second
// through the broker (distinct purchases, 1 and 16 connections) and
// webhook intakes per second, p50/p99, on Postgres when it answers (see
// pay.go).
// The abuse scenario runs only when asked for, alone (-only abuse): a
// broker in a child process holding 10,000 connections of which 100
// misbehave (pipelining 1 MiB requests without reading, WebSocket
// slowloris, a connection flood from one address), and the well-behaved
// connections' requests per second and p99 against a baseline without them
// (see abuse.go).
// The like-for-like scenario runs only when asked for, alone (-only lfl):
// the broker, the echo instance (with yellow), the relay and its echo server
// each in a process of their own, the load from this one, noon over
// WebSocket and TCP beside the relay, and each server process's CPU per
// request, the broker's alone among them (see lfl.go).
// Progress goes to stderr; the results also go to a JSON file.
//
// Everything but Postgres and Redis runs on loopback (127.0.0.0/8), and
// everything stops by itself.
//
// Usage:
//
//	noonbench [-duration 3s] [-warmup 1s] [-conns 1,16,256] [-pipeline 1]
//	          [-payload 32] [-idle 9000] [-json noonbench-results.json]
//	          [-only raw,relay,noon,noon-plain,idle,login,match,friends,game,pay] [-rounds 1] [-quick] [-log error]
//	noonbench -only lfl [-conns 1,16,256] [-payload 64] [-rounds 1] [-lfl-plain] [-cpuprofile-broker FILE] [-cpuprofile-echo FILE] [-nakama BIN [-nakama-db ADDR]] [-noon-dev bin/noon]
//	noonbench -only abuse [-abuse-conns 10000] [-abuse-bad 100] [-duration 3s] [-warmup 1s]
//	          [-match-players 1000,10000] [-match-rate 5000]
//	          [-postgres postgres://postgres@127.0.0.1:5432/test?sslmode=disable]
//	          [-redis 127.0.0.1:6379]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
)

// Scenarios, the values of -only.
const (
	scenarioRaw   = "raw"
	scenarioRelay = "relay"
	scenarioNoon  = "noon"
	// scenarioNoonPlain is noon with plain internal links: the baseline of
	// TLS's cost.
	scenarioNoonPlain = "noon-plain"
	scenarioIdle      = "idle"
	scenarioLogin     = "login"
	// scenarioMatch is the matchmaker: tickets per second to the push.
	scenarioMatch = "match"
	// scenarioFriends is friends.List with presence, and presence pushes.
	scenarioFriends = "friends"
	// scenarioGame is player data: wallet changes, leaderboard submits and
	// reads per second.
	scenarioGame = "game"
	// scenarioPay is payments: validations with grant and webhook intakes
	// per second.
	scenarioPay = "pay"
)

// allScenarios are the scenarios run by default. login runs only when
// Postgres and Redis answer; asked for by -only, it fails without them.
var allScenarios = []string{scenarioRaw, scenarioRelay, scenarioNoon, scenarioNoonPlain, scenarioIdle, scenarioLogin, scenarioMatch, scenarioFriends, scenarioGame, scenarioPay}

// Defaults of the flags.
const (
	defaultDuration = 3 * time.Second
	defaultWarmup   = time.Second
	defaultConns    = "1,16,256"
	defaultPayload  = 32
	defaultJSON     = "noonbench-results.json"
	// defaultIdle is the idle test's connection count: client and broker
	// are in this one process, so each connection takes two file
	// descriptors, and this machine allows 20,000; 9,000 leaves 2,000 for
	// the rest. The per-connection figure is extrapolated to 100,000.
	defaultIdle = 9000
	// quickDuration, quickWarmup and quickIdle are -quick's: enough for
	// every scenario to run and every number to be non-zero, nothing more.
	quickDuration = 300 * time.Millisecond
	quickWarmup   = 100 * time.Millisecond
	quickIdle     = 300
	// maxRounds bounds -rounds: beyond 10 a sweep is a soak test.
	maxRounds = 10
	// fdSlack is the file descriptors kept aside for everything but the
	// connections under test: the runtime, yellow's, the echo instance's
	// and the broker's ZeroMQ sockets, sockets of earlier scenarios still
	// closing.
	fdSlack = 1000
)

// config is the parsed flags.
type config struct {
	duration, warmup time.Duration
	conns            []int
	pipeline         int
	rounds           int
	payload          int
	idle             int
	jsonPath         string
	only             []string
	quick            bool
	logLevel         string
	// onlyGiven is set when -only named the scenarios; connsGiven when
	// -conns was given (the login scenario has its own default counts).
	onlyGiven, connsGiven bool
	// postgresURL and redisAddr are the login scenario's servers (and
	// redisAddr the match scenario's).
	postgresURL, redisAddr string
	// matchPlayers are the match scenario's waiting players
	// (comma-separated counts); matchRate its open loop's tickets per
	// second.
	matchPlayers string
	matchRate    int
	// cpuProfile is the file a CPU profile of the whole run goes to.
	cpuProfile string
	// abuseConns and abuseBad are the abuse scenario's connections and
	// how many of them misbehave.
	abuseConns, abuseBad int
	// lflPlain runs the like-for-like scenario with plain internal links;
	// brokerProfile is the file its broker process's CPU profile goes to.
	lflPlain      bool
	brokerProfile string
	// lflRows is the comma-separated rows of the like-for-like scenario
	// to run ("": every row its flags allow); lflRate paces each of its
	// rows to this many requests per second in all (0: closed loop).
	lflRows string
	lflRate float64
	// lflRun is the rows that run (lflRowsToRun), in order.
	lflRun []string
	// echoProfile is the file its echo process's CPU profile goes to.
	echoProfile string
	// noonDev is the noon binary whose `noon dev` the like-for-like
	// scenario loads too ("": none).
	noonDev string
	// nakama is a Nakama server binary the like-for-like scenario also
	// loads (its nakama row); nakamaDB its database address.
	nakama, nakamaDB string
}

func (c config) has(scenario string) bool { return slices.Contains(c.only, scenario) }

// errUsage marks a bad command line; the flag package has printed why.
var errUsage = errors.New("usage")

func main() {
	if role := os.Getenv(lflChildEnv); role != "" {
		os.Exit(lflChild(role, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	if os.Getenv(abuseChildEnv) == "1" {
		os.Exit(abuseChild(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(realMain(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// realMain runs noonbench with args, the table on stdout, progress and logs
// on stderr, and returns the exit code.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		if !errors.Is(err, errUsage) {
			fmt.Fprintf(stderr, "noonbench: %v\n", err)
		}
		return 2
	}
	if cfg.has(scenarioAbuse) {
		if err := runAbuse(ctx, cfg, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "noonbench: %v\n", err)
			return 1
		}
		return 0
	}
	if cfg.has(scenarioLFL) {
		if err := runLFL(ctx, cfg, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "noonbench: %v\n", err)
			return 1
		}
		return 0
	}
	if err := run(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "noonbench: %v\n", err)
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var (
		cfg   config
		conns string
		only  string
	)
	fs := flag.NewFlagSet("noonbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&cfg.duration, "duration", defaultDuration, "measured time of each scenario")
	fs.DurationVar(&cfg.warmup, "warmup", defaultWarmup, "warm-up before each scenario's measurement (not measured)")
	fs.StringVar(&conns, "conns", defaultConns, "comma-separated connection counts to run each scenario at")
	fs.IntVar(&cfg.pipeline, "pipeline", 1, "requests each connection keeps outstanding")
	fs.IntVar(&cfg.rounds, "rounds", 1, "times to run the whole sweep, interleaved; the table shows each row's median round (for noisy machines)")
	fs.IntVar(&cfg.payload, "payload", defaultPayload, "request (and reply) payload size in bytes")
	fs.IntVar(&cfg.idle, "idle", defaultIdle, "idle connections for the idle test (2 file descriptors each in this process)")
	fs.StringVar(&cfg.jsonPath, "json", defaultJSON, "file to write the results to as JSON (\"\" for none)")
	fs.StringVar(&only, "only", "", "comma-separated subset of scenarios to run: "+strings.Join(allScenarios, ",")+" (default all); or "+scenarioAbuse+" or "+scenarioLFL+" (like for like: servers in processes of their own) alone")
	fs.BoolVar(&cfg.quick, "quick", false, fmt.Sprintf("short run for tests: -duration %v -warmup %v -idle %d unless given", quickDuration, quickWarmup, quickIdle))
	fs.StringVar(&cfg.logLevel, "log", "error", "log level of the in-process yellow, echo instance, broker and login service (debug|info|warn|error)")
	fs.StringVar(&cfg.postgresURL, "postgres", defaultPostgres, "Postgres `URL` of the login scenario (it creates a schema of its own and drops it)")
	fs.StringVar(&cfg.redisAddr, "redis", defaultRedis, "Redis `host:port` (or redis:// URL) of the login scenario (it writes under a key prefix of its own and deletes it)")
	fs.StringVar(&cfg.matchPlayers, "match-players", defaultMatchPlayers, "comma-separated waiting players of the match scenario (connections hold a ticket in each of several queues past 2,500)")
	fs.IntVar(&cfg.matchRate, "match-rate", defaultMatchRate, "tickets per second of the match scenario's open loop (its latency)")
	fs.IntVar(&cfg.abuseConns, "abuse-conns", defaultAbuseConns, "connections of the abuse scenario (-only abuse), misbehaving ones included; its broker runs in a child process")
	fs.IntVar(&cfg.abuseBad, "abuse-bad", defaultAbuseBad, "misbehaving connections of the abuse scenario: pipeliners, WebSocket slowloris and a connection flood, a third each")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to `file` (go tool pprof)")
	fs.StringVar(&cfg.lflRows, "lfl-rows", "", "with -only lfl, the comma-separated rows to run (relay,noon-tcp,noon-ws,dev-ws,nakama; default every row the flags allow), e.g. to profile one row")
	fs.Float64Var(&cfg.lflRate, "lfl-rate", 0, "with -only lfl, pace every row to this many requests per second in all, latency counted from when each call was due (default 0: closed loop, as fast as each row goes): p99 at equal load")
	fs.BoolVar(&cfg.lflPlain, "lfl-plain", false, "run -only lfl with plain internal links (default mutual TLS, as noon dev)")
	fs.StringVar(&cfg.nakama, "nakama", "", "with -only lfl, also load a Nakama server run from this `binary` (go build of github.com/heroiclabs/nakama/v3), its WebSocket RPC echo in Lua, on -nakama-db")
	fs.StringVar(&cfg.nakamaDB, "nakama-db", "postgres@127.0.0.1:5432/noonbench_nakama", "with -nakama, Nakama's --database.address (user[:password]@host:port/database; migrated, and created if missing)")
	fs.StringVar(&cfg.noonDev, "noon-dev", "", "with -only lfl, also load `noon dev` (one process: yellow, broker, every service) run from this noon `binary` (e.g. bin/noon), over WebSocket")
	fs.StringVar(&cfg.brokerProfile, "cpuprofile-broker", "", "with -only lfl, write a CPU profile of the broker process over the whole sweep to `file`")
	fs.StringVar(&cfg.echoProfile, "cpuprofile-echo", "", "with -only lfl, write a CPU profile of the echo process (yellow and the echo instance) over the whole sweep to `file`")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: noonbench [flags]\n\nnoonbench measures noon (client -> broker -> echo service) against a raw TCP echo\n"+
			"and a two-hop TCP relay, all in this process on loopback, then the broker's memory per\nidle connection, "+
			"then (when Postgres and Redis answer) logins per second through the broker and the\nlogin HTTP API. Flags:\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, errUsage
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg.onlyGiven, cfg.connsGiven = set["only"], set["conns"]
	if cfg.quick {
		if !set["duration"] {
			cfg.duration = quickDuration
		}
		if !set["warmup"] {
			cfg.warmup = quickWarmup
		}
		if !set["idle"] {
			cfg.idle = quickIdle
		}
	}

	var err error
	if cfg.conns, err = parseConns(conns); err != nil {
		return cfg, err
	}
	if cfg.only, err = parseOnly(only); err != nil {
		return cfg, err
	}
	if cfg.has(scenarioAbuse) {
		if len(cfg.only) > 1 {
			return cfg, errAbuseAlone
		}
		if cfg.abuseBad < 3 || cfg.abuseConns < cfg.abuseBad+abuseActive || cfg.abuseConns > bench.MaxIdle {
			return cfg, fmt.Errorf("-abuse-conns %d -abuse-bad %d: want at least 3 misbehaving and -abuse-bad + %d <= -abuse-conns <= %d",
				cfg.abuseConns, cfg.abuseBad, abuseActive, bench.MaxIdle)
		}
		if lim := fdLimit(); lim != 0 && uint64(cfg.abuseConns+fdSlack) > lim {
			return cfg, fmt.Errorf("-abuse-conns %d needs about %d file descriptors in each process, the limit is %d (ulimit -n)", cfg.abuseConns, cfg.abuseConns+fdSlack, lim)
		}
		return cfg, nil
	}
	if cfg.has(scenarioLFL) {
		if len(cfg.only) > 1 {
			return cfg, errLFLAlone
		}
		if !set["payload"] {
			cfg.payload = lflPayload
		}
		if cfg.lflRun, err = lflRowsToRun(cfg.lflRows, cfg.noonDev != "", cfg.nakama != ""); err != nil {
			return cfg, err
		}
		if cfg.lflRate < 0 || cfg.lflRate > bench.MaxRate {
			return cfg, fmt.Errorf("-lfl-rate %v: want [0, %v]", cfg.lflRate, bench.MaxRate)
		}
	} else if cfg.brokerProfile != "" || cfg.echoProfile != "" || cfg.lflPlain || cfg.noonDev != "" || cfg.nakama != "" || cfg.lflRows != "" || cfg.lflRate != 0 {
		return cfg, errors.New("-cpuprofile-broker, -cpuprofile-echo, -lfl-plain, -lfl-rows, -lfl-rate, -noon-dev and -nakama go with -only lfl")
	}
	if cfg.duration <= 0 || cfg.duration > bench.MaxDuration {
		return cfg, fmt.Errorf("-duration %v: want (0, %v]", cfg.duration, bench.MaxDuration)
	}
	if cfg.warmup < 0 || cfg.warmup > bench.MaxDuration {
		return cfg, fmt.Errorf("-warmup %v: want [0, %v]", cfg.warmup, bench.MaxDuration)
	}
	if cfg.pipeline < 1 || cfg.pipeline > bench.MaxPipeline {
		return cfg, fmt.Errorf("-pipeline %d: want 1..%d", cfg.pipeline, bench.MaxPipeline)
	}
	if cfg.rounds < 1 || cfg.rounds > maxRounds {
		return cfg, fmt.Errorf("-rounds %d: want 1..%d", cfg.rounds, maxRounds)
	}
	if cfg.payload < 0 || cfg.payload > bench.MaxPayload {
		return cfg, fmt.Errorf("-payload %d: want 0..%d", cfg.payload, bench.MaxPayload)
	}
	if cfg.has(scenarioIdle) && (cfg.idle < 1 || cfg.idle > bench.MaxIdle) {
		return cfg, fmt.Errorf("-idle %d: want 1..%d (or leave idle out of -only)", cfg.idle, bench.MaxIdle)
	}
	if cfg.has(scenarioLogin) || cfg.has(scenarioFriends) {
		if err := checkLoginFlags(cfg); err != nil {
			return cfg, err
		}
	}
	if cfg.has(scenarioMatch) {
		if _, err := matchPlayerCounts(cfg.matchPlayers); err != nil {
			return cfg, err
		}
		if cfg.matchRate < 1 || cfg.matchRate > 1_000_000 {
			return cfg, fmt.Errorf("-match-rate %d: want 1..1000000", cfg.matchRate)
		}
	}
	if err := checkFDs(cfg, fdLimit()); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func parseConns(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > bench.MaxConns {
			return nil, fmt.Errorf("-conns %q: %q is not a connection count in 1..%d", s, f, bench.MaxConns)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-conns %q: no connection count", s)
	}
	return out, nil
}

func parseOnly(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return slices.Clone(allScenarios), nil
	}
	out, err := splitNames("only", s, func(f string) bool {
		return slices.Contains(allScenarios, f) || f == scenarioAbuse || f == scenarioLFL
	}, fmt.Sprintf("some of %s (or %s or %s alone)", strings.Join(allScenarios, ","), scenarioAbuse, scenarioLFL))
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("-only %q: no scenario", s)
	}
	return out, err
}

// splitNames returns the names of a comma-separated flag value, each once,
// in order; known says which are allowed, and want, in the error, which.
func splitNames(flag, s string, known func(string) bool, want string) ([]string, error) {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !known(f) {
			return nil, fmt.Errorf("-%s %q: unknown name %q, want %s", flag, s, f, want)
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// fdLimit returns this process's open-file limit (Go raises the soft limit
// to the hard one at start), or 0 if unknown.
func fdLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// checkFDs refuses, before anything starts, a run that would need more
// file descriptors than limit: a load scenario holds 2 per connection (4
// for the relay: client, relay's two sides, echo server), the idle test 2
// per connection (client and broker sides).
func checkFDs(cfg config, limit uint64) error {
	if limit == 0 {
		return nil
	}
	perConn := 2
	if cfg.has(scenarioRelay) {
		perConn = 4
	}
	if slices.ContainsFunc(cfg.only, func(s string) bool { return s != scenarioIdle }) {
		need := uint64(perConn*slices.Max(cfg.conns) + fdSlack)
		if need > limit {
			return fmt.Errorf("-conns %d needs about %d file descriptors in this process, the limit is %d (ulimit -n): use fewer connections",
				slices.Max(cfg.conns), need, limit)
		}
	}
	if cfg.has(scenarioIdle) {
		if need := uint64(2*cfg.idle + fdSlack); need > limit {
			return fmt.Errorf("-idle %d needs about %d file descriptors in this process (client and broker side of each, plus %d), "+
				"the limit is %d (ulimit -n): use -idle %d or less, the per-connection figure is extrapolated to 100,000",
				cfg.idle, need, fdSlack, limit, (limit-fdSlack)/2)
		}
	}
	return nil
}
