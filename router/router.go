// Package router is noon's one client-side router: how a request reaches a
// service instance. The broker routes every client request through it, and
// the service runtime's Client routes every service-to-service call through
// it, so both pick, retry, follow "moved" and wait for leases the same way.
//
// A Router calls through a Pool (one link per live instance, following
// yellow). A Request names its Target: a stateless service (the
// least-loaded live instance), a stateful key (the instance that owns it:
// the cached owner, else the rendezvous owner among the ready instances),
// or one instance by id. The stateful path is an explicit state machine
// (see Router.Call).
package router

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultConnectWait bounds how long a request waits for the link to a
	// listed instance to come up (the first request to a service, an
	// instance just started): a link on a LAN comes up in milliseconds; a
	// second covers a restarting instance without making a caller of a dead
	// service wait long.
	DefaultConnectWait = time.Second
	// DefaultMaxHops bounds how many "moved" replies one request follows:
	// one is the norm (a stale owner), a second covers an owner that moved
	// again meanwhile; more is a placement loop.
	DefaultMaxHops = 3
)

// Limits of stateful routing.
const (
	// maxCachedOwners bounds the owner cache: one entry per live key (room)
	// the router's callers use; a broker with 100k connections in rooms of
	// a few players has well under 100k rooms. When full, an arbitrary
	// entry makes room: a miss only costs a placement guess and perhaps a
	// "moved".
	maxCachedOwners = 100_000
	// leaseWaitMin and leaseWaitMax bound the pause before asking again
	// while a dead owner's lease has to expire: the first retry comes soon
	// (the lease may be about to expire), later ones back off to a few per
	// second, so a wait of a lease TTL (seconds) costs a handful of calls.
	leaseWaitMin = 10 * time.Millisecond
	leaseWaitMax = 250 * time.Millisecond
)

// Options configures a Router.
type Options struct {
	// ConnectWait bounds the wait for a link to come up (default
	// DefaultConnectWait), never past a request's deadline.
	ConnectWait time.Duration
	// MaxHops bounds the "moved" replies one request follows (0: none;
	// DefaultMaxHops is the usual choice).
	MaxHops int
	// OnMoved, when set, is called for every "moved" reply (a metric).
	OnMoved func()
	// Logger receives debug logs of retries; nil discards them.
	Logger *slog.Logger
}

// Router sends requests to service instances. It is safe for concurrent
// use.
type Router struct {
	pool   *Pool
	owners *ownerCache
	opts   Options
	log    *slog.Logger
}

// New returns a Router over pool, which the caller owns.
func New(pool *Pool, opts Options) *Router {
	if opts.ConnectWait <= 0 {
		opts.ConnectWait = DefaultConnectWait
	}
	opts.MaxHops = max(opts.MaxHops, 0)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{pool: pool, owners: newOwnerCache(), opts: opts, log: log}
}

// Pool returns the router's pool.
func (r *Router) Pool() *Pool { return r.pool }

// Target says which instance a request goes to.
type Target struct {
	// Service is the service in yellow.
	Service string
	// Stateful routes by Key: the instance that owns Value. With Value ""
	// (the request that creates or joins a key names it in its payload)
	// the request goes to the least-loaded instance, which answers "moved"
	// if the key is another's.
	Stateful bool
	// Key names the binding Value is the value of ("room"), for errors.
	Key string
	// Value is the key's value ("r42").
	Value string
	// Instance, when set, sends the request to this instance only: no
	// retry elsewhere, but "moved" is still followed for a stateful target.
	Instance string
}

// Request is one request to route.
type Request struct {
	Target Target
	// Env is the request envelope: method, session, payload, sender. The
	// link sets its kind, id and deadline.
	Env *platformpb.Envelope
	// Timeout is the request's whole deadline, for error messages ("got
	// no reply within 300ms"); the deadline itself is ctx's.
	Timeout time.Duration
}

// Call sends req to its target and returns the reply envelope, which may
// carry an error code, or a transport error as a *wire.Error
// (unavailable, timeout, bad_request for a request too large for the
// link). It never waits past ctx.
//
// A request that certainly did not run (the link's queue was full or it
// was not connected; the instance answered draining, closing or
// overloaded) is tried once more on another instance; for a stateful
// target, on the key's next owner.
//
// An error reply whose text names the instance that sent it (the service
// runtime's "overloaded: <instance> is running 256 requests") gets a
// generic text instead: no instance id reaches a client.
func (r *Router) Call(ctx context.Context, req Request) (*platformpb.Envelope, error) {
	var (
		rep *platformpb.Envelope
		err error
	)
	if req.Target.Stateful {
		rep, err = r.callStateful(ctx, req)
	} else {
		rep, err = r.callStateless(ctx, req)
	}
	if err == nil {
		scrub(rep, req.Env.GetMethod())
	}
	return rep, err
}

