package friends

import (
	"context"
	"errors"
	"fmt"
	"time"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/wire"
)

// State is one side's relation with another user, numbered as Nakama (and
// idl/friends.thrift) number them.
type State int8

// The states of a relation.
const (
	// StateFriend: friends, on both sides.
	StateFriend State = friendspb.STATE_FRIEND
	// StateInviteSent: the user asked the other, who has StateInviteReceived.
	StateInviteSent State = friendspb.STATE_INVITE_SENT
	// StateInviteReceived: the other asked the user.
	StateInviteReceived State = friendspb.STATE_INVITE_RECEIVED
	// StateBlocked: the user blocked the other (one-sided).
	StateBlocked State = friendspb.STATE_BLOCKED
)

// String names the state as the README does.
func (s State) String() string {
	switch s {
	case StateFriend:
		return "friend"
	case StateInviteSent:
		return "invite sent"
	case StateInviteReceived:
		return "invite received"
	case StateBlocked:
		return "blocked"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Valid reports whether s is one of the four states.
func (s State) Valid() bool { return s >= StateFriend && s <= StateBlocked }

// pending reports whether s is an invite, which expires.
func (s State) pending() bool { return s == StateInviteSent || s == StateInviteReceived }

// Edge is one side of a relation: User's relation with Other.
type Edge struct {
	User, Other string
	State       State
	// Updated is when the state last changed, in UTC to the microsecond
	// (Postgres's precision); an invite expires RequestTTL after it.
	Updated time.Time
}

// Counts are a user's relations by state, invites that expired left out.
type Counts struct {
	Friends, Sent, Received, Blocked int
}

// Pending returns the invites, sent and received.
func (c Counts) Pending() int { return c.Sent + c.Received }

// Cursor is a position in a user's list: the last edge returned (lists run
// by Updated, newest first, then by Other).
type Cursor struct {
	Updated time.Time
	Other   string
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.Other == "" }

// after reports whether e comes after c in list order.
func (c Cursor) after(e Edge) bool {
	if c.IsZero() {
		return true
	}
	return e.Updated.Before(c.Updated) || e.Updated.Equal(c.Updated) && e.Other > c.Other
}

// ListQuery selects a page of a user's relations.
type ListQuery struct {
	// States are the states listed; empty means all.
	States []State
	// PendingSince leaves out invites updated before it (expired); zero
	// leaves none out.
	PendingSince time.Time
	// After is where the page starts (exclusive); zero is the start.
	After Cursor
	// Limit bounds the page (> 0).
	Limit int
}

// wants reports whether q lists e.
func (q ListQuery) wants(e Edge) bool {
	if len(q.States) > 0 {
		found := false
		for _, s := range q.States {
			found = found || s == e.State
		}
		if !found {
			return false
		}
	}
	if e.State.pending() && e.Updated.Before(q.PendingSince) {
		return false
	}
	return q.After.after(e)
}

// Store keeps the relations. Implementations are safe for concurrent use
// and pass the contract suite in services/friends/storetest, so `noon dev`
// on memory behaves as a cluster on Postgres.
type Store interface {
	// Update runs fn over the relations between users a and b, serialised
	// with every other Update that involves a or b (so counts read in fn
	// stay true until it returns). The changes fn makes through tx are
	// kept only when fn returns nil; its error is returned as is. fn may
	// run I/O through tx only, and must not call the store.
	Update(ctx context.Context, a, b string, fn func(tx Tx) error) error
	// List returns a page of user's relations that q selects, most
	// recently updated first, then by other user id.
	List(ctx context.Context, user string, q ListQuery) ([]Edge, error)
	// Purge deletes at most limit invites updated before before (both
	// sides of a request expire together) and returns how many it deleted.
	Purge(ctx context.Context, before time.Time, limit int) (int, error)
}

// Tx is what Store.Update's fn reads and changes: only the edges between
// its two users, and their counts.
type Tx interface {
	// Get returns the edge from -> to; ok is false when there is none.
	Get(ctx context.Context, from, to string) (e Edge, ok bool, err error)
	// Count returns user's relations by state, leaving out invites updated
	// before pendingSince.
	Count(ctx context.Context, user string, pendingSince time.Time) (Counts, error)
	// Put stores e, replacing the edge e.User -> e.Other.
	Put(ctx context.Context, e Edge) error
	// Delete removes the edge from -> to, if any.
	Delete(ctx context.Context, from, to string) error
}

var (
	// ErrNotInPair is returned by a Tx asked about an edge or user outside
	// the pair its Update locked: a bug in the caller.
	ErrNotInPair = errors.New("friends: the edge is not between the transaction's two users")
	// ErrInvalidEdge is returned by Put for an edge with a bad user id, a
	// self edge or an unknown state.
	ErrInvalidEdge = errors.New("friends: invalid edge")
)

// maxUserIDLen bounds a user id: login's are 36-byte UUIDs.
const maxUserIDLen = 64

// validUserID reports whether id may name a user: 1 to maxUserIDLen bytes
// of [A-Za-z0-9_.:-] (login's UUIDs, and safe in a Redis key and a topic).
func validUserID(id string) bool {
	if id == "" || len(id) > maxUserIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// checkEdge is what every store checks in Put, and normalises Updated.
func checkEdge(e *Edge) error {
	switch {
	case !validUserID(e.User) || !validUserID(e.Other):
		return fmt.Errorf("%w: user ids %q, %q", ErrInvalidEdge, wire.Snippet(e.User), wire.Snippet(e.Other))
	case e.User == e.Other:
		return fmt.Errorf("%w: %s with itself", ErrInvalidEdge, e.User)
	case !e.State.Valid():
		return fmt.Errorf("%w: %v", ErrInvalidEdge, e.State)
	}
	e.Updated = e.Updated.UTC().Truncate(time.Microsecond)
	return nil
}

// inPair reports whether the edge from -> to is between a and b.
func inPair(a, b, from, to string) bool {
	return from == a && to == b || from == b && to == a
}
