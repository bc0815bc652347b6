package login

import (
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultHTTPAddr is the pandaparty HTTP/JSON API's address: the port
	// pandaparty's loginserver documents, on loopback, so that only a
	// config that says so (configs/cluster.yaml) exposes it.
	DefaultHTTPAddr = "127.0.0.1:8081"
	// DefaultHTTPRequireJSON is on: a POST whose Content-Type is not
	// application/json is refused (415). Every API client sends JSON
	// anyway, and a form or text/plain POST is what a browser sends from
	// any web page without asking the API first (no CORS preflight), so
	// without the check any site could make its visitors register
	// accounts, log into an account of the site's choosing, or spend the
	// per-address throttles of their addresses. Turn it off only for an
	// old client that sends no Content-Type.
	DefaultHTTPRequireJSON = true
	// DefaultSessionTTL is how long a session token lives after login:
	// pandaparty's 24 hours, a day of play without logging in again.
	DefaultSessionTTL = 24 * time.Hour
	// DefaultRedisPrefix prefixes every Redis key the service writes, so
	// that noon shares a Redis with other software.
	DefaultRedisPrefix = "noon:"
	// DefaultSchema is the Postgres schema the login service owns: its
	// tables and its migrations table live there and nowhere else.
	DefaultSchema = "login"
)

// Defaults of Argon2Options: OWASP's minimum for argon2id (Password Storage
// Cheat Sheet: m=19 MiB, t=2, p=1, equivalent in cost to its m=46 MiB, t=1),
// a 256-bit key and a 128-bit salt (RFC 9106's recommendation). One hash
// takes about 25-40 ms of one core and 19 MiB of memory.
const (
	DefaultArgon2Time      = 2
	DefaultArgon2MemoryKiB = 19 * 1024
	DefaultArgon2Threads   = 1
	DefaultArgon2KeyLen    = 32
	DefaultArgon2SaltLen   = 16
)

// Defaults of the account rules.
const (
	// DefaultUsernameMin: three characters ("bob") is the shortest name
	// people pick; shorter ones are squatted at once.
	DefaultUsernameMin = 3
	// DefaultUsernameMax: 32 characters fits a scoreboard column.
	DefaultUsernameMax = 32
	// DefaultPasswordMin: NIST SP 800-63B's minimum for a user-chosen
	// password.
	DefaultPasswordMin = 8
	// DefaultPasswordMax: long enough for any passphrase or password
	// manager, short enough that nobody hashes megabytes.
	DefaultPasswordMax = 128
	// DefaultNicknameMax: 32 characters (runes), like a username.
	DefaultNicknameMax = 32
)

// Defaults of ThrottleOptions. A throttle allows Max failures, then makes
// each further attempt wait: Backoff after the Max-th failure, doubling
// with each failure after, up to MaxBackoff. Nothing is ever a wall: the
// answer is rate_limited with the time to retry.
const (
	// DefaultPairFailures failed logins of one account from one address
	// (IPv4 /32, IPv6 /64) per DefaultPairWindow pass unhindered: a person
	// mistyping does not get there; a guesser from one address then waits
	// 1 s, 2 s, 4 s, ... up to DefaultPairMaxBackoff per guess.
	DefaultPairFailures   = 5
	DefaultPairWindow     = 15 * time.Minute
	DefaultPairBackoff    = time.Second
	DefaultPairMaxBackoff = 15 * time.Minute
	// DefaultAccountFailures failed logins of one account from addresses
	// it never logged in from, per DefaultAccountWindow, pass: past that,
	// logins from unknown addresses wait (1 s doubling, at most
	// DefaultAccountMaxBackoff), which slows a guesser spread over many
	// addresses; logins from a known address prefix (see Known) are never
	// slowed by them.
	DefaultAccountFailures   = 10
	DefaultAccountWindow     = 5 * time.Minute
	DefaultAccountBackoff    = time.Second
	DefaultAccountMaxBackoff = 30 * time.Second
	// DefaultAddressAttempts failed logins and registrations per
	// DefaultAddressWindow are allowed from one source address (an IPv6
	// /64): a household behind one NAT stays far below (successful logins
	// do not count), a credential-stuffing script does not.
	DefaultAddressAttempts   = 30
	DefaultAddressWindow     = time.Minute
	DefaultAddressBackoff    = time.Second
	DefaultAddressMaxBackoff = 5 * time.Minute
	// DefaultKnownPrefixes is how many address prefixes (IPv4 /24, IPv6
	// /64) an account's successful logins are remembered from (the most
	// recent), and DefaultKnownTTL for how long after the last login from
	// one.
	DefaultKnownPrefixes = 16
	DefaultKnownTTL      = 30 * 24 * time.Hour
	// DefaultShedQueue: when this many password checks wait for a hash
	// slot, logins from unknown addresses and registrations are answered
	// overloaded at once, while logins from known prefixes still queue
	// (first): at 25-40 ms a hash on GOMAXPROCS slots, 32 waiting is a
	// fraction of a second of work.
	DefaultShedQueue = 32
	// DefaultMaxQueue bounds the waiting checks for everyone.
	DefaultMaxQueue = 1024
)

