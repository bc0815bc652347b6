package yellow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/testenv"
)

// testBeat is the heartbeat of the socket tests: fast enough to keep them
// short, slow enough not to flake under -race on a busy machine.
const testBeat = 100 * time.Millisecond

func testOptions() Options {
	o := NewOptions()
	o.RouterAddr = "tcp://127.0.0.1:0"
	o.PubAddr = "tcp://127.0.0.1:0"
	o.Heartbeat = testBeat
	o.TickInterval = 0
	return o
}

// mustStart starts a yellow, runs Main, and exits it when the test ends.
func mustStart(t *testing.T, opts Options) *Yellow {
	t.Helper()
	y, err := New(opts, testenv.Logger(t).With("test_yellow", opts.RouterAddr))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- y.Main() }()
	t.Cleanup(func() {
		y.Exit()
		if err := <-done; err != nil {
			t.Errorf("Main: %v", err)
		}
	})
	return y
}

var checkFor = testenv.CheckFor

// holdsFor checks that cond holds every 10 ms for d.
func holdsFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("no longer true: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func clientOptions(t *testing.T, ys ...*Yellow) ClientOptions {
	o := ClientOptions{Heartbeat: testBeat, Timeout: 500 * time.Millisecond, Logger: testenv.Logger(t)}
	for _, y := range ys {
		o.Yellows = append(o.Yellows, y.RouterEndpoint())
	}
	return o
}

