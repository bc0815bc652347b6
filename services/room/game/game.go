// Package game is the interface a game's rules implement to be played in a
// room of the room service.
//
// A Game is a factory: Start deals a new State for the room's players,
// Decode rebuilds one from a snapshot. A State is the game in progress; the
// room's controller calls it one event at a time, from one goroutine, and
// never concurrently, so it needs no locking.
//
// Rules must be deterministic: the room service rebuilds a room after a
// restart or a failover by replaying its log, calling Start, Act, Leave and
// Tick again with the same arguments (the time of each call is the time the
// event was first handled, recorded in the log, and the seed of Start is
// recorded too). So a State must use no clock, no randomness but the seed,
// and no map iteration order; two replays of the same calls must produce
// the same outputs and the same encoding.
//
// A rule violation is an error from Act (use Illegal): the room answers
// bad_request with its text, and because the room applies every event to a
// Clone first, the state is unchanged whatever Act did before failing.
package game

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// ErrIllegal is what every error Illegal returns wraps.
var ErrIllegal = errors.New("illegal action")

// Illegal returns a rule violation with a message for the player ("not your
// turn", "add must be 1..3"); it wraps ErrIllegal.
func Illegal(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrIllegal, fmt.Sprintf(format, args...))
}

// Output is an event a game wants published to the room's members (as a
// room.Event of type "game." + Type).
type Output struct {
	// Type names the event within the game ("added"); the room prefixes it
	// with "game.".
	Type string
	// Player is the player the event is about, or "".
	Player string
	// Body is the event's payload in the game's own encoding.
	Body []byte
	// To, when set, makes Body private to that player (a card they drew):
	// the other members get the event (the same seq) with an empty body.
	To string
}

// Viewer is implemented by a Game with hidden information: what each
// player may see of a State. For such a game the room never sends the
// whole state to anyone: a member's RoomState.game_state and the body of
// the room.started they are pushed are View(state, member), the game
// events are pushed to each member apart (topic user/<id>, Output.To
// honoured), and non-members get the room's public summary only. A game
// that does not implement it shows its whole State to every member.
type Viewer interface {
	// View returns st's encoding as player sees it. It must not change
	// st, and like every rule it is deterministic.
	View(st State, player string) ([]byte, error)
}

// Game is a game's rules: its limits and how to start or restore a State.
// A Game is shared by every room that plays it, so it must be safe for
// concurrent use (typically it holds only options).
type Game interface {
	// Name is the game's name in CreateRequest.game: [a-z0-9_-], at most
	// 32 bytes.
	Name() string
	// MinPlayers and MaxPlayers bound the players of one game.
	MinPlayers() int
	MaxPlayers() int
	// Start returns the state of a new game between players (in seat
	// order, between MinPlayers and MaxPlayers of them) at now, and the
	// events that announce it. seed is the only randomness allowed.
	Start(players []string, seed uint64, now time.Time) (State, []Output, error)
	// Decode rebuilds a State from State.Encode's bytes.
	Decode(b []byte) (State, error)
}

// State is a game in progress. Its methods are called from one goroutine
// at a time.
type State interface {
	// Act validates player's action (in the game's encoding) at now and
	// applies it, returning the events to publish; an illegal action
	// returns an error (see Illegal).
	Act(player string, action []byte, now time.Time) ([]Output, error)
	// Leave removes player from the game at now (they left the room); it
	// may end the game.
	Leave(player string, now time.Time) []Output
	// Deadline is when Tick must next be called (a turn timeout), or the
	// zero time for never.
	Deadline() time.Time
	// Tick applies the timers due at now; the room calls it at or after
	// Deadline. It returns nothing when nothing was due.
	Tick(now time.Time) []Output
	// Result reports whether the game is over and, if so, its winner ("" for
	// a draw or no winner).
	Result() (winner string, over bool)
	// Clone returns a deep copy: changes to either do not affect the other.
	Clone() State
	// Encode returns the state's encoding, which is both what Decode reads
	// and what clients receive in RoomState.game_state.
	Encode() ([]byte, error)
}

// Registry holds the games a room service offers, by name. It is built
// before the service starts and only read afterwards.
type Registry struct {
	games map[string]Game
	def   string
}

// NewRegistry returns a registry of games; the first is the default (the
// game of a CreateRequest that names none). It fails on a duplicate or
// invalid name or an inconsistent player range.
func NewRegistry(games ...Game) (*Registry, error) {
	r := &Registry{games: make(map[string]Game, len(games))}
	for _, g := range games {
		if g == nil {
			return nil, errors.New("game: nil game")
		}
		name := g.Name()
		if !validName(name) {
			return nil, fmt.Errorf("game: name %q: must be [a-z0-9_-], 1..32 bytes", name)
		}
		if _, dup := r.games[name]; dup {
			return nil, fmt.Errorf("game: %q registered twice", name)
		}
		if g.MinPlayers() < 1 || g.MaxPlayers() < g.MinPlayers() {
			return nil, fmt.Errorf("game: %q: players must be 1 <= min <= max, got %d..%d", name, g.MinPlayers(), g.MaxPlayers())
		}
		if r.def == "" {
			r.def = name
		}
		r.games[name] = g
	}
	if len(r.games) == 0 {
		return nil, errors.New("game: no games")
	}
	return r, nil
}

// Get returns the game named name ("" is the default game).
func (r *Registry) Get(name string) (Game, bool) {
	if name == "" {
		name = r.def
	}
	g, ok := r.games[name]
	return g, ok
}

// Default returns the name of the default game.
func (r *Registry) Default() string { return r.def }

// Names returns the names of the games, default first.
func (r *Registry) Names() []string {
	var rest []string
	for n := range r.games {
		if n != r.def {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append([]string{r.def}, rest...)
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
