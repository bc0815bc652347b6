package link

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

func TestEndpointPortZero(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, echo)
	if !strings.HasPrefix(s.Endpoint(), "tcp://127.0.0.1:") || strings.HasSuffix(s.Endpoint(), ":0") {
		t.Fatalf("Endpoint() = %q, want tcp://127.0.0.1:<real port>", s.Endpoint())
	}
	if _, err := Listen("ipc:///tmp/x", ServerOptions{}, echo); err == nil {
		t.Fatal("Listen(ipc://) succeeded, want an error")
	}
	if _, err := Listen(s.Endpoint(), ServerOptions{}, echo); err == nil {
		t.Fatal("second Listen on a bound port succeeded")
	}
}

func TestConcurrentCallers(t *testing.T) {
	s := mustListen(t, "", ServerOptions{InstanceID: "echo-1"}, echo)
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)

	const callers, calls = 64, 40
	var (
		mu  sync.Mutex
		ids = make(map[uint64]bool)
	)
	runCallers(t, callers, calls, func(c, i int) error {
		rep, err := echoCall(p, "echo.Echo", fmt.Appendf(nil, "caller %d call %d", c, i))
		if err != nil {
			return err
		}
		if err := checkSender(rep, "echo-1"); err != nil {
			return err
		}
		mu.Lock()
		dup := ids[rep.GetRequestId()]
		ids[rep.GetRequestId()] = true
		mu.Unlock()
		if dup || rep.GetRequestId() == 0 {
			return fmt.Errorf("request id %d reused", rep.GetRequestId())
		}
		return nil
	})
	if len(ids) != callers*calls {
		t.Fatalf("%d distinct request ids, want %d", len(ids), callers*calls)
	}
	if n := p.InFlight(); n != 0 {
		t.Fatalf("InFlight() = %d after all calls returned", n)
	}
	t.Logf("peer %+v", p.Stats())
	t.Logf("server %+v", s.Stats())
}

func TestCallDeadlineWhenServerNeverReplies(t *testing.T) {
	canceled := make(chan uint64, 1)
	running := make(chan struct{}, 2) // a handler started
	handlerDone := make(chan error, 1)
	s := mustListen(t, "", ServerOptions{
		OnCancel: func(_ string, id uint64) { canceled <- id },
	}, func(ctx context.Context, _ *platformpb.Envelope, _ func(*platformpb.Envelope)) {
		running <- struct{}{}
		<-ctx.Done() // never replies
		handlerDone <- ctx.Err()
	})
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)

	const timeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	_, err := p.Call(ctx, &platformpb.Envelope{Method: "x.Hang"})
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Call error %v, want ErrTimeout", err)
	}
	if took > timeout+slack {
		t.Fatalf("Call returned after %v, deadline was %v", took, timeout)
	}
	t.Logf("Call returned %v after %v", err, took)
	// The handler's context ends at the same deadline (the server got it in
	// the envelope), or at the CANCEL, whichever comes first.
	select {
	case err := <-handlerDone:
		t.Logf("handler context ended: %v", err)
	case <-time.After(time.Second):
		t.Fatal("handler context did not end")
	}
	if p.InFlight() != 0 {
		t.Fatalf("InFlight() = %d", p.InFlight())
	}
	checkFor(t, time.Second, "server in-flight back to 0", func() bool { return s.InFlight() == 0 })

	// A call canceled before its deadline, while the server runs it, sends
	// CANCEL, which reaches OnCancel.
	<-running // the first call's
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	go func() { <-running; cancel() }()
	if _, err := p.Call(ctx, &platformpb.Envelope{Method: "x.Hang"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled Call error %v, want context.Canceled", err)
	}
	select {
	case id := <-canceled:
		t.Logf("server saw CANCEL of request %d", id)
	case <-time.After(time.Second):
		t.Fatal("OnCancel not called")
	}
	if err := <-handlerDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context error %v after CANCEL, want context.Canceled", err)
	}
}