// Hard limits Options.Validate enforces.
const (
	// MaxUsernameLen caps UsernameMax: usernames are Redis key parts and
	// log fields.
	MaxUsernameLen = 64
	// MaxPasswordLen caps PasswordMax: argon2 reads the whole password, so
	// a request can make it hash at most this much.
	MaxPasswordLen = 1024
	// MaxNicknameLen caps NicknameMax, in runes.
	MaxNicknameLen = 64
	// MaxArgon2MemoryKiB caps Argon2.MemoryKiB at 1 GiB per hash (times
	// Argon2.Concurrency hashes at once).
	MaxArgon2MemoryKiB = 1 << 20
	// MaxArgon2Time caps Argon2.Time: 100 passes of 19 MiB take seconds.
	MaxArgon2Time = 100
	// MaxArgon2Concurrency caps Argon2.Concurrency.
	MaxArgon2Concurrency = 1024
	// MinSessionTTL and MaxSessionTTL bound SessionTTL: a session shorter
	// than a minute expires during a match, one longer than a year is not
	// a session.
	MinSessionTTL = time.Minute
	MaxSessionTTL = 365 * 24 * time.Hour
	// MaxThrottleWindow bounds a throttle window and back-off: a day.
	MaxThrottleWindow = 24 * time.Hour
	// MaxKnownPrefixes and MaxKnownTTL bound Throttle.Known.
	MaxKnownPrefixes = 1024
	MaxKnownTTL      = 365 * 24 * time.Hour
	// MaxShedQueue bounds Throttle.ShedQueue and MaxQueue.
	MaxShedQueue = 1 << 20
	// maxRedisPrefix bounds RedisPrefix.
	maxRedisPrefix = 64
)

