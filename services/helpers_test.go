package services_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/router"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/yellow"
)

// testLogger and checkFor are the shared test helpers (internal/testenv).
var (
	testLogger = testenv.Logger
	checkFor   = testenv.CheckFor
)

// hb is the heartbeat of every test yellow, service and link, and
// deadBeats how many missed beats expire a record or kill a link: short, so
// that expiry and dead links take half a second, yet long enough not to
// happen by accident on a busy test machine running -race (a 2-core
// machine shared with other test binaries stalls for 400 ms at times).
const (
	hb        = 100 * time.Millisecond
	deadBeats = 5
	expiry    = deadBeats * hb
)

// testYellow is a running yellow server.
type testYellow struct {
	*yellow.Yellow
	done chan error
	once sync.Once
}

// mustStartYellow starts a yellow on router/pub ("" = 127.0.0.1 port 0)
// with the test heartbeat.
func mustStartYellow(t testing.TB, router, pub string) *testYellow {
	t.Helper()
	return mustStartYellowHB(t, router, pub, hb)
}

// mustStartYellowHB starts a yellow with the given heartbeat.
func mustStartYellowHB(t testing.TB, router, pub string, heartbeat time.Duration) *testYellow {
	t.Helper()
	opts := yellow.NewOptions()
	opts.RouterAddr, opts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	if router != "" {
		opts.RouterAddr = router
	}
	if pub != "" {
		opts.PubAddr = pub
	}
	opts.Heartbeat, opts.TickInterval, opts.ExpireAfter = heartbeat, heartbeat, deadBeats
	var (
		y   *yellow.Yellow
		err error
	)
	// A port just freed by a previous yellow may take a moment to bind.
	for i := 0; i < 50; i++ {
		if y, err = yellow.New(opts, testLogger(t).With("yellow", "")); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("yellow.New: %v", err)
	}
	ty := &testYellow{Yellow: y, done: make(chan error, 1)}
	go func() { ty.done <- y.Main() }()
	t.Cleanup(ty.stop)
	return ty
}

// stop exits yellow and waits for Main; it is idempotent.
func (y *testYellow) stop() {
	y.once.Do(func() {
		y.Exit()
		<-y.done
	})
}

// has reports whether yellow holds the instance id of service.
func (y *testYellow) has(service, id string) bool {
	for _, inst := range y.Registry().Query(service) {
		if inst.GetId() == id {
			return true
		}
	}
	return false
}

// testServer is a running service instance.
type testServer struct {
	*services.Server
	done chan error
}

// mustStart starts an instance of handlers with test options (port 0,
// short heartbeat), modified by mod, registered with yellows; it waits
// until every yellow holds it. t.Cleanup exits it.
func mustStart(t testing.TB, name string, handlers map[string]services.HandlerFunc, yellows []*testYellow, mod func(*services.Options)) *testServer {
	t.Helper()
	opts := services.NewOptions()
	opts.Name = name
	opts.Heartbeat = hb
	opts.DrainTimeout = 5 * time.Second
	for _, y := range yellows {
		opts.Yellows = append(opts.Yellows, y.RouterEndpoint())
	}
	if mod != nil {
		mod(&opts)
	}
	var (
		s   *services.Server
		err error
	)
	for i := 0; i < 50; i++ { // a port just freed may take a moment to bind
		if s, err = services.NewServer(opts, handlers, testLogger(t).With("server", name)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ts := &testServer{Server: s, done: make(chan error, 1)}
	go func() { ts.done <- s.Main() }()
	t.Cleanup(s.Exit)
	for _, y := range yellows {
		checkFor(t, 5*time.Second, "instance registered with yellow", func() bool { return y.has(name, s.InstanceID()) })
	}
	return ts
}

// mustStartEcho starts an echo instance (plus extra handlers, if any).
func mustStartEcho(t testing.TB, yellows []*testYellow, mod func(*services.Options), extra map[string]services.HandlerFunc) *testServer {
	t.Helper()
	h := echo.Handlers()
	for m, f := range extra {
		h[m] = f
	}
	return mustStart(t, echo.Name, h, yellows, mod)
}

// peerOpts are the link options of test clients: heartbeats as fast as the
// rest, and redials at most a heartbeat apart.
func peerOpts(t testing.TB) link.PeerOptions {
	return link.PeerOptions{
		HeartbeatInterval: hb,
		DeadAfter:         expiry,
		BackoffMax:        hb,
		Logger:            testLogger(t).With("peer", ""),
	}
}

// newClient returns a Client of yellows that has synced; t.Cleanup closes
// it.
func newClient(t testing.TB, yellows ...*testYellow) *services.Client {
	t.Helper()
	return newClientOpts(t, services.ClientOptions{Heartbeat: hb, Peer: peerOpts(t)}, yellows...)
}

// newClientOpts is newClient with opts (Yellows and Logger are set here).
func newClientOpts(t testing.TB, opts services.ClientOptions, yellows ...*testYellow) *services.Client {
	t.Helper()
	opts.Logger = testLogger(t).With("client", "")
	for _, y := range yellows {
		opts.Yellows = append(opts.Yellows, y.RouterEndpoint())
	}
	c := services.NewClient(opts)
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Pool().WaitSynced(ctx); err != nil {
		t.Fatalf("client never synced: %v", err)
	}
	return c
}

// dial returns a link straight to s (no yellow), up and alive.
func dial(t testing.TB, s *services.Server) *link.Peer {
	t.Helper()
	p := link.Dial(s.Endpoint(), peerOpts(t))
	t.Cleanup(func() { _ = p.Close() })
	checkFor(t, 5*time.Second, "link alive", p.Alive)
	return p
}

// rawCall sends one request over p.
func rawCall(ctx context.Context, p *link.Peer, method string, payload []byte) (*platformpb.Envelope, error) {
	return p.Call(ctx, &platformpb.Envelope{Method: method, Payload: payload})
}

// echoCall calls echo.Echo through c with payload and checks the reply;
// it returns the instance id that answered.
func echoCall(ctx context.Context, c *services.Client, payload string) (string, error) {
	rep, err := c.CallRaw(ctx, router.Target{}, echo.MethodEcho, nil, []byte(payload))
	if err != nil {
		return "", err
	}
	if string(rep.GetPayload()) != payload {
		return rep.GetSender(), fmt.Errorf("echo %q came back as %q", payload, rep.GetPayload())
	}
	return rep.GetSender(), nil
}