func TestServerClosedMidLoad(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		go func() {
			time.Sleep(time.Millisecond)
			reply(&platformpb.Envelope{Payload: req.GetPayload()})
		}()
	})
	opts := fastPeerOptions(t)
	opts.DeadAfter = testDeadAfter
	p := mustDial(t, s.Endpoint(), opts, true)

	const timeout = 500 * time.Millisecond
	var (
		wg                  sync.WaitGroup
		ok, unavail, tmo    atomic.Int64
		stop                = make(chan struct{})
		errc                = make(chan error, 16)
		closedAt            atomic.Int64
		afterClose, callsOK atomic.Int64
	)
	for range 16 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				start := time.Now()
				_, err := p.Call(ctx, &platformpb.Envelope{Payload: []byte("x")})
				took := time.Since(start)
				cancel()
				if took > timeout+slack {
					errc <- fmt.Errorf("Call took %v with a %v deadline", took, timeout)
					return
				}
				switch {
				case err == nil:
					ok.Add(1)
					if c := closedAt.Load(); c != 0 && start.UnixNano() > c {
						callsOK.Add(1)
					}
				case errors.Is(err, ErrUnavailable):
					unavail.Add(1)
					if closedAt.Load() != 0 {
						afterClose.Add(1)
					}
					time.Sleep(time.Millisecond)
				case errors.Is(err, ErrTimeout):
					tmo.Add(1)
				default:
					errc <- fmt.Errorf("unexpected error %v", err)
					return
				}
			}
		})
	}
	checkFor(t, 5*time.Second, "calls flowing before the close", func() bool { return ok.Load() >= 100 })
	closedAt.Store(time.Now().UnixNano())
	s.Close()
	start := time.Now()
	checkFor(t, opts.DeadAfter+slack, "peer not alive after server close", func() bool { return !p.Alive() })
	t.Logf("peer reported !Alive %v after the server closed", time.Since(start))
	checkFor(t, 2*time.Second, "calls failing fast", func() bool { return afterClose.Load() > 10 })
	close(stop)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	if callsOK.Load() != 0 {
		t.Fatalf("%d calls started after Close succeeded", callsOK.Load())
	}
	t.Logf("ok=%d unavailable=%d timeout=%d; peer %+v", ok.Load(), unavail.Load(), tmo.Load(), p.Stats())
}

func TestServerRestartSamePort(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, echo)
	ep := s.Endpoint()
	opts := fastPeerOptions(t)
	opts.DeadAfter = testDeadAfter
	p := mustDial(t, ep, opts, true)
	call := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := p.Call(ctx, &platformpb.Envelope{Payload: []byte("hi")})
		return err
	}
	if err := call(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	checkFor(t, opts.DeadAfter+slack, "peer not alive", func() bool { return !p.Alive() })
	if err := call(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("call while down: %v, want ErrUnavailable", err)
	}
	// Stay down long enough for the backoff to reach its cap.
	time.Sleep(3 * opts.BackoffMax)

	var s2 *Server
	checkFor(t, 2*time.Second, "rebind the same port", func() bool {
		var err error
		s2, err = Listen(ep, ServerOptions{Logger: testLogger(t)}, echo)
		return err == nil
	})
	t.Cleanup(func() { s2.Close() })
	back := time.Now()
	limit := 2*opts.HeartbeatInterval + opts.BackoffMax
	checkFor(t, limit+2*slack, "peer alive again", p.Alive)
	if err := call(); err != nil {
		t.Fatalf("call after restart: %v", err)
	}
	took := time.Since(back)
	t.Logf("recovered %v after the server came back (heartbeat %v, backoff max %v)", took, opts.HeartbeatInterval, opts.BackoffMax)
	if took > limit+slack {
		t.Fatalf("recovery took %v, want within %v (+%v scheduling slack)", took, limit, slack)
	}
	if st := p.Stats(); st.Connects < 2 || st.Deaths < 1 {
		t.Fatalf("stats %+v: want a second connect after a death", st)
	}
}

func TestPeerSilentServerDeclaredDead(t *testing.T) {
	// A server that stops answering (here: its Load hook blocks, so the reader
	// stops) without closing the connection: only heartbeats can tell.
	var block atomic.Bool
	gate := make(chan struct{})
	s := mustListen(t, "", ServerOptions{Load: func() float64 {
		if block.Load() {
			<-gate
		}
		return 0.5
	}}, func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		if string(req.GetPayload()) == "block" {
			block.Store(true)
		}
		reply(&platformpb.Envelope{})
	})
	defer close(gate)
	opts := fastPeerOptions(t)
	opts.DeadAfter = testDeadAfter
	p := mustDial(t, s.Endpoint(), opts, true)
	checkFor(t, time.Second, "load reported", func() bool { return p.Load() == 0.5 })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, err := p.Call(ctx, &platformpb.Envelope{Payload: []byte("block")})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Call error %v, want ErrUnavailable", err)
	}
	took := time.Since(start)
	t.Logf("in-flight call failed after %v: %v", took, err)
	if took > testDeadAfter+testHeartbeat+slack {
		t.Fatalf("link death took %v, DeadAfter is %v", took, testDeadAfter)
	}
}

func TestLateReplyDropped(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		if string(req.GetPayload()) == "slow" {
			go func() {
				<-ctx.Done()
				time.Sleep(20 * time.Millisecond)
				reply(&platformpb.Envelope{Payload: []byte("late")})
			}()
			return
		}
		echo(ctx, req, reply)
	})
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := p.Call(ctx, &platformpb.Envelope{Payload: []byte("slow")})
	cancel()
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("slow call: %v, want ErrTimeout", err)
	}
	checkFor(t, time.Second, "late reply received and dropped", func() bool { return p.Stats().LateReplies >= 1 })
	if st := s.Stats(); st.Late != 1 {
		t.Fatalf("server Late = %d, want 1", st.Late)
	}
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		want := fmt.Appendf(nil, "fast %d", i)
		rep, err := p.Call(ctx, &platformpb.Envelope{Payload: want})
		cancel()
		if err != nil || !bytes.Equal(rep.GetPayload(), want) {
			t.Fatalf("call after a late reply: %q, %v; want %q", rep.GetPayload(), err, want)
		}
	}
}