// Options configures the login service. The zero value is not usable:
// start from NewOptions.
type Options struct {
	// HTTPAddr is host:port of the pandaparty HTTP/JSON API (POST
	// /api/register, /api/login, /api/validate_session, /api/logout);
	// port 0 picks a free port; "" disables the API.
	HTTPAddr string `yaml:"http_addr"`
	// HTTPTLS, when both files are set, serves the API over HTTPS only
	// (TLS 1.2 and later).
	HTTPTLS config.TLSFiles `yaml:"http_tls"`
	// HTTPRequireJSON refuses a POST whose Content-Type is not
	// application/json with 415 (see DefaultHTTPRequireJSON).
	HTTPRequireJSON bool `yaml:"http_require_json"`
	// TrustedProxies lists the reverse proxies and load balancers (CIDRs
	// or addresses) in front of the API: a request from one of them is
	// taken to come from the right-most X-Forwarded-For address that is
	// not itself trusted, and throttles count that address. Anyone else's
	// X-Forwarded-For is ignored. Empty trusts nobody.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// SessionTTL is how long a session token is valid after login. A
	// session is never extended: Validate refreshes nothing, and a client
	// logs in again when its token expires.
	SessionTTL time.Duration `yaml:"session_ttl"`
	// Argon2 are the password hashing parameters of new hashes; stored
	// hashes carry their own and verify whatever these are.
	Argon2 Argon2Options `yaml:"argon2"`
	// Throttle limits login attempts per account and per source address.
	Throttle ThrottleOptions `yaml:"throttle"`
	// UsernameMin is the shortest new username. A username is made of
	// [a-zA-Z0-9_.-] and unique ignoring case.
	UsernameMin int `yaml:"username_min"`
	// UsernameMax is the longest new username, at most MaxUsernameLen.
	UsernameMax int `yaml:"username_max"`
	// PasswordMin is the shortest new password, in bytes (any bytes are
	// allowed). Login ignores it, so raising it locks nobody out.
	PasswordMin int `yaml:"password_min"`
	// PasswordMax is the longest password, in bytes, at most
	// MaxPasswordLen; Login refuses longer ones without hashing them.
	PasswordMax int `yaml:"password_max"`
	// NicknameMax bounds a nickname's length in characters (runes); a
	// nickname is at least one printable character, with no leading or
	// trailing space. It defaults to the username.
	NicknameMax int `yaml:"nickname_max"`
	// RedisPrefix prefixes every Redis key (sessions, throttle counters).
	RedisPrefix string `yaml:"redis_prefix"`
	// PostgresSchema is the schema of the Postgres store and its
	// migrations: [a-z_][a-z0-9_]*, at most 63 bytes.
	PostgresSchema string `yaml:"postgres_schema"`
	// BanCheck names the service login asks, after a right password,
	// whether the player is banned (<ban_check>.BanStatus, the game
	// service's game.BanStatus): a banned player's login is refused with
	// "unauthenticated: banned until <time>: <reason>". "" (the default in
	// code; the configs say "game") checks nothing. When the service does
	// not answer, the login goes ahead and a warning is logged (fail
	// open: a game service down must not lock every player out).
	BanCheck string `yaml:"ban_check"`

	// Metrics receives the service's metrics; nil means none.
	Metrics metrics.Sink `yaml:"-"`
	// Clock, when set, is the service's clock: a session expires
	// SessionTTL after Clock() at its login, and throttle waits and known
	// prefixes are measured on it. nil means time.Now; tests set
	// a clock running behind to make sessions that expire within seconds.
	Clock func() time.Time `yaml:"-"`
}

// Argon2Options are argon2id's parameters (RFC 9106).
type Argon2Options struct {
	// Time is the number of passes over the memory (t).
	Time uint32 `yaml:"time"`
	// MemoryKiB is the memory one hash uses, in KiB (m); at least 8 per
	// thread.
	MemoryKiB uint32 `yaml:"memory_kib"`
	// Threads is the parallelism (p): lanes hashed by as many goroutines.
	Threads uint8 `yaml:"threads"`
	// KeyLen is the length of the derived key stored, in bytes.
	KeyLen uint32 `yaml:"key_len"`
	// SaltLen is the length of each hash's random salt, in bytes.
	SaltLen uint32 `yaml:"salt_len"`
	// Concurrency is how many hashes run at once; others wait (within
	// their request's deadline). It bounds the memory hashing takes to
	// Concurrency * MemoryKiB. 0 means GOMAXPROCS: hashing is CPU-bound,
	// more at once only adds memory.
	Concurrency int `yaml:"concurrency"`
}

