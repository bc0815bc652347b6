package game

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/noonhq/noon/wire"
)

// Store errors. Implementations return them (wrapped, with details) so the
// service can tell the cases apart with errors.Is.
var (
	// ErrNotFound: no player has the id (or, for a change that may not
	// create one, the player does not exist yet).
	ErrNotFound = errors.New("game: no such player")
	// ErrKeyReused: the idempotency key was used by another request of the
	// same player.
	ErrKeyReused = errors.New("game: idempotency key used by another request")
	// ErrInsufficient: a balance is short of what the change takes.
	ErrInsufficient = errors.New("game: insufficient balance")
	// ErrNotOwned: an item count is short of what the change takes.
	ErrNotOwned = errors.New("game: not enough of the item")
	// ErrLimit: the change would pass a limit (a currency's max, an item's
	// max count, a stat's range, the stats a player may have, a score's
	// range).
	ErrLimit = errors.New("game: over a limit")
	// ErrInvalid: the store was asked something malformed (an empty key, a
	// bad user id); the service checks requests first, so this is a bug.
	ErrInvalid = errors.New("game: invalid store request")
)

// Change kinds: what a change in a player's log is.
const (
	// KindGrant gives currencies, items and stat increments (game.Grant).
	KindGrant = "grant"
	// KindSpend takes currencies and items (game.Spend).
	KindSpend = "spend"
	// KindConsume uses up a consumable item (game.ConsumeItem).
	KindConsume = "consume"
	// KindAdminGrant and KindAdminTake are an operator's grant and take.
	KindAdminGrant = "gm_grant"
	KindAdminTake  = "gm_take"
	// KindSetStat sets stats to values (an operator's game.SetStat).
	KindSetStat = "set_stat"
)

// Limits the stores enforce.
const (
	// MaxUserIDLen bounds a user id: the broker's bound on the user a
	// login binds (login's ids are 36-byte UUIDs).
	MaxUserIDLen = 128
	// MaxKeyLen bounds an idempotency key: a UUID, or "room:<id>:win".
	MaxKeyLen = 128
	// MaxStatsPerPlayer bounds the distinct stats of one player: every
	// GetProfile of the owner returns them all.
	MaxStatsPerPlayer = 256
	// maxReasonLen and maxReferenceLen bound a change's reason and
	// reference (ledger columns, audit lines).
	maxReasonLen    = 64
	maxReferenceLen = 128
)

// Delta is one name's change within a Change: an amount added (negative:
// taken) to a currency, an item or a stat, or, in Change.SetStats, the
// value a stat is set to.
type Delta struct {
	Name  string `json:"name"`
	Delta int64  `json:"delta"`
	// Max caps the value the change may leave (a currency's max, an item's
	// max count); 0 means no cap beyond the int64 range (stats).
	Max int64 `json:"max,omitempty"`
}

// Change is one change to a player's inventory, wallet and stats: all of
// it is applied, or none. Stores apply a player's changes one at a time
// (see Store.Apply), each an entry of the player's log.
type Change struct {
	// Kind is one of the Kind* constants.
	Kind string
	// Key is the idempotency key, unique per player: 1..MaxKeyLen bytes.
	Key string
	// Reason and Reference are recorded in the log and the ledger.
	Reason, Reference string
	// Currencies, Items and Stats are the amounts added (negative: taken),
	// each name at most once per list.
	Currencies, Items, Stats []Delta
	// SetStats are stats set to a value (Delta is the value).
	SetStats []Delta
	// Create makes the player if the store has none (server grants vouch
	// for the user); without it a change to an unknown player fails with
	// ErrNotFound.
	Create bool
	// Audit, when set, is written with the change, in the same
	// transaction, unless the change is a replay.
	Audit *AuditEntry
	// At is the change's time.
	At time.Time
}