// scrub replaces the error text of rep when it names its sender, an
// internal instance id (kept in the logs by the service that sent it).
func scrub(rep *platformpb.Envelope, method string) {
	sender, msg := rep.GetSender(), rep.GetErrorMessage()
	if rep.GetErrorCode() == "" || sender == "" || !strings.Contains(msg, sender) {
		return
	}
	switch rep.GetErrorCode() {
	case wire.CodeOverloaded:
		rep.ErrorMessage = method + ": service busy, try again"
	case wire.CodeUnavailable:
		rep.ErrorMessage = method + ": service unreachable, try again"
	default:
		rep.ErrorMessage = method + ": " + strings.ReplaceAll(msg, sender, "<instance>")
	}
}

// callStateless sends req to the least-loaded live instance of its service
// (or to Target.Instance), retrying once elsewhere when it certainly did
// not run.
func (r *Router) callStateless(ctx context.Context, req Request) (*platformpb.Envelope, error) {
	return r.statelessFrom(ctx, req, retry{})
}

// retry is where a stateless call is: the instances tried, and what the
// last attempt got.
type retry struct {
	tried   []string
	lastErr error
	lastRep *platformpb.Envelope
	// drained: the last instance tried answered "draining", so the next
	// pick waits for a replacement this pool may not list yet.
	drained bool
}

// statelessFrom is callStateless after the attempts of st.
func (r *Router) statelessFrom(ctx context.Context, req Request, st retry) (*platformpb.Envelope, error) {
	for attempt := len(st.tried); attempt < 2; attempt++ {
		var (
			peer *link.Peer
			inst *platformpb.Instance
			err  error
		)
		if st.drained {
			peer, inst, err = r.pool.PickReplacement(ctx, req.Target.Service, r.opts.ConnectWait, st.tried...)
		} else {
			peer, inst, err = r.pick(ctx, req.Target, st.tried)
		}
		if err != nil {
			switch {
			case st.lastRep != nil:
				return st.lastRep, nil
			case st.lastErr != nil:
				return nil, st.lastErr
			}
			return nil, err
		}
		st.tried = append(st.tried, inst.GetId())
		rep, err := peer.Call(ctx, req.Env)
		if err != nil {
			st.lastErr = r.transportError(ctx, req, inst, err)
			if NotSent(err) && ctx.Err() == nil && req.Target.Instance == "" {
				r.log.Debug("router: not sent, retrying elsewhere", "method", req.Env.GetMethod(), "instance", inst.GetId(), "err", err)
				continue
			}
			return nil, st.lastErr
		}
		if r.notRun(ctx, req, inst, rep) {
			st.lastRep, st.lastErr, st.drained = rep, nil, wire.Draining(rep)
			continue
		}
		return rep, nil
	}
	if st.lastRep != nil {
		return st.lastRep, nil
	}
	return nil, st.lastErr
}

// notRun reports whether rep from inst says req did not run and may be
// tried elsewhere, marking a draining instance so.
func (r *Router) notRun(ctx context.Context, req Request, inst *platformpb.Instance, rep *platformpb.Envelope) bool {
	if !wire.NotRun(rep) || ctx.Err() != nil || req.Target.Instance != "" {
		return false
	}
	if wire.Draining(rep) {
		r.pool.MarkDraining(inst.GetId())
	}
	r.log.Debug("router: not run, retrying elsewhere", "method", req.Env.GetMethod(), "instance", inst.GetId(), "code", rep.GetErrorCode())
	return true
}

