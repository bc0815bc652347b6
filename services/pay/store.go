package pay

import (
	"context"
	"errors"
	"time"
)

// Purchase states (Record.State), as in idl/pay.thrift.
const (
	// StateGranting: recorded, its grant in the outbox.
	StateGranting = "granting"
	// StateGranted: game granted its goods.
	StateGranted = "granted"
	// StateRefunded: the store refunded or revoked it; its goods are
	// taken back (or recorded as debt).
	StateRefunded = "refunded"
)

// Outbox kinds (OutboxRow.Kind).
const (
	// KindGrant gives a purchase's goods (game.Grant).
	KindGrant = "grant"
	// KindTake takes a refunded purchase's goods back (game.Spend).
	KindTake = "take"
)

// Store errors.
var (
	// ErrNotFound: no such purchase or outbox row.
	ErrNotFound = errors.New("pay: not found")
	// ErrOtherUser: the purchase belongs to another user.
	ErrOtherUser = errors.New("pay: the purchase belongs to another user")
)

// Record is a recorded purchase.
type Record struct {
	ID            int64
	Provider      string
	TransactionID string
	Product       string
	Quantity      int
	State         string
	Currencies    map[string]int64
	Items         map[string]int64
	// UserID is who first validated it; "" while only a notification
	// named it.
	UserID    string
	CreatedAt time.Time
}

// OutboxRow is one delivery to the game service.
type OutboxRow struct {
	ID       int64
	Kind     string
	Purchase Record
	Done     bool
	Debt     bool
}

// KeyEntry is a client idempotency key's record: the request's hash and,
// once answered, the first reply.
type KeyEntry struct {
	Hash  []byte
	Reply []byte
	// At is when the key was reserved.
	At time.Time
}

// Store keeps purchases, the outbox, idempotency keys and notifications.
// Its methods are safe for concurrent use.
type Store interface {
	// Record stores r (ID and CreatedAt are set by the store) with its
	// grant in the outbox, in one transaction, unless (Provider,
	// TransactionID) is recorded already: then it returns the stored
	// record and existed true, and writes nothing, except that a stored
	// record without a user (a notification's) is claimed by r.UserID
	// (ErrOtherUser when another user's).
	Record(ctx context.Context, r Record) (stored Record, existed bool, err error)
	// Purchase returns the purchase with id.
	Purchase(ctx context.Context, id int64) (Record, error)
	// PurchaseByTx returns the purchase of (provider, txid).
	PurchaseByTx(ctx context.Context, provider, txid string) (Record, error)
	// List returns userID's purchases with an id below before (0: from
	// the newest), newest first, at most limit.
	List(ctx context.Context, userID string, before int64, limit int) ([]Record, error)
	// Pending returns up to limit outbox rows not done, oldest first.
	Pending(ctx context.Context, limit int) ([]OutboxRow, error)
	// Outbox returns the outbox rows of a purchase, oldest first.
	Outbox(ctx context.Context, purchaseID int64) ([]OutboxRow, error)
	// Done marks outbox row id delivered (debt: its take could not take
	// the goods back, they are owed) and sets its purchase's state to
	// granted after a grant (a refunded purchase stays refunded).
	Done(ctx context.Context, id int64, debt bool) error
	// Refund records notification (provider, notificationID) of type typ
	// about txid: false when seen before (nothing changes). Else a known
	// purchase not refunded yet becomes refunded with a take in the
	// outbox; an unknown one is recorded refunded without a user, so a
	// later Validate grants nothing. product is the unknown purchase's.
	Refund(ctx context.Context, provider, notificationID, typ, txid, product string, at time.Time) (fresh bool, r Record, err error)
	// Notify records a notification that changes nothing: false when seen
	// before.
	Notify(ctx context.Context, provider, notificationID, typ, txid string, at time.Time) (fresh bool, err error)
	// ReserveKey records (userID, key) with hash unless it exists; it
	// returns the stored entry and whether it was created now.
	ReserveKey(ctx context.Context, userID, key string, hash []byte, at time.Time) (KeyEntry, bool, error)
	// AnswerKey stores the reply of a reserved key.
	AnswerKey(ctx context.Context, userID, key string, reply []byte) error
	// ReleaseKey deletes a reserved key not answered (its request failed:
	// a retry runs again).
	ReleaseKey(ctx context.Context, userID, key string) error
	// PruneKeys deletes the keys created before t.
	PruneKeys(ctx context.Context, before time.Time) error
}
