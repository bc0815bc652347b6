package main

// The login scenario: logins per second against the real Postgres and Redis.
//
// The login service runs in this process, registered with the in-process
// yellow, so that the broker routes login.* to it (its default routes do),
// with its HTTP API on 127.0.0.1:0. Its accounts live in a fresh Postgres
// schema (login_bench_<random>) and its sessions under a Redis key prefix of
// its own (noonbench:<random>:); both are deleted at the end, and the
// sessions expire within an hour should that fail. The throttles are off
// (Max 0) and nothing is shed (shed_queue 0), so that the benchmark
// measures the work and not the throttle. Accounts are registered up front through the
// service (not timed), one per connection and argon2 setting:
//
//   - default: argon2id with the service's defaults (m=19 MiB, t=2, p=1,
//     OWASP's minimum), what noon ships;
//   - cheap: argon2id m=1 MiB, t=1, to show what the rest of the path costs.
//
// A stored hash carries its parameters and the service verifies it with
// them, so one service logs in both sets of accounts, each at its own cost.
//
// Each case is a closed loop at each connection count (1 and 16 unless
// -conns is given): login.Login through the broker (edge/client CallThrift
// over TCP, one connection per worker, each logging in as its own user),
// POST /api/login on the HTTP API (keep-alive, one connection per worker),
// and login.Validate through the broker (a Redis read, no hashing).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/argon2"

	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
)

// Defaults and bounds of the login scenario.
const (
	defaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	defaultRedis    = "127.0.0.1:6379"
	// loginPassword is every benchmark account's password.
	loginPassword = "correct horse battery staple"
	// nakamaLoginsPerSec and nakamaCPUs are the figure issue 5 compares
	// with: Nakama's published logins per second on a 1-CPU node.
	nakamaLoginsPerSec = 500
	nakamaCPUs         = 1
	// storeProbeTimeout bounds the wait for Postgres and Redis to answer:
	// on this machine they answer in milliseconds or not at all.
	storeProbeTimeout = 3 * time.Second
	// migrateTimeout bounds creating the schema and running the
	// migrations.
	migrateTimeout = 30 * time.Second
	// cleanupTimeout bounds stopping the service, dropping the schema and
	// deleting the keys, which runs even after Ctrl-C.
	cleanupTimeout = 30 * time.Second
	// loginSessionTTL is the sessions' lifetime: every session the
	// benchmark creates is gone within the hour even if the cleanup fails.
	loginSessionTTL = time.Hour
	// hashSamples (quickHashSamples with -quick) is how many hashes the
	// hash-alone measurement times; the median is reported. hashWarmup
	// hashes go first, untimed: the first few 19 MiB allocations take
	// fresh pages from the kernel and run nearly twice as long as hashes
	// in a heap that reuses its memory, as the service's does.
	hashSamples      = 7
	quickHashSamples = 3
	hashWarmup       = 4
	// scanBatch is the SCAN COUNT and UNLINK batch of the key cleanup.
	scanBatch = 1000
	// maxErrBody bounds what of an HTTP error reply goes into an error.
	maxErrBody = 200
)

// defaultLoginConns are the login scenario's connection counts unless
// -conns is given: one client, and as many as keep both cores hashing.
var defaultLoginConns = []int{1, 16}

// The argon2 settings benchmarked.
const (
	argonDefault = "default"
	argonCheap   = "cheap"
)

// The login cases: what is called and through what.
const (
	opLogin    = "login"
	opValidate = "validate"
	viaBroker  = "broker"
	viaHTTP    = "http"
	loginPaths = "login/broker and validate/broker: edge/client CallThrift over TCP -> broker -> login service (ZeroMQ); " +
		"login/http: POST /api/login on the login service's HTTP API (keep-alive)"
)

// loginReport is the login scenario in the JSON file.
type loginReport struct {
	// Postgres and Redis are the servers (without password), with their
	// versions.
	Postgres        string `json:"postgres"`
	PostgresVersion string `json:"postgres_version,omitempty"`
	Redis           string `json:"redis"`
	RedisVersion    string `json:"redis_version,omitempty"`
	// Schema and RedisPrefix are what the run wrote to, deleted after.
	Schema      string `json:"schema,omitempty"`
	RedisPrefix string `json:"redis_prefix,omitempty"`
	// Throttles says how the service's throttles were set.
	Throttles string `json:"throttles,omitempty"`
	// UsersPerSetting is the accounts registered per argon2 setting.
	UsersPerSetting int   `json:"users_per_setting,omitempty"`
	Conns           []int `json:"conns,omitempty"`
	// Argon2 are the settings benchmarked, with the cost of one hash.
	Argon2 []argonSetting `json:"argon2,omitempty"`
	// Results has one result per case and connection count: with several
	// rounds, the round of median ops/s.
	Results []loginResult `json:"results,omitempty"`
	// AllResults has every round's; Scenario is op/via[/argon2].
	AllResults []roundResult `json:"all_results,omitempty"`
	// Nakama is the comparison with Nakama's published figure.
	Nakama *nakamaComparison `json:"nakama,omitempty"`
	// Cleanup says what was deleted afterwards.
	Cleanup string `json:"cleanup,omitempty"`
	// Skipped says why the scenario did not run, when Postgres or Redis
	// did not answer.
	Skipped string `json:"skipped,omitempty"`
}

