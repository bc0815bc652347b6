// Package race31 is the room service's sample game, "race to 31", for 2 to
// 4 players: in turn, each adds 1, 2 or 3 to a shared total that starts at
// 0; nobody may pass the target; whoever reaches it exactly wins. A player
// who lets the turn time out has 1 added for them; a player who leaves is
// skipped, and the last player left wins.
//
// Actions are Race31Action, the state is Race31State and the events'
// bodies are Race31Added, all Thrift structs in idl/room.thrift. The rules
// are deterministic (see package game): the seat order comes from the
// players' join order rotated by the seed, and time only from the calls.
package race31

import (
	"fmt"
	"slices"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/room/game"
)

// Name is the game's name in CreateRequest.game.
const Name = "race31"

// Player limits: a race needs a rival; beyond four, most players never get
// a second turn before someone can force the win.
const (
	MinPlayers = 2
	MaxPlayers = 4
)

// Defaults of Options.
const (
	// DefaultTarget is the total to reach: 31, the classic.
	DefaultTarget = 31
	// DefaultMaxAdd is the largest step: with 3, the player who can leave a
	// multiple of 4 short of the target wins, which is what makes it a
	// game.
	DefaultMaxAdd = 3
	// DefaultTurnTimeout is how long a player has to move: long enough to
	// think on a phone, short enough that a vanished player does not stall
	// the others for long.
	DefaultTurnTimeout = 30 * time.Second
)

// Bounds of Options, checked by New.
const (
	// maxTarget keeps games short and totals far from overflow.
	maxTarget = 1000
	// maxMaxAdd keeps the step below the target's scale.
	maxMaxAdd = 100
	// minTurnTimeout lets tests run fast without turning the timeout into a
	// spin.
	minTurnTimeout = 10 * time.Millisecond
)

// Event types (game.Output.Type; the room publishes them as "game.<type>").
const (
	// EventAdded: a player moved.
	EventAdded = "added"
	// EventTimeout: the player to move ran out of time; 1 was added for
	// them.
	EventTimeout = "timeout"
	// EventTurn: the player to move left; the turn passed on.
	EventTurn = "turn"
)

// Options are race31's rules.
type Options struct {
	// Target is the total to reach (default 31).
	Target int `yaml:"target"`
	// MaxAdd is the largest step (default 3).
	MaxAdd int `yaml:"max_add"`
	// TurnTimeout is how long a player has to move (default 30 s).
	TurnTimeout time.Duration `yaml:"turn_timeout"`
}

// NewOptions returns the classic rules.
func NewOptions() Options {
	return Options{Target: DefaultTarget, MaxAdd: DefaultMaxAdd, TurnTimeout: DefaultTurnTimeout}
}

// Validate checks the options, naming the bad field.
func (o Options) Validate() error {
	switch {
	case o.Target < 1 || o.Target > maxTarget:
		return fmt.Errorf("race31: target: must be in [1, %d], got %d", maxTarget, o.Target)
	case o.MaxAdd < 1 || o.MaxAdd > maxMaxAdd:
		return fmt.Errorf("race31: max_add: must be in [1, %d], got %d", maxMaxAdd, o.MaxAdd)
	case o.TurnTimeout < minTurnTimeout:
		return fmt.Errorf("race31: turn_timeout: must be >= %v, got %v", minTurnTimeout, o.TurnTimeout)
	}
	return nil
}

// Game is race31's game.Game.
type Game struct{ opts Options }

var _ game.Game = (*Game)(nil)

// New returns the game with opts.
func New(opts Options) (*Game, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Game{opts: opts}, nil
}

// Default returns the game with the classic rules.
func Default() *Game { return &Game{opts: NewOptions()} }

// Name returns "race31".
func (g *Game) Name() string { return Name }

// MinPlayers returns 2.
func (g *Game) MinPlayers() int { return MinPlayers }

// MaxPlayers returns 4.
func (g *Game) MaxPlayers() int { return MaxPlayers }

// Start seats players in their order rotated by seed (so who moves first
// is fair, yet replayable) and starts the first turn at now.
func (g *Game) Start(players []string, seed uint64, now time.Time) (game.State, []game.Output, error) {
	if len(players) < MinPlayers || len(players) > MaxPlayers {
		return nil, nil, game.Illegal("race31 needs %d to %d players, got %d", MinPlayers, MaxPlayers, len(players))
	}
	n := len(players)
	first := int(seed % uint64(n))
	order := make([]string, 0, n)
	order = append(order, players[first:]...)
	order = append(order, players[:first]...)
	st := &State{s: roompb.Race31State{
		Target:             int32(g.opts.Target),
		MaxAdd:             int32(g.opts.MaxAdd),
		Order:              order,
		TurnTimeoutMs:      g.opts.TurnTimeout.Milliseconds(),
		TurnDeadlineUnixMs: now.UnixMilli() + g.opts.TurnTimeout.Milliseconds(),
	}}
	return st, nil, nil
}

