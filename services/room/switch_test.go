package room

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// pubRecorder stands in for a server's PUB socket.
type pubRecorder struct {
	mu     sync.Mutex
	events []*roompb.Event
}

func (p *pubRecorder) publish(topic, typ string, payload []byte) error {
	var e roompb.Event
	if err := thriftx.Unmarshal(payload, &e); err != nil {
		return err
	}
	if topic != Topic(e.RoomID) || typ != EventType {
		panic("published " + typ + " on " + topic)
	}
	p.mu.Lock()
	p.events = append(p.events, &e)
	p.mu.Unlock()
	return nil
}

func (p *pubRecorder) snapshot() []*roompb.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.events)
}

// newUnit returns a service attached to no server (events go to the
// recorder), with real Redis leases and no other instance.
func newUnit(t testing.TB, store Store, mod func(*Options)) (*Service, *pubRecorder) {
	t.Helper()
	rdb := testenv.Redis(t)
	o := NewOptions()
	o.LeaseTTL = testLeaseTTL
	o.RedisPrefix = "noontest:room:" + testenv.UniqueID(t) + ":"
	cleanRedis(t, rdb, o.RedisPrefix)
	if mod != nil {
		mod(&o)
	}
	w := yellow.Watch(yellow.ClientOptions{}) // none: this is the only instance
	svc, err := New(o, Deps{Store: store, Redis: rdb, Watcher: w, Games: testGames(0), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &pubRecorder{}
	svc.attach("room-unit-"+testenv.UniqueID(t), Name, rec.publish, nil)
	t.Cleanup(func() { svc.Close(); w.Close() })
	return svc, rec
}

// unitClient calls a service's handlers directly as one user.
type unitClient struct {
	svc  *Service
	sess *platformpb.Session
}

func newUnitClient(svc *Service, user string) *unitClient {
	return &unitClient{svc: svc, sess: &platformpb.Session{Id: "s-" + user, UserId: user, Bindings: map[string]string{}}}
}

func (c *unitClient) call(ctx context.Context, method string, req, resp thrift.TStruct) error {
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return err
	}
	sess := services.NewSession(c.sess)
	out, err := c.svc.Handlers()[method](ctx, sess, payload)
	binds, _ := sess.Changes()
	for _, b := range binds {
		if b.GetUnset() {
			delete(c.sess.Bindings, b.GetKey())
		} else {
			c.sess.Bindings[b.GetKey()] = b.GetValue()
		}
	}
	if err != nil {
		return err
	}
	if resp != nil {
		return thriftx.Unmarshal(out, resp)
	}
	return nil
}

func (c *unitClient) must(t testing.TB, method string, req, resp thrift.TStruct) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.call(ctx, method, req, resp); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// unitTally creates and starts a tally room for one player.
func unitTally(t testing.TB, svc *Service, user string) (*unitClient, string) {
	return unitRoom(t, svc, user, tallyName)
}

// unitRoom creates and starts a room of game for one player.
func unitRoom(t testing.TB, svc *Service, user, game string) (*unitClient, string) {
	t.Helper()
	c := newUnitClient(svc, user)
	var st roompb.RoomState
	c.must(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "t", Game: game, MaxPlayers: 16}, &st)
	c.must(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	c.must(t, roomrpc.MethodStart, &roompb.StartRequest{}, nil)
	return c, st.ID
}

// slowStore delays Load while delay is set, and counts loads.
type slowStore struct {
	Store
	delay   atomic.Int64 // ns
	loads   atomic.Int64
	loading chan struct{} // receives when a slow load starts
}

func (s *slowStore) Load(ctx context.Context, id string, epoch int64) (*Snapshot, []Entry, error) {
	s.loads.Add(1)
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case s.loading <- struct{}{}:
		default:
		}
		time.Sleep(d)
	}
	return s.Store.Load(ctx, id, epoch)
}

