package room

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

func isCode(err error, code string) bool {
	return errors.Is(err, &wire.Error{Code: code})
}

func race31Action(t testing.TB, add int32) []byte {
	b, err := thriftx.Marshal(&roompb.Race31Action{Add: add})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRoomLifecycle plays race31 end to end on two instances through the
// broker-like router: create, list, join, the rules of starting, an
// illegal action that changes nothing, the win, leave.
func TestRoomLifecycle(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	a, b := c.start(nil, false), c.start(nil, false)
	r := newRouter(c)
	alice, bob, carol := r.client("alice"), r.client("bob"), r.client("carol")
	ctx := context.Background()

	var st roompb.RoomState
	alice.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "duel", MaxPlayers: 2}, &st)
	id := st.ID
	if st.Game != "race31" || st.Status != StatusOpen || st.Host != "alice" || len(st.Players) != 1 || alice.room() != id {
		t.Fatalf("created %+v, bindings %v", &st, alice.sess.Bindings)
	}
	owner := ownerIn(id, a, b)
	if owner == nil {
		t.Fatal("no instance has the room")
	}
	events := collect(t, c.log, id, owner.srv.PubEndpoint())
	waitSubscribed(t, owner.srv, id, events)

	var list roompb.ListReply
	bob.mustCall(t, roomrpc.MethodList, &roompb.ListRequest{Game: "race31"}, &list)
	if !slices.ContainsFunc(list.Rooms, func(s *roompb.RoomSummary) bool { return s.ID == id && s.Players == 1 && s.MaxPlayers == 2 }) {
		t.Fatalf("list = %v, want %s", list.Rooms, id)
	}

	bob.mustCall(t, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: id}, &st)
	if len(st.Players) != 2 || bob.room() != id {
		t.Fatalf("after join: %+v", &st)
	}
	bob.mustCall(t, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: id}, &st) // again: nothing changes
	if err := carol.call(ctx, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: id}, nil); !isCode(err, wire.CodeConflict) {
		t.Fatalf("join of a full room = %v, want conflict", err)
	}
	if err := alice.call(ctx, roomrpc.MethodStart, &roompb.StartRequest{}, nil); !isCode(err, wire.CodeConflict) {
		t.Fatalf("start before ready = %v, want conflict", err)
	}
	alice.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	bob.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	bob.mustCall(t, roomrpc.MethodStart, &roompb.StartRequest{}, &st)
	if st.Status != StatusPlaying || len(st.GameState) == 0 {
		t.Fatalf("after start: %+v", &st)
	}
	var g roompb.Race31State
	if err := thriftx.Unmarshal(st.GameState, &g); err != nil {
		t.Fatal(err)
	}
	byID := map[string]*client{"alice": alice, "bob": bob}

	// An illegal action is bad_request and changes nothing.
	other := byID[g.Order[(g.Turn+1)%2]]
	before := getState(t, alice, id)
	if err := other.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: race31Action(t, 1)}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("out-of-turn action = %v, want bad_request", err)
	}
	if err := byID[g.Order[g.Turn]].call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: race31Action(t, 4)}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("add 4 = %v, want bad_request", err)
	}
	if after := getState(t, bob, id); after.Seq != before.Seq || string(after.GameState) != string(before.GameState) {
		t.Fatalf("illegal actions changed the room: seq %d -> %d", before.Seq, after.Seq)
	}

	// Play to the end: each adds 3 while possible, else what is left.
	for {
		cur := getState(t, alice, id)
		if cur.Status != StatusPlaying {
			break
		}
		if err := thriftx.Unmarshal(cur.GameState, &g); err != nil {
			t.Fatal(err)
		}
		add := min(3, g.Target-g.Total)
		byID[g.Order[g.Turn]].mustCall(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: race31Action(t, add)}, nil)
	}
	final := getState(t, alice, id)
	if final.Status != StatusFinished || final.Winner == "" {
		t.Fatalf("final: %+v", final)
	}
	if err := alice.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: race31Action(t, 1)}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("action after the end = %v", err)
	}

	var lr roompb.LeaveReply
	alice.mustCall(t, roomrpc.MethodLeave, &roompb.LeaveRequest{}, &lr)
	if alice.room() != "" {
		t.Fatalf("leave did not unbind: %v", alice.sess.Bindings)
	}
	// Every event arrived, in order, ending with alice leaving.
	// (room.created, seq 1, was most likely published before anyone
	// subscribed.)
	checkFor(t, 5*time.Second, "events arrive", func() bool {
		evs, _ := events.snapshot()
		return len(evs) > 0 && evs[len(evs)-1].Seq == lr.Seq
	})
	evs, _ := events.snapshot()
	if evs[0].Type == EventCreated {
		evs = evs[1:]
	}
	if int64(len(evs)) != lr.Seq-1 {
		t.Fatalf("%d events, leave at seq %d", len(evs), lr.Seq)
	}
	for i, e := range evs {
		if e.Seq != int64(i+2) || e.RoomID != id {
			t.Fatalf("event %d = %+v", i, e)
		}
	}
	types := make([]string, len(evs))
	for i, e := range evs {
		types[i] = e.Type
	}
	want := []string{EventJoined, EventReady, EventReady, EventStarted}
	if !slices.Equal(types[:4], want) || types[len(types)-3] != EventFinished || types[len(types)-2] != EventLeft || types[len(types)-1] != EventHost {
		t.Fatalf("event types = %v", types)
	}
	if evs[len(evs)-3].Player != final.Winner {
		t.Fatalf("room.finished names %q, winner %q", evs[len(evs)-3].Player, final.Winner)
	}

	// Errors.
	anon := r.client("")
	if err := anon.call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "x"}, nil); !isCode(err, wire.CodeUnauthenticated) {
		t.Fatalf("anonymous create = %v", err)
	}
	if err := carol.call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: ""}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("create without a name = %v", err)
	}
	if err := carol.call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "x", Game: "chess"}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("create of an unknown game = %v", err)
	}
	if err := carol.call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "x", MaxPlayers: 9}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("create of 9 players = %v", err)
	}
	if err := carol.call(ctx, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: "r/../x"}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("join of a bad id = %v", err)
	}
	if err := carol.call(ctx, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: "rnosuchroom"}, nil); !isCode(err, wire.CodeNotFound) {
		t.Fatalf("join of no room = %v", err)
	}
	if err := carol.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte{1}}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("act outside a room = %v", err)
	}
	if err := bob.call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "second"}, nil); !isCode(err, wire.CodeConflict) {
		t.Fatalf("create while in a room = %v, want conflict", err)
	}
}

