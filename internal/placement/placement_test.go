package placement

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/internal/stores/storestest"
	"github.com/noonhq/noon/internal/testenv"
)

func TestOwnerIsStableAndSpread(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	counts := map[string]int{}
	const n = 20000
	for i := 0; i < n; i++ {
		key := fmt.Sprintf("room-%d", i)
		o := Owner(key, ids)
		if o != Owner(key, []string{"d", "c", "b", "a"}) {
			t.Fatalf("owner of %s depends on order", key)
		}
		if r := Rank(key, ids); r[0] != o {
			t.Fatalf("Rank(%s)[0] = %s, Owner = %s", key, r[0], o)
		}
		counts[o]++
	}
	for id, c := range counts {
		if math.Abs(float64(c)-n/4) > n/4*0.1 {
			t.Errorf("instance %s owns %d of %d keys, want about %d", id, c, n, n/4)
		}
	}
	if Owner("x", nil) != "" {
		t.Fatal("Owner of no instances should be empty")
	}
}

func TestOnlyLeaversKeysMove(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	for i := 0; i < 5000; i++ {
		key := fmt.Sprintf("k%d", i)
		before := Owner(key, ids)
		after := Owner(key, []string{"a", "b", "d"})
		if before != "c" && before != after {
			t.Fatalf("key %s moved from %s to %s though its owner stayed", key, before, after)
		}
	}
}

// backend is a Redis to run the lease tests on, and how to let time pass
// on it (miniredis expires keys only when told).
type backend struct {
	rdb     func(t *testing.T) redis.UniversalClient
	advance func(d time.Duration)
}

func leaseBackends() map[string]*backend {
	var mr *miniredis.Miniredis
	return map[string]*backend{
		"miniredis": {
			rdb: func(t *testing.T) redis.UniversalClient {
				mr = miniredis.RunT(t)
				c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
				t.Cleanup(func() { c.Close() })
				return c
			},
			advance: func(d time.Duration) { mr.FastForward(d) },
		},
		"redis": {
			rdb:     func(t *testing.T) redis.UniversalClient { return testenv.Redis(t) },
			advance: func(d time.Duration) { time.Sleep(d) },
		},
	}
}

func TestLeases(t *testing.T) {
	for name, be := range leaseBackends() {
		t.Run(name, func(t *testing.T) {
			rdb := be.rdb(t)
			ctx := context.Background()
			prefix := "noon-test:" + testenv.UniqueID(t) + ":"
			const ttl = 300 * time.Millisecond
			a := NewLeases(rdb, prefix, "room", "inst-a", ttl)
			b := NewLeases(rdb, prefix, "room", "inst-b", ttl)

			e1, err := a.Acquire(ctx, "r1")
			if err != nil || e1 != 1 {
				t.Fatalf("a.Acquire = %d, %v; want 1, nil", e1, err)
			}
			if e, err := a.Acquire(ctx, "r1"); err != nil || e != e1 {
				t.Fatalf("re-Acquire by owner = %d, %v; want %d", e, err, e1)
			}
			_, err = b.Acquire(ctx, "r1")
			var held *HeldError
			if !errors.As(err, &held) || held.Owner != "inst-a" || held.Epoch != 1 || !errors.Is(err, ErrHeld) {
				t.Fatalf("b.Acquire err = %v; want held by inst-a epoch 1", err)
			}
			if err := a.Renew(ctx, "r1", e1); err != nil {
				t.Fatalf("Renew: %v", err)
			}
			if owner, epoch, err := b.Holder(ctx, "r1"); err != nil || owner != "inst-a" || epoch != 1 {
				t.Fatalf("Holder = %s %d %v", owner, epoch, err)
			}

			// a stops renewing: the lease expires and b takes it with a
			// larger epoch; a can no longer renew or release it.
			be.advance(ttl + 100*time.Millisecond)
			e2, err := b.Acquire(ctx, "r1")
			if err != nil {
				t.Fatalf("b did not take the expired lease: %v", err)
			}
			if e2 <= e1 {
				t.Fatalf("new epoch %d not above old %d", e2, e1)
			}
			if err := a.Renew(ctx, "r1", e1); !errors.Is(err, ErrLost) {
				t.Fatalf("stale Renew err = %v; want ErrLost", err)
			}
			if err := a.Release(ctx, "r1", e1); !errors.Is(err, ErrLost) {
				t.Fatalf("stale Release err = %v; want ErrLost", err)
			}
			if err := b.Release(ctx, "r1", e2); err != nil {
				t.Fatalf("Release: %v", err)
			}
			if owner, _, err := a.Holder(ctx, "r1"); err != nil || owner != "" {
				t.Fatalf("Holder after release = %q, %v; want free", owner, err)
			}
			e3, err := a.Acquire(ctx, "r1")
			if err != nil || e3 <= e2 {
				t.Fatalf("Acquire after release = %d, %v; want > %d", e3, err, e2)
			}
		})
	}
}

// TestAdvancePastLostEpochs: a Redis that lost its data (restarted without
// persistence) hands out epoch 1 again; Advance moves a held lease past the
// epoch a store holds, above every epoch handed out, and only for the
// lease's holder.
func TestAdvancePastLostEpochs(t *testing.T) {
	own := storestest.StartRedis(t)
	rdb := own.Client()
	defer rdb.Close()
	ctx := context.Background()
	a := NewLeases(rdb, "t:", "room", "a", time.Second)
	b := NewLeases(rdb, "t:", "room", "b", time.Second)
	for i := 0; i < 5; i++ {
		e, err := a.Acquire(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Release(ctx, "r1", e); err != nil {
			t.Fatal(err)
		}
	}
	stored := int64(5) // what the store's fencing epoch would hold
	own.Stop()
	own.Start() // empty
	e, err := a.Acquire(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if e != 1 {
		t.Fatalf("epoch after the restart = %d, want 1 (the defect)", e)
	}
	if _, err := b.Advance(ctx, "r1", e, stored); !errors.Is(err, ErrLost) {
		t.Fatalf("advance by a non-holder = %v, want ErrLost", err)
	}
	next, err := a.Advance(ctx, "r1", e, stored)
	if err != nil || next != stored+1 {
		t.Fatalf("advance = %d, %v, want %d", next, err, stored+1)
	}
	if owner, ep, _ := a.Holder(ctx, "r1"); owner != "a" || ep != next {
		t.Fatalf("holder = %s at %d", owner, ep)
	}
	if err := a.Renew(ctx, "r1", next); err != nil {
		t.Fatalf("renew at the new epoch: %v", err)
	}
	// A floor below the counter still moves forward by one.
	if n2, err := a.Advance(ctx, "r1", next, 2); err != nil || n2 != next+1 {
		t.Fatalf("advance past a low floor = %d, %v", n2, err)
	}
	// FLUSHALL (the data lost while the server runs) is the same.
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if e, _ = b.Acquire(ctx, "r1"); e != 1 {
		t.Fatalf("epoch after FLUSHALL = %d", e)
	}
	if n3, err := b.Advance(ctx, "r1", e, next+1); err != nil || n3 != next+2 {
		t.Fatalf("advance after FLUSHALL = %d, %v", n3, err)
	}
}