// TestSlowLoad: events that arrive while a room loads wait in its queue
// and are applied after the load, in arrival order, none lost; a queue
// past its bound answers overloaded and loses nothing it accepted.
func TestSlowLoad(t *testing.T) {
	t.Parallel()
	store := &slowStore{Store: newPGStore(t), loading: make(chan struct{}, 1)}
	svc, rec := newUnit(t, store, func(o *Options) { o.IdleEvict = 100 * time.Millisecond; o.QueueSize = 32 })
	c, id := unitTally(t, svc, "u1")
	c.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("before")}, nil)
	checkFor(t, 5*time.Second, "room evicted with a snapshot", func() bool {
		st := svc.Stats()
		return st.Rooms == 0 && st.Snapshots == 1
	})

	const n, gap, load = 20, 15 * time.Millisecond, time.Second
	store.delay.Store(int64(load))
	loadsBefore := store.loads.Load()
	var wg sync.WaitGroup
	var loadedAt atomic.Int64
	errs := make([]error, n)
	start := time.Now()
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(k) * gap) // arrival order = k
			if k == 1 {
				<-store.loading // the load is under way before the rest arrive
			}
			uc := newUnitClient(svc, "u1")
			uc.sess.Bindings[BindingKey] = id
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs[k] = uc.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte(strconv.Itoa(k))}, nil)
			loadedAt.CompareAndSwap(0, int64(time.Since(start)))
		}()
	}
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("action %d: %v", k, err)
		}
	}
	if got := store.loads.Load() - loadsBefore; got != 1 {
		t.Fatalf("%d loads, want 1", got)
	}
	if first := time.Duration(loadedAt.Load()); first < load {
		t.Fatalf("first reply after %v, before the %v load ended", first, load)
	}
	var st roompb.RoomState
	c.must(t, roomrpc.MethodGet, &roompb.GetRequest{RoomID: &id}, &st)
	items := tallyOf(t, &st).Items
	want := []string{"u1:before"}
	for k := 0; k < n; k++ {
		want = append(want, "u1:"+strconv.Itoa(k))
	}
	if !slices.Equal(items, want) {
		t.Fatalf("tally after the slow load = %v, want %v", items, want)
	}
	// Published in the same order, seqs without gaps.
	evs := rec.snapshot()
	for i, e := range evs {
		if e.Seq != int64(i+1) {
			t.Fatalf("published seq %d at %d", e.Seq, i)
		}
	}
	if last := evs[len(evs)-1]; last.Seq != st.Seq || string(last.Body) != strconv.Itoa(n-1) {
		t.Fatalf("last event %+v, state seq %d", last, st.Seq)
	}

	// Overflow: with the room loading again, 3 x QueueSize requests at
	// once: the queue takes QueueSize, the rest are refused overloaded,
	// and every accepted one is applied.
	checkFor(t, 5*time.Second, "room evicted", func() bool { return svc.Stats().Rooms == 0 })
	store.delay.Store(int64(300 * time.Millisecond))
	var ok, overloaded atomic.Int64
	for k := 0; k < 3*32; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uc := newUnitClient(svc, "u1")
			uc.sess.Bindings[BindingKey] = id
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			switch err := uc.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("x" + strconv.Itoa(k))}, nil); {
			case err == nil:
				ok.Add(1)
			case isCode(err, wire.CodeOverloaded):
				overloaded.Add(1)
			default:
				t.Errorf("action: %v", err)
			}
		}()
	}
	wg.Wait()
	c.must(t, roomrpc.MethodGet, &roompb.GetRequest{RoomID: &id}, &st)
	if got := len(tallyOf(t, &st).Items) - len(want); int64(got) != ok.Load() || overloaded.Load() == 0 {
		t.Fatalf("%d accepted, %d overloaded, %d applied", ok.Load(), overloaded.Load(), got)
	}
	t.Logf("overflow: %d accepted, %d overloaded", ok.Load(), overloaded.Load())
}

