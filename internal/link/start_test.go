package link

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// startResult is what a Start's callback got.
type startResult struct {
	rep *platformpb.Envelope
	err error
}

// startCall starts req on p and returns the channel its callback sends to
// (once: a second call would block and fail the test by its timeout).
func startCall(t *testing.T, p *Peer, req *platformpb.Envelope, timeout time.Duration) <-chan startResult {
	t.Helper()
	ch := make(chan startResult, 1)
	if err := p.Start(req, time.Now().Add(timeout), func(rep *platformpb.Envelope, err error) {
		select {
		case ch <- startResult{rep, err}:
		default:
			t.Errorf("Start's callback called twice (%v)", err)
		}
	}); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return ch
}

// TestStartReplies starts many calls from many goroutines: each callback
// gets its own reply, once, and nothing stays in flight.
func TestStartReplies(t *testing.T) {
	s := mustListen(t, "", ServerOptions{InstanceID: "echo-1"}, echo)
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	const callers, calls = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for i := range calls {
				want := fmt.Sprintf("caller %d call %d", c, i)
				r := <-startCall(t, p, &platformpb.Envelope{Method: "echo.Echo", Payload: []byte(want)}, 10*time.Second)
				if r.err != nil {
					errs <- r.err
					return
				}
				if got := string(r.rep.GetPayload()); got != want {
					errs <- fmt.Errorf("got %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := p.InFlight(); n != 0 {
		t.Fatalf("InFlight() = %d after every callback ran", n)
	}
}

// TestLoneCallsWrittenDirectly: calls one at a time leave from their
// caller and their replies from their handler's goroutine (no switch to
// either side's writer), and every one is answered.
func TestLoneCallsWrittenDirectly(t *testing.T) {
	s := mustListen(t, "", ServerOptions{InstanceID: "echo-1"}, echo)
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	const calls = 50
	for i := range calls {
		want := fmt.Sprintf("call %d", i)
		r := <-startCall(t, p, &platformpb.Envelope{Method: "echo.Echo", Payload: []byte(want)}, 10*time.Second)
		if r.err != nil || string(r.rep.GetPayload()) != want {
			t.Fatalf("call %d: %v, %q", i, r.err, r.rep.GetPayload())
		}
	}
	// Heartbeats may overlap a call and go through a writer: most, not
	// all, are direct.
	if ps, ss := p.Stats(), s.Stats(); ps.DirectWrites < calls/2 || ss.DirectWrites < calls/2 {
		t.Fatalf("direct writes: peer %d, server %d of %d lone calls", ps.DirectWrites, ss.DirectWrites, calls)
	}
}

// TestStartDeadline: a call the server never answers gets ErrTimeout at
// its deadline, and the server's handler ends then too (the deadline
// travels in the envelope, the CANCEL follows).
func TestStartDeadline(t *testing.T) {
	handlerDone := make(chan struct{}, 1)
	s := mustListen(t, "", ServerOptions{}, func(ctx context.Context, _ *platformpb.Envelope, _ func(*platformpb.Envelope)) {
		<-ctx.Done() // never replies
		handlerDone <- struct{}{}
	})
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	r := <-startCall(t, p, &platformpb.Envelope{Method: "x.Hang"}, 300*time.Millisecond)
	if !errors.Is(r.err, ErrTimeout) {
		t.Fatalf("callback error %v, want ErrTimeout", r.err)
	}
	select {
	case <-handlerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's handler did not end")
	}
	if err := p.Start(&platformpb.Envelope{Method: "x.Hang"}, time.Now().Add(-time.Second), func(*platformpb.Envelope, error) {
		t.Error("callback of a call not started")
	}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Start past its deadline: %v, want ErrTimeout", err)
	}
	checkFor(t, 5*time.Second, "in flight back to 0", func() bool { return p.InFlight() == 0 })
}

// TestStartLinkDies: calls waiting on a link that dies get ErrUnavailable
// at once, not at their deadline; after Close, Start refuses.
func TestStartLinkDies(t *testing.T) {
	release := make(chan struct{})
	running := make(chan struct{}, 8)
	s := mustListen(t, "", ServerOptions{}, func(ctx context.Context, _ *platformpb.Envelope, _ func(*platformpb.Envelope)) {
		running <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	defer close(release)
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	var chs []<-chan startResult
	for range 4 {
		chs = append(chs, startCall(t, p, &platformpb.Envelope{Method: "x.Hang"}, time.Minute))
	}
	for range 4 {
		<-running
	}
	start := time.Now()
	s.Close()
	for i, ch := range chs {
		select {
		case r := <-ch:
			if !errors.Is(r.err, ErrUnavailable) {
				t.Fatalf("call %d: %v, want ErrUnavailable", i, r.err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("call %d: no callback %v after the server closed", i, time.Since(start))
		}
	}
	p.Close()
	if err := p.Start(&platformpb.Envelope{Method: "x"}, time.Now().Add(time.Second), func(*platformpb.Envelope, error) {
		t.Error("callback after Close")
	}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Start after Close: %v, want ErrClosed", err)
	}
}

// TestSendOrder: one sender's messages reach the remote in the order they
// were sent, whether each was written by its sender (a lone call) or
// queued for the writer (others in flight), with other senders in
// between. The remote is a bare zmq4 ROUTER, which hands each
// connection's messages up in arrival order. Under the rule of a lone
// call (loneDirect) bursts always go through the writer, so both paths
// are exercised whatever the timing; under the default rule (calls also
// written directly while the writer's batches are small) the order holds
// as well.
func TestSendOrder(t *testing.T) {
	t.Run("lone calls direct", func(t *testing.T) { sendOrder(t, true) })
	t.Run("small batches direct", func(t *testing.T) { sendOrder(t, false) })
}

func sendOrder(t *testing.T, loneDirect bool) {
	const senders, perSender = 4, 600
	rt := zmq4.NewRouter(context.Background(), zmq4.WithLogger(zmqLogger(testLogger(t))))
	t.Cleanup(func() { rt.Close() })
	if err := rt.Listen("tcp://127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = make(map[int][]int) // sender -> sequence numbers in arrival order
	)
	go func() {
		for {
			msg, err := rt.Recv()
			if err != nil {
				return
			}
			if len(msg.Frames) != 2 {
				continue
			}
			env := new(platformpb.Envelope)
			if proto.Unmarshal(msg.Frames[1], env) != nil {
				continue
			}
			var b []byte
			switch env.GetKind() {
			case platformpb.Kind_KIND_PING:
				b, _ = encodeEnvelope(nil, envelopeOverrides{kind: platformpb.Kind_KIND_PONG, requestID: env.GetRequestId()})
			case platformpb.Kind_KIND_REQUEST:
				var s, i int
				if _, err := fmt.Sscanf(string(env.GetPayload()), "%d/%d", &s, &i); err == nil {
					mu.Lock()
					seen[s] = append(seen[s], i)
					mu.Unlock()
				}
				b, _ = encodeEnvelope(&platformpb.Envelope{Payload: env.GetPayload()},
					envelopeOverrides{kind: platformpb.Kind_KIND_REPLY, requestID: env.GetRequestId()})
			default:
				continue
			}
			if rt.Send(zmq4.NewMsgFrom(msg.Frames[0], b)) != nil {
				return
			}
		}
	}()
	opts := fastPeerOptions(t)
	opts.loneDirect = loneDirect
	p := mustDial(t, "tcp://"+rt.Addr().String(), opts, true)

	// Each sender starts bursts of 1 to 8 calls without waiting, then
	// waits for the burst's replies: the first call of a burst may go
	// out directly, the rest queue behind it.
	var wg sync.WaitGroup
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perSender; {
				burst := min(1+i%8, perSender-i)
				var chans []<-chan startResult
				for range burst {
					req := &platformpb.Envelope{Method: "m", Payload: fmt.Appendf(nil, "%d/%d", s, i)}
					chans = append(chans, startCall(t, p, req, 10*time.Second))
					i++
				}
				for _, ch := range chans {
					if r := <-ch; r.err != nil {
						t.Errorf("sender %d: %v", s, r.err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for s := range senders {
		got := seen[s]
		if len(got) != perSender {
			t.Errorf("sender %d: %d messages arrived, want %d", s, len(got), perSender)
		}
		for k, i := range got {
			if i != k {
				t.Fatalf("sender %d: message %d arrived in position %d: out of order", s, i, k)
			}
		}
	}
	st := p.Stats()
	if loneDirect && (st.DirectWrites == 0 || st.DirectWrites >= st.Calls) {
		t.Errorf("%d of %d calls written directly: want both paths exercised", st.DirectWrites, st.Calls)
	}
	t.Logf("%d calls, %d written by their sender", st.Calls, st.DirectWrites)
}

// TestStartDeadlinesOrdered: started calls time out in deadline order on
// the link's one timer, a call started later with an earlier deadline
// included (it re-arms the timer), and an answered call never times out.
func TestStartDeadlinesOrdered(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		if req.GetMethod() == "x.Echo" {
			reply(&platformpb.Envelope{Payload: req.GetPayload()})
			return
		}
		<-ctx.Done() // x.Hang never replies
	})
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	order := make(chan string, 3)
	start := func(name, method string, d time.Duration) {
		if err := p.Start(&platformpb.Envelope{Method: method, Payload: []byte(name)}, time.Now().Add(d), func(rep *platformpb.Envelope, err error) {
			switch {
			case errors.Is(err, ErrTimeout):
				order <- name + " timeout"
			case err != nil:
				order <- name + " " + err.Error()
			default:
				order <- name + " " + string(rep.GetPayload())
			}
		}); err != nil {
			t.Fatalf("Start %s: %v", name, err)
		}
	}
	start("late", "x.Hang", 2500*time.Millisecond)
	start("answered", "x.Echo", 2000*time.Millisecond)
	start("early", "x.Hang", 800*time.Millisecond)
	var got []string
	for range 3 {
		got = append(got, <-order)
	}
	want := []string{"answered answered", "early timeout", "late timeout"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("callbacks %q, want %q", got, want)
	}
	checkFor(t, 5*time.Second, "in flight back to 0", func() bool { return p.InFlight() == 0 })
	if st := p.Stats(); st.Timeouts != 2 {
		t.Fatalf("timeouts %d, want 2", st.Timeouts)
	}
}
