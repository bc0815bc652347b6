package router

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// PoolOptions configures a Pool.
type PoolOptions struct {
	// Yellows are the ROUTER endpoints of every yellow to follow.
	Yellows []string `yaml:"yellows"`
	// Heartbeat is the yellow heartbeat the watcher expects (default 1 s).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Peer configures every link the pool dials. With Peer.TLS, the links
	// to yellow use it too, and each instance must present the certificate
	// its record calls for (see ExpectedIdentity).
	Peer link.PeerOptions `yaml:"-"`
	// Logger receives the pool's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Pool follows yellow and keeps exactly one link.Peer per live instance of
// the services it is asked about: a peer is dialled on first use and closed
// when its instance leaves yellow (once the calls waiting on it are done).
// Pick chooses the least-loaded ready instance of a service. Changed
// broadcasts every change of the view and every link that comes up, so
// waiting for an instance is an event, not a poll. A Router calls through
// a Pool. A Pool is safe for concurrent use.
//
// Lock order: refreshMu, then mu; the watcher and links are never called
// under mu.
type Pool struct {
	w        *yellow.Watcher
	ownsW    bool
	peerOpts link.PeerOptions
	log      *slog.Logger

	refreshMu sync.Mutex // serializes refresh, so an older view never replaces a newer one

	mu       sync.RWMutex                      // guards the fields below
	view     map[string][]*platformpb.Instance // by service, read-only records
	byID     map[string]*platformpb.Instance
	peers    map[string]*poolPeer // by instance id
	draining map[string]string    // instance ids seen answering "draining", with the router endpoint of the record then
	asked    map[string]bool      // services Pick was asked about
	departed map[string]bool      // ids of instances that left the view, at most maxDeparted
	closed   bool

	isSynced atomic.Bool // the watcher installed a first view

	changes changes // notified at every change

	quit chan struct{}
	wg   sync.WaitGroup
}

// poolPeer is the link to one instance.
type poolPeer struct {
	peer   *link.Peer
	router string
}

// NewPool starts following opts.Yellows and returns at once; WaitSynced
// waits for the first view.
func NewPool(opts PoolOptions) *Pool {
	w := yellow.Watch(yellow.ClientOptions{
		Yellows:   opts.Yellows,
		Heartbeat: opts.Heartbeat,
		TLS:       opts.Peer.TLS,
		Logger:    opts.Logger,
	})
	p := NewPoolWatcher(w, opts.Peer, opts.Logger)
	p.ownsW = true
	return p
}

// NewPoolWatcher returns a Pool over a watcher the caller owns (and closes
// after the pool).
func NewPoolWatcher(w *yellow.Watcher, peer link.PeerOptions, log *slog.Logger) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if peer.Logger == nil {
		peer.Logger = log
	}
	p := &Pool{
		w:        w,
		peerOpts: peer,
		log:      log,
		view:     make(map[string][]*platformpb.Instance),
		byID:     make(map[string]*platformpb.Instance),
		peers:    make(map[string]*poolPeer),
		draining: make(map[string]string),
		departed: make(map[string]bool),
		asked:    make(map[string]bool),
		quit:     make(chan struct{}),
	}
	p.peerOpts.OnUp = p.notify
	p.refresh()
	p.wg.Add(2)
	go p.follow()
	go p.awaitSync()
	return p
}

// awaitSync marks the pool synced once the watcher has a first view.
func (p *Pool) awaitSync() {
	defer p.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	if p.w.WaitSynced(ctx) == nil {
		p.refresh()
		p.isSynced.Store(true)
		p.notify()
	}
}

// Changed returns a channel closed at the next change of the pool: a new
// view from yellow, a first view, a link that came up. Take it before
// looking at the pool, then wait on it.
func (p *Pool) Changed() <-chan struct{} { return p.changes.wait() }

// notify wakes everyone waiting on Changed.
func (p *Pool) notify() { p.changes.notify() }

// Synced reports whether the pool has had a first view from some yellow.
func (p *Pool) Synced() bool { return p.isSynced.Load() }

// Watcher returns the yellow watcher the pool follows.
func (p *Pool) Watcher() *yellow.Watcher { return p.w }

// WaitSynced waits until the pool has a first view from some yellow, or ctx
// is done.
func (p *Pool) WaitSynced(ctx context.Context) error {
	if err := p.w.WaitSynced(ctx); err != nil {
		return err
	}
	p.refresh()
	return nil
}

