package link

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// TestInlineHandlers: a lone request of an Inline method runs on its
// connection's reading goroutine; none does while another request runs; a
// panic there is answered and reading goes on; handlers that hold the
// reader longer than InlineBudget twice in a row stop inline runs.
func TestInlineHandlers(t *testing.T) {
	var slow atomic.Bool
	holding := make(chan struct{}, 1)
	release := make(chan struct{})
	s := mustListen(t, "", ServerOptions{
		InstanceID: "x-1",
		Inline:     func(m string) bool { return m == "x.Fast" || m == "x.Panic" },
	}, func(_ context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		switch req.GetMethod() {
		case "x.Fast":
			if slow.Load() {
				time.Sleep(2 * InlineBudget)
			}
			reply(&platformpb.Envelope{Payload: req.GetPayload()})
		case "x.Panic":
			panic("boom")
		case "x.Hold":
			holding <- struct{}{}
			<-release
			reply(&platformpb.Envelope{Payload: req.GetPayload()})
		}
	})
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	call := func(method string, i int) startResult {
		t.Helper()
		want := fmt.Sprintf("%s %d", method, i)
		r := <-startCall(t, p, &platformpb.Envelope{Method: method, Payload: []byte(want)}, 10*time.Second)
		if method != "x.Panic" && (r.err != nil || string(r.rep.GetPayload()) != want) {
			t.Fatalf("%s: %v, %q", want, r.err, r.rep.GetPayload())
		}
		return r
	}

	const calls = 40
	for i := range calls {
		call("x.Fast", i)
	}
	// A heartbeat buffered behind a request makes it go to a goroutine:
	// most, not all, lone calls run inline.
	if n := s.Stats().Inline; n < calls/2 {
		t.Fatalf("%d of %d lone calls ran inline", n, calls)
	}

	// While a request runs, none runs inline.
	held := startCall(t, p, &platformpb.Envelope{Method: "x.Hold", Payload: []byte("held")}, 10*time.Second)
	<-holding
	before := s.Stats().Inline
	for i := range 5 {
		call("x.Fast", i)
	}
	if n := s.Stats().Inline; n != before {
		t.Fatalf("%d calls ran inline while another request ran", n-before)
	}
	close(release)
	if r := <-held; r.err != nil || string(r.rep.GetPayload()) != "held" {
		t.Fatalf("held call: %v, %q", r.err, r.rep.GetPayload())
	}

	// An overrun alone does not stop inline runs (it may be the machine's);
	// two in a row do (for inlineCooldown, longer than the rest of the
	// test).
	slow.Store(true)
	call("x.Fast", 0)
	slow.Store(false)
	before = s.Stats().Inline
	call("x.Fast", 1)
	if st := s.Stats(); st.InlineOverruns == 0 || st.Inline == before {
		t.Skipf("the slow or the next call did not run inline (a heartbeat was buffered): overruns %d", st.InlineOverruns)
	}
	slow.Store(true)
	call("x.Fast", 2)
	call("x.Fast", 3)
	slow.Store(false)
	before = s.Stats().Inline
	for i := range 5 {
		call("x.Fast", i)
	}
	if n := s.Stats().Inline; n != before {
		t.Fatalf("%d calls ran inline after two overruns in a row", n-before)
	}

	// A panic is answered "internal", and the connection reads on.
	if r := call("x.Panic", 0); r.err != nil || r.rep.GetErrorCode() != "internal" {
		t.Fatalf("panicking handler: %v, error code %q, want internal", r.err, r.rep.GetErrorCode())
	}
	call("x.Fast", 0)
}
