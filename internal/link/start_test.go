package link

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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
