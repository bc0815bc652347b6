package services_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/wire"
)

func TestClientCall(t *testing.T) {
	y := mustStartYellow(t, "", "")
	mustStartEcho(t, []*testYellow{y}, nil, nil)
	c := newClient(t, y)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var rep echopb.SleepReply
	if err := c.Call(ctx, echo.MethodSleep, &echopb.SleepRequest{Ms: 5}, &rep); err != nil || rep.SleptMs != 5 {
		t.Fatalf("Sleep: %v %v", rep, err)
	}
	if err := c.Call(ctx, echo.MethodSleep, &echopb.SleepRequest{Ms: 1}, nil); err != nil {
		t.Fatalf("Sleep, reply ignored: %v", err)
	}
	tests := []struct {
		method string
		req    *echopb.FailRequest
		want   string
	}{
		{echo.MethodFail, &echopb.FailRequest{Code: "not_found", Message: "no room r42"}, "not_found: no room r42"},
		{echo.MethodFail, &echopb.FailRequest{Code: "bogus"}, `bad_request: unknown error code "bogus"`},
		{"echo.Nope", &echopb.FailRequest{}, "unknown_method: echo.Nope"},
		{"nope.Nope", &echopb.FailRequest{}, "unavailable: no live instance of nope"},
		{"nope", &echopb.FailRequest{}, `unknown_method: "nope" is not <service>.<Method>`},
	}
	for _, tt := range tests {
		err := c.Call(ctx, tt.method, tt.req, nil)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Call(%s) = %v, want %s", tt.method, err, tt.want)
			continue
		}
		if _, ok := err.(*wire.Error); !ok {
			t.Errorf("Call(%s) error is a %T, want *wire.Error", tt.method, err)
		}
	}
	// A reply that does not decode as the struct asked for.
	err := c.Call(ctx, echo.MethodEcho, &echopb.FailRequest{Code: "x"}, &echopb.SleepReply{})
	if err != nil {
		t.Errorf("Call: a reply with unknown fields: %v", err)
	}
	if _, err := c.CallRaw(ctx, router.Target{}, echo.MethodEcho, nil, []byte{0xff}); err != nil {
		t.Fatal(err)
	}

	// The caller's deadline bounds the call, whatever the handler does.
	sctx, scancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer scancel()
	start := time.Now()
	err = c.Call(sctx, echo.MethodSleep, &echopb.SleepRequest{Ms: 5000}, nil)
	if wire.CodeOf(err) != wire.CodeTimeout {
		t.Errorf("Sleep past the deadline: %v", err)
	}
	if d := time.Since(start); d > 300*time.Millisecond {
		t.Errorf("Call returned %v after a 100ms deadline", d)
	}

	// CallRaw returns error replies with the envelope.
	env, err := c.CallRaw(ctx, router.Target{}, echo.MethodEcho, &platformpb.Session{Id: "s1"}, []byte("raw"))
	if err != nil || string(env.GetPayload()) != "raw" {
		t.Fatalf("CallRaw: %v %v", env, err)
	}
}