// ThrottleOptions limit login attempts, with back-off rather than a wall
// (see the Default* constants). The counters live in Redis, shared by
// every login instance.
type ThrottleOptions struct {
	// PerAccountAddress limits failed logins per (username, source
	// address): the guesses of one address at one account. An attempt
	// counts as a failure from its start (parallel guesses cannot all pass
	// the check before one is counted); a success clears the count.
	PerAccountAddress Limit `yaml:"per_account_address"`
	// PerAccount limits failed logins per username (counted whether or not
	// the account exists, so the limit reveals nothing) from addresses
	// whose prefix the account never logged in from; past it, only those
	// addresses wait. A login from a known prefix is neither counted nor
	// slowed.
	PerAccount Limit `yaml:"per_account"`
	// PerAddress limits failed logins and registrations per source address
	// (IPv4 address, or IPv6 /64). Calls that carry no address (from
	// another service) are not limited.
	PerAddress Limit `yaml:"per_address"`
	// Known is how the address prefixes an account logged in from are
	// remembered.
	Known KnownOptions `yaml:"known"`
	// ShedQueue: when this many password checks wait for a hash slot,
	// logins from unknown prefixes and registrations are refused
	// (overloaded, HTTP 503) at once; logins from known prefixes queue,
	// ahead of the others. 0 never sheds.
	ShedQueue int `yaml:"shed_queue"`
	// MaxQueue bounds the checks waiting for a hash slot, for everyone
	// (overloaded past it).
	MaxQueue int `yaml:"max_queue"`
}

// KnownOptions configure the remembered address prefixes of accounts.
type KnownOptions struct {
	// Prefixes is how many prefixes (IPv4 /24, IPv6 /64) are remembered
	// per account, the most recent; 0 remembers none (every address is
	// unknown).
	Prefixes int `yaml:"prefixes"`
	// TTL is how long a prefix is remembered after its last login.
	TTL time.Duration `yaml:"ttl"`
}