// Start is Call for a stateless target, without waiting: it sends req to
// the least-loaded live instance when one is connected and its link takes
// the request, and fn then gets what Call would have returned, exactly
// once, from the link's reader, the deadline's timer or (for a retry
// elsewhere) a goroutine of its own; fn must not block. Start returns
// false, having sent nothing, when req needs Call: a stateful or
// Target.Instance target, no instance connected, the link refusing it.
func (r *Router) Start(req Request, deadline time.Time, fn func(*platformpb.Envelope, error)) bool {
	if req.Target.Stateful || req.Target.Instance != "" {
		return false
	}
	peer, inst, err := r.pool.Pick(req.Target.Service)
	if err != nil {
		return false
	}
	err = peer.Start(req.Env, deadline, func(rep *platformpb.Envelope, err error) {
		ctx := context.Background()
		var st retry
		switch {
		case err != nil:
			st.lastErr = r.transportError(ctx, req, inst, err)
			if !NotSent(err) {
				fn(nil, st.lastErr)
				return
			}
		case r.notRun(ctx, req, inst, rep):
			st.lastRep, st.drained = rep, wire.Draining(rep)
		default:
			scrub(rep, req.Env.GetMethod())
			fn(rep, nil)
			return
		}
		// Try once elsewhere, as Call does, in a goroutine: it may
		// wait for a link.
		st.tried = []string{inst.GetId()}
		go func() {
			ctx, cancel := context.WithDeadline(context.Background(), deadline)
			defer cancel()
			rep, err := r.statelessFrom(ctx, req, st)
			if err == nil {
				scrub(rep, req.Env.GetMethod())
			}
			fn(rep, err)
		}()
	})
	return err == nil
}

// pick returns the link to the target instance, or to the least-loaded
// live instance of the target's service not in exclude, waiting up to
// ConnectWait for links that are still coming up.
func (r *Router) pick(ctx context.Context, t Target, exclude []string) (*link.Peer, *platformpb.Instance, error) {
	if t.Instance != "" {
		if slices.Contains(exclude, t.Instance) {
			return nil, nil, noInstance(t.Service)
		}
		peer, inst := r.livePeer(ctx, t.Service, t.Instance)
		if peer == nil {
			// The instance id stays in the logs: it names an internal host.
			r.log.Debug("router: no live instance", "service", t.Service, "instance", t.Instance)
			return nil, nil, noInstance(t.Service)
		}
		return peer, inst, nil
	}
	return r.pool.PickWait(ctx, t.Service, r.opts.ConnectWait, exclude...)
}

// statefulState is where the stateful state machine is.
type statefulState int

const (
	// stateTarget: ask target, or the least-loaded instance when target
	// is "".
	stateTarget statefulState = iota
	// stateOwnerGone: target is not usable; place the key among the
	// others.
	stateOwnerGone
	// stateLeaseWait: the owner named by "moved" is dead; wait for its
	// lease to expire, then ask the next owner.
	stateLeaseWait
)