func mustWatch(t *testing.T, opts ClientOptions) *Watcher {
	t.Helper()
	w := Watch(opts)
	t.Cleanup(w.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.WaitSynced(ctx); err != nil {
		t.Fatalf("WaitSynced: %v", err)
	}
	return w
}

func mustRegister(t *testing.T, opts ClientOptions, inst *platformpb.Instance, load func() float64) *Registration {
	t.Helper()
	r := Register(opts, inst, load)
	t.Cleanup(r.Abandon)
	return r
}

// find returns the watcher's record of (service, id), or nil.
func find(w *Watcher, service, id string) *platformpb.Instance {
	for _, in := range w.Instances(service) {
		if in.GetId() == id {
			return in
		}
	}
	return nil
}

func has(w *Watcher, service, id string) func() bool {
	return func() bool { return find(w, service, id) != nil }
}

func hasNot(w *Watcher, service, id string) func() bool {
	return func() bool { return find(w, service, id) == nil }
}

func TestRegisterWatch(t *testing.T) {
	opts := testOptions()
	opts.ExpireAfter = 30 // expiry (3 s) must not be what removes it below
	y := mustStart(t, opts)
	co := clientOptions(t, y)
	w := mustWatch(t, co)

	var load atomic.Value
	load.Store(0.25)
	start := time.Now()
	r := mustRegister(t, co, testInstance("login", "login-1"), func() float64 { return load.Load().(float64) })
	checkFor(t, time.Second, "watcher sees the new instance", has(w, "login", "login-1"))
	t.Logf("seen after %v", time.Since(start))
	checkFor(t, time.Second, "provider registered", func() bool { return r.Registered() == 1 })

	// Load follows heartbeats; draining shows with its state.
	load.Store(0.75)
	checkFor(t, time.Second, "load update", func() bool { return find(w, "login", "login-1").GetLoad() == 0.75 })
	start = time.Now()
	r.SetState(platformpb.InstanceState_INSTANCE_STATE_DRAINING)
	checkFor(t, time.Second, "draining state", func() bool {
		return find(w, "login", "login-1").GetState() == platformpb.InstanceState_INSTANCE_STATE_DRAINING
	})
	if d := time.Since(start); d > testBeat*3/2 {
		t.Errorf("draining took %v, want the next beat at once", d)
	}
	if got := w.All(); len(got) != 1 || got[0].GetRouter() != "tcp://127.0.0.1:7000" {
		t.Fatalf("All: %v", got)
	}

	// Deregister removes it at once, not after expiry.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkFor(t, 500*time.Millisecond, "removed after deregister", hasNot(w, "login", "login-1"))
	if st := y.Stats(); st.Instances != 0 || st.Deregisters != 1 || st.Registers < 1 {
		t.Fatalf("stats %+v", st)
	}
	if err := y.Health(); err != nil {
		t.Fatalf("Health: %v", err)
	}
}

func TestChangesNotified(t *testing.T) {
	y := mustStart(t, testOptions())
	co := clientOptions(t, y)
	w := mustWatch(t, co)
	// Drain the notification of the first sync.
	select {
	case <-w.Changes():
	default:
	}
	mustRegister(t, co, testInstance("room", "room-1"), nil)
	select {
	case <-w.Changes():
	case <-time.After(time.Second):
		t.Fatal("no change notification")
	}
	checkFor(t, time.Second, "room-1", has(w, "room", "room-1"))
}

func TestExpiry(t *testing.T) {
	y := mustStart(t, testOptions())
	co := clientOptions(t, y)
	w := mustWatch(t, co)
	r := mustRegister(t, co, testInstance("login", "login-1"), nil)
	checkFor(t, time.Second, "registered", has(w, "login", "login-1"))

	r.Abandon() // heartbeats stop, no deregistration
	start := time.Now()
	window := testBeat * time.Duration(y.opts.ExpireAfter)
	// Expired within the window (plus the expiry check period and slack).
	checkFor(t, window+time.Second, "expired", hasNot(w, "login", "login-1"))
	if d := time.Since(start); d < window/2 {
		t.Errorf("removed after %v, before the expiry window %v", d, window)
	}
	if st := y.Stats(); st.Expired != 1 || st.Instances != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnknownHeartbeatReregisters(t *testing.T) {
	y := mustStart(t, testOptions())
	co := clientOptions(t, y)
	w := mustWatch(t, co)
	mustRegister(t, co, testInstance("login", "login-1"), nil)
	checkFor(t, time.Second, "registered", has(w, "login", "login-1"))
	// Yellow forgets it (as after an expiry): the next beat gets
	// "unknown" and the provider registers again.
	if _, _, err := y.Registry().Deregister("login", "login-1"); err != nil {
		t.Fatal(err)
	}
	checkFor(t, time.Second, "registered again", func() bool { return y.Registry().Len() == 1 })
	checkFor(t, time.Second, "watcher sees it again", has(w, "login", "login-1"))
	if y.Stats().UnknownHeartbeats == 0 {
		t.Fatal("no unknown heartbeat counted")
	}
}

func TestYellowRestart(t *testing.T) {
	opts := testOptions()
	y1, err := New(opts, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	go y1.Main()
	defer y1.Exit()
	co := clientOptions(t, y1)
	w := mustWatch(t, co)
	mustRegister(t, co, testInstance("login", "login-1"), nil)
	mustRegister(t, co, testInstance("room", "room-1"), nil)
	checkFor(t, time.Second, "registered", func() bool { return len(w.All()) == 2 })
	epoch1 := y1.Epoch()

	y1.Exit()
	// While yellow is down, the watcher keeps its last view, well past the
	// time it needs to notice (silence, then a failed snapshot).
	holdsFor(t, 6*testBeat+time.Second, "view kept while yellow is down", func() bool { return len(w.All()) == 2 })
	if st := w.Stats(); st.Up != 0 {
		t.Errorf("watcher thinks yellow is up: %+v", st)
	}

	// Same ports, new epoch.
	opts.RouterAddr, opts.PubAddr = y1.RouterEndpoint(), y1.PubEndpoint()
	y2 := mustStart(t, opts)
	if y2.Epoch() == epoch1 {
		t.Fatal("same epoch after restart")
	}
	checkFor(t, 5*time.Second, "providers registered again", func() bool { return y2.Registry().Len() == 2 })
	checkFor(t, 5*time.Second, "watcher re-synced", func() bool { return w.Stats().Up == 1 })
	if got := w.All(); len(got) != 2 {
		t.Fatalf("view after restart: %v", got)
	}
	// The watcher follows the new yellow's deltas.
	start := time.Now()
	r3 := mustRegister(t, co, testInstance("room", "room-2"), nil)
	checkFor(t, 2*time.Second, "new instance after restart", has(w, "room", "room-2"))
	t.Logf("seen after %v", time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r3.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkFor(t, time.Second, "deregistered after restart", hasNot(w, "room", "room-2"))
}

func TestTwoYellows(t *testing.T) {
	y1 := mustStart(t, testOptions())
	y2 := mustStart(t, testOptions())
	co := clientOptions(t, y1, y2)
	w := mustWatch(t, co)
	r := mustRegister(t, co, testInstance("login", "login-1"), nil)
	checkFor(t, time.Second, "registered with both", func() bool {
		return r.Registered() == 2 && y1.Registry().Len() == 1 && y2.Registry().Len() == 1
	})
	checkFor(t, time.Second, "watcher sees it", has(w, "login", "login-1"))
	checkFor(t, time.Second, "both up", func() bool { return w.Stats().Up == 2 })

	y1.Exit()
	holdsFor(t, 6*testBeat+time.Second, "view unaffected by one yellow down", has(w, "login", "login-1"))
	checkFor(t, time.Second, "one up", func() bool { return w.Stats().Up == 1 })
	checkFor(t, time.Second, "provider sees one yellow down", func() bool { return r.Registered() == 1 })

	// Changes still flow through the other yellow.
	mustRegister(t, co, testInstance("login", "login-2"), nil)
	checkFor(t, time.Second, "new instance via the second yellow", has(w, "login", "login-2"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.Close(ctx) // y1 is down: best effort
	checkFor(t, time.Second, "deregistered via the second yellow", hasNot(w, "login", "login-1"))
}

// mustDial returns a plain link Peer connected to y's ROUTER.
func mustDial(t *testing.T, y *Yellow) *link.Peer {
	t.Helper()
	p := link.Dial(y.RouterEndpoint(), link.PeerOptions{Logger: testenv.Logger(t)})
	t.Cleanup(func() { _ = p.Close() })
	checkFor(t, 2*time.Second, "peer connected", p.Alive)
	return p
}

// rawCall sends one request envelope to a yellow over a plain link Peer.
func rawCall(t *testing.T, p *link.Peer, method string, payload []byte) (*platformpb.Envelope, *platformpb.YellowReply) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	env, err := p.Call(ctx, &platformpb.Envelope{Method: method, Payload: payload})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	rep := &platformpb.YellowReply{}
	if err := proto.Unmarshal(env.GetPayload(), rep); err != nil {
		t.Fatalf("%s reply: %v", method, err)
	}
	return env, rep
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWireRejects(t *testing.T) {
	y := mustStart(t, testOptions())
	p := mustDial(t, y)

	bad := testInstance("login", "login-1")
	bad.Router = "tcp://0.0.0.0:7000"
	env, rep := rawCall(t, p, MethodRegister, mustMarshal(t, &platformpb.YellowRequest{Instance: bad}))
	want := `invalid record: router: host must not be a wildcard, got "tcp://0.0.0.0:7000"`
	if env.GetErrorCode() != "bad_request" || env.GetErrorMessage() != want || rep.GetError() != "bad_request: "+want {
		t.Fatalf("bad record: %q %q %q", env.GetErrorCode(), env.GetErrorMessage(), rep.GetError())
	}
	if rep.GetEpoch() != y.Epoch() || rep.GetPub() != y.PubEndpoint() || rep.GetHeartbeatIntervalMs() != 100 {
		t.Fatalf("reply lacks epoch/pub/heartbeat: %v", rep)
	}

	for _, tc := range []struct {
		method  string
		payload []byte
		msg     string
	}{
		{MethodRegister, []byte("\xff\xff\xff garbage"), "bad request: undecodable YellowRequest"},
		{MethodHeartbeat, []byte{0x0a}, "bad request: undecodable YellowRequest"},
		{"yellow.Explode", nil, `bad request: unknown method "yellow.Explode"`},
		{"", nil, `bad request: unknown method ""`},
		{MethodRegister, nil, "invalid record: instance: required"},
	} {
		env, _ := rawCall(t, p, tc.method, tc.payload)
		if env.GetErrorCode() != "bad_request" || !strings.HasPrefix(env.GetErrorMessage(), tc.msg) {
			t.Errorf("%s %q: got %s: %s, want bad_request: %s", tc.method, tc.payload, env.GetErrorCode(), env.GetErrorMessage(), tc.msg)
		}
	}

	// Still serving.
	env, rep = rawCall(t, p, MethodRegister, mustMarshal(t, &platformpb.YellowRequest{Instance: testInstance("login", "login-1")}))
	if env.GetErrorCode() != "" || rep.GetSeq() != 1 {
		t.Fatalf("valid register after garbage: %v %v", env, rep)
	}
	_, rep = rawCall(t, p, MethodQuery, mustMarshal(t, &platformpb.YellowRequest{Service: "login"}))
	if len(rep.GetInstances()) != 1 || rep.GetInstances()[0].GetId() != "login-1" {
		t.Fatalf("query: %v", rep)
	}
	if st := y.Stats(); st.BadRequests != 6 {
		t.Fatalf("bad requests %d, want 6", st.BadRequests)
	}

	// A provider with a bad record never gets registered.
	r := mustRegister(t, clientOptions(t, y), bad, nil)
	holdsFor(t, 3*testBeat, "bad record not registered", func() bool { return r.Registered() == 0 && y.Registry().Len() == 1 })
}

func TestMaxInstancesOverWire(t *testing.T) {
	opts := testOptions()
	opts.MaxInstances = 2
	y := mustStart(t, opts)
	p := mustDial(t, y)
	for i := range 3 {
		env, rep := rawCall(t, p, MethodRegister, mustMarshal(t, &platformpb.YellowRequest{
			Instance: testInstance("login", fmt.Sprintf("login-%d", i)),
		}))
		if i < 2 && env.GetErrorCode() != "" {
			t.Fatalf("register %d: %v", i, env)
		}
		if i == 2 && (env.GetErrorCode() != "overloaded" || rep.GetError() != "overloaded: too many instances: yellow holds at most 2") {
			t.Fatalf("register beyond the bound: %q %q", env.GetErrorCode(), rep.GetError())
		}
	}
}

func TestNewErrors(t *testing.T) {
	o := testOptions()
	o.ExpireAfter = -1
	if _, err := New(o, nil); err == nil || err.Error() != "yellow: expire_after: must be in [1, 100], got -1" {
		t.Fatalf("bad options: %v", err)
	}
	y := mustStart(t, testOptions())
	o = testOptions()
	o.RouterAddr = y.RouterEndpoint()
	if _, err := New(o, nil); err == nil || !strings.Contains(err.Error(), "yellow: router_addr "+y.RouterEndpoint()) {
		t.Fatalf("port in use: %v", err)
	}
	o = testOptions()
	o.PubAddr = y.PubEndpoint()
	if _, err := New(o, nil); err == nil || !strings.Contains(err.Error(), "yellow: pub_addr "+y.PubEndpoint()) {
		t.Fatalf("pub port in use: %v", err)
	}
}

// TestExitIdempotent: Exit may be called any number of times, before,
// during or after Main; Main returns nil once Exit is called, whichever ran
// first, and an error when called a second time.
func TestExitIdempotent(t *testing.T) {
	// Exit racing Main's start, as a signal at start-up does: either order
	// must end Main with nil.
	y, err := New(testOptions(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- y.Main() }()
	y.Exit()
	y.Exit()
	if err := <-done; err != nil {
		t.Fatalf("Main: %v", err)
	}
	if err := y.Health(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Health after Exit: %v", err)
	}
	if err := y.Main(); err == nil {
		t.Fatal("a second Main returned nil")
	}

	// Exit while Main runs: Health turns nil once Main started.
	y1, err := New(testOptions(), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	done1 := make(chan error, 1)
	go func() { done1 <- y1.Main() }()
	checkFor(t, 5*time.Second, "Main running", func() bool { return y1.Health() == nil })
	y1.Exit()
	y1.Exit()
	if err := <-done1; err != nil {
		t.Fatalf("Main stopped while running: %v", err)
	}

	// Exit before Main: Main returns nil at once.
	y2, err := New(testOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	y2.Exit()
	if err := y2.Main(); err != nil {
		t.Fatalf("Main after Exit: %v", err)
	}
	y2.Exit()
}

func TestWatcherNoYellow(t *testing.T) {
	// A watcher of a yellow that is not there yet syncs once it starts.
	opts := testOptions()
	y, err := New(opts, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts.RouterAddr, opts.PubAddr = y.RouterEndpoint(), y.PubEndpoint()
	y.Exit()
	co := ClientOptions{Yellows: []string{opts.RouterAddr}, Heartbeat: testBeat, Timeout: 300 * time.Millisecond, Logger: testenv.Logger(t)}
	w := Watch(co)
	defer w.Close()
	r := Register(co, testInstance("login", "login-1"), nil)
	defer r.Abandon()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := w.WaitSynced(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitSynced with no yellow: %v", err)
	}
	mustStart(t, opts)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := w.WaitSynced(ctx2); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, "provider registered once yellow is up", has(w, "login", "login-1"))
}

func TestWatcherRecoversLostDelta(t *testing.T) {
	y := mustStart(t, testOptions())
	co := clientOptions(t, y)
	w := mustWatch(t, co)
	syncs := w.Stats().Syncs

	// Lose the next UPSERT on its way to the PUB socket.
	var lost atomic.Bool
	y.reg.mu.Lock()
	emit := y.reg.emit
	y.reg.emit = func(d *platformpb.Delta) {
		if d.GetOp() == platformpb.DeltaOp_DELTA_OP_UPSERT && lost.CompareAndSwap(false, true) {
			return
		}
		emit(d)
	}
	y.reg.mu.Unlock()

	mustRegister(t, co, testInstance("login", "login-1"), nil)
	// The next tick shows the gap; the watcher re-syncs from a snapshot.
	checkFor(t, 5*testBeat, "instance seen despite the lost delta", has(w, "login", "login-1"))
	if !lost.Load() {
		t.Fatal("no delta was lost")
	}
	if st := w.Stats(); st.Syncs <= syncs || st.Resyncs == 0 {
		t.Fatalf("no re-sync: %+v", st)
	}
}

// TestHeartbeatMeta: with WithMeta a provider's labels follow its heartbeats
// (no new registration), watchers see each change; labels that break the
// rules are not sent (the last good ones stay); dropping every label
// re-registers.
func TestHeartbeatMeta(t *testing.T) {
	y := mustStart(t, testOptions())
	co := clientOptions(t, y)
	w := mustWatch(t, co)
	var labels atomic.Pointer[map[string]string]
	set := func(m map[string]string) { labels.Store(&m) }
	set(map[string]string{"rooms_free": "10"})
	inst := testInstance("room", "room-1")
	inst.Meta = nil
	r := Register(co, inst, nil, WithMeta(func() map[string]string { return *labels.Load() }))
	t.Cleanup(r.Abandon)
	metaIs := func(want map[string]string) func() bool {
		return func() bool {
			got := find(w, "room", "room-1").GetMeta()
			return len(got) == len(want) && (len(want) == 0 || fmt.Sprint(got) == fmt.Sprint(want))
		}
	}
	checkFor(t, time.Second, "registered with its labels", metaIs(map[string]string{"rooms_free": "10"}))
	set(map[string]string{"rooms_free": "9", "zone": "b"})
	checkFor(t, time.Second, "labels follow the beats", metaIs(map[string]string{"rooms_free": "9", "zone": "b"}))
	if n := y.Stats().Registers; n != 1 {
		t.Fatalf("%d registrations, want the labels carried by beats", n)
	}
	// Labels yellow would refuse are not sent: the record keeps the last.
	set(manyLabels(MaxMetaEntries + 1))
	beats := y.Stats().Heartbeats
	checkFor(t, time.Second, "beats go on", func() bool { return y.Stats().Heartbeats >= beats+3 })
	if !metaIs(map[string]string{"rooms_free": "9", "zone": "b"})() || r.Registered() != 1 {
		t.Fatalf("after bad labels: meta %v, registered %d", find(w, "room", "room-1").GetMeta(), r.Registered())
	}
	// No labels at all: a beat cannot say so, a registration does.
	set(nil)
	checkFor(t, time.Second, "labels dropped", metaIs(nil))
	if n := y.Stats().Registers; n != 2 {
		t.Fatalf("%d registrations, want 2", n)
	}
}