func TestDialUnreachableThenServerStarts(t *testing.T) {
	// Find a free port, then dial it before anything listens there.
	s := mustListen(t, "", ServerOptions{}, echo)
	ep := s.Endpoint()
	s.Close()
	opts := fastPeerOptions(t)
	p := mustDial(t, ep, opts, false)
	start := time.Now()
	_, err := p.Call(context.Background(), &platformpb.Envelope{})
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > 10*time.Millisecond {
		t.Fatalf("Call on an unconnected peer: %v after %v, want ErrUnavailable at once", err, time.Since(start))
	}
	checkFor(t, time.Second, "dial errors", func() bool { return p.Stats().DialErrors >= 2 })
	mustListen(t, ep, ServerOptions{}, echo)
	checkFor(t, time.Second, "peer alive", p.Alive)

	bad := Dial("udp://127.0.0.1:1", PeerOptions{Logger: testLogger(t)})
	defer bad.Close()
	if _, err := bad.Call(context.Background(), &platformpb.Envelope{}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Call on a bad endpoint: %v", err)
	}
}

func TestCloseFailsWaitingCalls(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, func(ctx context.Context, _ *platformpb.Envelope, _ func(*platformpb.Envelope)) {})
	p := Dial(s.Endpoint(), fastPeerOptions(t))
	checkFor(t, time.Second, "alive", p.Alive)
	errc := make(chan error, 1)
	go func() {
		_, err := p.Call(context.Background(), &platformpb.Envelope{})
		errc <- err
	}()
	checkFor(t, time.Second, "call in flight", func() bool { return p.InFlight() == 1 })
	p.Close()
	p.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("waiting call got %v, want ErrClosed", err)
	}
	if _, err := p.Call(context.Background(), &platformpb.Envelope{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Call after Close: %v", err)
	}
}

func TestServerOverloadedAndPanics(t *testing.T) {
	release := make(chan struct{})
	s := mustListen(t, "", ServerOptions{MaxInFlight: 1, Load: func() float64 { return 0.75 }},
		func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
			switch string(req.GetPayload()) {
			case "block":
				<-release
				reply(&platformpb.Envelope{})
			case "panic":
				panic("boom")
			case "twice":
				reply(&platformpb.Envelope{})
				reply(&platformpb.Envelope{})
			}
		})
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	call := func(payload string) *platformpb.Envelope {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rep, err := p.Call(ctx, &platformpb.Envelope{Payload: []byte(payload)})
		if err != nil {
			t.Fatalf("%s: %v", payload, err)
		}
		return rep
	}
	done := make(chan *platformpb.Envelope)
	go func() { done <- call("block") }()
	checkFor(t, time.Second, "first request running", func() bool { return s.InFlight() == 1 })
	if rep := call("other"); rep.GetErrorCode() != "overloaded" {
		t.Fatalf("second request: %+v, want error_code overloaded", rep)
	}
	close(release)
	if rep := <-done; rep.GetErrorCode() != "" || rep.GetLoad() != 0.75 {
		t.Fatalf("blocked request: %+v", rep)
	}
	checkFor(t, time.Second, "slot released", func() bool { return s.InFlight() == 0 })
	if rep := call("panic"); rep.GetErrorCode() != "internal" {
		t.Fatalf("panicking handler: %+v, want error_code internal", rep)
	}
	call("twice")
	checkFor(t, time.Second, "duplicate reply counted", func() bool { return s.Stats().Duplicate == 1 })
	if st := s.Stats(); st.Panics != 1 || st.Overloaded != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTooLarge(t *testing.T) {
	s := mustListen(t, "", ServerOptions{MaxMessage: 1024}, func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		reply(&platformpb.Envelope{Payload: make([]byte, 2048)})
	})
	opts := fastPeerOptions(t)
	opts.MaxMessage = 1024
	p := mustDial(t, s.Endpoint(), opts, true)
	if _, err := p.Call(context.Background(), &platformpb.Envelope{Payload: make([]byte, 2000)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize request: %v, want ErrTooLarge", err)
	}
	rep, err := p.Call(context.Background(), &platformpb.Envelope{Payload: []byte("x")})
	if err != nil || rep.GetErrorCode() != "internal" {
		t.Fatalf("oversize reply: %+v, %v; want error_code internal", rep, err)
	}
}
