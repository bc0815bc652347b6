package router

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/freeport"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/wire"
)

// movedRig is a pool over two link servers of service "room": room-old,
// which answers every request "moved" to room-new (it handed the key over),
// and room-new, which echoes. The view is installed by hand.
type movedRig struct {
	pool     *Pool
	router   *Router
	old, new *platformpb.Instance
	moves    atomic.Int64  // "moved" replies room-old sent
	movedc   chan struct{} // one token per "moved" reply, after it was sent
	listen   func(id, endpoint string, h link.Handler) *platformpb.Instance
}

// serveNew is room-new's handler: it serves the key.
func (rig *movedRig) serveNew(_ context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	reply(&platformpb.Envelope{Payload: req.GetPayload(), Addressed: req.GetAddressed(), Sender: "room-new"})
}

func newMovedRig(t *testing.T) *movedRig {
	t.Helper()
	rig := &movedRig{movedc: make(chan struct{}, 1024)}
	rig.listen = func(id, endpoint string, h link.Handler) *platformpb.Instance {
		srv, err := link.Listen(endpoint, link.ServerOptions{InstanceID: id}, h)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return &platformpb.Instance{Service: "room", Id: id, Router: srv.Endpoint(), State: platformpb.InstanceState_INSTANCE_STATE_READY}
	}
	rig.old = rig.listen("room-old", "tcp://127.0.0.1:0", func(_ context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		rig.moves.Add(1)
		reply(&platformpb.Envelope{ErrorCode: wire.CodeMoved, ErrorMessage: "room-new", Addressed: req.GetAddressed(), Sender: "room-old"})
		rig.movedc <- struct{}{}
	})
	rig.new = rig.listen("room-new", "tcp://127.0.0.1:0", rig.serveNew)
	rig.pool = NewPool(PoolOptions{Peer: link.PeerOptions{HeartbeatInterval: 50 * time.Millisecond, BackoffMax: 50 * time.Millisecond}})
	t.Cleanup(rig.pool.Close)
	rig.router = New(rig.pool, Options{MaxHops: DefaultMaxHops, ConnectWait: 5 * time.Second})
	return rig
}

func (rig *movedRig) install(all ...*platformpb.Instance) {
	rig.pool.refreshMu.Lock()
	defer rig.pool.refreshMu.Unlock()
	rig.pool.install(all)
}

func (rig *movedRig) call(ctx context.Context) (*platformpb.Envelope, error) {
	return rig.callTo(ctx, "")
}

// callResult is what a call started by start returned.
type callResult struct {
	rep *platformpb.Envelope
	err error
}

// start calls key r1 (at instance when it is not "") in a goroutine.
func (rig *movedRig) start(ctx context.Context, instance string) <-chan callResult {
	done := make(chan callResult, 1)
	go func() {
		rep, err := rig.callTo(ctx, instance)
		done <- callResult{rep, err}
	}()
	return done
}

// callTo calls key r1, at instance when it is not "".
func (rig *movedRig) callTo(ctx context.Context, instance string) (*platformpb.Envelope, error) {
	return rig.router.Call(ctx, Request{
		Target:  Target{Service: "room", Stateful: true, Key: "room", Value: "r1", Instance: instance},
		Env:     &platformpb.Envelope{Method: "room.Act", Payload: []byte("a")},
		Timeout: 10 * time.Second,
	})
}

// TestMovedToAnInstanceNotYetListed: an instance hands a key to a new
// instance and answers "moved" to it before this view lists the new one (a
// rolling deploy or a scale-up: yellow's update reaches the broker a beat
// later). The request follows the new owner once it is listed, instead of
// taking it for a dead owner whose lease must expire and waiting until its
// deadline (the CI failures of TestRebalanceOneToThree and
// TestClusterScaleAndDeploy: "no owner of room ... reachable within 5s").
func TestMovedToAnInstanceNotYetListed(t *testing.T) {
	rig := newMovedRig(t)
	rig.install(rig.old)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := rig.start(ctx, "")
	<-rig.movedc // room-old answered "moved" to an instance this view has never listed
	// The request waits for the view to change (nothing else here waits on
	// it); only then is room-new listed. A router that took room-new for
	// a dead owner asks room-old again instead, and never waits.
	waiting := func() bool {
		rig.pool.changes.mu.Lock()
		defer rig.pool.changes.mu.Unlock()
		return rig.pool.changes.ch != nil
	}
	testenv.CheckFor(t, 10*time.Second, "the request waiting for room-new to be listed", func() bool {
		return waiting() || rig.moves.Load() > 1
	})
	rig.install(rig.old, rig.new)
	r := <-done
	if r.err != nil || r.rep.GetErrorCode() != "" {
		t.Fatalf("call = %v, %q %q; want room-new's reply", r.err, r.rep.GetErrorCode(), r.rep.GetErrorMessage())
	}
	if got := r.rep.GetSender(); got != "room-new" {
		t.Fatalf("reply from %q, want room-new", got)
	}
	if n := rig.moves.Load(); n != 1 {
		t.Errorf("room-old answered %d moved, want 1: the request went back to it", n)
	}
	if o := rig.router.CachedOwner("room", "r1"); o != "room-new" {
		t.Errorf("cached owner %q, want room-new", o)
	}
}