// Limit allows Max failures per Window, then back-off: the attempt after
// the Max-th failure waits Backoff, and each failure after that doubles
// the wait, up to MaxBackoff. Max 0 disables the limit.
type Limit struct {
	// Max is the number of failures allowed per window; 0 disables.
	Max int `yaml:"max"`
	// Window is how long failures are counted, from the first (extended
	// by a back-off in progress).
	Window time.Duration `yaml:"window"`
	// Backoff is the first wait past Max.
	Backoff time.Duration `yaml:"backoff"`
	// MaxBackoff caps the doubling wait.
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// NewOptions returns the default options.
func NewOptions() Options {
	return Options{
		HTTPAddr:        DefaultHTTPAddr,
		HTTPRequireJSON: DefaultHTTPRequireJSON,
		SessionTTL:      DefaultSessionTTL,
		Argon2: Argon2Options{
			Time:      DefaultArgon2Time,
			MemoryKiB: DefaultArgon2MemoryKiB,
			Threads:   DefaultArgon2Threads,
			KeyLen:    DefaultArgon2KeyLen,
			SaltLen:   DefaultArgon2SaltLen,
		},
		Throttle: ThrottleOptions{
			PerAccountAddress: Limit{Max: DefaultPairFailures, Window: DefaultPairWindow, Backoff: DefaultPairBackoff, MaxBackoff: DefaultPairMaxBackoff},
			PerAccount:        Limit{Max: DefaultAccountFailures, Window: DefaultAccountWindow, Backoff: DefaultAccountBackoff, MaxBackoff: DefaultAccountMaxBackoff},
			PerAddress:        Limit{Max: DefaultAddressAttempts, Window: DefaultAddressWindow, Backoff: DefaultAddressBackoff, MaxBackoff: DefaultAddressMaxBackoff},
			Known:             KnownOptions{Prefixes: DefaultKnownPrefixes, TTL: DefaultKnownTTL},
			ShedQueue:         DefaultShedQueue,
			MaxQueue:          DefaultMaxQueue,
		},
		UsernameMin:    DefaultUsernameMin,
		UsernameMax:    DefaultUsernameMax,
		PasswordMin:    DefaultPasswordMin,
		PasswordMax:    DefaultPasswordMax,
		NicknameMax:    DefaultNicknameMax,
		RedisPrefix:    DefaultRedisPrefix,
		PostgresSchema: DefaultSchema,
	}
}

// schemaName is what PostgresSchema accepts: an unquoted identifier.
var schemaName = stores.SchemaName

// Validate checks the options; the errors name each bad field by its yaml
// path ("argon2.memory_kib").
func (o Options) Validate() error {
	var errs config.Errors
	if o.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
			errs.Addf("http_addr", "must be host:port (host may be empty), got %q", wire.Snippet(o.HTTPAddr))
		}
	}
	errs.Add(config.Nested("http_tls", o.HTTPTLS.Validate()))
	errs.Add(realip.ValidateTrusted("trusted_proxies", o.TrustedProxies))
	if o.SessionTTL < MinSessionTTL || o.SessionTTL > MaxSessionTTL {
		errs.Addf("session_ttl", "must be in [%v, %v], got %v", MinSessionTTL, MaxSessionTTL, o.SessionTTL)
	}
	errs.Add(config.Nested("argon2", o.Argon2.Validate()))
	errs.Add(config.Nested("throttle", o.Throttle.Validate()))
	if o.UsernameMin < 1 || o.UsernameMin > o.UsernameMax {
		errs.Addf("username_min", "must be in [1, username_max (%d)], got %d", o.UsernameMax, o.UsernameMin)
	}
	if o.UsernameMax < 1 || o.UsernameMax > MaxUsernameLen {
		errs.Addf("username_max", "must be in [1, %d], got %d", MaxUsernameLen, o.UsernameMax)
	}
	if o.PasswordMin < 1 || o.PasswordMin > o.PasswordMax {
		errs.Addf("password_min", "must be in [1, password_max (%d)], got %d", o.PasswordMax, o.PasswordMin)
	}
	if o.PasswordMax < 1 || o.PasswordMax > MaxPasswordLen {
		errs.Addf("password_max", "must be in [1, %d], got %d", MaxPasswordLen, o.PasswordMax)
	}
	if o.NicknameMax < 1 || o.NicknameMax > MaxNicknameLen {
		errs.Addf("nickname_max", "must be in [1, %d], got %d", MaxNicknameLen, o.NicknameMax)
	}
	if len(o.RedisPrefix) > maxRedisPrefix || strings.ContainsAny(o.RedisPrefix, " \t\r\n") {
		errs.Addf("redis_prefix", "at most %d bytes with no spaces, got %q", maxRedisPrefix, wire.Snippet(o.RedisPrefix))
	}
	if o.BanCheck != "" {
		if err := wire.ValidateName(o.BanCheck); err != nil {
			errs.Addf("ban_check", "a service name or \"\": %v", err)
		}
	}
	if !schemaName.MatchString(o.PostgresSchema) {
		errs.Addf("postgres_schema", "must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(o.PostgresSchema))
	}
	return errs.Err()
}

// Validate checks the argon2id parameters; fields are named by yaml key.
func (a Argon2Options) Validate() error {
	var errs config.Errors
	if a.Time < 1 || a.Time > MaxArgon2Time {
		errs.Addf("time", "must be in [1, %d], got %d", MaxArgon2Time, a.Time)
	}
	if a.Threads < 1 {
		errs.Addf("threads", "must be at least 1, got %d", a.Threads)
	}
	if min := 8 * uint32(max(a.Threads, 1)); a.MemoryKiB < min || a.MemoryKiB > MaxArgon2MemoryKiB {
		errs.Addf("memory_kib", "must be in [8*threads (%d), %d], got %d", min, MaxArgon2MemoryKiB, a.MemoryKiB)
	}
	if a.KeyLen < 16 || a.KeyLen > 1024 {
		errs.Addf("key_len", "must be in [16, 1024] bytes, got %d", a.KeyLen)
	}
	if a.SaltLen < 8 || a.SaltLen > 64 {
		errs.Addf("salt_len", "must be in [8, 64] bytes (RFC 9106 recommends 16), got %d", a.SaltLen)
	}
	if a.Concurrency < 0 || a.Concurrency > MaxArgon2Concurrency {
		errs.Addf("concurrency", "must be in [0, %d] (0 = GOMAXPROCS), got %d", MaxArgon2Concurrency, a.Concurrency)
	}
	return errs.Err()
}