// Hash identifies the request a change makes, whatever its key, time and
// audit line: a replay of the key with the same hash answers the first
// result, with another hash ErrKeyReused.
func (c *Change) Hash() string {
	sorted := func(ds []Delta) []Delta {
		out := slices.Clone(ds)
		slices.SortFunc(out, func(a, b Delta) int { return strings.Compare(a.Name, b.Name) })
		for i := range out {
			out[i].Max = 0 // the catalogue's, not the request's
		}
		return out
	}
	b, _ := json.Marshal(struct {
		Kind, Reason, Reference           string
		Currencies, Items, Stats, SetStat []Delta
	}{c.Kind, c.Reason, c.Reference, sorted(c.Currencies), sorted(c.Items), sorted(c.Stats), sorted(c.SetStats)})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// check is what every Store checks of a change before applying it.
func (c *Change) check(user string) error {
	switch {
	case !validUserID(user):
		return fmt.Errorf("%w: user id %q", ErrInvalid, wire.Snippet(user))
	case c.Key == "" || len(c.Key) > MaxKeyLen:
		return fmt.Errorf("%w: idempotency key must be 1 to %d bytes", ErrInvalid, MaxKeyLen)
	case c.Kind == "":
		return fmt.Errorf("%w: no kind", ErrInvalid)
	}
	return nil
}

// Result is what a change left: its entry in the player's log and the
// values of what it touched.
type Result struct {
	Seq      int64            `json:"seq"`
	Balances map[string]int64 `json:"balances,omitempty"`
	Items    map[string]int64 `json:"items,omitempty"`
	Stats    map[string]int64 `json:"stats,omitempty"`
	// Replayed: the key was used already by the same request; this is the
	// first result and nothing changed now.
	Replayed bool `json:"-"`
}

// values are a player's current values of the names a change touches
// (absent: 0), and how many stats the player has.
type values struct {
	bal, items, stats map[string]int64
	statCount         int
}

// next computes what c leaves from cur: the new values of the names it
// touches (in the Result's maps), or why it may not be applied
// (ErrInsufficient, ErrNotOwned, ErrLimit). Both stores apply changes
// through it, so they agree on every rule.
func (c *Change) next(cur values) (Result, error) {
	r := Result{}
	add := func(what string, ds []Delta, cur map[string]int64, short error) (map[string]int64, error) {
		if len(ds) == 0 {
			return nil, nil
		}
		out := make(map[string]int64, len(ds))
		for _, d := range ds {
			v := cur[d.Name]
			limit := d.Max
			if limit == 0 {
				limit = math.MaxInt64
			}
			switch {
			case d.Delta < 0 && v+d.Delta < 0 && short != nil:
				return nil, fmt.Errorf("%w: %s %s is %d, the change takes %d", short, what, d.Name, v, -d.Delta)
			case d.Delta > 0 && v > limit-d.Delta:
				return nil, fmt.Errorf("%w: %s %s is %d, adding %d passes its max %d", ErrLimit, what, d.Name, v, d.Delta, limit)
			case d.Delta < 0 && short == nil && v < math.MinInt64-d.Delta:
				return nil, fmt.Errorf("%w: stat %s is %d, adding %d leaves the int64 range", ErrLimit, d.Name, v, d.Delta)
			}
			out[d.Name] = v + d.Delta
		}
		return out, nil
	}
	var err error
	if r.Balances, err = add("balance of", c.Currencies, cur.bal, ErrInsufficient); err != nil {
		return Result{}, err
	}
	if r.Items, err = add("count of item", c.Items, cur.items, ErrNotOwned); err != nil {
		return Result{}, err
	}
	if r.Stats, err = add("stat", c.Stats, cur.stats, nil); err != nil {
		return Result{}, err
	}
	for _, d := range c.SetStats {
		if r.Stats == nil {
			r.Stats = map[string]int64{}
		}
		r.Stats[d.Name] = d.Delta
	}
	added := 0
	for name := range r.Stats {
		if _, ok := cur.stats[name]; !ok {
			added++
		}
	}
	if added > 0 && cur.statCount+added > MaxStatsPerPlayer {
		return Result{}, fmt.Errorf("%w: a player has at most %d stats", ErrLimit, MaxStatsPerPlayer)
	}
	return r, nil
}

// names returns the names of ds.
func names(ds ...[]Delta) []string {
	var out []string
	for _, l := range ds {
		for _, d := range l {
			out = append(out, d.Name)
		}
	}
	return out
}

// Profile is a player's profile row.
type Profile struct {
	UserID          string
	DisplayName     string
	Avatar          string
	Metadata        string // a JSON object, "{}" when unset
	PrivateMetadata string // a JSON object, "{}" when unset
	Created         time.Time
	Updated         time.Time
	// Seq is the last entry of the player's log (0: none).
	Seq int64
	// Ban is the player's ban (zero Until: none ever set).
	Ban Ban
}

// ProfileUpdate are the owner-writable fields to change; nil keeps one.
type ProfileUpdate struct {
	DisplayName, Avatar, Metadata, PrivateMetadata *string
}

// Ban is a player's ban: in force until Until.
type Ban struct {
	Until  time.Time
	Reason string
}

// Active reports whether the ban is in force at now.
func (b Ban) Active(now time.Time) bool { return !b.Until.IsZero() && now.Before(b.Until) }

// LedgerEntry is one change of one currency.
type LedgerEntry struct {
	Seq       int64
	Currency  string
	Delta     int64
	Balance   int64
	Reason    string
	Reference string
	Key       string
	At        time.Time
}

// LedgerQuery selects a page of a player's ledger, newest first: entries
// before (BeforeSeq, AfterCurrency) in the order seq descending, currency
// ascending.
type LedgerQuery struct {
	// Currency, when set, selects one currency's entries.
	Currency string
	// BeforeSeq, when > 0, starts the page after the entry (BeforeSeq,
	// AfterCurrency): the last one of the previous page.
	BeforeSeq     int64
	AfterCurrency string
	// Limit bounds the entries (> 0).
	Limit int
}

// LogEntry is one change in a player's log: the request, as hashed, and
// the result.
type LogEntry struct {
	Seq       int64
	Kind      string
	Key       string
	Hash      string
	Reason    string
	Reference string
	// Result is the Result as JSON.
	Result string
	At     time.Time
}

// AuditEntry is one operator action.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Admin  string
	Action string
	UserID string
	Reason string
	// Detail is the action's request as JSON.
	Detail string
}