// callStateful sends req to the instance that owns the target's value: the
// cached owner while it is live, else the rendezvous owner among the live
// ready instances (or Target.Instance). It is a state machine:
//
//   - target: send to the chosen instance. A reply that is not "moved" or
//     "draining" ends the call (a successful one teaches the cache the
//     owner). "draining": that instance hands its keys over; mark it dead
//     and go to ownerGone. Not live (its link not up within ConnectWait,
//     or down) or not sent: mark it down and go to ownerGone. "moved" to a
//     live owner, or to one this view has never listed that it lists
//     within ConnectWait (a new instance the key was handed to, ahead of
//     this view): follow it (at most MaxHops times). "moved" to an owner
//     that is not live (it died; its lease has not expired yet) or down:
//     go to leaseWait.
//   - ownerGone: forget the cached owner and place the key among the
//     instances neither dead nor down. When only a down instance can own
//     it (a rolling deploy's new instance whose link is slow to come up),
//     ask that one again after a pause.
//   - leaseWait: the next owner by placement will take the key once the
//     dead owner's lease expires: wait (10 ms, doubling to 250 ms, never
//     past the deadline) when we asked it before, then go to target. The
//     dead owner is left out of placement, but a later "moved" to it is
//     followed if it is live by then (a view that lagged). A down owner
//     still listed ready and not draining is asked again after the pause
//     instead: it holds the key's lease, no other instance can take it.
//
// A down instance is one that failed this request for a moment; a dead one
// (it answered draining) is not asked again (the pool's draining mark keeps
// it from counting as serving).
func (r *Router) callStateful(ctx context.Context, req Request) (*platformpb.Envelope, error) {
	t := req.Target
	service, value := t.Service, t.Value
	// The instance answering tells which key it served (addressed): only a
	// reply about the key routed by teaches the owner cache anything.
	req.Env.Addressed = value
	var (
		dead   []string // instances that answered draining: not asked again
		down   []string // instances this request could not reach
		gone   []string // owners "moved" named that were not live then
		target string   // the instance to ask next; "" = least-loaded
		hops   int
		wait   = leaseWaitMin
		state  = stateTarget
		inst   *platformpb.Instance
		owner  string // the owner a "moved" named, when not live
		trail  hopTrail
	)
	switch {
	case t.Instance != "":
		target = t.Instance
	case value != "":
		if target = r.ownerWait(ctx, service, value, nil); target == "" {
			return nil, noInstance(service)
		}
	}
	// pause waits before asking again (10 ms, doubling to 250 ms); false
	// when the deadline came first.
	pause := func() bool {
		tm := time.NewTimer(wait)
		defer tm.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-tm.C:
		}
		wait = min(2*wait, leaseWaitMax)
		return true
	}
	// again reports whether a down instance may be asked again: it is
	// listed ready and has not answered draining.
	again := func(id string) bool {
		return slices.Contains(down, id) && r.pool.Serving(service, id)
	}
	// askAgain makes down instance id the target after a pause; the error
	// is the deadline's.
	askAgain := func(id string) error {
		r.log.Debug("router: asking again an owner this request could not reach", "service", service, "key", wire.Snippet(value), "instance", id)
		if !pause() {
			return r.statefulDeadline(ctx, req, trail)
		}
		down = slices.DeleteFunc(down, func(d string) bool { return d == id })
		target = id
		return nil
	}
	// place picks the next target after dead or down changed: the key's
	// owner among the rest (or a down instance that is the only possible
	// owner, after a pause), or the least-loaded instance for no key.
	place := func() error {
		target = ""
		if value == "" {
			return nil
		}
		if target = r.ownerOf(service, value, slices.Concat(dead, down, gone)); target != "" {
			return nil
		}
		if retry := r.ownerOf(service, value, slices.Concat(dead, gone)); retry != "" && again(retry) {
			return askAgain(retry)
		}
		if target = r.ownerWait(ctx, service, value, slices.Concat(dead, down, gone)); target == "" {
			r.noOwner(req, trail)
			return noInstance(service)
		}
		return nil
	}
	for {
		switch state {
		case stateOwnerGone:
			r.owners.forget(service, value, target)
			if err := place(); err != nil {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, r.statefulDeadline(ctx, req, trail)
			}
			state = stateTarget

		case stateLeaseWait:
			r.owners.forget(service, value, owner)
			first := !slices.Contains(gone, owner)
			gone = appendOnce(gone, owner)
			trail.add("lease wait for", owner)
			state = stateTarget
			if again(owner) {
				if err := askAgain(owner); err != nil {
					return nil, err
				}
				continue
			}
			next := inst.GetId() // it will take the key once the lease expires
			if value != "" {
				if next = r.ownerWait(ctx, service, value, slices.Concat(dead, down, gone)); next == "" {
					r.noOwner(req, trail)
					return nil, noInstance(service)
				}
			}
			if (!first || next == inst.GetId()) && !pause() {
				return nil, r.statefulDeadline(ctx, req, trail)
			}
			target = next

		case stateTarget:
			var peer *link.Peer
			if target == "" {
				var err error
				if peer, inst, err = r.pool.PickWait(ctx, service, r.opts.ConnectWait, slices.Concat(dead, down)...); err != nil {
					return nil, err
				}
			} else if peer, inst = r.livePeer(ctx, service, target); peer == nil {
				trail.add("not live", target)
				down = appendOnce(down, target)
				state = stateOwnerGone
				continue
			}
			rep, err := peer.Call(ctx, req.Env)
			if err != nil {
				if NotSent(err) && ctx.Err() == nil {
					trail.add("not sent", inst.GetId())
					down = appendOnce(down, inst.GetId())
					target, state = inst.GetId(), stateOwnerGone
					continue
				}
				return nil, r.transportError(ctx, req, inst, err)
			}
			switch {
			case wire.Draining(rep) && ctx.Err() == nil:
				r.pool.MarkDraining(inst.GetId())
				trail.add("draining", inst.GetId())
				dead = appendOnce(dead, inst.GetId())
				target, state = inst.GetId(), stateOwnerGone
				continue
			case rep.GetErrorCode() != wire.CodeMoved:
				if rep.GetErrorCode() == "" {
					r.learn(t, rep)
				}
				return rep, nil
			}
			// moved: the error message is the owner's instance id.
			if r.opts.OnMoved != nil {
				r.opts.OnMoved()
			}
			owner = rep.GetErrorMessage()
			trail.add("moved by", inst.GetId())
			if owner == "" || owner == inst.GetId() {
				// The ids stay in the logs: they name internal hosts.
				r.log.Warn("router: bad moved reply", "method", req.Env.GetMethod(), "instance", inst.GetId(), "owner", wire.Snippet(owner))
				return nil, wire.Errorf(wire.CodeInternal, "%s: the service answered an invalid moved reply", req.Env.GetMethod())
			}
			if !slices.Contains(dead, owner) && !slices.Contains(down, owner) && r.listedSoon(ctx, service, owner) {
				if hops++; hops > r.opts.MaxHops {
					return nil, wire.Errorf(wire.CodeUnavailable, "%s: moved more than %d times", req.Env.GetMethod(), r.opts.MaxHops)
				}
				if rep.GetAddressed() == value {
					r.owners.put(service, value, owner)
				}
				target = owner
				continue
			}
			state = stateLeaseWait
		}
	}
}

