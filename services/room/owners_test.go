package room

import (
	"fmt"
	"testing"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
)

// TestOwnerCacheNotPoisoned: a client bound to room A that asks room.Get
// for room B (owned by another instance) must not make the broker route
// A's players to B's owner. Before the fix the broker cached B's owner
// (the "moved" it followed, and the instance that answered) under A, and
// every later request of A's players took a detour through B's owner
// (a "moved" each).
func TestOwnerCacheNotPoisoned(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	x := c.start(nil, false)
	y := c.start(nil, false)
	startFakeLogin(t, c)
	b := startBroker(t, c)

	alice := dialPlayer(t, b, "alice")
	bob := dialPlayer(t, b, "bob")
	checkFor(t, 10*time.Second, "broker routes room.List", func() bool {
		return alice.call(roomrpc.MethodList, &roompb.ListRequest{}, &roompb.ListReply{}) == nil
	})
	var st roompb.RoomState
	alice.must(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "A", Game: tallyName}, &st)
	roomA := st.ID
	bob.must(t, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: roomA}, nil)
	ownerA := ownerIn(roomA, x, y)
	if ownerA == nil {
		t.Fatal("room A is active nowhere")
	}
	other := x
	if ownerA == x {
		other = y
	}
	// Room B on the other instance: create rooms until one lands there.
	roomB := ""
	for i := 0; roomB == "" && i < 50; i++ {
		p := dialPlayer(t, b, fmt.Sprintf("carol%d", i))
		p.must(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "B", Game: tallyName}, &st)
		if ownerIn(st.ID, other) != nil {
			roomB = st.ID
		}
	}
	if roomB == "" {
		t.Fatal("no room landed on the other instance")
	}
	// Bob's requests go to A's owner directly.
	bob.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &st)
	// Alice, bound to A, asks for B.
	alice.must(t, roomrpc.MethodGet, &roompb.GetRequest{RoomID: &roomB}, &st)
	if st.ID != roomB {
		t.Fatalf("get B answered room %s", st.ID)
	}
	before := other.svc.Stats().Moved
	for range 3 {
		bob.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &st)
		if st.ID != roomA {
			t.Fatalf("bob's get answered room %s, want %s", st.ID, roomA)
		}
	}
	if after := other.svc.Stats().Moved; after != before {
		t.Fatalf("room A's requests went to B's owner %s first (%d moved): the broker's owner cache is poisoned", other.id, after-before)
	}
}
