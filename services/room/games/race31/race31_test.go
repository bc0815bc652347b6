package race31

import (
	"bytes"
	"errors"
	"testing"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/room/game"
)

var t0 = time.UnixMilli(1_700_000_000_000)

func action(t testing.TB, add int32) []byte {
	t.Helper()
	b, err := thriftx.Marshal(&roompb.Race31Action{Add: add})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func start(t *testing.T, g *Game, players ...string) *State {
	t.Helper()
	st, outs, err := g.Start(players, 0, t0)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if len(outs) != 0 {
		t.Fatalf("Start outputs = %v", outs)
	}
	return st.(*State)
}

func encode(t *testing.T, st game.State) []byte {
	t.Helper()
	b, err := st.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStartPlayers(t *testing.T) {
	g := Default()
	for _, n := range []int{0, 1, 5} {
		players := []string{"a", "b", "c", "d", "e"}[:n]
		if _, _, err := g.Start(players, 0, t0); !errors.Is(err, game.ErrIllegal) {
			t.Errorf("Start(%d players) = %v, want ErrIllegal", n, err)
		}
	}
	// The seed picks who moves first; the order stays the join order.
	st, _, _ := g.Start([]string{"a", "b", "c"}, 4, t0)
	if got := st.(*State).Race31().Order; !equal(got, []string{"b", "c", "a"}) {
		t.Errorf("order with seed 4 = %v, want [b c a]", got)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestIllegalActionsChangeNothing: every illegal action is ErrIllegal and
// leaves the encoded state exactly as it was.
func TestIllegalActionsChangeNothing(t *testing.T) {
	g := Default()
	st := start(t, g, "a", "b")
	before := encode(t, st)
	for _, tc := range []struct {
		name, player string
		action       []byte
	}{
		{"not your turn", "b", action(t, 1)},
		{"not a player", "x", action(t, 1)},
		{"zero", "a", action(t, 0)},
		{"too many", "a", action(t, 4)},
		{"negative", "a", action(t, -1)},
		{"garbage", "a", []byte{0xff, 0x01}},
		{"empty", "a", nil},
	} {
		if _, err := st.Act(tc.player, tc.action, t0); !errors.Is(err, game.ErrIllegal) {
			t.Errorf("%s: Act = %v, want ErrIllegal", tc.name, err)
		}
		if after := encode(t, st); !bytes.Equal(before, after) {
			t.Errorf("%s: state changed", tc.name)
		}
	}
}

// TestWin plays a whole game: a reaches 31 exactly and wins; nothing may
// pass the target; after the win every action is illegal.
func TestWin(t *testing.T) {
	g := Default()
	st := start(t, g, "a", "b")
	players := []string{"a", "b"}
	total := int32(0)
	for i := 0; total < 28; i++ {
		p := players[i%2]
		outs, err := st.Act(p, action(t, 3), t0)
		if err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
		total += 3
		if len(outs) != 1 || outs[0].Type != EventAdded || outs[0].Player != p {
			t.Fatalf("move %d outputs = %+v", i, outs)
		}
	}
	// total 30 after 10 moves? 3*9 = 27 after 9 moves (a moved 5 times).
	s := st.Race31()
	if s.Total != 30 || s.Order[s.Turn] != "a" {
		t.Fatalf("total %d, to move %s; want 30, a", s.Total, s.Order[s.Turn])
	}
	if _, err := st.Act("a", action(t, 2), t0); !errors.Is(err, game.ErrIllegal) {
		t.Fatalf("passing the target: %v, want ErrIllegal", err)
	}
	outs, err := st.Act("a", action(t, 1), t0)
	if err != nil {
		t.Fatal(err)
	}
	var added roompb.Race31Added
	if err := thriftx.Unmarshal(outs[0].Body, &added); err != nil || added.Total != 31 || added.NextPlayer != "" {
		t.Fatalf("winning move body = %+v, %v", &added, err)
	}
	if w, over := st.Result(); !over || w != "a" {
		t.Fatalf("Result = %q, %v; want a, true", w, over)
	}
	if !st.Deadline().IsZero() {
		t.Error("a finished game still has a deadline")
	}
	if _, err := st.Act("b", action(t, 1), t0); !errors.Is(err, game.ErrIllegal) {
		t.Errorf("move after the win: %v", err)
	}
}

func TestTimeout(t *testing.T) {
	g, err := New(Options{Target: 31, MaxAdd: 3, TurnTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st := start(t, g, "a", "b", "c")
	if got := st.Deadline(); !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("deadline = %v", got)
	}
	if outs := st.Tick(t0.Add(999 * time.Millisecond)); outs != nil {
		t.Fatalf("early tick = %v", outs)
	}
	outs := st.Tick(t0.Add(time.Second))
	if len(outs) != 1 || outs[0].Type != EventTimeout || outs[0].Player != "a" {
		t.Fatalf("tick = %+v", outs)
	}
	if s := st.Race31(); s.Total != 1 || s.Order[s.Turn] != "b" {
		t.Fatalf("after timeout: total %d, to move %s", s.Total, s.Order[s.Turn])
	}
}

func TestLeave(t *testing.T) {
	g := Default()
	st := start(t, g, "a", "b", "c")
	// The player to move leaves: the turn passes on.
	outs := st.Leave("a", t0)
	if len(outs) != 1 || outs[0].Type != EventTurn || outs[0].Player != "b" {
		t.Fatalf("leave of the player to move = %+v", outs)
	}
	if outs := st.Leave("c", t0); outs != nil {
		t.Fatalf("leave of another = %+v", outs)
	}
	if w, over := st.Result(); !over || w != "b" {
		t.Fatalf("last player left: Result = %q, %v", w, over)
	}
}

// TestDeterministic: the same calls give the same encodings, and Decode
// round-trips.
func TestDeterministic(t *testing.T) {
	g := Default()
	run := func() []byte {
		st, _, _ := g.Start([]string{"a", "b", "c", "d"}, 7, t0)
		for i := 0; i < 8; i++ {
			p := st.(*State).Race31()
			_, _ = st.Act(p.Order[p.Turn], action(t, int32(i%3+1)), t0.Add(time.Duration(i)*time.Second))
		}
		st.Tick(t0.Add(time.Hour))
		return encode(t, st)
	}
	a, b := run(), run()
	if !bytes.Equal(a, b) {
		t.Fatal("two runs of the same calls differ")
	}
	st, err := g.Decode(a)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, st), a) {
		t.Fatal("Decode(Encode) differs")
	}
	c := st.Clone()
	p := c.(*State).Race31()
	if _, err := c.Act(p.Order[p.Turn], action(t, 1), t0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, st), a) {
		t.Fatal("acting on a clone changed the original")
	}
}

func TestDecodeRejects(t *testing.T) {
	g := Default()
	for _, s := range []*roompb.Race31State{
		{Target: 31, MaxAdd: 3, Total: 40, Order: []string{"a", "b"}},
		{Target: 31, MaxAdd: 3, Turn: 2, Order: []string{"a", "b"}},
		{Target: 0, MaxAdd: 3},
		{Target: 31, MaxAdd: 3, Order: []string{"a", "b", "c", "d", "e"}},
	} {
		b, _ := thriftx.Marshal(s)
		if _, err := g.Decode(b); err == nil {
			t.Errorf("Decode(%+v) succeeded", s)
		}
	}
	if _, err := g.Decode([]byte{0xff}); err == nil {
		t.Error("Decode(garbage) succeeded")
	}
}

func TestOptions(t *testing.T) {
	if err := NewOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []Options{
		{Target: 0, MaxAdd: 3, TurnTimeout: time.Second},
		{Target: 31, MaxAdd: 0, TurnTimeout: time.Second},
		{Target: 31, MaxAdd: 3, TurnTimeout: 0},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}