// follow refreshes the view on every change the watcher reports.
func (p *Pool) follow() {
	defer p.wg.Done()
	for {
		select {
		case <-p.quit:
			return
		case <-p.w.Changes():
			p.refresh()
		}
	}
}

// refresh takes the watcher's view, closes the links of instances that left
// it (or moved to another endpoint) and dials the new instances of the
// services asked about, so that their links are up before traffic comes.
func (p *Pool) refresh() {
	p.refreshMu.Lock()
	defer p.refreshMu.Unlock()
	p.install(p.w.All())
}

// install makes all (every instance yellow lists) the view. Caller holds
// refreshMu.
func (p *Pool) install(all []*platformpb.Instance) {
	view := make(map[string][]*platformpb.Instance)
	byID := make(map[string]*platformpb.Instance, len(all))
	for _, inst := range all {
		view[inst.GetService()] = append(view[inst.GetService()], inst)
		byID[inst.GetId()] = inst
	}
	var gone []*link.Peer // left yellow: retire
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	for id := range p.byID {
		if byID[id] == nil {
			p.departedLocked(id)
		}
	}
	p.view, p.byID = view, byID
	for id, pp := range p.peers {
		if inst := byID[id]; inst == nil || inst.GetRouter() != pp.router {
			gone = append(gone, pp.peer)
			delete(p.peers, id)
		}
	}
	for id, router := range p.draining {
		// The mark has done its work once yellow no longer lists the
		// instance as ready, or lists another process under its id (a
		// supervisor reuses ids: a mark outliving its process would keep
		// the new one from ever being picked).
		if inst := byID[id]; inst == nil || inst.GetRouter() != router ||
			inst.GetState() != platformpb.InstanceState_INSTANCE_STATE_READY {
			delete(p.draining, id)
		}
	}
	var dial []*platformpb.Instance
	for svc := range p.asked {
		for _, inst := range view[svc] {
			if p.peers[inst.GetId()] == nil && inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY {
				dial = append(dial, inst)
			}
		}
	}
	p.mu.Unlock()
	for _, peer := range gone {
		peer.CloseWhenIdle(retireGrace, p.quit)
	}
	for _, inst := range dial {
		p.peerOf(inst)
	}
	p.notify()
}

// retireGrace bounds how long the link to an instance that left yellow is
// kept open for the calls still waiting on it (an instance that
// deregistered after draining, or that yellow expired wrongly after a late
// beat, still answers what it was sent): twice the default request timeout.
const retireGrace = 2 * link.DefaultCallTimeout

// Seen reports whether this view lists an instance id, in any state, or
// listed it before: an id never seen is an instance that may be a moment
// from this view (another process's view, or a "moved" reply, named it
// first). The ids of the last maxDeparted instances that left are kept.
func (p *Pool) Seen(id string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.byID[id] != nil || p.departed[id]
}

// maxDeparted bounds the ids of departed instances a Pool remembers: a
// deploy of a few hundred instances, several times over. When full, an
// arbitrary id makes room (as in the owner cache): an id forgotten only
// costs a request that is told of it a wait of ConnectWait.
const maxDeparted = 4096

// departedLocked remembers that instance id left the view. Caller holds mu.
func (p *Pool) departedLocked(id string) {
	if !p.departed[id] && len(p.departed) >= maxDeparted {
		for old := range p.departed {
			delete(p.departed, old)
			break
		}
	}
	p.departed[id] = true
}

// Ready reports whether yellow lists id as a ready instance of service.
func (p *Pool) Ready(service, id string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.readyLocked(service, id) != nil
}

// Serving reports whether yellow lists id as a ready instance of service
// and its process has not answered "draining".
func (p *Pool) Serving(service, id string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	inst := p.readyLocked(service, id)
	return inst != nil && !p.markedDraining(inst)
}

// readyLocked returns id's record if it is a ready instance of service,
// else nil. Caller holds mu.
func (p *Pool) readyLocked(service, id string) *platformpb.Instance {
	if inst := p.byID[id]; inst != nil && inst.GetService() == service && inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY {
		return inst
	}
	return nil
}

// HasCandidate reports whether service has a ready instance, not in
// exclude nor marked draining, whatever the state of its link.
func (p *Pool) HasCandidate(service string, exclude ...string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, inst := range p.view[service] {
		if inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY &&
			!p.markedDraining(inst) && !slices.Contains(exclude, inst.GetId()) {
			return true
		}
	}
	return false
}