// learn records the sender of a successful reply as the owner of the
// target's value and of any value the reply binds to the target's key (the
// request that created or joined a room).
func (r *Router) learn(t Target, rep *platformpb.Envelope) {
	owner := rep.GetSender()
	if owner == "" {
		return
	}
	if t.Value != "" && rep.GetAddressed() == t.Value {
		r.owners.put(t.Service, t.Value, owner)
	}
	for _, b := range rep.GetBindings() {
		if b.GetKey() == t.Key && !b.GetUnset() {
			r.owners.put(t.Service, b.GetValue(), owner)
		}
	}
}

// ForgetOwners empties the owner cache, so the next stateful request is
// placed by rendezvous hashing alone.
func (r *Router) ForgetOwners() {
	r.owners.mu.Lock()
	clear(r.owners.m)
	r.owners.mu.Unlock()
}

// CachedOwner returns the owner cached for service's key value, "" for
// none.
func (r *Router) CachedOwner(service, value string) string { return r.owners.get(service, value) }

// CachedOwners returns the number of keys whose owner is cached.
func (r *Router) CachedOwners() int { return r.owners.len() }

// statefulDeadline is the error of a stateful request whose deadline
// passed while its key had no reachable owner.
func (r *Router) statefulDeadline(ctx context.Context, req Request, trail hopTrail) error {
	method := req.Env.GetMethod()
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return wire.Errorf(wire.CodeUnavailable, "%s cancelled: the connection is closing", method)
	}
	r.noOwner(req, trail)
	if req.Target.Value == "" {
		return wire.Errorf(wire.CodeTimeout, "%s: no owner reachable within %v", method, req.Timeout)
	}
	return wire.Errorf(wire.CodeTimeout, "%s: no owner of %s %s reachable within %v", method, req.Target.Key, wire.Snippet(req.Target.Value), req.Timeout)
}

// noOwner logs a stateful request that ends without reaching its key's
// owner, with the steps it took: the instances it found unusable and the
// owners it waited for.
func (r *Router) noOwner(req Request, trail hopTrail) {
	r.log.Warn("router: no owner reachable", "method", req.Env.GetMethod(), "key", wire.Snippet(req.Target.Value), "steps", trail.String())
}

// hopTrail records the steps of one stateful request that did not go
// straight to its owner, for the log line of a request that never reached
// it; formatted only then. The first maxTrail are kept.
type hopTrail []hopStep

// hopStep is one step: an event and the instance it concerns.
type hopStep struct{ what, instance string }

const maxTrail = 16

func (t *hopTrail) add(what, instance string) {
	if len(*t) < maxTrail {
		*t = append(*t, hopStep{what, instance})
	}
}

func (t hopTrail) String() string {
	var b strings.Builder
	for i, st := range t {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(st.what + " " + st.instance)
	}
	return b.String()
}

// transportError turns a link error into the caller's error.
func (r *Router) transportError(ctx context.Context, req Request, inst *platformpb.Instance, err error) error {
	method := req.Env.GetMethod()
	switch {
	case errors.Is(err, link.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "%s got no reply within %v", method, req.Timeout)
	case ctx.Err() != nil:
		return wire.Errorf(wire.CodeUnavailable, "%s cancelled: the connection is closing", method)
	case errors.Is(err, link.ErrTooLarge):
		return wire.Errorf(wire.CodeBadRequest, "%s: request too large for the link", method)
	case errors.Is(err, link.ErrOverloaded):
		return wire.Errorf(wire.CodeOverloaded, "%s: service busy, try again", method)
	}
	// The instance id and the link's error stay in the logs: they name
	// internal hosts.
	r.log.Debug("router: instance unreachable", "method", method, "instance", inst.GetId(), "err", err)
	return wire.Errorf(wire.CodeUnavailable, "%s: service unreachable, try again", method)
}