// TestConcurrentCallers: 64 concurrent callers over 3 instances; every
// reply matches its request and every instance gets traffic.
func TestConcurrentCallers(t *testing.T) {
	y := mustStartYellow(t, "", "")
	ys := []*testYellow{y}
	ids := map[string]bool{}
	for range 3 {
		ids[mustStartEcho(t, ys, nil, nil).InstanceID()] = true
	}
	c := newClient(t, y)
	checkFor(t, 5*time.Second, "3 instances listed", func() bool { return len(c.Pool().Instances(echo.Name)) == 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	const callers, calls = 64, 30
	var mu sync.Mutex
	served := map[string]int{}
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range calls {
				sender, err := echoCall(ctx, c, fmt.Sprintf("caller %d call %d %s", i, j, strings.Repeat("x", i*j%200)))
				if err != nil {
					t.Errorf("caller %d: %v", i, err)
					return
				}
				mu.Lock()
				served[sender]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("calls per instance: %v", served)
	total := 0
	for id, n := range served {
		if !ids[id] {
			t.Errorf("reply from unknown instance %q", id)
		}
		total += n
	}
	if len(served) != 3 {
		t.Errorf("%d instances got traffic, want 3", len(served))
	}
	if total != callers*calls {
		t.Errorf("%d replies, want %d", total, callers*calls)
	}
}

// callStats counts the outcomes of calls made under load.
type callStats struct {
	ok, unavailable, timeout, other, late atomic.Int64
	mu                                    sync.Mutex
	firstOther                            error
	worstLate                             time.Duration
}

func (s *callStats) record(err error, took, deadline time.Duration) {
	if over := took - deadline; over > 500*time.Millisecond {
		s.late.Add(1)
		s.mu.Lock()
		s.worstLate = max(s.worstLate, over)
		s.mu.Unlock()
	}
	switch wire.CodeOf(err) {
	case "":
		s.ok.Add(1)
	case wire.CodeUnavailable:
		s.unavailable.Add(1)
	case wire.CodeTimeout:
		s.timeout.Add(1)
	default:
		s.other.Add(1)
		s.mu.Lock()
		if s.firstOther == nil {
			s.firstOther = err
		}
		s.mu.Unlock()
	}
}

func (s *callStats) String() string {
	return fmt.Sprintf("ok=%d unavailable=%d timeout=%d other=%d late=%d (worst %v over)",
		s.ok.Load(), s.unavailable.Load(), s.timeout.Load(), s.other.Load(), s.late.Load(), s.worstLate)
}

// load runs n callers of echo.Sleep(ms) with the given deadline each until
// stop is closed.
func load(c *services.Client, n int, ms int32, deadline time.Duration, stop chan struct{}, st *callStats) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				start := time.Now()
				err := c.Call(ctx, echo.MethodSleep, &echopb.SleepRequest{Ms: ms}, nil)
				st.record(err, time.Since(start), deadline)
				cancel()
			}
		}()
	}
	return &wg
}

// TestInstanceKilled: an instance dies (no drain) under load. Callers get
// replies or unavailable / timeout within their deadline, never a hang;
// yellow drops the instance within its expiry window; the others carry the
// load.
func TestInstanceKilled(t *testing.T) {
	y := mustStartYellow(t, "", "")
	ys := []*testYellow{y}
	victim := mustStartEcho(t, ys, nil, nil)
	mustStartEcho(t, ys, nil, nil)
	mustStartEcho(t, ys, nil, nil)
	c := newClient(t, y)
	checkFor(t, 5*time.Second, "3 instances listed", func() bool { return len(c.Pool().Instances(echo.Name)) == 3 })

	const deadline = 500 * time.Millisecond
	var st callStats
	stop := make(chan struct{})
	wg := load(c, 16, 5, deadline, stop, &st)
	checkFor(t, 5*time.Second, "the load is served", func() bool { return st.ok.Load() >= 50 })
	before := st.ok.Load()
	killed := time.Now()
	victim.Kill()
	checkFor(t, 3*time.Second, "yellow drops the killed instance", func() bool { return !y.has(echo.Name, victim.InstanceID()) })
	dropped := time.Since(killed)
	checkFor(t, 2*time.Second, "the client's view drops it", func() bool { return len(c.Pool().Instances(echo.Name)) == 2 })
	after := st.ok.Load()
	checkFor(t, 5*time.Second, "the load goes on without it", func() bool { return st.ok.Load() >= after+50 })
	close(stop)
	wg.Wait()
	t.Logf("yellow dropped the killed instance after %v (expiry window %v); calls: %v", dropped.Round(time.Millisecond), expiry, &st)
	if dropped > expiry+2*hb {
		t.Errorf("yellow took %v to drop a dead instance, expiry window is %v", dropped, expiry)
	}
	if st.late.Load() > 0 {
		t.Errorf("%d calls returned more than 500ms after their deadline (worst %v)", st.late.Load(), st.worstLate)
	}
	if st.other.Load() > 0 {
		t.Errorf("unexpected errors: %v, first: %v", &st, st.firstOther)
	}
	if before == 0 || st.ok.Load() == before {
		t.Errorf("no successful calls before (%d) or after the kill (%d)", before, st.ok.Load())
	}

	// The survivors carry the load.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 50 {
		if sender, err := echoCall(ctx, c, fmt.Sprint("after ", i)); err != nil || sender == victim.InstanceID() {
			t.Fatalf("call %d after the kill: %v (sender %s)", i, err, sender)
		}
	}
	if _, _, err := c.Pool().Peer(victim.InstanceID()); wire.CodeOf(err) != wire.CodeUnavailable {
		t.Errorf("Peer(killed) = %v, want unavailable", err)
	}
}