// PickWait is Pick that waits, up to wait and never past ctx, while the pool
// has no first view yet or the links to the listed instances are still
// coming up (a process that just started, an instance that just appeared):
// it wakes on the pool's changes, it does not poll. With nothing listed
// that could come up it returns Pick's error at once; at ctx's deadline,
// "timeout: no live instance of <service> before the deadline".
func (p *Pool) PickWait(ctx context.Context, service string, wait time.Duration, exclude ...string) (*link.Peer, *platformpb.Instance, error) {
	return p.pickWait(ctx, service, wait, false, exclude...)
}

// PickReplacement is PickWait after an instance answered "draining": it
// also waits (up to wait, never past ctx) while nothing else is listed,
// for yellow to list one. A draining instance's replacement is usually
// listed already, but this pool's view may not have it yet (a rolling
// deploy drains the old instance as soon as yellow lists the new one).
func (p *Pool) PickReplacement(ctx context.Context, service string, wait time.Duration, exclude ...string) (*link.Peer, *platformpb.Instance, error) {
	return p.pickWait(ctx, service, wait, true, exclude...)
}

func (p *Pool) pickWait(ctx context.Context, service string, wait time.Duration, anyNew bool, exclude ...string) (*link.Peer, *platformpb.Instance, error) {
	changed := p.Changed()
	peer, inst, err := p.Pick(service, exclude...)
	if err == nil {
		return peer, inst, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		// Nothing listed that could come up: give up, unless an instance
		// answered "draining" before this view said so (its replacement
		// is then likely listed by yellow already, not yet here).
		if !anyNew && p.Synced() && !p.HasCandidate(service, exclude...) && !p.drainingUnseen(service) {
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, nil, wire.Errorf(wire.CodeTimeout, "no live instance of %s before the deadline", wire.Snippet(service))
			}
			return nil, nil, err
		case <-timer.C:
			return nil, nil, err
		case <-changed:
		}
		changed = p.Changed()
		if peer, inst, err = p.Pick(service, exclude...); err == nil {
			return peer, inst, nil
		}
	}
}

