package link

import (
	"context"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/testenv"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// Test timings: heartbeats fast enough that death and recovery take a few
// hundred milliseconds.
const (
	testHeartbeat = 50 * time.Millisecond
	testDeadAfter = 3 * testHeartbeat
	testBackoff   = 100 * time.Millisecond
	// testSafeDeadAfter is the DeadAfter of tests that are not about link
	// death: with -race on a loaded 2-core CI machine a process can go
	// without CPU for longer than 3 x 50 ms, which would kill healthy links.
	testSafeDeadAfter = 2 * time.Second
	// slack is what timing assertions allow for scheduling delays under
	// -race on a loaded machine; the measured times are logged.
	slack = 250 * time.Millisecond
)

// testLogger and checkFor are the shared test helpers (internal/testenv).
var (
	testLogger = testenv.Logger
	checkFor   = testenv.CheckFor
)

// echo replies at once with the request's method and payload.
func echo(_ context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	reply(&platformpb.Envelope{Method: req.GetMethod(), Payload: req.GetPayload()})
}

// mustListen starts a Server on 127.0.0.1:0 (or ep) and closes it at cleanup.
func mustListen(t testing.TB, ep string, opts ServerOptions, h Handler) *Server {
	t.Helper()
	if ep == "" {
		ep = "tcp://127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Listen(ep, opts, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// fastPeerOptions are PeerOptions with test heartbeats; tests about link
// death set DeadAfter to testDeadAfter.
func fastPeerOptions(t testing.TB) PeerOptions {
	return PeerOptions{
		IdentityPrefix:    "test-",
		HeartbeatInterval: testHeartbeat,
		DeadAfter:         testSafeDeadAfter,
		BackoffMin:        10 * time.Millisecond,
		BackoffMax:        testBackoff,
		Logger:            testLogger(t),
	}
}

// mustDial dials ep, closes the Peer at cleanup and, if alive, waits until
// the link is up.
func mustDial(t testing.TB, ep string, opts PeerOptions, alive bool) *Peer {
	t.Helper()
	p := Dial(ep, opts)
	t.Cleanup(func() { p.Close() })
	if alive {
		checkFor(t, 5*time.Second, "peer alive", p.Alive)
	}
	return p
}