// TestMovedToADepartedInstance: "moved" to an instance this view listed and
// then saw leave is a dead owner: the request does not wait for it to come
// back (ConnectWait is an hour here), it waits out the lease, asking the
// next owner by placement, until its deadline.
func TestMovedToADepartedInstance(t *testing.T) {
	rig := newMovedRig(t)
	rig.router.opts.ConnectWait = time.Hour
	rig.install(rig.old, rig.new)
	rig.install(rig.old) // room-new left
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := rig.call(ctx)
	if code := wire.CodeOf(err); code != wire.CodeTimeout {
		t.Fatalf("call = %v; want a timeout (no owner reachable)", err)
	}
	if n := rig.moves.Load(); n < 2 {
		t.Errorf("room-old was asked %d times; the lease wait asks the next owner again", n)
	}
	if rig.router.listedSoon(context.Background(), "room", "room-new") {
		t.Error("a departed instance is live")
	}
	// Listed draining: not waited for either.
	draining := &platformpb.Instance{Service: "room", Id: "room-new", Router: rig.new.GetRouter(), State: platformpb.InstanceState_INSTANCE_STATE_DRAINING}
	rig.install(rig.old, draining)
	if rig.router.listedSoon(context.Background(), "room", "room-new") {
		t.Error("a draining instance is live")
	}
}

// TestMovedToAnOwnerThatWasDown: the owner's link was not up when the
// request tried it (an instance that just started, slow to accept, or a
// link down a moment), and another instance answers "moved" to it: it holds
// the lease, so the request asks it again after the lease wait's pause
// rather than excluding it until its deadline (TestRebalanceOneToThree on
// a loaded machine: "not live room-6076, moved by room-9b85, lease wait
// for room-6076, moved by room-9b85, ..." for 5 s).
func TestMovedToAnOwnerThatWasDown(t *testing.T) {
	rig := newMovedRig(t)
	rig.router.opts.ConnectWait = 50 * time.Millisecond
	port, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	down := &platformpb.Instance{Service: "room", Id: "room-new", Router: endpoint, State: platformpb.InstanceState_INSTANCE_STATE_READY}
	rig.install(rig.old, down) // room-new listed, nothing listening yet
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := rig.start(ctx, "room-new")
	<-rig.movedc // room-new was not live; room-old answered "moved" to it
	rig.listen("room-new", endpoint, rig.serveNew)
	r := <-done
	if r.err != nil || r.rep.GetSender() != "room-new" {
		t.Fatalf("call = %v, %q from %q; want room-new's reply", r.err, r.rep.GetErrorCode(), r.rep.GetSender())
	}
}

// TestOnlyOwnerDown: a rolling deploy of a pool of one instance. The old
// instance is draining; the new one is listed ready but its link is not up
// within ConnectWait (a loaded machine: TestClusterScaleAndDeploy's "no
// live instance of room"). No other instance can own the key, so the
// request asks the new one again, pausing between tries, until its link
// is up, instead of waiting for another owner until its deadline.
func TestOnlyOwnerDown(t *testing.T) {
	rig := newMovedRig(t)
	retried := make(chan struct{}, 64)
	rig.router.log = slog.New(&msgHandler{msg: "router: asking again an owner this request could not reach", c: retried})
	rig.router.opts.ConnectWait = 20 * time.Millisecond
	port, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := fmt.Sprintf("tcp://127.0.0.1:%d", port)
	draining := &platformpb.Instance{Service: "room", Id: "room-old", Router: rig.old.GetRouter(), State: platformpb.InstanceState_INSTANCE_STATE_DRAINING}
	rig.install(draining, &platformpb.Instance{Service: "room", Id: "room-new", Router: endpoint, State: platformpb.InstanceState_INSTANCE_STATE_READY})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := rig.start(ctx, "")
	select {
	case <-retried: // the request found room-new down and tries it again
	case r := <-done:
		t.Fatalf("call = %v, %q before room-new was up", r.err, r.rep.GetErrorCode())
	}
	rig.listen("room-new", endpoint, rig.serveNew)
	if r := <-done; r.err != nil || r.rep.GetSender() != "room-new" {
		t.Fatalf("call = %v, %q from %q; want room-new's reply", r.err, r.rep.GetErrorCode(), r.rep.GetSender())
	}
	if n := rig.moves.Load(); n != 0 {
		t.Errorf("the draining instance was asked %d times", n)
	}
}

// msgHandler is a slog handler that signals c on each record with message
// msg: a test waits on the router's decisions without sleeping.
type msgHandler struct {
	msg string
	c   chan struct{}
}

func (h *msgHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *msgHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.c <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h *msgHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *msgHandler) WithGroup(string) slog.Handler      { return h }
