package yellow

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

func upsert(seq uint64, epoch, service, id string) *platformpb.Delta {
	return &platformpb.Delta{Seq: seq, Epoch: epoch, Op: platformpb.DeltaOp_DELTA_OP_UPSERT, Instance: testInstance(service, id)}
}

func TestViewStateApply(t *testing.T) {
	var v viewState
	if res, _ := v.apply(upsert(1, "e", "a", "1")); res != applyIgnored {
		t.Fatal("applied before the first snapshot")
	}
	v.install([]*platformpb.Instance{testInstance("a", "1")}, 5, "e")
	steps := []struct {
		d    *platformpb.Delta
		want applyResult
		seq  uint64
		n    int
	}{
		{upsert(4, "e", "a", "2"), applyIgnored, 5, 1}, // buffered before the snapshot
		{upsert(5, "e", "a", "2"), applyIgnored, 5, 1},
		{upsert(6, "e", "a", "2"), applyChanged, 6, 2},
		{upsert(6, "e", "a", "3"), applyIgnored, 6, 2}, // duplicate
		{&platformpb.Delta{Seq: 6, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_TICK}, applyOK, 6, 2},
		{&platformpb.Delta{Seq: 7, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_REMOVE, Instance: testInstance("a", "1")}, applyChanged, 7, 1},
		{&platformpb.Delta{Seq: 8, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_REMOVE, Instance: testInstance("a", "9")}, applyOK, 8, 1},
		{&platformpb.Delta{Seq: 9, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_TICK}, applyResync, 8, 1}, // lost delta 9
		{upsert(10, "e", "a", "4"), applyResync, 8, 1}, // gap
		{upsert(9, "f", "a", "4"), applyResync, 8, 1},  // new epoch
	}
	for i, s := range steps {
		res, _ := v.apply(s.d)
		if res != s.want || v.seq != s.seq || len(v.recs) != s.n {
			t.Fatalf("step %d: res %v seq %d n %d, want %v %d %d", i, res, v.seq, len(v.recs), s.want, s.seq, s.n)
		}
	}
	// After a restart, deltas of the old epoch still queued are dropped.
	v.install(nil, 0, "f")
	if res, _ := v.apply(upsert(9, "e", "a", "5")); res != applyIgnored {
		t.Fatal("old epoch delta not ignored")
	}
	if res, _ := v.apply(upsert(1, "f", "a", "5")); res != applyChanged {
		t.Fatal("new epoch delta not applied")
	}
}

func TestDecodeDelta(t *testing.T) {
	enc := func(d *platformpb.Delta) *platformpb.Event {
		b, _ := proto.Marshal(d)
		return &platformpb.Event{Type: EventTypeDelta, Payload: b}
	}
	if _, err := decodeDelta(enc(upsert(1, "e", "a", "1"))); err != nil {
		t.Fatal(err)
	}
	bad := upsert(1, "e", "a", "1")
	bad.Instance.Router = "nope"
	for _, tc := range []struct {
		ev   *platformpb.Event
		want string
	}{
		{&platformpb.Event{Type: "x"}, `bad delta: event type "x", want yellow.Delta`},
		{&platformpb.Event{Type: EventTypeDelta, Payload: []byte{0xff}}, "bad delta: undecodable Delta: "},
		{enc(&platformpb.Delta{Seq: 1, Op: platformpb.DeltaOp_DELTA_OP_TICK}), "bad delta: delta without epoch"},
		{enc(&platformpb.Delta{Seq: 1, Epoch: "e", Op: 9}), "bad delta: delta 1: unknown op 9"},
		{enc(&platformpb.Delta{Seq: 1, Epoch: "e", Op: platformpb.DeltaOp_DELTA_OP_REMOVE}), "bad delta: delta 1: REMOVE without service and id"},
		{enc(bad), `bad delta: delta 1: invalid record: router: must be tcp://host:port, got "nope"`},
		{enc(upsert(0, "e", "a", "1")), "bad delta: delta with seq 0"},
		{&platformpb.Event{Type: EventTypeDelta, Payload: make([]byte, maxDeltaBytes+1)}, "bad delta: delta of 66561 bytes, at most 66560"},
	} {
		_, err := decodeDelta(tc.ev)
		if err == nil || len(err.Error()) < len(tc.want) || err.Error()[:len(tc.want)] != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
}

func TestPubEndpoint(t *testing.T) {
	for _, tc := range [][3]string{
		{"tcp://10.0.0.5:1061", "tcp://yellow:1060", "tcp://10.0.0.5:1061"},
		{"tcp://0.0.0.0:1061", "tcp://yellow.internal:1060", "tcp://yellow.internal:1061"},
		{"tcp://*:1061", "tcp://[::1]:1060", "tcp://[::1]:1061"},
		{"", "tcp://y:1", ""},
		{"ipc://x", "tcp://y:1", ""},
	} {
		if got := pubEndpoint(tc[0], tc[1]); got != tc[2] {
			t.Errorf("pubEndpoint(%q, %q) = %q, want %q", tc[0], tc[1], got, tc[2])
		}
	}
}

func TestSubscribeFansOut(t *testing.T) {
	w := &Watcher{changes: make(chan struct{}, 1)}
	a, cancelA := w.Subscribe()
	b, cancelB := w.Subscribe()
	w.notify()
	w.notify() // coalesced
	for name, ch := range map[string]<-chan struct{}{"Changes": w.Changes(), "a": a, "b": b} {
		select {
		case <-ch:
		default:
			t.Fatalf("%s got no notification", name)
		}
		select {
		case <-ch:
			t.Fatalf("%s got two notifications for coalesced changes", name)
		default:
		}
	}
	cancelA()
	w.notify()
	select {
	case <-a:
		t.Fatal("a cancelled subscription was notified")
	default:
	}
	<-b
	cancelB()
}