// ScoreOp says how a submitted score combines with the stored one.
type ScoreOp struct {
	// Operator is best, set or incr (the OPERATOR_ constants).
	Operator string
	// Asc: the board ranks low scores first (best keeps the lower).
	Asc bool
}

// ScoreRow is a player's score on a board's season.
type ScoreRow struct {
	UserID string
	Score  int64
	// Version grows with every change of any score (one sequence per
	// store): a Redis copy applies a row only if it is newer than what it
	// has, so out-of-order updates cannot leave an old score.
	Version int64
	Updated time.Time
}

// Store keeps players (profiles, wallets, inventories, stats, their logs
// and ledgers, bans), the operators' audit log and the leaderboards'
// scores. Implementations are safe for concurrent use and pass the
// contract suite in services/game/storetest.
type Store interface {
	// Profile returns a player's profile, or ErrNotFound.
	Profile(ctx context.Context, user string) (Profile, error)
	// UpdateProfile changes the fields u sets (creating the player) and
	// returns the profile.
	UpdateProfile(ctx context.Context, user string, u ProfileUpdate, at time.Time) (Profile, error)
	// Apply applies c to user's inventory, wallet and stats as one entry
	// of the player's log, serialised with every other change of the
	// player: the same key with the same Hash returns the first Result
	// (Replayed), with another ErrKeyReused; ErrNotFound for an unknown
	// player unless c.Create; ErrInsufficient, ErrNotOwned or ErrLimit
	// (see Change.next) change nothing. Each currency change is a
	// ledger entry.
	Apply(ctx context.Context, user string, c Change) (Result, error)
	// Wallet, Inventory and Stats return a player's non-zero balances,
	// item counts and every stat (empty for an unknown player).
	Wallet(ctx context.Context, user string) (map[string]int64, error)
	Inventory(ctx context.Context, user string) (map[string]int64, error)
	Stats(ctx context.Context, user string) (map[string]int64, error)
	// Ledger returns a page of the player's ledger (see LedgerQuery).
	Ledger(ctx context.Context, user string, q LedgerQuery) ([]LedgerEntry, error)
	// Log returns the player's log entries after seq after, oldest first,
	// at most limit.
	Log(ctx context.Context, user string, after int64, limit int) ([]LogEntry, error)
	// SetBan sets the player's ban (a zero Until lifts it), creating the
	// player, and writes audit in the same transaction.
	SetBan(ctx context.Context, user string, b Ban, audit AuditEntry) (Ban, error)
	// Audit returns operator actions on user ("" for everyone's), newest
	// first, at most limit.
	Audit(ctx context.Context, user string, limit int) ([]AuditEntry, error)
	// DisplayNames returns the display names of the players of users that
	// exist.
	DisplayNames(ctx context.Context, users []string) (map[string]string, error)
	// SubmitScore combines score with user's on board's season by op and
	// returns the row it left, with a new Version; ErrLimit when the
	// result leaves ±MaxScore.
	SubmitScore(ctx context.Context, board, season, user string, score int64, op ScoreOp, at time.Time) (ScoreRow, error)
	// Scores returns the rows of board's season with user ids after
	// after, by user id, at most limit.
	Scores(ctx context.Context, board, season, after string, limit int) ([]ScoreRow, error)
	// ScoresSince returns the rows of board's season updated at or after
	// since.
	ScoresSince(ctx context.Context, board, season string, since time.Time) ([]ScoreRow, error)
}

// validUserID reports whether id may name a player: 1..MaxUserIDLen bytes
// of printable ASCII without spaces.
func validUserID(id string) bool {
	if id == "" || len(id) > MaxUserIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// combineScore is op applied to the stored score old (exists: there is
// one) and the submitted score s: the score the board keeps, or ErrLimit.
func combineScore(old int64, exists bool, s int64, op ScoreOp) (int64, error) {
	v := s
	if exists {
		switch op.Operator {
		case "incr":
			v = old + s // both within ±2^53: no overflow
		case "best":
			if op.Asc {
				v = min(old, s)
			} else {
				v = max(old, s)
			}
		}
	}
	if v > MaxScore || v < -MaxScore {
		return 0, fmt.Errorf("%w: a score must stay within ±%d, got %d", ErrLimit, int64(MaxScore), v)
	}
	return v, nil
}

// utcMicro is t as the stores return it: UTC, to the microsecond
// (Postgres's precision).
func utcMicro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
