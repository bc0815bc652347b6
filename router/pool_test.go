package router

import (
	"testing"

	"github.com/noonhq/noon/idl/gen/platformpb"
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