// belowOWASP reports whether a is cheaper than OWASP's argon2id minimum:
// fine for tests, not for production.
func (a Argon2Options) belowOWASP() bool {
	// OWASP lists equivalent pairs: m=47104 t=1, m=19456 t=2, m=12288 t=3,
	// m=9216 t=4, m=7168 t=5; i.e. m*t >= about 36 MiB, at m >= 7 MiB.
	return a.MemoryKiB < 7168 || uint64(a.MemoryKiB)*uint64(a.Time) < 35840
}

// Validate checks the throttles; fields are named by yaml key.
func (t ThrottleOptions) Validate() error {
	var errs config.Errors
	errs.Add(config.Nested("per_account_address", t.PerAccountAddress.Validate()))
	errs.Add(config.Nested("per_account", t.PerAccount.Validate()))
	errs.Add(config.Nested("per_address", t.PerAddress.Validate()))
	if t.Known.Prefixes < 0 || t.Known.Prefixes > MaxKnownPrefixes {
		errs.Addf("known.prefixes", "must be in [0, %d], got %d", MaxKnownPrefixes, t.Known.Prefixes)
	}
	if t.Known.Prefixes > 0 && (t.Known.TTL < time.Minute || t.Known.TTL > MaxKnownTTL) {
		errs.Addf("known.ttl", "must be in [1m, %v], got %v", MaxKnownTTL, t.Known.TTL)
	}
	if t.MaxQueue < 1 || t.MaxQueue > MaxShedQueue {
		errs.Addf("max_queue", "must be in [1, %d], got %d", MaxShedQueue, t.MaxQueue)
	}
	if t.ShedQueue < 0 || t.ShedQueue > max(t.MaxQueue, 0) {
		errs.Addf("shed_queue", "must be in [0 (never shed), max_queue (%d)], got %d", t.MaxQueue, t.ShedQueue)
	}
	return errs.Err()
}

// Validate checks a limit; fields are named by yaml key.
func (l Limit) Validate() error {
	var errs config.Errors
	if l.Max < 0 {
		errs.Addf("max", "must be >= 0 (0 disables), got %d", l.Max)
	}
	if l.Max > 0 {
		if l.Window < time.Second || l.Window > MaxThrottleWindow {
			errs.Addf("window", "must be in [1s, %v], got %v", MaxThrottleWindow, l.Window)
		}
		if l.Backoff < 10*time.Millisecond || l.Backoff > MaxThrottleWindow {
			errs.Addf("backoff", "must be in [10ms, %v], got %v", MaxThrottleWindow, l.Backoff)
		}
		if l.MaxBackoff < l.Backoff || l.MaxBackoff > MaxThrottleWindow {
			errs.Addf("max_backoff", "must be in [backoff (%v), %v], got %v", l.Backoff, MaxThrottleWindow, l.MaxBackoff)
		}
	}
	return errs.Err()
}

// warnings logs what is valid but unwise.
func (o Options) warnings(log *slog.Logger) {
	if o.Argon2.belowOWASP() {
		log.Warn("login: argon2 parameters are below OWASP's minimum (m=19 MiB, t=2): fine for tests, weak for real passwords",
			"memory_kib", o.Argon2.MemoryKiB, "time", o.Argon2.Time)
	}
	if o.Throttle.PerAccount.Max == 0 || o.Throttle.PerAccountAddress.Max == 0 {
		log.Warn("login: per-account throttling is off: passwords can be guessed as fast as the service hashes")
	}
}
