package yellow

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Epoch tags every delta; it changes each time yellow starts.
	Epoch string
	// TTL is how long a record lives without a heartbeat
	// (Heartbeat * ExpireAfter).
	TTL time.Duration
	// MaxInstances bounds the number of records (0: DefaultMaxInstances).
	MaxInstances int
	// MaxRecordBytes bounds one record's encoded size
	// (0: DefaultMaxRecordBytes).
	MaxRecordBytes int
	// MaxPerOwner bounds the records one identity may hold, so that no
	// one client fills MaxInstances (0: DefaultMaxPerIdentity). Records of
	// no identity (a plain, insecure link) are bounded by MaxInstances
	// only.
	MaxPerOwner int
}

type instanceKey struct{ service, id string }

func keyOf(inst *platformpb.Instance) instanceKey {
	return instanceKey{inst.GetService(), inst.GetId()}
}

type entry struct {
	// inst is never modified once stored: a change stores a new record, so
	// deltas and snapshots may share it.
	inst    *platformpb.Instance
	expires time.Time
	// owner is the identity that registered the record ("" on a plain
	// link): only it may heartbeat, replace or deregister the record.
	owner string
}

// Registry is yellow's table of instance records, keyed by (service, id).
// Every change gets the next sequence number and is handed, as a Delta, to
// the emit function given to NewRegistry, in seq order. It is safe for
// concurrent use; emit runs with the registry's lock held and must not block
// or call back into the registry.
type Registry struct {
	cfg  RegistryConfig
	emit func(*platformpb.Delta)

	mu      sync.Mutex // guards everything below
	seq     uint64
	entries map[instanceKey]*entry
	owned   map[string]int // records per owner (owners other than "")
}

