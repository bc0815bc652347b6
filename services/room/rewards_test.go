package room

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// fakeRewarder records grants; it fails the first with unavailable.
type fakeRewarder struct {
	mu     sync.Mutex
	calls  int
	grants []*gamepb.GrantRequest
}

func (f *fakeRewarder) Grant(_ context.Context, req *gamepb.GrantRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls == 1 {
		return wire.Errorf(wire.CodeUnavailable, "game is restarting")
	}
	f.grants = append(f.grants, req)
	return nil
}

func (f *fakeRewarder) snapshot() (int, []*gamepb.GrantRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, append([]*gamepb.GrantRequest(nil), f.grants...)
}

// TestWinnerRewarded: with rewards.on_win set, a game that ends with a
// winner makes the room grant the winner the reward through the game
// service (a Rewarder here), keyed room:<id>:win, retried after a failure,
// without holding up the room.
func TestWinnerRewarded(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	rw := &fakeRewarder{}
	c.rewards = rw
	in := c.start(func(o *Options) {
		o.Rewards = RewardsOptions{OnWin: &Reward{Currency: "coins", Amount: 10, Stat: "wins"}}
	}, false)
	r := newRouter(c)
	alice, bob := r.client("alice"), r.client("bob")
	var st roompb.RoomState
	alice.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "duel", MaxPlayers: 2}, &st)
	id := st.ID
	bob.mustCall(t, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: id}, &st)
	alice.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	bob.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	alice.mustCall(t, roomrpc.MethodStart, &roompb.StartRequest{}, &st)
	byID := map[string]*client{"alice": alice, "bob": bob}
	var g roompb.Race31State
	for {
		cur := getState(t, alice, id)
		if cur.Status != StatusPlaying {
			break
		}
		if err := thriftx.Unmarshal(cur.GameState, &g); err != nil {
			t.Fatal(err)
		}
		byID[g.Order[g.Turn]].mustCall(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: race31Action(t, min(3, g.Target-g.Total))}, nil)
	}
	final := getState(t, alice, id)
	if final.Status != StatusFinished || final.Winner == "" {
		t.Fatalf("final: %+v", final)
	}
	checkFor(t, 10*time.Second, "the winner rewarded", func() bool { return in.svc.Stats().Rewards == 1 })
	calls, grants := rw.snapshot()
	if calls != 2 || len(grants) != 1 {
		t.Fatalf("%d calls, %d grants; want a retry after the failure, then one grant", calls, len(grants))
	}
	g0 := grants[0]
	if g0.UserID != final.Winner || g0.IdempotencyKey != "room:"+id+":win" || g0.Currencies["coins"] != 10 || g0.Stats["wins"] != 1 ||
		g0.Reason != "room_win" || g0.Reference != "room:"+id {
		t.Fatalf("grant %+v", g0)
	}
	if st := in.svc.Stats(); st.RewardErrors != 0 {
		t.Fatalf("reward errors: %+v", st)
	}
}

func TestRewardsOptions(t *testing.T) {
	for _, tc := range []struct {
		r    RewardsOptions
		want string
	}{
		{RewardsOptions{}, ""},
		{RewardsOptions{OnWin: &Reward{Stat: "wins"}}, ""},
		{RewardsOptions{OnWin: &Reward{}}, "rewards.on_win: set a currency"},
		{RewardsOptions{OnWin: &Reward{Currency: "coins"}}, "rewards.on_win.amount"},
		{RewardsOptions{OnWin: &Reward{Amount: 5, Stat: "wins"}}, "rewards.on_win.amount"},
		{RewardsOptions{Service: "Game!", OnWin: &Reward{Stat: "wins"}}, "rewards.service"},
	} {
		o := NewOptions()
		o.Rewards = tc.r
		err := o.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.r, err, tc.want)
		}
	}
}
