package room

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// TestRoomsPerUser: one user creating rooms from many sessions at once,
// on two instances, gets max_rooms_per_user rooms that are not closed and
// rate_limited past it (before: rooms until max_rooms was full for
// everyone); leaving one (closing it) frees a slot.
func TestRoomsPerUser(t *testing.T) {
	t.Parallel()
	for _, st := range []struct {
		name string
		new  func(t *testing.T) Store
	}{{"memory", func(*testing.T) Store { return NewMemoryStore() }}, {"postgres", func(t *testing.T) Store { return newPGStore(t) }}} {
		t.Run(st.name, func(t *testing.T) {
			c := newCluster(t, st.new(t), 0)
			mod := func(o *Options) { o.MaxRoomsPerUser = 3 }
			c.start(mod, false)
			c.start(mod, false)
			r := newRouter(c)
			const n = 12
			clients := make([]*client, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range clients {
				clients[i] = r.client("mallory")
				clients[i].sess.Id = fmt.Sprintf("s-mallory-%d", i)
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					errs[i] = clients[i].call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "mine", Game: tallyName}, nil)
				}()
			}
			wg.Wait()
			ok := 0
			var owner *client
			for i, err := range errs {
				switch {
				case err == nil:
					ok++
					owner = clients[i]
				case isCode(err, wire.CodeRateLimited):
				default:
					t.Fatalf("create %d: %v", i, err)
				}
			}
			if ok != 3 {
				t.Fatalf("%d concurrent creates of one user succeeded, want 3 (max_rooms_per_user)", ok)
			}
			// Another user is not affected.
			r.client("alice").mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "hers", Game: tallyName}, nil)
			// Leaving closes the room: a slot is free again.
			owner.mustCall(t, roomrpc.MethodLeave, &roompb.LeaveRequest{}, nil)
			fresh := r.client("mallory")
			fresh.sess.Id = "s-mallory-fresh"
			fresh.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "again", Game: tallyName}, nil)
			again := r.client("mallory")
			again.sess.Id = "s-mallory-again"
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := again.call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "over", Game: tallyName}, nil); !isCode(err, wire.CodeRateLimited) {
				t.Fatalf("a 4th open room: %v, want rate_limited", err)
			}
		})
	}
}

// TestCreatesPerUser: create-and-leave in a loop (each room closed at
// once) is bounded by max_creates_per_user per create_window, counted in
// Redis across instances; before, it was unbounded.
func TestCreatesPerUser(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	mod := func(o *Options) { o.MaxCreatesPerUser, o.CreateWindow = 5, time.Hour }
	c.start(mod, false)
	c.start(mod, false)
	r := newRouter(c)
	m := r.client("mallory")
	for i := 0; i < 5; i++ {
		m.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "churn", Game: tallyName}, nil)
		m.mustCall(t, roomrpc.MethodLeave, &roompb.LeaveRequest{}, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := m.call(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "churn", Game: tallyName}, nil)
	if !isCode(err, wire.CodeRateLimited) {
		t.Fatalf("6th create in the window: %v, want rate_limited", err)
	}
	r.client("alice").mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "hers", Game: tallyName}, nil)
}