// TestPanicAndIllegalChangeNothing: an action the rules refuse, or that
// panics in the rules, is answered (bad_request, internal), changes
// nothing, and the room carries on.
func TestPanicAndIllegalChangeNothing(t *testing.T) {
	t.Parallel()
	svc, rec := newUnit(t, NewMemoryStore(), nil)
	c, id := unitTally(t, svc, "u1")
	c.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("a")}, nil)
	var before roompb.RoomState
	c.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &before)
	ctx := context.Background()
	if err := c.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("bad")}, nil); !isCode(err, wire.CodeBadRequest) {
		t.Fatalf("illegal action = %v", err)
	}
	if err := c.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("panic")}, nil); !isCode(err, wire.CodeInternal) {
		t.Fatalf("panicking action = %v", err)
	}
	var after roompb.RoomState
	c.must(t, roomrpc.MethodGet, &roompb.GetRequest{RoomID: &id}, &after)
	if after.Seq != before.Seq || string(after.GameState) != string(before.GameState) {
		t.Fatalf("state changed: seq %d -> %d, %s -> %s", before.Seq, after.Seq, before.GameState, after.GameState)
	}
	c.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("b")}, nil)
	c.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &after)
	if got := tallyOf(t, &after).Items; !slices.Equal(got, []string{"u1:a", "u1:b"}) {
		t.Fatalf("tally = %v", got)
	}
	if n := len(rec.snapshot()); int64(n) != after.Seq {
		t.Fatalf("%d events published, seq %d", n, after.Seq)
	}
}

// TestGamePanicsOutsideAct: game code that panics where the room does not
// expect it (Encode) costs that room, answered internal, not the instance:
// other rooms carry on.
func TestGamePanicsOutsideAct(t *testing.T) {
	t.Parallel()
	svc, _ := newUnit(t, NewMemoryStore(), nil)
	bad, _ := unitTally(t, svc, "u1")
	good, _ := unitTally(t, svc, "u2")
	ctx := context.Background()
	var st roompb.RoomState
	if err := bad.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("poison")}, nil); err != nil {
		t.Fatalf("poison: %v", err) // accepted: Act is fine, Encode is not
	}
	if err := bad.call(ctx, roomrpc.MethodGet, &roompb.GetRequest{}, &st); !isCode(err, wire.CodeInternal) {
		t.Fatalf("get of the poisoned room = %v, want internal", err)
	}
	good.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("fine")}, nil)
	good.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &st)
	if items := tallyOf(t, &st).Items; !slices.Equal(items, []string{"u2:fine"}) {
		t.Fatalf("the other room: %v", items)
	}
}

// TestManyRoomsSideBySide: rooms are independent: a room whose load is
// slow does not hold up the others.
func TestManyRoomsSideBySide(t *testing.T) {
	t.Parallel()
	store := &slowStore{Store: NewMemoryStore(), loading: make(chan struct{}, 1)}
	svc, _ := newUnit(t, store, func(o *Options) { o.IdleEvict = 100 * time.Millisecond })
	_, slow := unitTally(t, svc, "u1")
	fast, _ := unitTally(t, svc, "u2")
	// Only the slow room gets evicted: the fast one keeps busy.
	stop := make(chan struct{})
	var busy sync.WaitGroup
	busy.Add(1)
	go func() {
		defer busy.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				fast.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("keepalive")}, nil)
			}
		}
	}()
	checkFor(t, 5*time.Second, "slow room evicted", func() bool { return svc.Stats().Rooms == 1 })
	store.delay.Store(int64(1200 * time.Millisecond))
	done := make(chan error, 1)
	go func() {
		uc := newUnitClient(svc, "u1")
		uc.sess.Bindings[BindingKey] = slow
		done <- uc.call(context.Background(), roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("s")}, nil)
	}()
	<-store.loading
	start := time.Now()
	fast.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("f")}, nil)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a room waited %v for another room's load", d)
	}
	close(stop)
	busy.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