// ownerOf returns the instance that should own value: the cached owner if
// it is live and not excluded, else the rendezvous owner among the ready
// instances of service not excluded; "" when there is none.
func (r *Router) ownerOf(service, value string, exclude []string) string {
	if o := r.owners.get(service, value); o != "" && !slices.Contains(exclude, o) && r.isLive(service, o) {
		return o
	}
	insts := r.pool.Instances(service)
	ids := make([]string, 0, len(insts))
	for _, inst := range insts {
		if inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY && !slices.Contains(exclude, inst.GetId()) {
			ids = append(ids, inst.GetId())
		}
	}
	return placement.Owner(value, ids)
}

// isLive reports whether yellow lists id as a ready instance of service.
func (r *Router) isLive(service, id string) bool { return r.pool.Ready(service, id) }

// listedSoon reports whether this view lists id as a ready instance of
// service, or does within ConnectWait (never past ctx) when it has never
// listed id at all: an instance that just started may be a moment from this
// view while another process already uses it (the matchmaker placed a
// match on it and told the session; a room instance handed a room over to
// it and answered "moved"). An instance listed in another state
// (draining), or that left the view, is not waited for.
func (r *Router) listedSoon(ctx context.Context, service, id string) bool {
	if r.isLive(service, id) {
		return true
	}
	if r.pool.Seen(id) {
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, r.opts.ConnectWait)
	defer cancel()
	return r.pool.WaitFor(wctx, func() bool { return r.isLive(service, id) })
}

// livePeer returns the link to instance id of service when it is listed
// ready and its link is up, waiting up to ConnectWait (never past ctx) for
// a link that has never connected; nil otherwise.
func (r *Router) livePeer(ctx context.Context, service, id string) (*link.Peer, *platformpb.Instance) {
	if !r.listedSoon(ctx, service, id) {
		return nil, nil
	}
	peer, inst, err := r.pool.Peer(id)
	if err != nil {
		return nil, nil
	}
	if peer.Alive() {
		return peer, inst
	}
	if peer.Stats().Connects > 0 {
		return nil, nil // it was up and died
	}
	wait := time.NewTimer(r.opts.ConnectWait)
	defer wait.Stop()
	select {
	case <-peer.Up():
		return peer, inst
	case <-ctx.Done():
	case <-wait.C:
	}
	return nil, nil
}

// NotSent reports whether a transport error means the request never left,
// so that it is safe to try another instance: the link's queue was full, it
// was not connected, or the pool had just closed it (the pool closes a link
// only once no call waits on it, so a closed link means this call found it
// closed).
func NotSent(err error) bool {
	return errors.Is(err, link.ErrOverloaded) || errors.Is(err, link.ErrClosed) || errors.Is(err, link.ErrNotConnected)
}

// ownerWait is ownerOf, waiting for an owner when this view has none (no
// view yet, or no instance but those in dead listed in it): up to
// ConnectWait for a first placement, until ctx ends once an owner was
// found dead or draining. An instance another process already uses may be a
// moment from this view: the matchmaker places a match on a room instance
// that just started and its players call it through a broker at once; in
// a rolling deploy the old room instance hands its keys to the new one
// as soon as yellow lists it.
func (r *Router) ownerWait(ctx context.Context, service, value string, dead []string) string {
	if t := r.ownerOf(service, value, dead); t != "" {
		return t
	}
	wctx := ctx
	if len(dead) == 0 {
		// No owner yet: wait for the view as for a link.
		var cancel context.CancelFunc
		wctx, cancel = context.WithTimeout(ctx, r.opts.ConnectWait)
		defer cancel()
	}
	// Otherwise an owner answered "draining" (a deploy hands its keys
	// over) or is gone: its successor may reach this view late (an update
	// yellow resends at its next tick, a heartbeat later), so the request
	// waits for it as long as its deadline allows.
	r.pool.WaitFor(wctx, func() bool { return r.pool.Synced() && r.ownerOf(service, value, dead) != "" })
	return r.ownerOf(service, value, dead)
}

// noInstance is the error for a service with no live instance.
func noInstance(service string) error {
	return wire.Errorf(wire.CodeUnavailable, "no live instance of %s", wire.Snippet(service))
}

func appendOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}
