package router

import (
	"context"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
)

// TestDrainingMarkEndsWithItsProcess: an instance marked draining (it
// answered "draining" before yellow said so) is skipped while yellow lists
// that process as ready; the mark ends when yellow lists it draining or
// gone, or lists another process under the same id (a supervisor reuses
// ids: echo-2 drained, a new echo-2 started), which is a candidate again.
func TestDrainingMarkEndsWithItsProcess(t *testing.T) {
	p := NewPool(PoolOptions{})
	t.Cleanup(p.Close)
	rec := func(router string, state platformpb.InstanceState) []*platformpb.Instance {
		return []*platformpb.Instance{{Service: "echo", Id: "echo-2", Router: router, State: state}}
	}
	install := func(all []*platformpb.Instance) {
		p.refreshMu.Lock()
		defer p.refreshMu.Unlock()
		p.install(all)
	}
	ready, draining := platformpb.InstanceState_INSTANCE_STATE_READY, platformpb.InstanceState_INSTANCE_STATE_DRAINING

	install(rec("tcp://127.0.0.1:1001", ready))
	p.MarkDraining("echo-2")
	if p.HasCandidate("echo") {
		t.Fatal("a process that answered draining is still a candidate")
	}
	install(rec("tcp://127.0.0.1:1001", ready)) // yellow has not heard yet
	if p.HasCandidate("echo") {
		t.Fatal("the mark ended while yellow still lists the same process ready")
	}
	// Another process under the same id, before yellow dropped the first.
	install(rec("tcp://127.0.0.1:1002", ready))
	if !p.HasCandidate("echo") {
		t.Fatal("a new process under a drained instance's id is never picked")
	}
	// Yellow lists it draining: the mark's work is done, the state skips it.
	p.MarkDraining("echo-2")
	install(rec("tcp://127.0.0.1:1002", draining))
	install(rec("tcp://127.0.0.1:1002", ready)) // (a new process on the same endpoint)
	if !p.HasCandidate("echo") {
		t.Fatal("the mark outlived a draining record")
	}
}

// TestPickReplacement: after an instance answered "draining", the retry
// waits for a replacement this pool does not list yet (a rolling deploy
// drains the old instance as soon as yellow lists the new one, and this
// pool's view may lag); PickWait finds nothing in that case.
func TestPickReplacement(t *testing.T) {
	srv, err := link.Listen("tcp://127.0.0.1:0", link.ServerOptions{InstanceID: "echo-2"},
		func(_ context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
			reply(&platformpb.Envelope{Payload: req.GetPayload()})
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	p := NewPool(PoolOptions{Peer: link.PeerOptions{HeartbeatInterval: 50 * time.Millisecond}})
	t.Cleanup(p.Close)
	ready := platformpb.InstanceState_INSTANCE_STATE_READY
	install := func(all ...*platformpb.Instance) {
		p.refreshMu.Lock()
		defer p.refreshMu.Unlock()
		p.install(all)
	}
	old := &platformpb.Instance{Service: "echo", Id: "echo-1", Router: "tcp://127.0.0.1:1", State: ready}
	install(old)
	p.MarkDraining("echo-1")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := p.PickWait(ctx, "echo", 100*time.Millisecond, "echo-1"); err == nil {
		t.Fatal("PickWait found an instance where none is listed")
	}
	if !p.drainingUnseen("echo") {
		t.Fatal("an instance that answered draining, listed ready, is not seen as such")
	}
	type picked struct {
		id  string
		err error
	}
	got := make(chan picked, 1)
	go func() {
		_, inst, err := p.PickReplacement(ctx, "echo", 5*time.Second, "echo-1")
		got <- picked{inst.GetId(), err}
	}()
	// The replacement is listed after the retry started waiting (or
	// before: either way it is the one picked).
	install(old, &platformpb.Instance{Service: "echo", Id: "echo-2", Router: srv.Endpoint(), State: ready})
	if r := <-got; r.err != nil || r.id != "echo-2" {
		t.Fatalf("PickReplacement = %q, %v; want echo-2", r.id, r.err)
	}
	// With nothing coming, it gives up at its wait, not at once and not
	// past it.
	install(old)
	start := time.Now()
	if _, _, err := p.PickReplacement(ctx, "echo", 100*time.Millisecond, "echo-1"); err == nil {
		t.Fatal("PickReplacement found an instance where none is listed")
	}
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("PickReplacement gave up after %v, before its wait", d)
	}
}
