package room

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	noonrouter "github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// createMatched calls room.CreateMatched through r as a matchmaker does:
// routed by the room id, with no client session (on the tests' plain
// links the guard lets that through).
func createMatched(ctx context.Context, r *router, req *roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error) {
	t := noonrouter.Target{Service: Name, Stateful: true, Key: BindingKey, Value: req.RoomID}
	call := func(ctx context.Context, method string, req, resp thrift.TStruct) error {
		return r.c.CallTo(ctx, t, method, req, resp)
	}
	return roomrpc.NewClient(call).CreateMatched(ctx, req)
}

func mustCreateMatched(t testing.TB, r *router, req *roompb.CreateMatchedRequest) *roompb.CreateMatchedReply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := createMatched(ctx, r, req)
	if err != nil {
		t.Fatalf("CreateMatched %s %v: %v", req.RoomID, req.Members, err)
	}
	return rep
}

func playerIDs(st *roompb.RoomState) []string {
	ids := make([]string, len(st.Players))
	for i, p := range st.Players {
		ids[i] = p.ID
		if p.Ready {
			ids[i] += "(ready)"
		}
	}
	return ids
}

// TestCreateMatched, on the memory and the Postgres store, over two
// instances: the room's rendezvous owner creates it with its members
// seated (the other instance answers moved) and publishes the events of a
// create and the joins; a retry answers created false, other members
// conflict; the members play it; after its owner drains, the next owner
// loads it and a retry is still idempotent; concurrent calls for a new id
// create it once.
func TestCreateMatched(t *testing.T) {
	t.Parallel()
	for _, st := range []struct {
		name string
		new  func(t *testing.T) Store
	}{
		{"memory", func(*testing.T) Store { return NewMemoryStore() }},
		{"postgres", func(t *testing.T) Store { return newPGStore(t) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			testCreateMatched(t, st.new(t))
		})
	}
}

func testCreateMatched(t *testing.T, store Store) {
	c := newCluster(t, store, 0)
	a, b := c.start(nil, false), c.start(nil, false)
	r := newRouter(c)
	ctx := context.Background()
	id := "m" + testenv.UniqueID(t)
	owner, other := a, b
	if placement.Owner(id, []string{a.id, b.id}) == b.id {
		owner, other = b, a
	}
	evA, evB := collect(t, c.log, id, a.srv.PubEndpoint()), collect(t, c.log, id, b.srv.PubEndpoint())
	waitSubscribed(t, a.srv, id, evA)
	waitSubscribed(t, b.srv, id, evB)

	req := &roompb.CreateMatchedRequest{RoomID: id, Members: []string{"alice", "bob"}, Game: tallyName, MaxPlayers: 3}
	// The instance that is not the owner does not take it.
	payload, _ := thriftx.Marshal(req)
	if _, err := other.svc.Handlers()[roomrpc.MethodCreateMatched](ctx, services.NewSession(nil), payload); !isCode(err, wire.CodeMoved) || wire.AsError(err).Message != owner.id {
		t.Fatalf("CreateMatched on the other instance = %v, want moved: %s", err, owner.id)
	}
	rep := mustCreateMatched(t, r, req)
	s := rep.State
	if !rep.Created || s.ID != id || s.Host != "alice" || s.Status != StatusOpen || s.Game != tallyName || s.Name != "match" ||
		s.MaxPlayers != 3 || s.Seq != 2 || !slices.Equal(playerIDs(s), []string{"alice", "bob"}) {
		t.Fatalf("created %+v", rep)
	}
	if ownerIn(id, a, b) != owner {
		t.Fatalf("the room is not active on its rendezvous owner %s", owner.id)
	}
	var events []string
	checkFor(t, 10*time.Second, "the create and join events", func() bool {
		ea, _ := evA.snapshot()
		eb, _ := evB.snapshot()
		events = events[:0]
		for _, e := range append(ea, eb...) {
			events = append(events, fmt.Sprintf("%d %s %s", e.Seq, e.Type, e.Player))
		}
		return len(events) >= 2
	})
	if want := []string{"1 room.created alice", "2 room.joined bob"}; !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}

	// A retry, in any order: the room as it is; other members: conflict.
	rep = mustCreateMatched(t, r, &roompb.CreateMatchedRequest{RoomID: id, Members: []string{"bob", "alice"}, Game: tallyName})
	if rep.Created || rep.State.Seq != 2 || !slices.Equal(playerIDs(rep.State), []string{"alice", "bob"}) {
		t.Fatalf("retry: %+v", rep)
	}
	if _, err := createMatched(ctx, r, &roompb.CreateMatchedRequest{RoomID: id, Members: []string{"alice", "carol"}}); !isCode(err, wire.CodeConflict) {
		t.Fatalf("other members = %v, want conflict", err)
	}

	// The members are in it: they get it and ready up by its id.
	alice, bob := r.client("alice"), r.client("bob")
	if got := getState(t, bob, id); !slices.Equal(playerIDs(got), []string{"alice", "bob"}) {
		t.Fatalf("bob's room.Get: %+v", got)
	}
	var ready roompb.RoomState
	alice.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{RoomID: &id, Ready: true}, &ready)
	if !slices.Equal(playerIDs(&ready), []string{"alice(ready)", "bob"}) {
		t.Fatalf("after alice's ready: %+v", &ready)
	}

	// The owner drains: the other instance loads the room from the store;
	// a retry is still answered with the room.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := owner.svc.Drain(dctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	owner.srv.Exit()
	rep = mustCreateMatched(t, r, req)
	if rep.Created || rep.State.Seq != 3 || !slices.Equal(playerIDs(rep.State), []string{"alice(ready)", "bob"}) {
		t.Fatalf("retry after the drain: %+v", rep)
	}
	if ownerIn(id, other) == nil {
		t.Fatal("the room did not move to the other instance")
	}
	if _, err := createMatched(ctx, r, &roompb.CreateMatchedRequest{RoomID: id, Members: []string{"alice"}}); !isCode(err, wire.CodeConflict) {
		t.Fatalf("other members after the drain = %v, want conflict", err)
	}

	// Many matchmakers at once for a new room: created once.
	id2 := id + "-2"
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := createMatched(ctx, r, &roompb.CreateMatchedRequest{RoomID: id2, Members: []string{"carol", "dave"}})
			if err != nil {
				t.Errorf("concurrent CreateMatched: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if rep.Created {
				created++
			}
		}()
	}
	wg.Wait()
	if created != 1 {
		t.Fatalf("%d of 8 concurrent calls created the room, want 1", created)
	}
}