// TestTenClientsOneRoom: 10 players send 1,000 actions concurrently to one
// room (Postgres store): the room applies them in one sequence, the one
// every member receives; each player's actions keep their order; every
// acknowledged action is in the state at the seq it was acknowledged with.
func TestTenClientsOneRoom(t *testing.T) {
	t.Parallel()
	const players, perPlayer = 10, 100
	c := newCluster(t, newPGStore(t), 0)
	a, b := c.start(nil, false), c.start(nil, false)
	r := newRouter(c)
	names := make([]string, players)
	for i := range names {
		names[i] = fmt.Sprintf("p%d", i)
	}
	cs, id := startTally(t, r, players, names...)
	owner := ownerIn(id, a, b)
	subs := make([]*collector, players)
	for i := range subs {
		subs[i] = collect(t, c.log, id, owner.srv.PubEndpoint())
	}
	waitSubscribed(t, owner.srv, id, subs...)
	startSeq := getState(t, cs[0], id).Seq

	acked := make([][]int64, players)
	var wg sync.WaitGroup
	start := time.Now()
	for i, cl := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perPlayer; n++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				seq, err := cl.act(ctx, strconv.Itoa(n))
				cancel()
				if err != nil {
					t.Errorf("%s action %d: %v", names[i], n, err)
					return
				}
				acked[i] = append(acked[i], seq)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d actions from %d clients in %v (%.0f/s)", players*perPlayer, players, took.Round(time.Millisecond), float64(players*perPlayer)/took.Seconds())

	st := getState(t, cs[3], id)
	items := tallyOf(t, st).Items
	if len(items) != players*perPlayer || st.Seq != startSeq+players*perPlayer {
		t.Fatalf("tally has %d items at seq %d, want %d at %d", len(items), st.Seq, players*perPlayer, startSeq+players*perPlayer)
	}
	// Each player's actions in its own order, at the seqs acknowledged.
	next := make(map[string]int)
	for k, it := range items {
		p, n, _ := strings.Cut(it, ":")
		if strconv.Itoa(next[p]) != n {
			t.Fatalf("item %d is %s, want %s:%d", k, it, p, next[p])
		}
		i := slices.Index(names, p)
		if acked[i][next[p]] != startSeq+int64(k)+1 {
			t.Fatalf("%s acknowledged at seq %d, applied at %d", it, acked[i][next[p]], startSeq+int64(k)+1)
		}
		next[p]++
	}
	// Every member received the same events, in that sequence.
	for i, sub := range subs {
		checkFor(t, 10*time.Second, "events delivered", func() bool {
			evs, _ := sub.snapshot()
			return len(evs) > 0 && evs[len(evs)-1].Seq == st.Seq
		})
		evs, _ := sub.snapshot()
		var got []string
		for j, e := range evs {
			if j > 0 && e.Seq != evs[j-1].Seq+1 {
				t.Fatalf("member %d: event seq %d after %d", i, e.Seq, evs[j-1].Seq)
			}
			if e.Seq > startSeq {
				got = append(got, e.Player+":"+string(e.Body))
			}
		}
		if evs[0].Seq > startSeq+1 || !slices.Equal(got, items) {
			t.Fatalf("member %d received %d events from seq %d, not the room's sequence", i, len(evs), evs[0].Seq)
		}
	}
}
