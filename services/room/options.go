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
	// DefaultRebalanceRate: a pool scaled from 1 to 4 instances with 1,000
	// rooms moves the 750 that are the new instances' in 15 s.
	DefaultRebalanceRate = 50
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
	// DefaultMaxRoomsPerUser: a player is in one room at a time; 3 open
	// rooms of their own covers a few connections (phone and desktop)
	// and keeps one user from filling max_rooms for everyone.
	DefaultMaxRoomsPerUser = 3
	// DefaultMaxCreatesPerUser per DefaultCreateWindow: 30 creates in 10
	// minutes is one every 20 s, far above any player's need, far below
	// what fills an instance.
	DefaultMaxCreatesPerUser = 30
	DefaultCreateWindow      = 10 * time.Minute
	// DefaultMemberEvents and DefaultMemberBurst: a member's ready toggles,
	// starts and actions, 10 per second with bursts of 20: a player clicks
	// far less; a script toggling at 200/s is refused (rate_limited).
	DefaultMemberEvents = 10
	DefaultMemberBurst  = 20
	// DefaultMemberBytes bounds a member's action bytes per second (64
	// KiB/s, bursts of twice that): actions are a few bytes.
	DefaultMemberBytes = 64 << 10
	// DefaultReplayMaxEvents and DefaultReplayMaxBytes bound the recent
	// events a room keeps for room.Get since_seq: 256 events are minutes
	// of play, enough to cover a reconnect; 256 KiB per active room.
	DefaultReplayMaxEvents = 256
	DefaultReplayMaxBytes  = 256 << 10
	// DefaultClosedAfter: closed rooms' rows and logs are kept a week (for
	// support and disputes), then deleted or archived.
	DefaultClosedAfter = 168 * time.Hour
	// DefaultSweepEvery: the retention sweep runs every 10 minutes.
	DefaultSweepEvery = 10 * time.Minute
	// DefaultPruneBatch: one sweep statement prunes at most 500 rooms (a
	// short transaction); a sweep repeats batches until none is left.
	DefaultPruneBatch = 500
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
	// maxRebalanceRate bounds rebalance_rate: each move is a snapshot
	// write and a lease release.
	maxRebalanceRate = 10_000
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
	// RebalanceRate is how many rooms a second the instance hands over to
	// the instance that owns them now: when a room instance joins, the
	// rooms whose rendezvous owner it is move to it, each between two of
	// its events, by the hand-over a drain makes (a final snapshot, the
	// lease released, requests meanwhile answered moved to the new owner).
	// 0: rooms stay where they are until evicted or drained.
	RebalanceRate float64 `yaml:"rebalance_rate"`
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
	// MaxRoomsPerUser bounds the rooms a user created that are not closed
	// (room.Create answers rate_limited past it); 0: no bound.
	MaxRoomsPerUser int `yaml:"max_rooms_per_user"`
	// MaxCreatesPerUser bounds the rooms a user creates per CreateWindow
	// (a Redis counter shared by every instance; rate_limited past it);
	// 0: no bound.
	MaxCreatesPerUser int           `yaml:"max_creates_per_user"`
	CreateWindow      time.Duration `yaml:"create_window"`
	// MemberRate bounds each member's events in a room (ready, unready,
	// start, act): past it, rate_limited.
	MemberRate MemberRateOptions `yaml:"member_rate"`
	// Replay bounds the recent events a room keeps for room.Get since_seq.
	Replay ReplayOptions `yaml:"replay"`
	// Retention is what happens to closed rooms' rows and logs.
	Retention RetentionOptions `yaml:"retention"`
}

// MemberRateOptions is a per-member token bucket of a room.
type MemberRateOptions struct {
	// Events per second, with bursts of Burst; 0 events: no bound.
	Events float64 `yaml:"events"`
	Burst  int     `yaml:"burst"`
	// Bytes of actions per second (bursts of twice that); 0: no bound.
	Bytes int `yaml:"bytes"`
}

// ReplayOptions bounds a room's recent events (room.Get since_seq).
type ReplayOptions struct {
	MaxEvents int `yaml:"max_events"`
	MaxBytes  int `yaml:"max_bytes"`
}

// Retention modes.
const (
	// RetentionDelete deletes a pruned room's row, log and snapshot.
	RetentionDelete = "delete"
	// RetentionArchive moves them to the archive tables (rooms_archive,
	// room_entries_archive), out of the live tables.
	RetentionArchive = "archive"
)

