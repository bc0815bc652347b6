package link

import (
	"bytes"
	"context"
	"fmt"
	"sync"
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

// echoCall makes one round trip of payload to an echo handler through p
// and checks that the reply carries the payload back. The 10 s timeout is
// far above any healthy round trip, even under -race on a loaded machine,
// but keeps a lost reply from hanging the test until the test binary's
// own timeout. The reply is returned for the checks that differ by test.
func echoCall(p *Peer, method string, payload []byte) (*platformpb.Envelope, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rep, err := p.Call(ctx, &platformpb.Envelope{Method: method, Payload: payload})
	if err != nil {
		return nil, err
	}
	if got := rep.GetPayload(); !bytes.Equal(got, payload) {
		// Payloads run to megabytes: name the sizes and where they part,
		// and quote only a little of each from just before that point.
		d := firstDiff(got, payload)
		from := max(0, d-16)
		return rep, fmt.Errorf("%d-byte reply to a %d-byte request differs at byte %d: from byte %d, reply %.48q, request %.48q",
			len(got), len(payload), d, from, got[from:], payload[from:])
	}
	return rep, nil
}

// checkSender returns an error unless rep is a REPLY from the Server whose
// InstanceID is sender: a reply with the right payload could still have
// come through the wrong path.
func checkSender(rep *platformpb.Envelope, sender string) error {
	if rep.GetKind() != platformpb.Kind_KIND_REPLY || rep.GetSender() != sender {
		return fmt.Errorf("reply kind %v sender %q, want a REPLY from %q", rep.GetKind(), rep.GetSender(), sender)
	}
	return nil
}

// goCallers starts callers goroutines, each of which runs call(caller, i)
// for i from 0 to calls-1 and stops at its first error. wait waits for all
// of them and returns the first error, naming the caller and call. It is
// for tests that have work of their own on the test goroutine while the
// callers run (t.Fatal may be called only there); the others use
// runCallers.
func goCallers(callers, calls int, call func(caller, i int) error) (wait func() error) {
	var wg sync.WaitGroup
	errc := make(chan error, callers) // one error at most per caller: no send blocks
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				if err := call(c, i); err != nil {
					errc <- fmt.Errorf("caller %d call %d: %w", c, i, err)
					return
				}
			}
		})
	}
	return func() error {
		wg.Wait()
		close(errc)
		first, more := <-errc, len(errc)
		if first != nil && more > 0 {
			// Whether one caller failed or all did tells a lost reply
			// from a dead link.
			return fmt.Errorf("%w (and %d more callers failed)", first, more)
		}
		return first
	}
}

// runCallers runs callers concurrent callers of calls calls each (see
// goCallers) to the end and fails the test on the first error.
func runCallers(t testing.TB, callers, calls int, call func(caller, i int) error) {
	t.Helper()
	if err := goCallers(callers, calls, call)(); err != nil {
		t.Fatal(err)
	}
}

// firstDiff is the index of the first byte in which a and b differ (the
// shorter one's length if one is a prefix of the other).
func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