// TestInstanceRestartedSamePort: an instance killed and restarted on the
// same ports is reachable again within two heartbeat periods, both by a
// link that was connected to it and by a Client. A latency bound on a
// shared test machine is noisy, so the restart is tried up to three times
// and the bound must hold once.
func TestInstanceRestartedSamePort(t *testing.T) {
	y := mustStartYellow(t, "", "")
	ys := []*testYellow{y}
	cur := mustStartEcho(t, ys, nil, nil)
	ep, pubEP := cur.Endpoint(), cur.PubEndpoint()
	c := newClient(t, y)
	peer := dial(t, cur.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for attempt := 1; attempt <= 3; attempt++ {
		if _, err := echoCall(ctx, c, "before"); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 3*time.Second, "link up before the kill", peer.Alive)
		killed := time.Now()
		cur.Kill()
		checkFor(t, 3*time.Second, "the link notices the death", func() bool { return !peer.Alive() })
		noticed := time.Since(killed)

		restarted := time.Now()
		cur = mustStartEcho(t, ys, func(o *services.Options) { o.Bind, o.PubBind = ep, pubEP }, nil)
		if cur.Endpoint() != ep {
			t.Fatalf("restarted on %s, want %s", cur.Endpoint(), ep)
		}
		bound := time.Since(restarted)
		var callsBack, linkBack time.Duration
		for callsBack == 0 || linkBack == 0 {
			if linkBack == 0 && peer.Alive() {
				linkBack = time.Since(restarted)
			}
			if callsBack == 0 {
				cctx, ccancel := context.WithTimeout(ctx, 50*time.Millisecond)
				if _, err := echoCall(cctx, c, "after"); err == nil {
					callsBack = time.Since(restarted)
				}
				ccancel()
			}
			if time.Since(restarted) > 5*time.Second {
				t.Fatalf("not recovered 5s after the restart: link %v, calls %v", linkBack, callsBack)
			}
			time.Sleep(time.Millisecond)
		}
		t.Logf("attempt %d: link noticed the death after %v; after the restart (bound and registered in %v) the link is back after %v, client calls succeed after %v (heartbeat %v)",
			attempt, noticed.Round(time.Millisecond), bound.Round(time.Millisecond), linkBack.Round(time.Millisecond), callsBack.Round(time.Millisecond), hb)
		if linkBack <= 2*hb && callsBack <= 2*hb {
			return
		}
	}
	t.Errorf("in 3 attempts, the link or the client never recovered within two heartbeats (%v)", 2*hb)
}

