package room

import (
	"context"
	"fmt"
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
	o.MemberRate = MemberRateOptions{} // as in cluster.options
	o.MaxRoomsPerUser, o.MaxCreatesPerUser = 0, 0
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

// gatedStore holds the loads of one room until the test releases them, and
// counts loads: a slow load whose end the test decides, not a timer.
type gatedStore struct {
	Store
	loads   atomic.Int64
	loading chan string // receives the room id when a held load starts (cap 1)

	mu   sync.Mutex
	room string        // the room whose loads are held; "" for none
	gate chan struct{} // closed by the release func hold returned
}

func newGatedStore(s Store) *gatedStore {
	return &gatedStore{Store: s, loading: make(chan string, 1)}
}

// hold makes the loads of room wait until release is called (at the
// latest when the test ends).
func (s *gatedStore) hold(t testing.TB, room string) (release func()) {
	gate := make(chan struct{})
	s.mu.Lock()
	s.room, s.gate = room, gate
	s.mu.Unlock()
	release = sync.OnceFunc(func() {
		s.mu.Lock()
		if s.gate == gate {
			s.room, s.gate = "", nil
		}
		s.mu.Unlock()
		close(gate)
	})
	t.Cleanup(release)
	return release
}

func (s *gatedStore) Load(ctx context.Context, id string, epoch int64) (*Snapshot, []Entry, error) {
	s.loads.Add(1)
	s.mu.Lock()
	gate := s.gate
	if s.room != id {
		gate = nil
	}
	s.mu.Unlock()
	if gate != nil {
		select {
		case s.loading <- id:
		default:
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return s.Store.Load(ctx, id, epoch)
}

// queued returns how many events wait in the queue of room id's controller
// (-1 if the room is not active). A controller that is loading takes
// nothing from its queue, so this counts the arrivals.
func queued(svc *Service, id string) int {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	if c := svc.rooms[id]; c != nil {
		return len(c.q)
	}
	return -1
}

// TestSlowLoad: events that arrive while a room loads wait in its queue
// and are applied after the load, in arrival order, none lost; a queue
// past its bound answers overloaded and loses nothing it accepted.
func TestSlowLoad(t *testing.T) {
	t.Parallel()
	store := newGatedStore(newPGStore(t))
	svc, rec := newUnit(t, store, func(o *Options) { o.IdleEvict = 100 * time.Millisecond; o.QueueSize = 32 })
	c, id := unitTally(t, svc, "u1")
	c.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("before")}, nil)
	checkFor(t, 5*time.Second, "room evicted with a snapshot", func() bool {
		st := svc.Stats()
		return st.Rooms == 0 && st.Snapshots == 1
	})

	// Action k arrives once action k-1 is queued, all of them while the
	// load is held.
	const n = 20
	release := store.hold(t, id)
	loadsBefore := store.loads.Load()
	var wg sync.WaitGroup
	var replied atomic.Int64
	errs := make([]error, n)
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uc := newUnitClient(svc, "u1")
			uc.sess.Bindings[BindingKey] = id
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs[k] = uc.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte(strconv.Itoa(k))}, nil)
			replied.Add(1)
		}()
		if k == 0 {
			select { // the load is under way before the rest arrive
			case <-store.loading:
			case <-time.After(10 * time.Second):
				t.Fatal("the room's load did not start")
			}
		}
		checkFor(t, 10*time.Second, fmt.Sprintf("action %d queued", k), func() bool { return queued(svc, id) == k+1 })
	}
	if r := replied.Load(); r != 0 {
		t.Fatalf("%d actions answered while the room was loading", r)
	}
	release()
	wg.Wait()
	for k, err := range errs {
		if err != nil {
			t.Fatalf("action %d: %v", k, err)
		}
	}
	if got := store.loads.Load() - loadsBefore; got != 1 {
		t.Fatalf("%d loads, want 1", got)
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
	const size = 32
	release = store.hold(t, id)
	var ok, overloaded atomic.Int64
	for k := 0; k < 3*size; k++ {
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
	checkFor(t, 10*time.Second, "the queue full and the rest refused", func() bool {
		return queued(svc, id) == size && overloaded.Load() == 2*size
	})
	release()
	wg.Wait()
	c.must(t, roomrpc.MethodGet, &roompb.GetRequest{RoomID: &id}, &st)
	if got := len(tallyOf(t, &st).Items) - len(want); ok.Load() != size || int64(got) != ok.Load() {
		t.Fatalf("%d accepted, %d overloaded, %d applied; want %d accepted and applied", ok.Load(), overloaded.Load(), got, size)
	}
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
	store := newGatedStore(NewMemoryStore())
	svc, _ := newUnit(t, store, func(o *Options) { o.IdleEvict = 100 * time.Millisecond })
	_, slow := unitTally(t, svc, "u1")
	fast, _ := unitTally(t, svc, "u2")
	checkFor(t, 5*time.Second, "slow room evicted", func() bool { return queued(svc, slow) < 0 })
	release := store.hold(t, slow)
	done := make(chan error, 1)
	go func() {
		uc := newUnitClient(svc, "u1")
		uc.sess.Bindings[BindingKey] = slow
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- uc.call(ctx, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("s")}, nil)
	}()
	select {
	case <-store.loading:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow room's load did not start")
	}
	// The other room answers while the slow one's load is held (the fast
	// room may have been evicted too: its load is not held).
	fast.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("f")}, nil)
	select {
	case err := <-done:
		t.Fatalf("the slow room answered (%v) before its load was released", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