// NewRegistry returns an empty registry. emit may be nil.
func NewRegistry(cfg RegistryConfig, emit func(*platformpb.Delta)) *Registry {
	if cfg.MaxInstances <= 0 {
		cfg.MaxInstances = DefaultMaxInstances
	}
	if cfg.MaxRecordBytes <= 0 {
		cfg.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if cfg.MaxPerOwner <= 0 {
		cfg.MaxPerOwner = DefaultMaxPerIdentity
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultHeartbeat * DefaultExpireAfter
	}
	if emit == nil {
		emit = func(*platformpb.Delta) {}
	}
	return &Registry{cfg: cfg, emit: emit, entries: make(map[instanceKey]*entry), owned: make(map[string]int)}
}

// Epoch returns the epoch the registry tags its deltas with.
func (r *Registry) Epoch() string { return r.cfg.Epoch }

// Seq returns the number of the last delta.
func (r *Registry) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Len returns the number of records.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// change numbers a delta and emits it. Caller holds r.mu.
func (r *Registry) change(op platformpb.DeltaOp, inst *platformpb.Instance) *platformpb.Delta {
	r.seq++
	d := &platformpb.Delta{Seq: r.seq, Epoch: r.cfg.Epoch, Op: op, Instance: inst}
	r.emit(d)
	return d
}

// Register is RegisterAs with no owner (a plain link).
func (r *Registry) Register(inst *platformpb.Instance, now time.Time) (*platformpb.Delta, error) {
	return r.RegisterAs("", inst, now)
}

// RegisterAs validates inst and inserts or replaces the record with its
// (service, id) on behalf of owner, refreshing its expiry. A record from a
// different router endpoint replaces the old one (the instance restarted).
// A record another owner holds is not touched: ErrNotOwner. A new record
// beyond MaxInstances, or beyond MaxPerOwner of owner's, is
// ErrTooManyInstances. It returns the UPSERT delta, or nil when the record
// did not change.
func (r *Registry) RegisterAs(owner string, inst *platformpb.Instance, now time.Time) (*platformpb.Delta, error) {
	if err := ValidateInstance(inst, r.cfg.MaxRecordBytes); err != nil {
		return nil, err
	}
	rec := proto.Clone(inst).(*platformpb.Instance)
	k := keyOf(rec)
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[k]
	switch {
	case ok && e.owner != owner:
		return nil, notOwner(k, e.owner)
	case !ok && len(r.entries) >= r.cfg.MaxInstances:
		return nil, fmt.Errorf("%w: yellow holds at most %d", ErrTooManyInstances, r.cfg.MaxInstances)
	case !ok && owner != "" && r.owned[owner] >= r.cfg.MaxPerOwner:
		return nil, fmt.Errorf("%w: %s holds %d records, at most %d per identity", ErrTooManyInstances, owner, r.owned[owner], r.cfg.MaxPerOwner)
	case !ok:
		e = &entry{owner: owner}
		r.entries[k] = e
		if owner != "" {
			r.owned[owner]++
		}
	}
	e.expires = now.Add(r.cfg.TTL)
	if ok && proto.Equal(e.inst, rec) {
		return nil, nil
	}
	e.inst = rec
	return r.change(platformpb.DeltaOp_DELTA_OP_UPSERT, rec), nil
}

// Heartbeat is HeartbeatAs with no owner (a plain link).
func (r *Registry) Heartbeat(hb *platformpb.Instance, now time.Time) (d *platformpb.Delta, unknown bool, err error) {
	return r.HeartbeatAs("", hb, now)
}

// HeartbeatAs refreshes the expiry of the record (hb.service, hb.id) and
// takes hb's load and, when set, its state and its meta, on behalf of
// owner, who must be the record's (else ErrNotOwner). Meta, when hb
// carries any, replaces the record's whole meta (validated as at
// registration, the record's encoded size with it included); a heartbeat
// without meta keeps the record's (proto3 maps have no presence, so a
// heartbeat cannot empty it: register again to drop every label).
// unknown is true when there is no such record: the provider must
// register again. The delta is nil when nothing but the expiry changed.
func (r *Registry) HeartbeatAs(owner string, hb *platformpb.Instance, now time.Time) (d *platformpb.Delta, unknown bool, err error) {
	if err := validateHeartbeat(hb); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.entries[keyOf(hb)]
	if !ok {
		return nil, true, nil
	}
	if e.owner != owner {
		return nil, false, notOwner(keyOf(hb), e.owner)
	}
	state := hb.GetState()
	if state == platformpb.InstanceState_INSTANCE_STATE_UNSPECIFIED {
		state = e.inst.GetState()
	}
	newMeta := len(hb.GetMeta()) > 0 && !maps.Equal(e.inst.GetMeta(), hb.GetMeta())
	if e.inst.GetLoad() == hb.GetLoad() && e.inst.GetState() == state && !newMeta {
		e.expires = now.Add(r.cfg.TTL)
		return nil, false, nil
	}
	rec := proto.Clone(e.inst).(*platformpb.Instance)
	rec.Load = hb.GetLoad()
	rec.State = state
	if newMeta {
		rec.Meta = maps.Clone(hb.GetMeta())
		if n := proto.Size(rec); n > r.cfg.MaxRecordBytes {
			// Refused whole, expiry included, as an oversized
			// registration is: the provider hears of it.
			return nil, false, fieldErr("instance", "encoded size %d bytes with the heartbeat's meta, at most %d", n, r.cfg.MaxRecordBytes)
		}
	}
	e.expires = now.Add(r.cfg.TTL)
	e.inst = rec
	return r.change(platformpb.DeltaOp_DELTA_OP_UPSERT, rec), false, nil
}

// Deregister is DeregisterAs with no owner (a plain link, or yellow
// itself).
func (r *Registry) Deregister(service, id string) (d *platformpb.Delta, unknown bool, err error) {
	return r.DeregisterAs("", service, id)
}

// DeregisterAs removes the record (service, id) on behalf of owner, who
// must be the record's (else ErrNotOwner). unknown is true when there was
// none (deregistering twice is not an error).
func (r *Registry) DeregisterAs(owner, service, id string) (d *platformpb.Delta, unknown bool, err error) {
	if err := ValidateServiceName(service); err != nil {
		return nil, false, err
	}
	if err := ValidateID(id); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := instanceKey{service, id}
	e, ok := r.entries[k]
	if !ok {
		return nil, true, nil
	}
	if e.owner != owner {
		return nil, false, notOwner(k, e.owner)
	}
	r.remove(k, e)
	return r.change(platformpb.DeltaOp_DELTA_OP_REMOVE, e.inst), false, nil
}

// remove deletes the entry at k. Caller holds mu.
func (r *Registry) remove(k instanceKey, e *entry) {
	delete(r.entries, k)
	if e.owner != "" {
		if r.owned[e.owner]--; r.owned[e.owner] <= 0 {
			delete(r.owned, e.owner)
		}
	}
}

// notOwner is the error for a change to a record another identity holds.
func notOwner(k instanceKey, owner string) error {
	if owner == "" {
		owner = "a plain link"
	}
	return fmt.Errorf("%w: %s/%s belongs to %s", ErrNotOwner, k.service, k.id, owner)
}

// Expire removes every record whose expiry is not after now and returns
// their REMOVE deltas.
func (r *Registry) Expire(now time.Time) []*platformpb.Delta {
	r.mu.Lock()
	defer r.mu.Unlock()
	var expired []*entry
	for _, e := range r.entries {
		if !e.expires.After(now) {
			expired = append(expired, e)
		}
	}
	// In key order, so that deltas come out the same way every time.
	slices.SortFunc(expired, func(a, b *entry) int { return compareInstances(a.inst, b.inst) })
	ds := make([]*platformpb.Delta, 0, len(expired))
	for _, e := range expired {
		r.remove(keyOf(e.inst), e)
		ds = append(ds, r.change(platformpb.DeltaOp_DELTA_OP_REMOVE, e.inst))
	}
	return ds
}

// Tick emits and returns a TICK delta: no instance, the current seq (not
// incremented), so that consumers notice lost deltas and restarts when
// nothing changes.
func (r *Registry) Tick() *platformpb.Delta {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := &platformpb.Delta{Seq: r.seq, Epoch: r.cfg.Epoch, Op: platformpb.DeltaOp_DELTA_OP_TICK}
	r.emit(d)
	return d
}

// Query returns copies of the records of service (every record when service
// is empty), sorted by service then id.
func (r *Registry) Query(service string) []*platformpb.Instance {
	recs, _ := r.snapshot(service)
	for i, rec := range recs {
		recs[i] = proto.Clone(rec).(*platformpb.Instance)
	}
	return recs
}

// Snapshot returns copies of every record, sorted by service then id, and
// the seq of the last delta they include.
func (r *Registry) Snapshot() ([]*platformpb.Instance, uint64) {
	recs, seq := r.snapshot("")
	for i, rec := range recs {
		recs[i] = proto.Clone(rec).(*platformpb.Instance)
	}
	return recs, seq
}

// snapshot is Query without copies: the records are shared and must not
// be modified.
func (r *Registry) snapshot(service string) ([]*platformpb.Instance, uint64) {
	r.mu.Lock()
	recs := make([]*platformpb.Instance, 0, len(r.entries))
	for k, e := range r.entries {
		if service == "" || k.service == service {
			recs = append(recs, e.inst)
		}
	}
	seq := r.seq
	r.mu.Unlock()
	slices.SortFunc(recs, compareInstances)
	return recs, seq
}

func compareInstances(a, b *platformpb.Instance) int {
	if c := cmp.Compare(a.GetService(), b.GetService()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetId(), b.GetId())
}