// TestNewInstanceGetsTraffic: an instance started under load receives
// requests within a second of registering.
func TestNewInstanceGetsTraffic(t *testing.T) {
	y := mustStartYellow(t, "", "")
	ys := []*testYellow{y}
	mustStartEcho(t, ys, nil, nil)
	mustStartEcho(t, ys, nil, nil)
	c := newClient(t, y)

	var mu sync.Mutex
	first := map[string]time.Time{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				sender, err := echoCall(ctx, c, fmt.Sprint(i, "/", j))
				cancel()
				if err != nil {
					t.Errorf("call: %v", err)
					return
				}
				mu.Lock()
				if _, ok := first[sender]; !ok {
					first[sender] = time.Now()
				}
				mu.Unlock()
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	checkFor(t, 5*time.Second, "the callers are under way", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(first) > 0
	})
	fresh := mustStartEcho(t, ys, nil, nil) // returns once yellow holds it
	registered := time.Now()
	checkFor(t, time.Second, "the new instance gets traffic within 1s", func() bool {
		mu.Lock()
		defer mu.Unlock()
		_, ok := first[fresh.InstanceID()]
		return ok
	})
	mu.Lock()
	t.Logf("new instance's first request %v after yellow listed it", first[fresh.InstanceID()].Sub(registered).Round(time.Millisecond))
	mu.Unlock()
}

