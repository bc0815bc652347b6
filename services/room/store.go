package room

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store errors. Implementations return them (wrapped or not) so the service
// can tell the cases apart with errors.Is.
var (
	// ErrNotFound: no room has the id.
	ErrNotFound = errors.New("room: no such room")
	// ErrExists: Create found a room with the id already.
	ErrExists = errors.New("room: room exists")
	// ErrFenced: a higher lease epoch has claimed the room; the caller lost
	// its lease and must never write for the room again.
	ErrFenced = errors.New("room: fenced by a newer owner")
	// ErrQuota: Create found the creator with maxOpen rooms not closed
	// (max_rooms_per_user).
	ErrQuota = errors.New("room: the creator has too many open rooms")
	// ErrSeqConflict: the entries do not continue the room's log (their
	// first seq is not last seq + 1). With fencing this means a bug or a
	// caller whose view of the log is stale.
	ErrSeqConflict = errors.New("room: entries do not continue the log")
)

// FencedError is the ErrFenced of a write or load whose epoch is below the
// room's: it carries the room's epoch, so that an owner whose lease store
// lost its epochs (a Redis restarted without persistence) can move past it
// (placement.Leases.Advance).
type FencedError struct {
	Room   string
	Epoch  int64 // the room's epoch in the store
	Writer int64 // the epoch of the refused write
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("%v: room %s is at epoch %d, writer at %d", ErrFenced, e.Room, e.Epoch, e.Writer)
}

// Is makes errors.Is(err, ErrFenced) true.
func (e *FencedError) Is(target error) bool { return target == ErrFenced }

// Entry kinds: what the room's log records. A room's state is a
// deterministic function of its entries (see Entry).
const (
	// KindCreate creates the room; Body is the CreateRequest; always seq 1.
	KindCreate = "create"
	// KindMatched creates the room with its members seated (a
	// matchmaker's room.CreateMatched); Body is the CreateMatchedRequest
	// as checked (game and name filled in); always seq 1; Player is "".
	KindMatched = "matched"
	// KindJoin: Player joins.
	KindJoin = "join"
	// KindLeave: Player leaves.
	KindLeave = "leave"
	// KindReady: Player is ready to start.
	KindReady = "ready"
	// KindUnready: Player is no longer ready.
	KindUnready = "unready"
	// KindStart: Player starts the game; Body is the seed.
	KindStart = "start"
	// KindAct: Player plays a game action; Body is the action.
	KindAct = "act"
	// KindTick: the game's timers fired at At.
	KindTick = "tick"
)

// Entry is one accepted input of a room, in its log: who did what and
// when. Replaying a room's entries in seq order through the same rules
// rebuilds the same state (the game gets At as its clock, and the seed of a
// start is in Body), so the log, not the state, is the truth.
type Entry struct {
	// Seq numbers the room's entries from 1, without gaps.
	Seq int64
	// Kind is one of the Kind* constants.
	Kind string
	// Player is the member who acted ("" for a tick).
	Player string
	// Body is the input's payload: the CreateRequest of a create, the
	// CreateMatchedRequest of a matched, the seed of a start (8 bytes,
	// big-endian), the game action of an act; empty otherwise.
	Body []byte
	// At is when the entry was handled, in Unix milliseconds: the clock the
	// rules see, on replay too.
	At int64
}

// Snapshot is a room's encoded state as of entry Seq: loading starts from
// the latest snapshot and replays only the entries after it.
type Snapshot struct {
	// Seq is the last entry the state includes.
	Seq int64
	// State is the room's encoded state (the service's own format).
	State []byte
}

// Summary is what room lists show of a room; stores keep it beside the log
// and every Append updates it.
type Summary struct {
	ID         string    // the room's id
	Name       string    // its name (CreateRequest.name)
	Game       string    // the game played
	Status     string    // StatusOpen, StatusPlaying, StatusFinished or StatusClosed
	Host       string    // the host's user id
	Players    int       // members now
	MaxPlayers int       // the bound on members
	Created    time.Time // when it was created
	Creator    string    // who created it with room.Create ("" for a matched room); set by Create only
}

// PruneQuery selects closed rooms to prune (retention).
type PruneQuery struct {
	// Before: rooms closed (last changed) before it.
	Before time.Time
	// Limit bounds the rooms pruned (> 0), oldest first.
	Limit int
	// Archive moves the rooms' rows and logs to the archive tables rather
	// than deleting them.
	Archive bool
	// DryRun selects and returns the rooms, changing nothing.
	DryRun bool
}

// ListQuery selects rooms for List.
type ListQuery struct {
	// Game filters by game; "" is every game.
	Game string
	// Limit bounds the rooms returned (> 0).
	Limit int
}

// Store keeps rooms' logs, snapshots and summaries. Writes are fenced by
// the writer's lease epoch: Load claims a room for an epoch, and from then
// on every write with a lower epoch fails with ErrFenced, so an owner that
// lost its lease (paused, partitioned) can never write for the room again.
// A write with an epoch at least the room's claims the room for it too.
//
// Implementations are safe for concurrent use. The Postgres store
// (NewPostgresStore) is the production one; the memory store
// (NewMemoryStore) serves `noon dev` and tests, and both pass the same
// contract suite.
type Store interface {
	// Create stores a new room: its summary and first entry (seq 1), claimed
	// for epoch. It fails with ErrExists when the id is taken, and with
	// ErrQuota when maxOpen > 0 and sum.Creator has maxOpen rooms that are
	// not closed (checked and created atomically: concurrent creates of one
	// creator, on any instance, cannot pass the bound together).
	Create(ctx context.Context, epoch int64, sum Summary, first Entry, maxOpen int) error
	// Load claims room id for epoch and returns its latest snapshot (nil for
	// none) and the entries after it, in seq order. It fails with
	// ErrNotFound, or ErrFenced when a higher epoch claimed the room.
	Load(ctx context.Context, id string, epoch int64) (*Snapshot, []Entry, error)
	// Append appends entries (consecutive seqs continuing the log) to room
	// sum.ID and replaces its summary with sum, and its snapshot with snap
	// when snap is not nil, atomically. It fails with ErrFenced when a
	// higher epoch claimed the room, ErrSeqConflict when the entries do not
	// continue the log, ErrNotFound for no room.
	Append(ctx context.Context, epoch int64, sum Summary, entries []Entry, snap *Snapshot) error
	// SaveSnapshot replaces room id's snapshot with snap (unless the stored
	// one is newer), fenced like Append.
	SaveSnapshot(ctx context.Context, id string, epoch int64, snap Snapshot) error
	// List returns open rooms with a free seat, newest first.
	List(ctx context.Context, q ListQuery) ([]Summary, error)
	// Prune deletes (or archives) closed rooms q selects, with their logs
	// and snapshots, and returns their ids. Concurrent calls prune
	// disjoint rooms.
	Prune(ctx context.Context, q PruneQuery) ([]string, error)
}