// RetentionOptions is the retention policy of closed rooms: the room
// instances sweep every SweepEvery (one of them at a time, by a Redis
// lock), pruning rooms closed for ClosedAfter in batches of Batch.
type RetentionOptions struct {
	// ClosedAfter is how long a closed room is kept; 0: forever (no
	// sweep; room.Prune still prunes what it is asked).
	ClosedAfter time.Duration `yaml:"closed_after"`
	// Mode is delete or archive.
	Mode string `yaml:"mode"`
	// SweepEvery is how often the sweep runs.
	SweepEvery time.Duration `yaml:"sweep_every"`
	// Batch bounds the rooms one statement prunes.
	Batch int `yaml:"batch"`
}

// NewOptions returns the defaults.
func NewOptions() Options {
	return Options{
		SnapshotEvery:  DefaultSnapshotEvery,
		LeaseTTL:       placement.DefaultLeaseTTL,
		QueueSize:      DefaultQueueSize,
		IdleEvict:      DefaultIdleEvict,
		MaxRooms:       DefaultMaxRooms,
		RebalanceRate:  DefaultRebalanceRate,
		AppendBatch:    DefaultAppendBatch,
		LoadTimeout:    DefaultLoadTimeout,
		StoreTimeout:   DefaultStoreTimeout,
		RedisPrefix:    DefaultRedisPrefix,
		Race31:         race31.NewOptions(),
		PostgresSchema: DefaultSchema,
		Matchmakers:    []string{"match"},

		MaxRoomsPerUser:   DefaultMaxRoomsPerUser,
		MaxCreatesPerUser: DefaultMaxCreatesPerUser,
		CreateWindow:      DefaultCreateWindow,
		MemberRate:        MemberRateOptions{Events: DefaultMemberEvents, Burst: DefaultMemberBurst, Bytes: DefaultMemberBytes},
		Replay:            ReplayOptions{MaxEvents: DefaultReplayMaxEvents, MaxBytes: DefaultReplayMaxBytes},
		Retention:         RetentionOptions{ClosedAfter: DefaultClosedAfter, Mode: RetentionDelete, SweepEvery: DefaultSweepEvery, Batch: DefaultPruneBatch},
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
	if o.RebalanceRate < 0 || o.RebalanceRate > maxRebalanceRate {
		errs.Addf("rebalance_rate", "must be in [0, %d], got %v", maxRebalanceRate, o.RebalanceRate)
	}
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
	intIn("max_rooms_per_user", o.MaxRoomsPerUser, 0, maxRoomsLimit)
	intIn("max_creates_per_user", o.MaxCreatesPerUser, 0, 1_000_000)
	durIn("create_window", o.CreateWindow, time.Second, 7*24*time.Hour)
	if o.MemberRate.Events < 0 || o.MemberRate.Events > 1e6 {
		errs.Addf("member_rate.events", "must be in [0, 1e6], got %v", o.MemberRate.Events)
	}
	if o.MemberRate.Events > 0 {
		intIn("member_rate.burst", o.MemberRate.Burst, 1, 1_000_000)
	}
	intIn("member_rate.bytes", o.MemberRate.Bytes, 0, 1<<30)
	if o.MemberRate.Bytes > 0 && o.MemberRate.Bytes < maxActionLen/2 {
		errs.Addf("member_rate.bytes", "at least %d (an action of %d bytes must fit a burst), got %d", maxActionLen/2, maxActionLen, o.MemberRate.Bytes)
	}
	intIn("replay.max_events", o.Replay.MaxEvents, 0, 65_536)
	intIn("replay.max_bytes", o.Replay.MaxBytes, 0, 64<<20)
	if o.Retention.ClosedAfter < 0 {
		errs.Addf("retention.closed_after", "must be >= 0, got %v", o.Retention.ClosedAfter)
	}
	if o.Retention.Mode != RetentionDelete && o.Retention.Mode != RetentionArchive {
		errs.Addf("retention.mode", "must be delete or archive, got %q", wire.Snippet(o.Retention.Mode))
	}
	durIn("retention.sweep_every", o.Retention.SweepEvery, 10*time.Millisecond, 24*time.Hour)
	intIn("retention.batch", o.Retention.Batch, 1, 100_000)
	if err := o.Race31.Validate(); err != nil {
		errs.Addf("race31", "%v", strings.TrimPrefix(err.Error(), "race31: "))
	}
	return errs.Err()
}
