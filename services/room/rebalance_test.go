package room

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/placement"
)

// recordingStore records every write's room, epoch and seqs in the order
// the writes returned, for the fencing checks.
type recordingStore struct {
	Store
	mu     sync.Mutex
	writes []storeWrite
}

type storeWrite struct {
	room       string
	epoch      int64
	first, end int64 // seqs [first, end)
	err        error
}

func (r *recordingStore) Append(ctx context.Context, epoch int64, sum Summary, entries []Entry, snap *Snapshot) error {
	err := r.Store.Append(ctx, epoch, sum, entries, snap)
	r.mu.Lock()
	r.writes = append(r.writes, storeWrite{sum.ID, epoch, entries[0].Seq, entries[len(entries)-1].Seq + 1, err})
	r.mu.Unlock()
	return err
}

// check verifies each room's log: the writes that succeeded continue it
// without a gap or an overlap, and their epochs never go back (one owner
// at a time: a write of an older owner after a newer one's would have been
// fenced). It returns how many owners (epochs) each room had.
func (r *recordingStore) check(t *testing.T) map[string]int {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	next := map[string]int64{}
	epoch := map[string]int64{}
	owners := map[string]int{}
	for _, w := range r.writes {
		if w.err != nil {
			t.Errorf("room %s: write of epoch %d, seqs [%d, %d) failed: %v (a clean hand-over fences no one)", w.room, w.epoch, w.first, w.end, w.err)
			continue
		}
		if n, ok := next[w.room]; ok && w.first != n {
			t.Errorf("room %s: write of seqs [%d, %d) after seq %d: the log is not continuous", w.room, w.first, w.end, n-1)
		}
		next[w.room] = w.end
		switch e := epoch[w.room]; {
		case w.epoch < e:
			t.Errorf("room %s: epoch %d wrote after epoch %d", w.room, w.epoch, e)
		case w.epoch > e:
			owners[w.room]++
			epoch[w.room] = w.epoch
		}
	}
	return owners
}

// TestRebalanceOneToThree: rooms played on one instance while two more
// join move to their rendezvous owners, a third each, under play: every
// acknowledged action is in its room in order, no player sees an error,
// each room's log is continuous with one writer at a time (fencing
// epochs only go up), and every room ends on the owner brokers compute.
func TestRebalanceOneToThree(t *testing.T) {
	t.Parallel()
	store := &recordingStore{Store: newPGStore(t)}
	c := newCluster(t, store, 0)
	first := c.start(nil, false)
	r := newRouter(c)
	const rooms = 9
	var ps []*loadPlayer
	ids := make([]string, rooms)
	for i := range ids {
		cs, id := startTally(t, r, 2, fmt.Sprintf("b%da", i), fmt.Sprintf("b%db", i))
		ids[i] = id
		for _, cl := range cs {
			ps = append(ps, &loadPlayer{c: cl, timeout: 5 * time.Second})
		}
	}
	if n := first.svc.Stats().Rooms; n != rooms {
		t.Fatalf("first instance holds %d rooms, want %d", n, rooms)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go p.run(stop, &wg)
	}
	waitProgress(t, "every player acknowledged before the others join", ps, time.Time{})

	joined := time.Now()
	ins := []*instance{first, c.start(nil, false), c.start(nil, false)}
	insIDs := []string{ins[0].id, ins[1].id, ins[2].id}
	byID := map[string]*instance{}
	for _, in := range ins {
		byID[in.id] = in
	}
	checkFor(t, 20*time.Second, "every room on its rendezvous owner", func() bool {
		for _, id := range ids {
			if ownerIn(id, ins...) != byID[placement.Owner(id, insIDs)] {
				return false
			}
		}
		return true
	})
	moved := time.Since(joined)
	waitProgress(t, "every player acknowledged after the moves", ps, time.Now())
	close(stop)
	wg.Wait()

	for _, p := range ps {
		if len(p.errs) > 0 {
			t.Errorf("%s got errors %s", p.c.sess.UserId, p.failures())
		}
	}
	var total int
	for i, id := range ids {
		items := tallyOf(t, getState(t, ps[2*i].c, id)).Items
		checkAcked(t, items, ps[2*i:2*i+2])
		total += len(items)
	}
	owners := store.check(t)
	movedRooms := 0
	for _, id := range ids {
		if placement.Owner(id, insIDs) != first.id {
			movedRooms++
			if owners[id] < 2 {
				t.Errorf("room %s moved but its log has %d writer epochs", id, owners[id])
			}
		}
	}
	var counts []int
	for _, in := range ins {
		counts = append(counts, in.svc.Stats().Rooms)
	}
	// A room whose final owner is the first instance is its owner in every
	// view on the way (rendezvous: the first among all is the first among
	// any part), so it never moves; every other leaves it once.
	if st := first.svc.Stats(); int(st.Rebalanced) != movedRooms {
		t.Errorf("Rebalanced = %d, want the %d rooms that moved (a room is counted once, however often the instance looks while it stops)", st.Rebalanced, movedRooms)
	}
	t.Logf("%d of %d rooms moved in %v; rooms per instance %v; %d actions", movedRooms, rooms, moved.Round(time.Millisecond), counts, total)
}
