package friends

import (
	"strings"
	"time"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultSchema is the Postgres schema the friends service owns.
	DefaultSchema = "friends"
	// DefaultRedisPrefix namespaces the presence keys; each shard's keys
	// follow it with the shard's hash tag ("noon:friends:{p7}:gone").
	DefaultRedisPrefix = "noon:friends:"
	// DefaultMaxFriends is pandaparty's friend cap: friends and pending
	// requests (sent and received) together.
	DefaultMaxFriends = 200
	// DefaultMaxPending bounds a user's pending requests, sent and
	// received: a flood of requests stops at it.
	DefaultMaxPending = 50
	// DefaultMaxBlocked bounds a user's blocked users.
	DefaultMaxBlocked = 100
	// DefaultRequestTTL is how long a request waits for an answer.
	DefaultRequestTTL = 7 * 24 * time.Hour
	// DefaultTickInterval: each instance looks for users whose offline
	// grace ended (and for brokers that left) this often; a quarter second
	// is well under what a player notices, and a tick with nothing due is
	// one O(log n) script run per presence shard (sixteen).
	DefaultTickInterval = 250 * time.Millisecond
	// DefaultBrokerGrace is how long the players of a broker that left
	// yellow (it died, or exited before telling) stay online for their
	// friends, waiting to resume elsewhere or for the broker to come back
	// (a blip in yellow ends nothing): a broker's own resume grace.
	DefaultBrokerGrace = 30 * time.Second
	// DefaultPresenceWorkers run the brokers' presence events on an
	// instance (each user's on one worker, in order).
	DefaultPresenceWorkers = 4
)

// Bounds of the options.
const (
	// maxLimit bounds max_friends, max_pending and max_blocked: a user's
	// relations are read whole (counts, a presence fan-out); ten thousand
	// is far past any game's friend list.
	maxLimit = 10000
	// maxPrefixLen bounds redis_prefix.
	maxPrefixLen = 64
)

// Options are the friends service's own options (services.friends).
type Options struct {
	// PostgresSchema is the schema of the Postgres store and its
	// migrations: [a-z_][a-z0-9_]*, at most 63 bytes.
	PostgresSchema string `yaml:"postgres_schema"`
	// RedisPrefix prefixes every presence key; it may not contain '{' or
	// '}' (the shards' hash tags follow it).
	RedisPrefix string `yaml:"redis_prefix"`
	// MaxFriends bounds a user's friends and pending requests together.
	MaxFriends int `yaml:"max_friends"`
	// MaxPending bounds a user's pending requests, sent and received.
	MaxPending int `yaml:"max_pending"`
	// MaxBlocked bounds the users one user blocks.
	MaxBlocked int `yaml:"max_blocked"`
	// RequestTTL is how long a request stays unanswered before it expires.
	RequestTTL time.Duration `yaml:"request_ttl"`
	// TickInterval is how often an instance declares offline the users
	// whose grace ended, and checks for brokers that left.
	TickInterval time.Duration `yaml:"tick_interval"`
	// BrokerGrace is how long a broker must be absent from yellow before
	// its connections are ended (its players offline, unless they resumed
	// elsewhere).
	BrokerGrace time.Duration `yaml:"broker_grace"`
	// PresenceWorkers are the goroutines that apply presence events.
	PresenceWorkers int `yaml:"presence_workers"`
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		PostgresSchema:  DefaultSchema,
		RedisPrefix:     DefaultRedisPrefix,
		MaxFriends:      DefaultMaxFriends,
		MaxPending:      DefaultMaxPending,
		MaxBlocked:      DefaultMaxBlocked,
		RequestTTL:      DefaultRequestTTL,
		TickInterval:    DefaultTickInterval,
		BrokerGrace:     DefaultBrokerGrace,
		PresenceWorkers: DefaultPresenceWorkers,
	}
}

// Validate checks the options; errors name the field by its yaml key.
func (o Options) Validate() error {
	var errs config.Errors
	if !stores.SchemaName.MatchString(o.PostgresSchema) {
		errs.Addf("postgres_schema", "must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(o.PostgresSchema))
	}
	if len(o.RedisPrefix) > maxPrefixLen || strings.ContainsAny(o.RedisPrefix, "{} \t\r\n") {
		errs.Addf("redis_prefix", "at most %d bytes, without '{', '}' or spaces, got %q", maxPrefixLen, wire.Snippet(o.RedisPrefix))
	}
	intIn := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			errs.Addf(field, "must be in [%d, %d], got %d", lo, hi, v)
		}
	}
	intIn("max_friends", o.MaxFriends, 1, maxLimit)
	intIn("max_pending", o.MaxPending, 1, max(o.MaxFriends, 1))
	intIn("max_blocked", o.MaxBlocked, 0, maxLimit)
	intIn("presence_workers", o.PresenceWorkers, 1, 256)
	errs.Add(config.Range("request_ttl", o.RequestTTL, time.Second, 365*24*time.Hour))
	errs.Add(config.Range("tick_interval", o.TickInterval, 10*time.Millisecond, 10*time.Second))
	errs.Add(config.Range("broker_grace", o.BrokerGrace, 0, time.Hour))
	return errs.Err()
}
