package room

import (
	"fmt"
	"strings"
	"time"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/services/room/games/race31"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultSnapshotEvery: a snapshot every 100 entries bounds a load to
	// one snapshot and at most 100 replayed entries (well under a
	// millisecond of rules), at the cost of one snapshot row write per 100
	// events.
	DefaultSnapshotEvery = 100
	// DefaultQueueSize is a room's queue bound: a room of 4 players each
	// with a few requests in flight needs a dozen; 256 absorbs a load or a
	// failover's burst, and a room past it is being flooded (overloaded).
	DefaultQueueSize = 256
	// DefaultIdleEvict: a room with no event for 5 minutes leaves memory
	// (its lease released); coming back costs one load.
	DefaultIdleEvict = 5 * time.Minute
	// DefaultMaxRooms bounds the rooms active on one instance: a room
	// costs a goroutine, a queue and its state (a few KiB); 10,000 is far
	// beyond what one instance's players fill, and past it the instance
	// answers overloaded rather than running out of memory.
	DefaultMaxRooms = 10_000
	// DefaultAppendBatch is 1: each event is stored on its own before the
	// next is handled (strictly one at a time, I/O included).
	DefaultAppendBatch = 1
	// DefaultLoadTimeout bounds a room's load from the store.
	DefaultLoadTimeout = 10 * time.Second
	// DefaultStoreTimeout bounds one append: longer than any healthy
	// commit, short enough that a stuck database shows as errors quickly.
	DefaultStoreTimeout = 5 * time.Second
	// DefaultRedisPrefix namespaces the lease keys.
	DefaultRedisPrefix = "noon:"
)

// Bounds checked by Validate.
const (
	// maxSnapshotEvery: beyond 100,000 replayed entries a load takes
	// seconds.
	maxSnapshotEvery = 100_000
	// maxQueueSize: a queue is allocated per active room.
	maxQueueSize = 65_536
	// maxAppendBatch: a group commit of 1,024 entries is one statement of
	// a few hundred KiB at most.
	maxAppendBatch = 1024
	// minLeaseTTL: renewals run at a third of the TTL; under 300 ms a
	// Redis hiccup or a GC pause would lose leases.
	minLeaseTTL = 300 * time.Millisecond
	// maxLeaseTTL: a dead owner's rooms wait for its leases to expire.
	maxLeaseTTL = 5 * time.Minute
	// minIdleEvict keeps eviction from churning (tests use 100 ms).
	minIdleEvict = 10 * time.Millisecond
	// maxRoomsLimit bounds MaxRooms.
	maxRoomsLimit = 10_000_000
	// maxNameLen bounds a room's name (CreateRequest.name).
	maxNameLen = 64
	// maxRoomIDLen bounds a room id a client may send: ours are 17 bytes;
	// 64 leaves room for ids made elsewhere (a matchmaker's).
	maxRoomIDLen = 64
	// maxUserIDLen bounds a member's user id in room.CreateMatched: the
	// broker's bound on the user a login binds (user ids are UUIDs or
	// numbers, far below).
	maxUserIDLen = 128
	// maxMatchmakers bounds the matchmakers option: a handful of services.
	maxMatchmakers = 16
	// defaultMatchName is the name of a matched room whose request names
	// none.
	defaultMatchName = "match"
	// defaultListLimit and maxListLimit bound room.List's reply: a lobby
	// screen shows a few dozen rooms.
	defaultListLimit = 50
	maxListLimit     = 200
)