// TestPrune: room.Prune is an admin's (a client is refused); it deletes or
// archives rooms closed before the age, never open ones; dry_run changes
// nothing; the sweep prunes on its own.
func TestPrune(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{RetentionDelete, RetentionArchive} {
		t.Run(mode, func(t *testing.T) {
			store := newPGStore(t)
			c := newCluster(t, store, 0)
			in := c.start(func(o *Options) { o.Retention.Mode = mode; o.Retention.Batch = 2 }, false)
			r := newRouter(c)
			var closed []string
			for i := 0; i < 5; i++ {
				u := r.client(fmt.Sprintf("u%d", i))
				var st roompb.RoomState
				u.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "p", Game: tallyName}, &st)
				u.mustCall(t, roomrpc.MethodLeave, &roompb.LeaveRequest{}, nil)
				closed = append(closed, st.ID)
			}
			open := r.client("stays")
			var st roompb.RoomState
			open.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "open", Game: tallyName}, &st)
			openID := st.ID

			prune := func(sess *platformpb.Session, req *roompb.PruneRequest) (*roompb.PruneReply, error) {
				b, _ := thriftx.Marshal(req)
				out, err := in.svc.Handlers()[roomrpc.MethodPrune](context.Background(), services.NewSession(sess), b)
				if err != nil {
					return nil, err
				}
				var rep roompb.PruneReply
				return &rep, thriftx.Unmarshal(out, &rep)
			}
			if _, err := prune(&platformpb.Session{Id: "s-client", UserId: "mallory"}, &roompb.PruneRequest{OlderThanMs: 1}); !isCode(err, wire.CodeUnauthenticated) {
				t.Fatalf("a client's prune: %v", err)
			}
			// Nothing is closed for an hour yet.
			if rep, err := prune(nil, &roompb.PruneRequest{OlderThanMs: time.Hour.Milliseconds()}); err != nil || rep.Rooms != 0 {
				t.Fatalf("prune older than 1h: %+v, %v", rep, err)
			}
			// Once the closes are a millisecond old, a dry run lists them all.
			var rep *roompb.PruneReply
			var err error
			checkFor(t, 10*time.Second, "dry run lists the closed rooms", func() bool {
				rep, err = prune(nil, &roompb.PruneRequest{OlderThanMs: 1, DryRun: true})
				return err == nil && rep.Rooms == 5
			})
			if rep.Mode != mode {
				t.Fatalf("dry run: %+v", rep)
			}
			if rep, err := prune(nil, &roompb.PruneRequest{OlderThanMs: 1, DryRun: true}); err != nil || rep.Rooms != 5 {
				t.Fatalf("a second dry run: %+v, %v (the first changed something)", rep, err)
			}
			rep, err = prune(nil, &roompb.PruneRequest{OlderThanMs: 1, Limit: 3})
			if err != nil || rep.Rooms != 3 {
				t.Fatalf("prune limit 3: %+v, %v", rep, err)
			}
			rep, err = prune(nil, &roompb.PruneRequest{OlderThanMs: 1})
			if err != nil || rep.Rooms != 2 {
				t.Fatalf("prune the rest: %+v, %v", rep, err)
			}
			for _, id := range closed {
				if _, _, err := store.Load(context.Background(), id, 1<<40); !errors.Is(err, ErrNotFound) {
					t.Fatalf("pruned room %s loads: %v", id, err)
				}
			}
			if got := getState(t, open, openID); got.Status != StatusOpen {
				t.Fatalf("the open room: %+v", got)
			}
			if mode == RetentionArchive {
				pg := store.(*pgStore)
				var rooms, entries int
				if err := pg.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM `+pg.q.schema+`.rooms_archive), (SELECT count(*) FROM `+pg.q.schema+`.room_entries_archive)`).Scan(&rooms, &entries); err != nil {
					t.Fatal(err)
				}
				if rooms != 5 || entries != 10 {
					t.Fatalf("archive holds %d rooms, %d entries; want 5 and 10", rooms, entries)
				}
			}
		})
	}
}

// TestSweep: the retention sweep prunes closed rooms on its own, on one of
// the instances.
func TestSweep(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	mod := func(o *Options) {
		o.Retention.ClosedAfter, o.Retention.SweepEvery = time.Millisecond, 20*time.Millisecond
	}
	a := c.start(mod, false)
	b := c.start(mod, false)
	r := newRouter(c)
	for i := 0; i < 4; i++ {
		u := r.client(fmt.Sprintf("u%d", i))
		u.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "p", Game: tallyName}, nil)
		u.mustCall(t, roomrpc.MethodLeave, &roompb.LeaveRequest{}, nil)
	}
	checkFor(t, 10*time.Second, "the sweep prunes", func() bool {
		return a.svc.Stats().Pruned+b.svc.Stats().Pruned == 4
	})
}
