package room

import (
	"context"
	"github.com/noonhq/noon/internal/stores/storestest"
	"testing"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
)

// TestRedisLostEpochs: the rooms' lease epochs live in Redis; a Redis that
// restarts without persistence counts them from 1 again while the store
// holds a room's higher epoch. The room's next owner must move its lease
// past the stored epoch, not retry forever ("room X is changing owner").
func TestRedisLostEpochs(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) { testRedisLostEpochs(t, NewMemoryStore()) })
	t.Run("postgres", func(t *testing.T) { testRedisLostEpochs(t, newPGStore(t)) })
}

func testRedisLostEpochs(t *testing.T, store Store) {
	own := storestest.StartRedis(t)
	c := newCluster(t, store, 0)
	rdb := own.Client()
	t.Cleanup(func() { rdb.Close() })
	c.rdb = rdb
	in := c.start(nil, false)
	r := newRouter(c)
	alice := r.client("alice")
	var st roompb.RoomState
	alice.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "lost", Game: tallyName}, &st)
	id := st.ID
	// The room's history: many owners before (the store's epoch is 7).
	ctx := context.Background()
	if _, _, err := c.store.Load(ctx, id, 7); err != nil {
		t.Fatal(err)
	}
	own.Stop()
	own.Start() // empty: epochs count from 1 again
	restarted := time.Now()
	checkFor(t, 10*time.Second, "the room answers again", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return alice.call(cctx, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: false}, nil) == nil &&
			alice.call(cctx, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil) == nil
	})
	t.Logf("the room answered %v after Redis came back empty", time.Since(restarted))
	if n := in.svc.Stats().EpochRepairs; n == 0 {
		t.Fatal("no epoch repair counted")
	}
	// And the repaired epoch is above the store's: a FLUSHALL later too.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, "the room answers after FLUSHALL", func() bool {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		return alice.call(cctx, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: false}, nil) == nil
	})
	alice.mustCall(t, roomrpc.MethodGet, &roompb.GetRequest{}, &st)
	if st.Players[0].Ready {
		t.Fatalf("state after the repairs: %+v", &st)
	}
}