// Options configures the room service (services.room in the config files,
// beside the instance's services.Options).
type Options struct {
	// SnapshotEvery is how many entries a room's log gets between two
	// snapshots.
	SnapshotEvery int `yaml:"snapshot_every"`
	// LeaseTTL is how long a room's lease lives unrenewed: how long a dead
	// owner's rooms wait before another instance takes them. Renewals run
	// every LeaseTTL/3.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// QueueSize bounds the events waiting for one room; past it, overloaded.
	QueueSize int `yaml:"queue_size"`
	// IdleEvict is how long a room stays in memory without a request; a
	// room whose game has a timer pending (a turn timeout) stays.
	IdleEvict time.Duration `yaml:"idle_evict"`
	// MaxRooms bounds the rooms active on the instance; a room past it is
	// refused with overloaded.
	MaxRooms int `yaml:"max_rooms"`
	// AppendBatch is how many queued events of one room may be stored in
	// one write (group commit). 1 (the default) stores each event before
	// handling the next; more applies the queued events one at a time in
	// memory, stores them together, then replies to all: the same order and
	// the same durability (nothing is replied or published before it is
	// stored), more events per second for a hot room.
	AppendBatch int `yaml:"append_batch"`
	// LoadTimeout bounds loading a room (its lease excluded).
	LoadTimeout time.Duration `yaml:"load_timeout"`
	// StoreTimeout bounds one write to the store.
	StoreTimeout time.Duration `yaml:"store_timeout"`
	// RedisPrefix namespaces the lease keys in Redis.
	RedisPrefix string `yaml:"redis_prefix"`
	// Race31 are the rules of the sample game.
	Race31 race31.Options `yaml:"race31"`
	// PostgresSchema is the schema of the Postgres store and its
	// migrations: [a-z_][a-z0-9_]*, at most 63 bytes.
	PostgresSchema string `yaml:"postgres_schema"`
	// Matchmakers are the services that may call room.CreateMatched (over
	// TLS: the holders of a service:<name> certificate of one of them;
	// admins may too). Default ["match"]; empty: admins only.
	Matchmakers []string `yaml:"matchmakers"`
	// Rewards are what a game's winner gets from the game service
	// (game.Grant); none by default.
	Rewards RewardsOptions `yaml:"rewards"`
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		SnapshotEvery:  DefaultSnapshotEvery,
		LeaseTTL:       placement.DefaultLeaseTTL,
		QueueSize:      DefaultQueueSize,
		IdleEvict:      DefaultIdleEvict,
		MaxRooms:       DefaultMaxRooms,
		AppendBatch:    DefaultAppendBatch,
		LoadTimeout:    DefaultLoadTimeout,
		StoreTimeout:   DefaultStoreTimeout,
		RedisPrefix:    DefaultRedisPrefix,
		Race31:         race31.NewOptions(),
		PostgresSchema: DefaultSchema,
		Matchmakers:    []string{"match"},
	}
}

// Validate checks the options; errors name the field by its yaml name.
func (o Options) Validate() error {
	var errs config.Errors
	intIn := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			errs.Addf(field, "must be in [%d, %d], got %d", lo, hi, v)
		}
	}
	durIn := func(field string, v, lo, hi time.Duration) {
		if v < lo || v > hi {
			errs.Addf(field, "must be in [%v, %v], got %v", lo, hi, v)
		}
	}
	intIn("snapshot_every", o.SnapshotEvery, 1, maxSnapshotEvery)
	durIn("lease_ttl", o.LeaseTTL, minLeaseTTL, maxLeaseTTL)
	intIn("queue_size", o.QueueSize, 1, maxQueueSize)
	durIn("idle_evict", o.IdleEvict, minIdleEvict, 24*time.Hour)
	intIn("max_rooms", o.MaxRooms, 1, maxRoomsLimit)
	intIn("append_batch", o.AppendBatch, 1, maxAppendBatch)
	durIn("load_timeout", o.LoadTimeout, 10*time.Millisecond, 10*time.Minute)
	durIn("store_timeout", o.StoreTimeout, 10*time.Millisecond, 10*time.Minute)
	if len(o.RedisPrefix) > 64 {
		errs.Addf("redis_prefix", "at most 64 bytes, got %d", len(o.RedisPrefix))
	}
	if !schemaName.MatchString(o.PostgresSchema) {
		errs.Addf("postgres_schema", "must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(o.PostgresSchema))
	}
	if len(o.Matchmakers) > maxMatchmakers {
		errs.Addf("matchmakers", "at most %d services, got %d", maxMatchmakers, len(o.Matchmakers))
	}
	for i, m := range o.Matchmakers {
		if err := wire.ValidateName(m); err != nil {
			errs.Addf(fmt.Sprintf("matchmakers[%d]", i), "%v", err)
		}
	}
	errs.Add(config.Nested("rewards", o.Rewards.Validate()))
	if err := o.Race31.Validate(); err != nil {
		errs.Addf("race31", "%v", strings.TrimPrefix(err.Error(), "race31: "))
	}
	return errs.Err()
}
