package yellow

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// maxDeltaBytes bounds a Delta payload the watcher decodes: the largest
// record any yellow accepts (maxMaxRecordBytes) plus the delta's own fields.
const maxDeltaBytes = maxMaxRecordBytes + requestOverhead

// decodeDelta decodes and checks one event received from a yellow's PUB
// socket.
func decodeDelta(ev *platformpb.Event) (*platformpb.Delta, error) {
	if ev.GetType() != EventTypeDelta {
		return nil, fmt.Errorf("%w: event type %q, want %s", ErrBadDelta, wire.Snippet(ev.GetType()), EventTypeDelta)
	}
	if n := len(ev.GetPayload()); n > maxDeltaBytes {
		return nil, fmt.Errorf("%w: delta of %d bytes, at most %d", ErrBadDelta, n, maxDeltaBytes)
	}
	d := &platformpb.Delta{}
	if err := proto.Unmarshal(ev.GetPayload(), d); err != nil {
		return nil, fmt.Errorf("%w: undecodable Delta: %v", ErrBadDelta, err)
	}
	if d.GetEpoch() == "" {
		return nil, fmt.Errorf("%w: delta without epoch", ErrBadDelta)
	}
	switch d.GetOp() {
	case platformpb.DeltaOp_DELTA_OP_TICK:
	case platformpb.DeltaOp_DELTA_OP_UPSERT:
		if err := ValidateInstance(d.GetInstance(), maxMaxRecordBytes); err != nil {
			return nil, fmt.Errorf("%w: delta %d: %v", ErrBadDelta, d.GetSeq(), err)
		}
	case platformpb.DeltaOp_DELTA_OP_REMOVE:
		if d.GetInstance() == nil || d.GetInstance().GetService() == "" || d.GetInstance().GetId() == "" {
			return nil, fmt.Errorf("%w: delta %d: REMOVE without service and id", ErrBadDelta, d.GetSeq())
		}
	default:
		return nil, fmt.Errorf("%w: delta %d: unknown op %d", ErrBadDelta, d.GetSeq(), int32(d.GetOp()))
	}
	if d.GetSeq() == 0 && d.GetOp() != platformpb.DeltaOp_DELTA_OP_TICK {
		return nil, fmt.Errorf("%w: delta with seq 0", ErrBadDelta)
	}
	return d, nil
}

// applyResult says what applying a delta did.
type applyResult int

const (
	// applyIgnored: a stale, duplicate or earlier-epoch delta, or one that
	// arrived before the first snapshot.
	applyIgnored applyResult = iota
	// applyOK: a TICK confirming the view, or a delta applied.
	applyOK
	// applyChanged: the delta changed the view.
	applyChanged
	// applyResync: a gap or a new epoch: take a fresh snapshot.
	applyResync
)

// viewState is one yellow's view as a consumer follows it: the records of
// the last snapshot plus the deltas applied since, the epoch and the seq of
// the last delta applied. It is pure logic; the watcher guards it.
type viewState struct {
	synced    bool
	epoch     string
	prevEpoch string // deltas of this epoch are leftovers of a restart
	seq       uint64
	recs      map[instanceKey]*platformpb.Instance
}

// install replaces the view with a snapshot taken at seq in epoch. The
// records are stored as given and must not be modified afterwards.
func (v *viewState) install(recs []*platformpb.Instance, seq uint64, epoch string) {
	if v.epoch != "" && v.epoch != epoch {
		v.prevEpoch = v.epoch
	}
	v.synced, v.epoch, v.seq = true, epoch, seq
	v.recs = make(map[instanceKey]*platformpb.Instance, len(recs))
	for _, r := range recs {
		if r != nil {
			v.recs[keyOf(r)] = r
		}
	}
}

// apply applies one decoded delta in seq order; changed is the key of the
// record it changed (with applyChanged).
func (v *viewState) apply(d *platformpb.Delta) (res applyResult, changed instanceKey) {
	if !v.synced || d.GetEpoch() == v.prevEpoch {
		return applyIgnored, changed
	}
	if d.GetEpoch() != v.epoch {
		return applyResync, changed
	}
	if d.GetOp() == platformpb.DeltaOp_DELTA_OP_TICK {
		if d.GetSeq() > v.seq {
			return applyResync, changed
		}
		return applyOK, changed
	}
	switch {
	case d.GetSeq() <= v.seq:
		return applyIgnored, changed
	case d.GetSeq() > v.seq+1:
		return applyResync, changed
	}
	v.seq = d.GetSeq()
	inst := d.GetInstance()
	if inst == nil {
		return applyOK, changed
	}
	changed = keyOf(inst)
	switch d.GetOp() {
	case platformpb.DeltaOp_DELTA_OP_UPSERT:
		v.recs[changed] = inst
	case platformpb.DeltaOp_DELTA_OP_REMOVE:
		if _, ok := v.recs[changed]; !ok {
			return applyOK, changed
		}
		delete(v.recs, changed)
	default:
		return applyOK, changed
	}
	return applyChanged, changed
}