// WaitFor waits until ready() holds or ctx ends, re-checking at every
// change of the pool (a new view, a link that came up); it reports whether
// ready() held.
func (p *Pool) WaitFor(ctx context.Context, ready func() bool) bool {
	for {
		changed := p.Changed()
		if ready() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

// Instances returns the records of service's instances, sorted by id,
// draining ones included. The records are shared: do not modify them.
func (p *Pool) Instances(service string) []*platformpb.Instance {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.view[service])
}

// Peer returns the link to the instance with id (dialling it on first use)
// and its record; unavailable if yellow does not list it.
func (p *Pool) Peer(instanceID string) (*link.Peer, *platformpb.Instance, error) {
	p.mu.RLock()
	inst := p.byID[instanceID]
	p.mu.RUnlock()
	if inst == nil {
		return nil, nil, wire.Errorf(wire.CodeUnavailable, "no live instance %s", wire.Snippet(instanceID))
	}
	peer := p.peerOf(inst)
	if peer == nil {
		return nil, nil, wire.Errorf(wire.CodeUnavailable, "pool closed")
	}
	return peer, inst, nil
}

// peerOf returns the link to inst, dialling it if there is none; nil after
// Close or when inst is no longer in the view (a stale record).
func (p *Pool) peerOf(inst *platformpb.Instance) *link.Peer {
	p.mu.RLock()
	pp := p.peers[inst.GetId()]
	p.mu.RUnlock()
	if pp != nil && pp.router == inst.GetRouter() {
		return pp.peer
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if cur := p.byID[inst.GetId()]; p.closed || cur == nil || cur.GetRouter() != inst.GetRouter() {
		return nil
	}
	if pp := p.peers[inst.GetId()]; pp != nil {
		if pp.router == inst.GetRouter() {
			return pp.peer
		}
		pp.peer.CloseWhenIdle(retireGrace, p.quit) // moved; never blocks
	}
	opts := p.peerOpts
	opts.ExpectIdentity = ExpectedIdentity(inst)
	peer := link.Dial(inst.GetRouter(), opts)
	p.peers[inst.GetId()] = &poolPeer{peer: peer, router: inst.GetRouter()}
	return peer
}

// ExpectedIdentity is the certificate identity an instance's record calls
// for: a broker's is a broker's, any other instance's is its service's
// (service:<name>). Over TLS the pool's links refuse an instance whose
// certificate says otherwise, so a record cannot send a service's calls to
// a process certified for something else.
func ExpectedIdentity(inst *platformpb.Instance) pki.Identity {
	if inst.GetKind() == platformpb.ServiceKind_SERVICE_KIND_BROKER {
		return pki.Identity{Role: pki.RoleBroker}
	}
	return pki.Identity{Role: pki.RoleService, Name: inst.GetService()}
}

// MarkDraining makes Pick skip the instance until yellow lists it as
// draining or gone (or lists another process under its id): it answered
// "unavailable: draining", which is news yellow may not have delivered
// yet.
func (p *Pool) MarkDraining(instanceID string) {
	p.mu.Lock()
	if inst := p.byID[instanceID]; inst != nil {
		p.draining[instanceID] = inst.GetRouter()
	}
	p.mu.Unlock()
}

// drainingUnseen reports whether an instance of service answered
// "draining" while this view still lists it ready.
func (p *Pool) drainingUnseen(service string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if len(p.draining) == 0 {
		return false
	}
	for _, inst := range p.view[service] {
		if p.markedDraining(inst) {
			return true
		}
	}
	return false
}

// markedDraining reports whether inst's process answered "draining".
// Caller holds mu.
func (p *Pool) markedDraining(inst *platformpb.Instance) bool {
	router, ok := p.draining[inst.GetId()]
	return ok && router == inst.GetRouter()
}

// Pick returns the link to, and the record of, the least-loaded ready
// instance of service whose link is alive, skipping the instance ids in
// exclude. Instances are compared by the requests this process has in
// flight on each link first (what we know best), then by the load they
// last reported; ties are broken at random. With no candidate it returns
// "unavailable: no live instance of <service>".
func (p *Pool) Pick(service string, exclude ...string) (*link.Peer, *platformpb.Instance, error) {
	p.mu.RLock()
	insts := p.view[service]
	draining := len(p.draining) > 0
	asked := p.asked[service]
	p.mu.RUnlock()
	if len(insts) == 0 {
		// The watcher may know more than our last refresh (a change
		// notification not yet handled).
		if n := len(p.w.Instances(service)); n > 0 {
			p.refresh()
			p.mu.RLock()
			insts = p.view[service]
			p.mu.RUnlock()
		}
	}
	if !asked && len(insts) > 0 {
		// Only services that exist are remembered: method names come
		// from clients.
		p.mu.Lock()
		p.asked[service] = true
		p.mu.Unlock()
	}
	var (
		best     *link.Peer
		bestInst *platformpb.Instance
		bestFlt  int
		bestLoad float64
		ties     int
	)
	for _, inst := range insts {
		if inst.GetState() != platformpb.InstanceState_INSTANCE_STATE_READY || slices.Contains(exclude, inst.GetId()) {
			continue
		}
		if draining {
			p.mu.RLock()
			d := p.markedDraining(inst)
			p.mu.RUnlock()
			if d {
				continue
			}
		}
		peer := p.peerOf(inst)
		if peer == nil || !peer.Alive() {
			continue
		}
		flt, load := peer.InFlight(), peerLoad(peer, inst)
		switch {
		case best == nil || flt < bestFlt || flt == bestFlt && load < bestLoad-loadEpsilon:
			best, bestInst, bestFlt, bestLoad, ties = peer, inst, flt, load, 1
		case flt == bestFlt && load <= bestLoad+loadEpsilon:
			// A tie: keep each of the tied candidates with equal chance.
			ties++
			if rand.IntN(ties) == 0 {
				best, bestInst, bestLoad = peer, inst, min(load, bestLoad)
			}
		}
	}
	if best == nil {
		return nil, nil, wire.Errorf(wire.CodeUnavailable, "no live instance of %s", wire.Snippet(service))
	}
	return best, bestInst, nil
}

// loadEpsilon is how close two reported loads must be to count as a tie:
// loads are reported a heartbeat late, so small differences are noise, and
// treating them as ties spreads traffic instead of herding it onto whichever
// instance last reported a hair less.
const loadEpsilon = 0.02

// peerLoad is the freshest load known of an instance: what its link last
// heard in a reply or PONG (an alive link has heard at least one), which is
// fresher than what it last reported to yellow.
func peerLoad(peer *link.Peer, inst *platformpb.Instance) float64 {
	if peer.Alive() {
		return peer.Load()
	}
	return inst.GetLoad()
}

// Close closes every link, stops following yellow and, for a pool made by
// NewPool, closes the watcher.
func (p *Pool) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	peers := p.peers
	p.peers = nil
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
	for _, pp := range peers {
		_ = pp.peer.Close()
	}
	if p.ownsW {
		p.w.Close()
	}
}
