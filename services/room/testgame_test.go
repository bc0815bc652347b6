package room

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/noonhq/noon/services/room/game"
	"github.com/noonhq/noon/services/room/games/race31"
)

// tally is a test game with no turns: any player may act at any time, and
// each action (up to 64 bytes) is appended to the tally. It lets tests send
// thousands of legal actions to one room and check the order they were
// applied in. An action "bad" is illegal; "panic" panics in Act;
// "poison" is accepted, after which Encode panics.
type tally struct{}

const tallyName = "tally"

func (tally) Name() string    { return tallyName }
func (tally) MinPlayers() int { return 1 }
func (tally) MaxPlayers() int { return 16 }

func (tally) Start(players []string, seed uint64, now time.Time) (game.State, []game.Output, error) {
	return &tallyState{Players: append([]string(nil), players...)}, nil, nil
}

func (tally) Decode(b []byte) (game.State, error) {
	st := &tallyState{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, err
	}
	return st, nil
}

type tallyState struct {
	Players []string `json:"players"`
	Items   []string `json:"items"` // "<player>:<action>"
}

func (s *tallyState) Act(player string, action []byte, now time.Time) ([]game.Output, error) {
	switch {
	case string(action) == "bad" || len(action) == 0 || len(action) > 64:
		return nil, game.Illegal("bad action %q", action)
	case string(action) == "panic":
		s.Items = append(s.Items, "half-done")
		panic("tally: asked to panic")
	}
	s.Items = append(s.Items, player+":"+string(action))
	return []game.Output{{Type: "tallied", Player: player, Body: append([]byte(nil), action...)}}, nil
}

func (s *tallyState) Leave(player string, now time.Time) []game.Output { return nil }
func (s *tallyState) Deadline() time.Time                              { return time.Time{} }
func (s *tallyState) Tick(now time.Time) []game.Output                 { return nil }
func (s *tallyState) Result() (string, bool)                           { return "", false }

func (s *tallyState) Clone() game.State {
	return &tallyState{Players: append([]string(nil), s.Players...), Items: append([]string(nil), s.Items...)}
}

func (s *tallyState) Encode() ([]byte, error) {
	if n := len(s.Items); n > 0 && strings.HasSuffix(s.Items[n-1], ":poison") {
		panic("tally: poisoned")
	}
	return json.Marshal(s)
}

// testGames offers race31 (first, the default, with a short turn timeout
// when given), tally, counter and secret (hidden information).
func testGames(turn time.Duration) *game.Registry {
	opts := race31.NewOptions()
	if turn > 0 {
		opts.TurnTimeout = turn
	}
	g, err := race31.New(opts)
	if err != nil {
		panic(err)
	}
	r, err := game.NewRegistry(g, tally{}, counter{}, secret{})
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return r
}

func decodeTally(b []byte) (*tallyState, error) {
	st, err := tally{}.Decode(b)
	if err != nil {
		return nil, err
	}
	return st.(*tallyState), nil
}

// counter is tally with a constant-size state (a count and the last
// action), for benchmarks: the cost of an event does not grow with the
// room's history.
type counter struct{}

const counterName = "counter"

func (counter) Name() string    { return counterName }
func (counter) MinPlayers() int { return 1 }
func (counter) MaxPlayers() int { return 16 }

func (counter) Start(players []string, seed uint64, now time.Time) (game.State, []game.Output, error) {
	return &counterState{}, nil, nil
}

func (counter) Decode(b []byte) (game.State, error) {
	st := &counterState{}
	return st, json.Unmarshal(b, st)
}

type counterState struct {
	N    int64  `json:"n"`
	Last string `json:"last"`
}

func (s *counterState) Act(player string, action []byte, now time.Time) ([]game.Output, error) {
	if len(action) == 0 || len(action) > 64 {
		return nil, game.Illegal("bad action")
	}
	s.N++
	s.Last = player + ":" + string(action)
	return []game.Output{{Type: "counted", Player: player, Body: action}}, nil
}

func (s *counterState) Leave(string, time.Time) []game.Output { return nil }
func (s *counterState) Deadline() time.Time                   { return time.Time{} }
func (s *counterState) Tick(time.Time) []game.Output          { return nil }
func (s *counterState) Result() (string, bool)                { return "", false }
func (s *counterState) Clone() game.State                     { c := *s; return &c }
func (s *counterState) Encode() ([]byte, error)               { return json.Marshal(s) }

// secret is a test game with hidden information (a game.Viewer): each
// player is dealt a secret number from the seed; "peek" tells the player
// their own (privately: Output.To), "poke" is public. Nobody may see
// another's secret: a member's view hides the others'.
type secret struct{}

const secretName = "secret"

func (secret) Name() string    { return secretName }
func (secret) MinPlayers() int { return 1 }
func (secret) MaxPlayers() int { return 8 }

func (secret) Start(players []string, seed uint64, now time.Time) (game.State, []game.Output, error) {
	st := &secretState{Players: append([]string(nil), players...), Secrets: map[string]string{}}
	for i, p := range players {
		st.Secrets[p] = fmt.Sprintf("s%d", (seed>>(uint(i)%8*8))%1000+uint64(i)*1000)
	}
	return st, nil, nil
}

func (secret) Decode(b []byte) (game.State, error) {
	st := &secretState{}
	return st, json.Unmarshal(b, st)
}

// View shows player their own secret and "?" for the others'.
func (secret) View(st game.State, player string) ([]byte, error) {
	s := st.(*secretState)
	v := &secretState{Players: s.Players, Pokes: s.Pokes, Secrets: map[string]string{}}
	for _, p := range s.Players {
		v.Secrets[p] = "?"
	}
	if sec, ok := s.Secrets[player]; ok {
		v.Secrets[player] = sec
	}
	return json.Marshal(v)
}

var _ game.Viewer = secret{}

type secretState struct {
	Players []string          `json:"players"`
	Secrets map[string]string `json:"secrets"`
	Pokes   int               `json:"pokes"`
}

func (s *secretState) Act(player string, action []byte, now time.Time) ([]game.Output, error) {
	switch string(action) {
	case "peek":
		return []game.Output{{Type: "peek", Player: player, Body: []byte(s.Secrets[player]), To: player}}, nil
	case "poke":
		s.Pokes++
		return []game.Output{{Type: "poke", Player: player, Body: []byte("poked")}}, nil
	}
	return nil, game.Illegal("peek or poke")
}

func (s *secretState) Leave(string, time.Time) []game.Output { return nil }
func (s *secretState) Deadline() time.Time                   { return time.Time{} }
func (s *secretState) Tick(time.Time) []game.Output          { return nil }
func (s *secretState) Result() (string, bool)                { return "", false }
func (s *secretState) Clone() game.State {
	c := *s
	c.Players = append([]string(nil), s.Players...)
	c.Secrets = make(map[string]string, len(s.Secrets))
	for k, v := range s.Secrets {
		c.Secrets[k] = v
	}
	return &c
}
func (s *secretState) Encode() ([]byte, error) { return json.Marshal(s) }
