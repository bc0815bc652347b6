package yellow

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// Registration keeps one instance registered with every configured yellow:
// each yellow independently, with its own goroutine, heartbeats and retries.
// Nothing in it ever blocks the service.
type Registration struct {
	opts  ClientOptions
	log   *slog.Logger
	inst  *platformpb.Instance // never modified
	load  func() float64
	meta  func() map[string]string // nil: inst.Meta only
	state atomic.Int32             // platformpb.InstanceState

	metaMu  sync.Mutex // guards metaErr
	metaErr string     // the last invalid meta logged, not repeated

	links []*regLink
	ever  atomic.Bool // some yellow took the record once

	ctx    context.Context // cancelled by Close / Abandon: aborts calls
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup
}

// regLink is the registration with one yellow.
type regLink struct {
	endpoint   string
	peer       peer
	kick       chan struct{} // cap 1: beat now
	registered atomic.Bool
}

// RegisterOption adds to what a Registration sends (WithMeta).
type RegisterOption func(*Registration)

// WithMeta makes meta the source of the record's meta labels: it is called
// before every registration and every beat (from one goroutine per yellow
// at once: it must be safe for concurrent use, and quick), and its labels,
// over inst.Meta's (its own win), are the record's. A beat carries them
// only when they changed since that yellow last took them, and yellow
// emits a delta for the change as for a new load, so consumers see them
// within a beat. The labels keep yellow's bounds on meta: at most
// MaxMetaEntries, keys of 1..MaxMetaKeyLen bytes, values of at most
// MaxMetaValueLen, the whole record within yellow's max_record_bytes
// (DefaultMaxRecordBytes, 4 KiB, by default); labels past the first
// three are logged and not sent (the last valid ones stay), and a record
// past the fourth is refused by yellow.
func WithMeta(meta func() map[string]string) RegisterOption {
	return func(r *Registration) { r.meta = meta }
}

// Register starts keeping inst registered with every yellow in
// opts.Yellows and returns at once. load, when not nil, is called before
// every beat for the current load (it should be quick); otherwise inst.Load
// is sent. More options add to the record (WithMeta). The record is
// validated here too, and an invalid one is logged (yellow rejects it, and
// the registration keeps retrying slowly).
func Register(opts ClientOptions, inst *platformpb.Instance, load func() float64, more ...RegisterOption) *Registration {
	opts = opts.withDefaults()
	return register(linkTransport{log: opts.Logger, heartbeat: opts.Heartbeat, tls: opts.TLS}, opts, inst, load, more...)
}

func register(tr transport, opts ClientOptions, inst *platformpb.Instance, load func() float64, more ...RegisterOption) *Registration {
	opts = opts.withDefaults()
	rec := proto.Clone(inst).(*platformpb.Instance)
	if rec.GetState() == platformpb.InstanceState_INSTANCE_STATE_UNSPECIFIED {
		rec.State = platformpb.InstanceState_INSTANCE_STATE_READY
	}
	r := &Registration{
		opts: opts,
		log:  opts.Logger.With("service", rec.GetService(), "instance", rec.GetId()),
		inst: rec,
		load: load,
	}
	for _, o := range more {
		o(r)
	}
	r.state.Store(int32(rec.GetState()))
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if err := ValidateInstance(r.record(), maxMaxRecordBytes); err != nil {
		r.log.Error("yellow: registering an invalid record", "err", err)
	}
	if len(opts.Yellows) == 0 {
		r.log.Warn("yellow: no yellows configured: the instance will not be discoverable")
	}
	for _, ep := range opts.Yellows {
		l := &regLink{endpoint: ep, peer: tr.dial(ep), kick: make(chan struct{}, 1)}
		r.links = append(r.links, l)
	}
	for _, l := range r.links {
		r.wg.Add(1)
		go r.run(l)
	}
	return r
}