// Decode rebuilds a state from its encoding, checking its invariants.
func (g *Game) Decode(b []byte) (game.State, error) {
	st := &State{}
	if err := thriftx.Unmarshal(b, &st.s); err != nil {
		return nil, fmt.Errorf("race31: decode state: %w", err)
	}
	s := &st.s
	switch {
	case len(s.Order) > MaxPlayers:
		return nil, fmt.Errorf("race31: decode state: %d players", len(s.Order))
	case s.Target < 1 || s.Target > maxTarget || s.MaxAdd < 1 || s.MaxAdd > maxMaxAdd:
		return nil, fmt.Errorf("race31: decode state: bad rules %d/%d", s.Target, s.MaxAdd)
	case s.Total < 0 || s.Total > s.Target:
		return nil, fmt.Errorf("race31: decode state: total %d", s.Total)
	case len(s.Order) > 0 && (s.Turn < 0 || int(s.Turn) >= len(s.Order)):
		return nil, fmt.Errorf("race31: decode state: turn %d of %d", s.Turn, len(s.Order))
	}
	return st, nil
}

// State is a race in progress; the zero value is not usable (Start or
// Decode make one).
type State struct{ s roompb.Race31State }

var _ game.State = (*State)(nil)

// Race31 returns a copy of the state as its Thrift struct.
func (st *State) Race31() *roompb.Race31State {
	c := st.s
	c.Order = slices.Clone(st.s.Order)
	return &c
}

func (st *State) over() bool {
	return st.s.Winner != "" || len(st.s.Order) == 0 || st.s.Total >= st.s.Target
}

// toMove returns the player to move, "" when the game is over.
func (st *State) toMove() string {
	if st.over() {
		return ""
	}
	return st.s.Order[st.s.Turn]
}

// Act applies a Race31Action of player: it must be player's turn and
// 1 <= add <= min(max_add, target - total).
func (st *State) Act(player string, action []byte, now time.Time) ([]game.Output, error) {
	var a roompb.Race31Action
	if err := thriftx.Unmarshal(action, &a); err != nil {
		return nil, game.Illegal("action is not a Race31Action: %v", err)
	}
	if st.over() {
		return nil, game.Illegal("the game is over")
	}
	if !slices.Contains(st.s.Order, player) {
		return nil, game.Illegal("%s is not playing", player)
	}
	if cur := st.toMove(); cur != player {
		return nil, game.Illegal("not your turn: %s is to move", cur)
	}
	limit := min(st.s.MaxAdd, st.s.Target-st.s.Total)
	if a.Add < 1 || a.Add > limit {
		return nil, game.Illegal("add must be in [1, %d], got %d", limit, a.Add)
	}
	return []game.Output{st.add(EventAdded, player, a.Add, now)}, nil
}

// add adds n for player (the player to move) and passes the turn.
func (st *State) add(typ, player string, n int32, now time.Time) game.Output {
	st.s.Total += n
	st.s.Moves++
	if st.s.Total >= st.s.Target {
		st.s.Winner = player
		st.s.TurnDeadlineUnixMs = 0
	} else {
		st.s.Turn = (st.s.Turn + 1) % int32(len(st.s.Order))
		st.s.TurnDeadlineUnixMs = now.UnixMilli() + st.s.TurnTimeoutMs
	}
	return game.Output{Type: typ, Player: player, Body: st.body(n)}
}

func (st *State) body(n int32) []byte {
	b, err := thriftx.Marshal(&roompb.Race31Added{Add: n, Total: st.s.Total, NextPlayer: st.toMove()})
	if err != nil {
		panic(fmt.Sprintf("race31: encoding Race31Added: %v", err)) // a small fixed struct always encodes
	}
	return b
}

// Leave removes player; the turn passes on if it was theirs, and the last
// player left wins.
func (st *State) Leave(player string, now time.Time) []game.Output {
	i := slices.Index(st.s.Order, player)
	if i < 0 || st.over() {
		return nil
	}
	hadTurn := int(st.s.Turn) == i
	st.s.Order = slices.Delete(st.s.Order, i, i+1)
	switch {
	case len(st.s.Order) == 0:
		st.s.Turn, st.s.TurnDeadlineUnixMs = 0, 0
		return nil
	case i < int(st.s.Turn):
		st.s.Turn--
	case int(st.s.Turn) >= len(st.s.Order):
		st.s.Turn = 0
	}
	if len(st.s.Order) == 1 {
		st.s.Winner = st.s.Order[0]
		st.s.Turn, st.s.TurnDeadlineUnixMs = 0, 0
		return nil
	}
	if !hadTurn {
		return nil
	}
	st.s.TurnDeadlineUnixMs = now.UnixMilli() + st.s.TurnTimeoutMs
	return []game.Output{{Type: EventTurn, Player: st.toMove(), Body: st.body(0)}}
}

// Deadline is the turn's timeout, zero once the game is over.
func (st *State) Deadline() time.Time {
	if st.over() || st.s.TurnDeadlineUnixMs == 0 {
		return time.Time{}
	}
	return time.UnixMilli(st.s.TurnDeadlineUnixMs)
}

// Tick adds 1 for the player to move when their time is up.
func (st *State) Tick(now time.Time) []game.Output {
	dl := st.Deadline()
	if dl.IsZero() || now.Before(dl) {
		return nil
	}
	return []game.Output{st.add(EventTimeout, st.toMove(), 1, now)}
}

// Result reports the winner once someone reached the target or everyone
// else left; a game everyone left is over with no winner.
func (st *State) Result() (string, bool) {
	return st.s.Winner, st.over()
}

// Clone returns a deep copy.
func (st *State) Clone() game.State {
	return &State{s: *st.Race31()}
}

// Encode returns the Race31State encoding.
func (st *State) Encode() ([]byte, error) {
	return thriftx.Marshal(&st.s)
}