// TestCreateMatchedGuardCapacity: a client's call is refused and creates
// nothing; past max_rooms a new matched room is refused overloaded (a
// retry of an active one is not); rooms_free follows the active rooms.
func TestCreateMatchedGuardCapacity(t *testing.T) {
	t.Parallel()
	svc, rec := newUnit(t, NewMemoryStore(), func(o *Options) { o.MaxRooms = 2 })
	h := svc.Handlers()[roomrpc.MethodCreateMatched]
	call := func(sess *services.Session, id string, members ...string) (*roompb.CreateMatchedReply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, _ := thriftx.Marshal(&roompb.CreateMatchedRequest{RoomID: id, Members: members, Game: tallyName})
		out, err := h(ctx, sess, b)
		if err != nil {
			return nil, err
		}
		var rep roompb.CreateMatchedReply
		if err := thriftx.Unmarshal(out, &rep); err != nil {
			t.Fatal(err)
		}
		return &rep, nil
	}
	free := func() string { return svc.Meta()[MetaRoomsFree] }
	if free() != "2" {
		t.Fatalf("rooms_free %q, want 2", free())
	}
	client := services.NewSession(&platformpb.Session{Id: "s-mal", UserId: "mallory"})
	if _, err := call(client, "mg1", "mallory"); err == nil || err.Error() != "unauthenticated: an internal method: clients may not call it" {
		t.Fatalf("a client's CreateMatched = %v", err)
	}
	if n := svc.Stats().Rooms; n != 0 || free() != "2" || len(rec.snapshot()) != 0 {
		t.Fatalf("after a refused call: %d rooms, rooms_free %s, %d events", n, free(), len(rec.snapshot()))
	}
	for i, id := range []string{"mg1", "mg2"} {
		if rep, err := call(services.NewSession(nil), id, "u1", "u2"); err != nil || !rep.Created {
			t.Fatalf("room %d: %v %v", i+1, rep, err)
		}
	}
	if free() != "0" {
		t.Fatalf("rooms_free %q, want 0", free())
	}
	if _, err := call(services.NewSession(nil), "mg3", "u1"); !isCode(err, wire.CodeOverloaded) {
		t.Fatalf("a third room = %v, want overloaded", err)
	}
	if rep, err := call(services.NewSession(nil), "mg2", "u2", "u1"); err != nil || rep.Created {
		t.Fatalf("a retry at max_rooms: %v %v", rep, err)
	}
}

// TestRoomsFree reads the label from records.
func TestRoomsFree(t *testing.T) {
	for _, tc := range []struct {
		meta map[string]string
		n    int
		ok   bool
	}{
		{map[string]string{MetaRoomsFree: "12"}, 12, true},
		{map[string]string{MetaRoomsFree: "0"}, 0, true},
		{map[string]string{MetaRoomsFree: "-1"}, 0, false},
		{map[string]string{MetaRoomsFree: "many"}, 0, false},
		{map[string]string{"zone": "a"}, 0, false},
		{nil, 0, false},
	} {
		n, ok := RoomsFree(&platformpb.Instance{Meta: tc.meta})
		if n != tc.n || ok != tc.ok {
			t.Errorf("RoomsFree(%v) = %d %v, want %d %v", tc.meta, n, ok, tc.n, tc.ok)
		}
	}
	if _, ok := RoomsFree(nil); ok {
		t.Error("RoomsFree(nil) ok")
	}
}