// SetState changes the state sent to yellow (DRAINING before a shutdown);
// it goes out with a beat at once.
func (r *Registration) SetState(s platformpb.InstanceState) {
	if r.state.Swap(int32(s)) == int32(s) {
		return
	}
	for _, l := range r.links {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// State returns the state sent to yellow.
func (r *Registration) State() platformpb.InstanceState {
	return platformpb.InstanceState(r.state.Load())
}

// Registered returns how many yellows hold the registration as far as the
// last exchange with each tells.
func (r *Registration) Registered() int {
	n := 0
	for _, l := range r.links {
		if l.registered.Load() {
			n++
		}
	}
	return n
}

// EverRegistered reports whether some yellow has taken the registration
// since Register: the instance has been discoverable. Unlike Registered it
// stays true while yellows are unreachable later (consumers keep their
// last view of it then).
func (r *Registration) EverRegistered() bool { return r.ever.Load() }

// Close stops heartbeating and deregisters from every yellow, best effort
// and bounded by ctx; it returns the deregistration failures joined.
// Calling it again does nothing.
func (r *Registration) Close(ctx context.Context) error {
	if !r.stop() {
		return nil
	}
	errs := make([]error, len(r.links))
	var wg sync.WaitGroup
	for i, l := range r.links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := &platformpb.YellowRequest{
				Op: platformpb.YellowOp_YELLOW_OP_DEREGISTER, Service: r.inst.GetService(), Id: r.inst.GetId(),
			}
			if _, err := call(ctx, l.peer, r.opts.Timeout, MethodDeregister, req); err != nil {
				errs[i] = err
			}
			l.registered.Store(false)
			_ = l.peer.Close()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Abandon stops heartbeating without deregistering, as if the process had
// died: yellows expire the record after their expiry window. Calling it
// (or Close) again does nothing.
func (r *Registration) Abandon() {
	if !r.stop() {
		return
	}
	for _, l := range r.links {
		l.registered.Store(false)
		_ = l.peer.Close()
	}
}

// stop ends the goroutines; false if already stopped.
func (r *Registration) stop() bool {
	if !r.closed.CompareAndSwap(false, true) {
		return false
	}
	r.cancel()
	r.wg.Wait()
	return true
}

// record returns the record to register now: inst with the current load,
// state and meta.
func (r *Registration) record() *platformpb.Instance {
	rec := proto.Clone(r.inst).(*platformpb.Instance)
	rec.Load = r.currentLoad()
	rec.State = r.State()
	if m, ok := r.currentMeta(); ok {
		rec.Meta = m
	}
	return rec
}

// currentMeta returns the labels to send now: inst's meta under what the
// meta option returns. ok is false without the option, or when the
// labels break yellow's rules (logged once per distinct error): the
// caller then keeps what it sent last.
func (r *Registration) currentMeta() (m map[string]string, ok bool) {
	if r.meta == nil {
		return nil, false
	}
	dyn := r.meta()
	if len(r.inst.GetMeta()) == 0 {
		m = maps.Clone(dyn)
	} else {
		m = maps.Clone(r.inst.GetMeta())
		maps.Copy(m, dyn)
	}
	err := validateMeta(m)
	r.metaMu.Lock()
	defer r.metaMu.Unlock()
	if err != nil {
		if err.Error() != r.metaErr {
			r.log.Error("yellow: meta labels not sent", "err", err)
			r.metaErr = err.Error()
		}
		return nil, false
	}
	r.metaErr = ""
	return m, true
}

// currentLoad calls load and clamps it into what yellow accepts; NaN reads
// as full.
func (r *Registration) currentLoad() float64 {
	if r.load == nil {
		return r.inst.GetLoad()
	}
	l := r.load()
	switch {
	case math.IsNaN(l):
		return 1
	case l < 0:
		return 0
	case l > MaxLoad:
		return MaxLoad
	}
	return l
}

// run keeps the registration with one yellow: register, then beat every
// interval; on "unknown", a new epoch or a failed call, register again,
// with backoff while the yellow is unreachable.
func (r *Registration) run(l *regLink) {
	defer r.wg.Done()
	log := r.log.With("yellow", l.endpoint)
	interval := r.opts.Heartbeat
	// Retries after a failure start at half a beat (a restarted yellow is
	// usually back within one) and back off to four beats, so that many
	// providers knocking on a dead yellow cost little.
	minBackoff, maxBackoff := interval/2, 4*interval
	backoff := minBackoff
	var epoch string
	down := false                  // logged as down; log again only when it comes back
	var rejected string            // last rejection logged, not repeated
	var sentMeta map[string]string // the meta this yellow took last
	timer := time.NewTimer(0)
	defer timer.Stop()
	fail := func(err error) {
		l.registered.Store(false)
		if isRejection(err) {
			if err.Error() != rejected {
				log.Error("yellow: registration rejected", "err", err)
				rejected = err.Error()
			}
			backoff = maxBackoff
		} else if !down {
			log.Warn("yellow: unreachable, retrying", "err", err)
			down = true
		}
		timer.Reset(jitter(backoff))
		backoff = min(2*backoff, maxBackoff)
	}
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-timer.C:
		case <-l.kick:
		}
		if !l.registered.Load() {
			waitAlive(r.ctx, l.peer, r.opts.Timeout)
			rec := r.record()
			req := &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_REGISTER, Instance: rec}
			rep, err := call(r.ctx, l.peer, r.opts.Timeout, MethodRegister, req)
			if r.ctx.Err() != nil {
				return
			}
			if err != nil {
				fail(err)
				continue
			}
			if down || epoch != "" {
				log.Info("yellow: registered again", "epoch", rep.GetEpoch())
			} else {
				log.Debug("yellow: registered", "epoch", rep.GetEpoch())
			}
			down, backoff, epoch, rejected = false, minBackoff, rep.GetEpoch(), ""
			sentMeta = rec.GetMeta()
			interval = replyInterval(r.opts.Heartbeat, rep)
			minBackoff, maxBackoff = interval/2, 4*interval
			l.registered.Store(true)
			r.ever.Store(true)
			timer.Reset(interval)
			continue
		}
		hb := &platformpb.Instance{
			Service: r.inst.GetService(), Id: r.inst.GetId(), Load: r.currentLoad(), State: r.State(),
		}
		if m, ok := r.currentMeta(); ok && !maps.Equal(m, sentMeta) {
			if len(m) == 0 {
				// A beat without meta keeps the record's: dropping every
				// label takes a registration.
				l.registered.Store(false)
				timer.Reset(0)
				continue
			}
			hb.Meta = m
		}
		req := &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_HEARTBEAT, Instance: hb}
		rep, err := call(r.ctx, l.peer, r.opts.Timeout, MethodHeartbeat, req)
		if r.ctx.Err() != nil {
			return
		}
		switch {
		case err != nil:
			fail(err)
		case rep.GetUnknown() || rep.GetEpoch() != epoch:
			// Expired, or yellow restarted: register again at once.
			log.Info("yellow: forgot us, registering again", "epoch", rep.GetEpoch(), "unknown", rep.GetUnknown())
			l.registered.Store(false)
			timer.Reset(0)
		default:
			if hb.Meta != nil {
				sentMeta = hb.Meta
			}
			timer.Reset(interval)
		}
	}
}