// argonSetting is one argon2id setting and what one hash costs.
type argonSetting struct {
	Name      string `json:"name"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	KeyLen    uint32 `json:"key_len"`
	SaltLen   uint32 `json:"salt_len"`
	// HashesAtOnce is how many hashes the service runs at once
	// (Argon2.Concurrency 0 = GOMAXPROCS).
	HashesAtOnce int `json:"hashes_at_once"`
	// HashMs is the median time of one hash alone (argon2.IDKey, this
	// goroutine, nothing else of the benchmark running, after a few
	// untimed ones).
	HashMs float64 `json:"hash_ms"`
	// HashCeilingPerSec is HashesAtOnce / HashMs: the most logins per
	// second the hashing alone allows here.
	HashCeilingPerSec float64 `json:"hash_ceiling_per_s"`
}

func (a argonSetting) String() string {
	return fmt.Sprintf("argon2id m=%d KiB (%s), t=%d, p=%d, %d-byte key, %d-byte salt",
		a.MemoryKiB, fmtKiB(a.MemoryKiB), a.Time, a.Threads, a.KeyLen, a.SaltLen)
}

// fmtKiB formats KiB as "19 MiB" when whole MiB.
func fmtKiB(kib uint32) string {
	if kib%1024 == 0 {
		return fmt.Sprintf("%d MiB", kib/1024)
	}
	return fmt.Sprintf("%d KiB", kib)
}

// loginResult is one case at one connection count.
type loginResult struct {
	Op     string `json:"op"`               // login or validate
	Via    string `json:"via"`              // broker or http
	Argon2 string `json:"argon2,omitempty"` // the accounts' setting; "" for validate
	bench.Result
}

// nakamaComparison compares the best login rates through the broker with
// Nakama's published figure.
type nakamaComparison struct {
	NakamaLoginsPerSec float64 `json:"nakama_logins_per_s"`
	NakamaCPUs         int     `json:"nakama_cpus"`
	CPUs               int     `json:"cpus"`
	// DefaultConns and DefaultPerSec are the best login/broker/default row;
	// DefaultPerCPU is DefaultPerSec / CPUs.
	DefaultConns  int     `json:"default_conns"`
	DefaultPerSec float64 `json:"default_logins_per_s"`
	DefaultPerCPU float64 `json:"default_logins_per_s_per_cpu"`
	// The same with the cheap parameters.
	CheapConns  int     `json:"cheap_conns"`
	CheapPerSec float64 `json:"cheap_logins_per_s"`
	CheapPerCPU float64 `json:"cheap_logins_per_s_per_cpu"`
	// Summary is the line printed.
	Summary string `json:"summary"`
}

// loginCase is one thing measured.
type loginCase struct{ op, via, argon string }

// scenario is the case's Result.Scenario: op/via[/argon].
func (c loginCase) scenario() string {
	if c.argon == "" {
		return c.op + "/" + c.via
	}
	return c.op + "/" + c.via + "/" + c.argon
}

// parseScenario is scenario's inverse.
func parseScenario(s string) loginCase {
	f := strings.SplitN(s, "/", 3)
	for len(f) < 3 {
		f = append(f, "")
	}
	return loginCase{f[0], f[1], f[2]}
}

// loginCases are the cases in the order each round runs them.
func loginCases() []loginCase {
	return []loginCase{
		{opLogin, viaBroker, argonDefault},
		{opLogin, viaHTTP, argonDefault},
		{opLogin, viaBroker, argonCheap},
		{opLogin, viaHTTP, argonCheap},
		{opValidate, viaBroker, ""},
	}
}

// loginConns returns the login scenario's connection counts.
func loginConns(cfg config) []int {
	if cfg.connsGiven {
		return cfg.conns
	}
	return defaultLoginConns
}

// argonOptions returns the parameters of setting name.
func argonOptions(name string) login.Argon2Options {
	a := login.NewOptions().Argon2
	if name == argonCheap {
		a.Time, a.MemoryKiB = 1, 1024
	}
	return a
}

// checkLoginFlags checks -postgres and -redis.
func checkLoginFlags(cfg config) error {
	if _, err := pgxpool.ParseConfig(cfg.postgresURL); err != nil {
		return fmt.Errorf("-postgres: %w", err)
	}
	if _, err := redisOptions(cfg.redisAddr); err != nil {
		return err
	}
	return nil
}

// redisOptions parses -redis: host:port, or a redis:// URL.
func redisOptions(s string) (*redis.Options, error) {
	if strings.Contains(s, "://") {
		o, err := redis.ParseURL(s)
		if err != nil {
			return nil, fmt.Errorf("-redis: %w", err)
		}
		return o, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return nil, fmt.Errorf("-redis %q: want host:port or a redis:// URL: %w", s, err)
	}
	return &redis.Options{Addr: s}, nil
}

// postgresName is the Postgres URL without its password.
func postgresName(u string) string {
	c, err := pgxpool.ParseConfig(u)
	if err != nil {
		return u
	}
	cc := c.ConnConfig
	return fmt.Sprintf("postgres://%s@%s/%s", cc.User, net.JoinHostPort(cc.Host, fmt.Sprint(cc.Port)), cc.Database)
}

// redisName is the Redis address and database.
func redisName(s string) string {
	o, err := redisOptions(s)
	if err != nil {
		return s
	}
	return fmt.Sprintf("%s/%d", o.Addr, o.DB)
}

// loginStores are the open Postgres pool and Redis client.
type loginStores struct {
	pool *pgxpool.Pool
	rdb  *redis.Client
}

func (s *loginStores) close() {
	s.pool.Close()
	_ = s.rdb.Close()
}

// openLoginStores connects to -postgres and -redis and checks that both
// answer within storeProbeTimeout. The pool has pgx's default size, as the
// noon command's (postgres.max_conns 0).
func openLoginStores(ctx context.Context, cfg config) (*loginStores, error) {
	ctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	defer cancel()
	pcfg, err := pgxpool.ParseConfig(cfg.postgresURL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	ropts, err := redisOptions(cfg.redisAddr)
	if err != nil {
		pool.Close()
		return nil, err
	}
	// A plain dial first: go-redis logs every failed dial of its pool to
	// stderr, and retries it five times, before Ping returns.
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", ropts.Addr)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	_ = nc.Close()
	rdb := redis.NewClient(ropts)
	if err := rdb.Ping(ctx).Err(); err != nil {
		pool.Close()
		_ = rdb.Close()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return &loginStores{pool: pool, rdb: rdb}, nil
}

// skippedLine is the line printed when the stores do not answer.
func skippedLine(cfg config, err error) string {
	return fmt.Sprintf("login: skipped, no Postgres/Redis at %s and %s: %s", postgresName(cfg.postgresURL), redisName(cfg.redisAddr),
		strings.Join(strings.Fields(errText(err)), " "))
}

// loginStack is the login service in this process.
type loginStack struct {
	st          *loginStores
	schema      string
	prefix      string
	svc         *login.Service
	srv         *services.Server
	srvDone     chan error
	api         *login.HTTPServer
	apiDone     chan error
	users       map[string][]string // per argon setting, one per worker
	brokerAddr  string
	closeOnce   sync.Once
	cleanup     string
	cleanupErr  error
	loginAPIURL string
}

// startLogin migrates a fresh schema, starts the login service (wire and
// HTTP) on st, waits until the broker routes login.Validate to it, and
// registers users accounts per argon setting. It owns st from then on:
// close closes it. On failure it returns the stack already closed, for its
// cleanup's account.
func startLogin(ctx context.Context, log *slog.Logger, noon *noonStack, st *loginStores, users int, prog *progress) (res *loginStack, err error) {
	id := randomHex(6)
	ls := &loginStack{
		st:         st,
		schema:     "login_bench_" + id,
		prefix:     "noonbench:" + id + ":",
		brokerAddr: noon.addr(),
		users:      map[string][]string{},
	}
	defer func() {
		if err != nil {
			_, _ = ls.close()
			res = ls
		}
	}()

	mctx, cancel := context.WithTimeout(ctx, migrateTimeout)
	defer cancel()
	if err := login.MigrateSchema(mctx, st.pool, ls.schema); err != nil {
		return nil, err
	}
	store, err := login.NewPostgresStore(st.pool, ls.schema)
	if err != nil {
		return nil, err
	}
	opts := login.NewOptions()
	opts.HTTPAddr = "127.0.0.1:0"
	opts.PostgresSchema = ls.schema
	opts.RedisPrefix = ls.prefix
	opts.SessionTTL = loginSessionTTL
	opts.Throttle.PerAccount.Max = 0
	opts.Throttle.PerAddress.Max = 0
	opts.Throttle.PerAccountAddress.Max = 0
	// Every worker logs in at once from loopback: no shedding, and a
	// queue as long as any -conns, so that the benchmark measures the
	// hashing and not the shedding (the test TestLoginFlood covers it).
	opts.Throttle.ShedQueue = 0
	opts.Throttle.MaxQueue = login.MaxShedQueue
	llog := log.With("daemon", "login")
	if ls.svc, err = login.New(opts, store, st.rdb, llog); err != nil {
		return nil, err
	}

	sopts := services.NewOptions()
	sopts.Yellows = []string{noon.y.RouterEndpoint()}
	if sopts.TLS, err = noon.credentials(pki.Identity{Role: pki.RoleService, Name: login.Name}); err != nil {
		return nil, err
	}
	if ls.srv, err = login.NewServer(sopts, ls.svc, llog); err != nil {
		return nil, err
	}
	ls.srvDone = make(chan error, 1)
	go func() { ls.srvDone <- ls.srv.Main() }()
	if ls.api, err = login.NewHTTPServer(opts.HTTPAddr, ls.svc, llog); err != nil {
		return nil, err
	}
	ls.loginAPIURL = ls.api.URL()
	ls.apiDone = make(chan error, 1)
	go func() { ls.apiDone <- ls.api.Main() }()

	// Accounts of the other setting are registered through a service with
	// those parameters, on the same store; the service above verifies them
	// with the parameters their hashes carry.
	for _, name := range []string{argonDefault, argonCheap} {
		svc := ls.svc
		if a := argonOptions(name); a != opts.Argon2 {
			o := opts
			o.Argon2 = a
			if svc, err = login.New(o, store, st.rdb, slog.New(slog.DiscardHandler)); err != nil {
				return nil, err
			}
		}
		prog.logf("login: registering %d accounts with the %s argon2 parameters", users, name)
		if ls.users[name], err = register(ctx, svc, "nb_"+name[:1]+"_", users); err != nil {
			return nil, err
		}
	}
	if err := waitLoginRoutable(ctx, ls.brokerAddr); err != nil {
		return nil, err
	}
	return ls, nil
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// register creates n accounts prefix0..prefix<n-1>, GOMAXPROCS at a time
// (hashing is CPU-bound), and returns their usernames.
func register(ctx context.Context, svc *login.Service, prefix string, n int) ([]string, error) {
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		sem   = make(chan struct{}, runtime.GOMAXPROCS(0))
	)
	for _, u := range users {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := svc.Register(ctx, u, loginPassword, "", ""); err != nil {
				once.Do(func() { first = fmt.Errorf("register %s: %w", u, err) })
			}
		}()
	}
	wg.Wait()
	return users, first
}

// waitLoginRoutable calls login.Validate through the broker until the
// login service answers it.
func waitLoginRoutable(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, routableTimeout)
	defer cancel()
	c, err := client.Dial(ctx, addr, client.Options{DialTimeout: routableTimeout})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		var rep loginpb.ValidateReply
		err := c.CallThrift(ctx, loginrpc.MethodValidate, &loginpb.ValidateRequest{SessionToken: "probe"}, &rep)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the broker does not route %s after %v: %w", loginrpc.MethodValidate, routableTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// close stops the service and its HTTP API, drops the schema, deletes the
// keys under the prefix and closes the stores, even after Ctrl-C. It
// returns what it deleted. Later calls return the first call's result.
func (ls *loginStack) close() (string, error) {
	ls.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if ls.api != nil {
			_ = ls.api.Drain(ctx)
			waitDone(ls.apiDone)
		}
		if ls.srv != nil {
			ls.srv.Exit()
			waitDone(ls.srvDone)
		}
		var errs []error
		if _, err := ls.st.pool.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{ls.schema}.Sanitize()+` CASCADE`); err != nil {
			errs = append(errs, fmt.Errorf("drop schema %s: %w", ls.schema, err))
		}
		n, err := deleteKeys(ctx, ls.st.rdb, ls.prefix)
		if err != nil {
			errs = append(errs, fmt.Errorf("delete Redis keys %s*: %w", ls.prefix, err))
		}
		ls.st.close()
		ls.cleanup = fmt.Sprintf("dropped schema %s; deleted %s Redis keys under %s", ls.schema, fmtCount(float64(n)), ls.prefix)
		ls.cleanupErr = errors.Join(errs...)
	})
	return ls.cleanup, ls.cleanupErr
}

// cleanupText says what close deleted, and what it failed to.
func (ls *loginStack) cleanupText() string {
	s, err := ls.close()
	if err != nil {
		s += "; cleanup failed: " + errText(err)
	}
	return s
}

// waitDone waits (at most stopTimeout) for a daemon's result.
func waitDone(done chan error) {
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-time.After(stopTimeout):
	}
}

// deleteKeys deletes every key starting with prefix (which holds no glob
// characters) and returns how many.
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) (int, error) {
	var (
		cursor uint64
		n      int
	)
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", scanBatch).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return n, err
			}
			n += len(keys)
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// versions returns the servers' versions, "" where unknown.
func (ls *loginStack) versions(ctx context.Context) (pg, rd string) {
	ctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	defer cancel()
	_ = ls.st.pool.QueryRow(ctx, `SHOW server_version`).Scan(&pg)
	if info, err := ls.st.rdb.Info(ctx, "server").Result(); err == nil {
		for line := range strings.SplitSeq(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				rd = v
			}
		}
	}
	return pg, rd
}

// measureArgon times one hash of setting name alone, samples times after
// hashWarmup untimed ones, and returns the setting with the median.
func measureArgon(name string, samples int) argonSetting {
	a := argonOptions(name)
	s := argonSetting{
		Name: name, Time: a.Time, MemoryKiB: a.MemoryKiB, Threads: a.Threads, KeyLen: a.KeyLen, SaltLen: a.SaltLen,
		HashesAtOnce: a.Concurrency,
	}
	if s.HashesAtOnce == 0 {
		s.HashesAtOnce = runtime.GOMAXPROCS(0)
	}
	salt := make([]byte, a.SaltLen)
	_, _ = rand.Read(salt)
	ds := make([]time.Duration, hashWarmup+samples)
	for i := range ds {
		start := time.Now()
		argon2.IDKey([]byte(loginPassword), salt, a.Time, a.MemoryKiB, a.Threads, a.KeyLen)
		ds[i] = time.Since(start)
	}
	ds = ds[hashWarmup:]
	slices.Sort(ds)
	med := ds[len(ds)/2]
	s.HashMs = float64(med) / float64(time.Millisecond)
	s.HashCeilingPerSec = float64(min(s.HashesAtOnce, runtime.NumCPU())) / med.Seconds()
	return s
}

// runLogin runs the login scenario on st (which it closes) and returns its
// report, complete as far as it got; the error says why it stopped.
func runLogin(ctx context.Context, cfg config, log *slog.Logger, noon *noonStack, st *loginStores, prog *progress) (*loginReport, error) {
	conns := loginConns(cfg)
	lr := &loginReport{
		Postgres:        postgresName(cfg.postgresURL),
		Redis:           redisName(cfg.redisAddr),
		Throttles:       "throttles off (Max 0), no shedding (shed_queue 0)",
		UsersPerSetting: slices.Max(conns),
		Conns:           conns,
	}
	samples := hashSamples
	if cfg.quick {
		samples = quickHashSamples
	}
	for _, name := range []string{argonDefault, argonCheap} {
		lr.Argon2 = append(lr.Argon2, measureArgon(name, samples))
	}

	prog.logf("login: starting the login service on %s and %s", lr.Postgres, lr.Redis)
	ls, err := startLogin(ctx, log, noon, st, lr.UsersPerSetting, prog)
	if err != nil {
		lr.Cleanup = ls.cleanupText()
		return lr, fmt.Errorf("starting the login service: %w", err)
	}
	lr.Schema, lr.RedisPrefix = ls.schema, ls.prefix
	lr.PostgresVersion, lr.RedisVersion = ls.versions(ctx)
	prog.logf("login: schema %s, Redis prefix %s, HTTP API %s", ls.schema, ls.prefix, ls.loginAPIURL)

	err = ls.runCases(ctx, cfg, conns, lr, prog)
	lr.Cleanup = ls.cleanupText() // closes it
	prog.logf("login: %s", lr.Cleanup)
	for _, r := range medians(lr.AllResults) {
		c := parseScenario(r.Scenario)
		lr.Results = append(lr.Results, loginResult{Op: c.op, Via: c.via, Argon2: c.argon, Result: r})
	}
	lr.Nakama = compareNakama(lr)
	return lr, err
}

// runCases runs every case at every connection count, cfg.rounds times,
// into lr.AllResults. A case that fails is noted and the rest still run;
// only a canceled ctx stops it.
func (ls *loginStack) runCases(ctx context.Context, cfg config, conns []int, lr *loginReport, prog *progress) error {
	cases := loginCases()
	total, i := cfg.rounds*len(cases)*len(conns), 0
	var failed []string
	for round := range cfg.rounds {
		for _, c := range cases {
			for _, n := range conns {
				i++
				res, err := ls.runCase(ctx, cfg, c, n, loginWindow(cfg, c, n, lr.Argon2), prog.scenario(i, total, c.scenario(), n))
				if werr := ls.awaitHashIdle(ctx); werr != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					prog.logf("[%d/%d] %s conns=%d: %v", i, total, c.scenario(), n, werr)
				}
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					prog.logf("[%d/%d] %s conns=%d: %v", i, total, c.scenario(), n, err)
					failed = append(failed, fmt.Sprintf("%s at %d connections: %v", c.scenario(), n, err))
					continue
				}
				lr.AllResults = append(lr.AllResults, roundResult{Round: round + 1, Result: res})
				prog.logf("[%d/%d] %-22s conns=%-4d %8.0f ops/s  p50 %s  p99 %s  CPU %.0f%%  errors %d",
					i, total, c.scenario(), n, res.RPS, fmtUs(res.P50Us), fmtUs(res.P99Us), res.CPUPercent, res.Errors)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d runs failed: %s", len(failed), total, strings.Join(failed, "; "))
	}
	return nil
}

// hashIdleTimeout bounds awaitHashIdle: the login calls a run leaves
// behind (timed out at the client, still queued at the service) end by
// their 5 s deadline, and a hash running then by its own length.
const hashIdleTimeout = 15 * time.Second

// awaitHashIdle waits until the login service runs and queues no hash, so
// that what a run left behind (16 connections' logins queued behind 2
// hashes outlive the run that sent them) does not slow the next run.
func (ls *loginStack) awaitHashIdle(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, hashIdleTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		running, waiting := ls.svc.HashLoad()
		if running == 0 && waiting == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the login service still runs %d hashes with %d waiting after %v; the next run starts anyway", running, waiting, hashIdleTimeout)
		case <-tick.C:
		}
	}
}

// errNoSession is counted when a login reply carries no session.
var errNoSession = errors.New("login reply without a user id or session token")

// loginWindow is the measured window of case c at n connections: -duration,
// or longer for a login when n connections queue for the hash, so that
// each connection completes about three logins in it (16 connections on 2
// hashes of 93 ms need 2.2 s; a shorter window measures nothing).
func loginWindow(cfg config, c loginCase, n int, settings []argonSetting) time.Duration {
	d := cfg.duration
	if c.op != opLogin {
		return d
	}
	for _, a := range settings {
		if a.Name == c.argon && a.HashesAtOnce > 0 {
			rounds := (n + a.HashesAtOnce - 1) / a.HashesAtOnce
			d = max(d, time.Duration(3*float64(rounds)*a.HashMs*float64(time.Millisecond)))
		}
	}
	return d
}

// runCase runs case c at n connections, measured for window.
func (ls *loginStack) runCase(ctx context.Context, cfg config, c loginCase, n int, window time.Duration, progress func(bench.Progress)) (bench.Result, error) {
	lc := bench.LoopConfig{
		Scenario: c.scenario(),
		Workers:  n,
		Warmup:   cfg.warmup,
		Duration: window,
		Progress: progress,
	}
	switch {
	case c.via == viaHTTP:
		tr := &http.Transport{MaxIdleConnsPerHost: n, MaxConnsPerHost: n, DisableCompression: true}
		defer tr.CloseIdleConnections()
		lc.Op = ls.httpLogin(&http.Client{Transport: tr}, ls.users[c.argon])
	default:
		clients, err := dialBroker(ctx, ls.brokerAddr, n)
		defer func() {
			for _, cl := range clients {
				_ = cl.Close()
			}
		}()
		if err != nil {
			return bench.Result{}, err
		}
		if c.op == opLogin {
			lc.Op = brokerLogin(clients, ls.users[c.argon])
			break
		}
		// Validate: each connection logs in once (cheap accounts, not
		// timed), then validates its own token.
		tokens := make([]string, n)
		for w, cl := range clients {
			var rep loginpb.LoginReply
			if err := cl.CallThrift(ctx, loginrpc.MethodLogin, &loginpb.LoginRequest{Username: ls.users[argonCheap][w], Password: loginPassword}, &rep); err != nil {
				return bench.Result{}, fmt.Errorf("logging in connection %d: %w", w+1, err)
			}
			tokens[w] = rep.SessionToken
		}
		lc.Op = brokerValidate(clients, tokens)
	}
	return bench.RunLoop(ctx, lc)
}

// dialBroker opens n client connections to the broker, each saying
// edge.Hello as a real client does.
func dialBroker(ctx context.Context, addr string, n int) ([]*client.Client, error) {
	clients := make([]*client.Client, 0, n)
	for i := range n {
		c, err := client.Dial(ctx, addr, client.Options{DialTimeout: bench.DefaultDialTimeout, Hello: true})
		if err != nil {
			return clients, fmt.Errorf("connection %d of %d: %w", i+1, n, err)
		}
		clients = append(clients, c)
	}
	return clients, nil
}

// callErr marks err as ending the worker when c's connection is gone.
func callErr(c *client.Client, err error) error {
	if c.Err() != nil {
		return fmt.Errorf("%w: %w", bench.ErrStopWorker, err)
	}
	return err
}

// brokerLogin is worker w logging in as users[w] through the broker on
// clients[w].
func brokerLogin(clients []*client.Client, users []string) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		c := clients[w]
		var rep loginpb.LoginReply
		if err := c.CallThrift(ctx, loginrpc.MethodLogin, &loginpb.LoginRequest{Username: users[w], Password: loginPassword}, &rep); err != nil {
			return callErr(c, err)
		}
		if rep.UserID == "" || rep.SessionToken == "" {
			return errNoSession
		}
		return nil
	}
}

// brokerValidate is worker w validating tokens[w] through the broker on
// clients[w].
func brokerValidate(clients []*client.Client, tokens []string) func(context.Context, int) error {
	return func(ctx context.Context, w int) error {
		c := clients[w]
		var rep loginpb.ValidateReply
		if err := c.CallThrift(ctx, loginrpc.MethodValidate, &loginpb.ValidateRequest{SessionToken: tokens[w]}, &rep); err != nil {
			return callErr(c, err)
		}
		if !rep.Valid {
			return errors.New("login.Validate: a live token is not valid")
		}
		return nil
	}
}

// httpLogin is worker w posting users[w]'s credentials to /api/login.
func (ls *loginStack) httpLogin(hc *http.Client, users []string) func(context.Context, int) error {
	url := ls.loginAPIURL + login.PathLogin
	bodies := make([][]byte, len(users))
	for i, u := range users {
		bodies[i], _ = json.Marshal(login.LoginBody{Username: u, Password: loginPassword})
	}
	return func(ctx context.Context, w int) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[w]))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s: %s: %s", login.PathLogin, resp.Status, bytes.TrimSpace(body[:min(len(body), maxErrBody)]))
		}
		var lr login.LoginResult
		if err := json.Unmarshal(body, &lr); err != nil {
			return fmt.Errorf("POST %s: %w", login.PathLogin, err)
		}
		if lr.UserID == "" || lr.SessionToken == "" {
			return errNoSession
		}
		return nil
	}
}

// compareNakama compares the best login rates through the broker with
// Nakama's published figure; nil without login/broker rows.
func compareNakama(lr *loginReport) *nakamaComparison {
	best := func(argon string) *loginResult {
		var b *loginResult
		for i := range lr.Results {
			r := &lr.Results[i]
			if r.Op == opLogin && r.Via == viaBroker && r.Argon2 == argon && (b == nil || r.RPS > b.RPS) {
				b = r
			}
		}
		return b
	}
	def, cheap := best(argonDefault), best(argonCheap)
	if def == nil || cheap == nil {
		return nil
	}
	cpus := runtime.NumCPU()
	nc := &nakamaComparison{
		NakamaLoginsPerSec: nakamaLoginsPerSec,
		NakamaCPUs:         nakamaCPUs,
		CPUs:               cpus,
		DefaultConns:       def.Conns,
		DefaultPerSec:      def.RPS,
		DefaultPerCPU:      def.RPS / float64(cpus),
		CheapConns:         cheap.Conns,
		CheapPerSec:        cheap.RPS,
		CheapPerCPU:        cheap.RPS / float64(cpus),
	}
	var hash argonSetting
	for _, a := range lr.Argon2 {
		if a.Name == argonDefault {
			hash = a
		}
	}
	perCore := float64(nakamaLoginsPerSec) / nakamaCPUs
	budgetMs := 1000 / perCore
	nc.Summary = fmt.Sprintf("vs Nakama (about %d logins/s published on a %d-CPU node): noon on this %d-CPU machine does %s logins/s "+
		"through the broker with the default argon2id (best row, %s; %s per CPU, %.2f× Nakama's per-CPU rate), and %s logins/s "+
		"with the cheap parameters (best row, %s; %s per CPU, %.2f× Nakama's per-CPU rate). The hash dominates: one default "+
		"argon2id hash takes %.1f ms of a core here, so %d hashes at once cap logins at about %.0f/s whatever the rest costs. "+
		"%d logins/s per CPU is at most %.1f ms of CPU per login, everything included, %.0f× less than that one hash: Nakama's figure "+
		"cannot include a password hash of this cost on hardware like this, so the cheap-parameter rate is the like-for-like "+
		"comparison of everything but the hash. Per-CPU figures divide by this machine's %d CPUs, which also run the load generator, "+
		"Postgres, Redis and, here, other work.",
		nakamaLoginsPerSec, nakamaCPUs, cpus, fmtCount(def.RPS), plural(def.Conns, "connection"), fmtCount(nc.DefaultPerCPU), nc.DefaultPerCPU/perCore,
		fmtCount(cheap.RPS), plural(cheap.Conns, "connection"), fmtCount(nc.CheapPerCPU), nc.CheapPerCPU/perCore,
		hash.HashMs, hash.HashesAtOnce, hash.HashCeilingPerSec,
		nakamaLoginsPerSec/nakamaCPUs, budgetMs, hash.HashMs/budgetMs, cpus)
	return nc
}

// plural returns "1 connection", "16 connections".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// printLogin prints the login scenario.
func printLogin(w io.Writer, cfg config, r *report) {
	lr := r.Login
	why, unavailable := r.Unavailable[scenarioLogin]
	if lr == nil && !unavailable {
		return
	}
	fmt.Fprintln(w)
	if lr != nil && lr.Skipped != "" {
		fmt.Fprintln(w, lr.Skipped)
		return
	}
	if lr == nil || lr.Schema == "" { // the service never started
		fmt.Fprintf(w, "login: not run: %s\n", why)
		if lr != nil && lr.Cleanup != "" {
			fmt.Fprintf(w, "login cleanup: %s\n", lr.Cleanup)
		}
		return
	}
	ver := func(name, v string) string {
		if v == "" {
			return name
		}
		return name + " (" + v + ")"
	}
	fmt.Fprintf(w, "login: the login service in this process on Postgres %s, schema %s, and Redis %s, prefix %s, both deleted afterwards; "+
		"%s; %d accounts per argon2 setting, one per connection; %v measured per row (a login row at least three hash rounds per connection) after %v warm-up\n",
		ver(lr.Postgres, lr.PostgresVersion), lr.Schema, ver(lr.Redis, lr.RedisVersion), lr.RedisPrefix,
		lr.Throttles, lr.UsersPerSetting, cfg.duration, cfg.warmup)
	for _, a := range lr.Argon2 {
		what := "the service's default, what noon ships (OWASP's minimum)"
		if a.Name == argonCheap {
			what = "accounts hashed with cheap parameters, to show the rest of the path (a stored hash carries its parameters; the same service verifies it)"
		}
		fmt.Fprintf(w, "  argon2 %s: %s; %s; %d hashes at once; one hash alone: %.1f ms -> at most %s logins/s on this machine\n",
			a.Name, a, what, a.HashesAtOnce, a.HashMs, fmtCount(a.HashCeilingPerSec))
	}
	fmt.Fprintf(w, "  %s; validate/broker: login.Validate, a Redis read, no hashing\n", loginPaths)
	fmt.Fprintf(w, "  CPU %% is this process (load generator, broker, yellow, login service); others %% includes Postgres and Redis doing their part of the work\n\n")

	if len(lr.Results) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "op\tvia\targon2\tconns\tops/s\tp50\tp99\tp99.9\tCPU %\tCPU/op\terrors\tothers %\t")
		for _, res := range lr.Results {
			others := "?"
			if res.OthersCPUPercent >= 0 {
				others = fmt.Sprintf("%.0f", res.OthersCPUPercent)
			}
			argon := res.Argon2
			if argon == "" {
				argon = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%.0f\t%s\t%d\t%s\t\n", res.Op, res.Via, argon, res.Conns, fmtCount(res.RPS),
				fmtUs(res.P50Us), fmtUs(res.P99Us), fmtUs(res.P999Us), res.CPUPercent, fmtUs(res.CPUPerRequestUs), res.Errors, others)
		}
		_ = tw.Flush()
		for _, res := range lr.Results {
			if res.Errors > 0 {
				fmt.Fprintf(w, "  %s at %d connections: %d errors, first: %s\n", res.Scenario, res.Conns, res.Errors, res.FirstError)
			}
		}
	}
	if nc := lr.Nakama; nc != nil {
		fmt.Fprintf(w, "%s\n", nc.Summary)
	}
	if unavailable {
		fmt.Fprintf(w, "login: %s\n", why)
	}
	if lr.Cleanup != "" {
		fmt.Fprintf(w, "login cleanup: %s\n", lr.Cleanup)
	}
}