// TestYellowRestart: yellow restarts on the same ports; providers
// re-register and consumers re-sync without being restarted.
func TestYellowRestart(t *testing.T) {
	y := mustStartYellow(t, "", "")
	router, pub := y.RouterEndpoint(), y.PubEndpoint()
	ys := []*testYellow{y}
	a := mustStartEcho(t, ys, nil, nil)
	b := mustStartEcho(t, ys, nil, nil)
	c := newClient(t, y)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := echoCall(ctx, c, "before"); err != nil {
		t.Fatal(err)
	}

	y.stop()
	// While yellow is down the client keeps its view and calls work.
	for i := range 20 {
		if _, err := echoCall(ctx, c, fmt.Sprint("down ", i)); err != nil {
			t.Fatalf("call while yellow is down: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	y2 := mustStartYellow(t, router, pub)
	start := time.Now()
	checkFor(t, 5*time.Second, "providers re-register", func() bool {
		return y2.has(echo.Name, a.InstanceID()) && y2.has(echo.Name, b.InstanceID())
	})
	t.Logf("providers re-registered %v after yellow came back", time.Since(start).Round(time.Millisecond))

	// A new instance, known only to the new yellow, is found by the
	// client.
	fresh := mustStartEcho(t, []*testYellow{y2}, nil, nil)
	checkFor(t, 5*time.Second, "the client sees the new instance", func() bool {
		for _, inst := range c.Pool().Instances(echo.Name) {
			if inst.GetId() == fresh.InstanceID() {
				return true
			}
		}
		return false
	})
	seen := map[string]bool{}
	checkFor(t, 5*time.Second, "all three instances serve", func() bool {
		sender, err := echoCall(ctx, c, "after")
		if err != nil {
			t.Fatalf("call after the restart: %v", err)
		}
		seen[sender] = true
		return len(seen) == 3
	})
}

// TestDrain: a draining instance finishes what it runs, new requests go
// elsewhere, and it leaves yellow.
func TestDrain(t *testing.T) {
	y := mustStartYellow(t, "", "")
	ys := []*testYellow{y}
	a := mustStartEcho(t, ys, nil, nil)
	b := mustStartEcho(t, ys, nil, nil)
	c := newClient(t, y)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A slow request in flight on a.
	peer, _, err := c.Pool().Peer(a.InstanceID())
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 2*time.Second, "link to a", peer.Alive)
	slow := make(chan error, 1)
	go func() {
		payload, _ := thriftx.Marshal(&echopb.SleepRequest{Ms: 500})
		rep, err := peer.Call(ctx, &platformpb.Envelope{Method: echo.MethodSleep, Payload: payload})
		if err == nil {
			err = wire.FromEnvelope(rep)
		}
		slow <- err
	}()
	checkFor(t, 2*time.Second, "the slow request runs on a", func() bool { return a.InFlight() == 1 })

	drained := make(chan error, 1)
	start := time.Now()
	go func() { drained <- a.Drain(ctx) }()
	checkFor(t, time.Second, "yellow shows a draining", func() bool {
		for _, inst := range y.Registry().Query(echo.Name) {
			if inst.GetId() == a.InstanceID() {
				return inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_DRAINING
			}
		}
		return true // already gone
	})
	// New requests, made while a still runs the slow one, go to b.
	for i := range 40 {
		sender, err := echoCall(ctx, c, fmt.Sprint("during drain ", i))
		if err != nil || sender != b.InstanceID() {
			t.Fatalf("call %d during drain: %v (sender %s)", i, err, sender)
		}
	}
	// Even one sent straight to a is refused without running.
	if rep, err := rawCall(ctx, peer, echo.MethodEcho, nil); err == nil {
		if got := wire.FromEnvelope(rep); got == nil || got.Error() != "unavailable: draining" {
			t.Errorf("request to a draining instance: %v", got)
		}
	}
	if err := <-slow; err != nil {
		t.Errorf("the in-flight request failed: %v", err)
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	t.Logf("drained in %v", time.Since(start).Round(time.Millisecond))
	if y.has(echo.Name, a.InstanceID()) {
		t.Error("a is still in yellow after Drain")
	}
	select {
	case err := <-a.done:
		if err != nil {
			t.Errorf("Main returned %v", err)
		}
	case <-time.After(time.Second):
		t.Error("Main did not return after Drain")
	}
	for i := range 10 {
		if sender, err := echoCall(ctx, c, fmt.Sprint("after drain ", i)); err != nil || sender != b.InstanceID() {
			t.Fatalf("call after drain: %v (%s)", err, sender)
		}
	}
}

func TestDrainTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	y := mustStartYellow(t, "", "")
	a := mustStartEcho(t, []*testYellow{y}, func(o *services.Options) { o.DrainTimeout = 200 * time.Millisecond },
		map[string]services.HandlerFunc{
			"echo.Stuck": func(ctx context.Context, _ *services.Session, _ []byte) ([]byte, error) {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil, ctx.Err()
			},
		})
	p := dial(t, a.Server)
	go func() { _, _ = rawCall(context.Background(), p, "echo.Stuck", nil) }()
	checkFor(t, 2*time.Second, "stuck request running", func() bool { return a.InFlight() == 1 })
	start := time.Now()
	err := a.Drain(context.Background())
	if err == nil || !strings.Contains(err.Error(), "1 requests still in flight") {
		t.Errorf("Drain = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Drain took %v with a 200ms drain_timeout", d)
	}
	checkFor(t, time.Second, "a left yellow", func() bool { return !y.has(echo.Name, a.InstanceID()) })
}

// TestCallToInstance: a call that names an instance goes there and only
// there; a call to an instance yellow does not list is unavailable at once.
func TestCallToInstance(t *testing.T) {
	y := mustStartYellow(t, "", "")
	ys := []*testYellow{y}
	a := mustStartEcho(t, ys, nil, nil)
	mustStartEcho(t, ys, nil, nil)
	c := newClient(t, y)
	checkFor(t, 5*time.Second, "2 instances listed", func() bool { return len(c.Pool().Instances(echo.Name)) == 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 10 {
		rep, err := c.CallRaw(ctx, router.Target{Instance: a.InstanceID()}, echo.MethodEcho, nil, []byte{byte(i)})
		if err != nil || rep.GetSender() != a.InstanceID() {
			t.Fatalf("call %d to %s: sender %q, %v", i, a.InstanceID(), rep.GetSender(), err)
		}
	}
	// The instance id is not in the text: it could reach a client.
	_, err := c.CallRaw(ctx, router.Target{Instance: "echo-gone"}, echo.MethodEcho, nil, nil)
	if err == nil || err.Error() != "unavailable: no live instance of echo" {
		t.Fatalf("call to an unlisted instance: %v", err)
	}
}
