package room

import (
	"context"
	"testing"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/services/room/game"
	"github.com/noonhq/noon/services/room/games/race31"
	"github.com/noonhq/noon/wire"
)

// TestLeaseRenewed: an active room keeps its lease (same epoch) for many
// TTLs.
func TestLeaseRenewed(t *testing.T) {
	t.Parallel()
	svc, _ := newUnit(t, NewMemoryStore(), func(o *Options) { o.LeaseTTL = 300 * time.Millisecond })
	c, id := unitTally(t, svc, "u1")
	a := svc.att.Load()
	ctx := context.Background()
	holder, epoch, err := a.leases.Holder(ctx, id)
	if err != nil || holder != a.self {
		t.Fatalf("holder %q, %v", holder, err)
	}
	time.Sleep(1200 * time.Millisecond) // 4 TTLs
	c.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("x")}, nil)
	if h, e, _ := a.leases.Holder(ctx, id); h != a.self || e != epoch {
		t.Fatalf("after 4 TTLs the lease is %s@%d, was %s@%d", h, e, a.self, epoch)
	}
	if n := svc.Stats().LeaseLost; n != 0 {
		t.Fatalf("%d leases lost", n)
	}
}

// TestLeaseLost: when another instance takes a room's lease (ours had
// expired), the renewal notices and the room is dropped; once the other
// lets go, the room comes back here with a new epoch and all its state.
func TestLeaseLost(t *testing.T) {
	t.Parallel()
	svc, _ := newUnit(t, NewMemoryStore(), func(o *Options) { o.LeaseTTL = 300 * time.Millisecond })
	c, id := unitTally(t, svc, "u1")
	c.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("a")}, nil)
	ctx := context.Background()
	a := svc.att.Load()
	svc.pauseRenewal.Store(true)
	thief := placement.NewLeases(svc.rdb, svc.opts.RedisPrefix, Name, "room-thief", time.Minute)
	var epoch int64
	checkFor(t, 2*time.Second, "lease expired and taken", func() bool {
		var err error
		epoch, err = thief.Acquire(ctx, id)
		return err == nil
	})
	svc.pauseRenewal.Store(false)
	checkFor(t, 2*time.Second, "room dropped", func() bool { return svc.Stats().Rooms == 0 })
	if n := svc.Stats().LeaseLost; n != 1 {
		t.Fatalf("LeaseLost = %d", n)
	}
	// The thief is not a listed instance: this one waits for its lease,
	// which is long, and gives up with unavailable.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if err := c.call(short, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("b")}, nil); !isCode(err, wire.CodeTimeout) {
		t.Fatalf("action while the thief holds the lease = %v, want timeout", err)
	}
	if err := thief.Release(ctx, id, epoch); err != nil {
		t.Fatal(err)
	}
	c.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("c")}, nil)
	if _, e, _ := a.leases.Holder(ctx, id); e <= epoch {
		t.Fatalf("epoch %d after the thief's %d", e, epoch)
	}
	var st roompb.RoomState
	c.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &st)
	// "b" expired in the queue while the room waited for the lease: it
	// was never applied.
	if items := tallyOf(t, &st).Items; len(items) != 2 || items[0] != "u1:a" || items[1] != "u1:c" {
		t.Fatalf("tally = %v", items)
	}
}

// TestTurnTimeoutTicks: race31's turn timer fires in a live room that
// nobody plays: the server moves for the players who are too slow (a
// room with a timer pending is not evicted, idle as it is), publishes
// it, the game ends, and the log replays to the same room.
func TestTurnTimeoutTicks(t *testing.T) {
	t.Parallel()
	store := NewMemoryStore()
	svc, rec := newUnit(t, store, func(o *Options) { o.IdleEvict = 50 * time.Millisecond })
	g, err := race31.New(race31.Options{Target: 4, MaxAdd: 3, TurnTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if svc.games, err = game.NewRegistry(g); err != nil {
		t.Fatal(err)
	}
	a, b := newUnitClient(svc, "a"), newUnitClient(svc, "b")
	var st roompb.RoomState
	a.must(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "slow", MaxPlayers: 2}, &st)
	id := st.ID
	b.must(t, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: id}, nil)
	a.must(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	b.must(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	a.must(t, roomrpc.MethodStart, &roompb.StartRequest{}, nil)
	checkFor(t, 5*time.Second, "the game ends by timeouts", func() bool {
		a.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &st)
		return st.Status == StatusFinished
	})
	timeouts := 0
	for _, e := range rec.snapshot() {
		if e.Type == "game.timeout" {
			timeouts++
		}
	}
	if timeouts != 4 || st.Winner == "" {
		t.Fatalf("%d timeouts, winner %q; want 4 and a winner", timeouts, st.Winner)
	}
	snap, entries, err := store.Load(context.Background(), id, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rebuild(id, snap, entries, svc.games)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := r.proto()
	if p.Seq != st.Seq || p.Winner != st.Winner || string(p.GameState) != string(st.GameState) {
		t.Fatalf("replayed room (seq %d, winner %s) differs from the live one (seq %d, winner %s)", p.Seq, p.Winner, st.Seq, st.Winner)
	}
}

// TestMaxRooms: past max_rooms active rooms, a new one is refused
// overloaded.
func TestMaxRooms(t *testing.T) {
	t.Parallel()
	svc, _ := newUnit(t, NewMemoryStore(), func(o *Options) { o.MaxRooms = 2 })
	for i, u := range []string{"m1", "m2", "m3"} {
		err := newUnitClient(svc, u).call(context.Background(), roomrpc.MethodCreate, &roompb.CreateRequest{Name: "r", Game: tallyName}, nil)
		if want := i < 2; (err == nil) != want {
			t.Fatalf("room %d: %v", i+1, err)
		}
		if i == 2 && !isCode(err, wire.CodeOverloaded) {
			t.Fatalf("third room = %v, want overloaded", err)
		}
	}
}
