package yellow

import (
	"context"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// Watcher limits.
const (
	// eventQueueLen bounds the deltas buffered per yellow between the PUB
	// socket and the follower (and while a snapshot is in flight): a burst
	// of a whole cluster re-registering after a yellow restart is a few
	// hundred; when it overflows the follower re-syncs from a snapshot.
	eventQueueLen = 4096
	// silentTicks is how many heartbeat intervals without any delta or tick
	// make the watcher check the yellow with a snapshot: three, like the
	// expiry of a record, so one late tick is not a failure.
	silentTicks = 3
	// warmupBeats is how long, in heartbeat intervals, the records a
	// restarted yellow forgot stay visible while their providers register
	// again: most notice on their next beat, those that saw yellow down
	// retry within a backoff of at most four intervals.
	warmupBeats = 5
)

// Watcher follows every configured yellow (snapshot, then deltas) and
// keeps the union of what they list. While a yellow is down its last view
// is kept; records are merged from the yellows that are up, or, when none
// is, from the last view of each.
type Watcher struct {
	opts ClientOptions
	log  *slog.Logger
	tr   transport

	followers []*follower

	mu     sync.Mutex // guards merged, and each follower's view, up, prev, prevUntil
	merged map[string]map[string]*platformpb.Instance

	changes chan struct{} // cap 1, coalesced

	subMu      sync.Mutex // a leaf: guards subs only
	subs       map[chan struct{}]struct{}
	synced     chan struct{} // closed on the first sync of any yellow
	syncedOnce sync.Once

	quit   chan struct{}
	closed atomic.Bool
	wg     sync.WaitGroup
	stats  watcherCounters
}

type watcherCounters struct {
	syncs, resyncs, deltas, badDeltas, overflows atomic.Uint64
}

// WatcherStats are a watcher's counters.
type WatcherStats struct {
	// Up is the number of yellows synced now.
	Up int
	// Instances is the number of records in the merged view.
	Instances int
	// Syncs counts snapshots installed; Resyncs those forced by a gap, a
	// new epoch, an overflow or silence.
	Syncs, Resyncs uint64
	// Deltas counts deltas received; BadDeltas those that did not decode;
	// Overflows the times the event queue was full.
	Deltas, BadDeltas, Overflows uint64
}

// follower follows one yellow.
type follower struct {
	w        *Watcher
	endpoint string
	log      *slog.Logger
	peer     peer
	events   chan *platformpb.Event
	overflow atomic.Bool

	// Owned by the follower's goroutine.
	sub      subscription
	subEP    string
	interval time.Duration

	// Guarded by w.mu.
	st        viewState
	up        bool
	prev      map[instanceKey]*platformpb.Instance
	prevUntil time.Time
}

// Watch starts following every yellow in opts.Yellows and returns at once;
// WaitSynced waits for the first view.
func Watch(opts ClientOptions) *Watcher {
	opts = opts.withDefaults()
	return watch(linkTransport{log: opts.Logger, heartbeat: opts.Heartbeat, tls: opts.TLS}, opts)
}

func watch(tr transport, opts ClientOptions) *Watcher {
	opts = opts.withDefaults()
	w := &Watcher{
		opts:    opts,
		log:     opts.Logger,
		tr:      tr,
		merged:  make(map[string]map[string]*platformpb.Instance),
		changes: make(chan struct{}, 1),
		synced:  make(chan struct{}),
		quit:    make(chan struct{}),
	}
	if len(opts.Yellows) == 0 {
		w.log.Warn("yellow: watcher has no yellows configured")
	}
	for _, ep := range opts.Yellows {
		f := &follower{
			w:        w,
			endpoint: ep,
			log:      w.log.With("yellow", ep),
			peer:     tr.dial(ep),
			events:   make(chan *platformpb.Event, eventQueueLen),
			interval: opts.Heartbeat,
		}
		w.followers = append(w.followers, f)
	}
	// Only once the slice is complete: followers read it (eligible).
	for _, f := range w.followers {
		w.wg.Add(1)
		go f.run()
	}
	return w
}

// Instances returns copies of the records of service, sorted by id. Draining
// instances are included, with their state, for the caller to decide.
func (w *Watcher) Instances(service string) []*platformpb.Instance {
	w.mu.Lock()
	m := w.merged[service]
	out := make([]*platformpb.Instance, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	w.mu.Unlock()
	slices.SortFunc(out, compareInstances)
	for i, r := range out {
		out[i] = proto.Clone(r).(*platformpb.Instance)
	}
	return out
}

// All returns copies of every record, sorted by service then id.
func (w *Watcher) All() []*platformpb.Instance {
	w.mu.Lock()
	var out []*platformpb.Instance
	for _, m := range w.merged {
		for _, r := range m {
			out = append(out, r)
		}
	}
	w.mu.Unlock()
	slices.SortFunc(out, compareInstances)
	for i, r := range out {
		out[i] = proto.Clone(r).(*platformpb.Instance)
	}
	return out
}

// Changes returns a channel that receives a value after the merged view
// changed; notifications coalesce (one value may stand for many changes),
// so a reader re-reads the view on each.
func (w *Watcher) Changes() <-chan struct{} { return w.changes }

// WaitSynced waits until a first snapshot from some yellow is installed,
// ctx is done, or the watcher is closed.
func (w *Watcher) WaitSynced(ctx context.Context) error {
	select {
	case <-w.synced:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.quit:
		return ErrClosed
	}
}

// WaitFor waits until ready() holds, ctx is done, or the watcher is
// closed, re-checking at every change of the view (Subscribe); it does not
// poll.
func (w *Watcher) WaitFor(ctx context.Context, ready func() bool) error {
	changes, cancel := w.Subscribe()
	defer cancel()
	for !ready() {
		select {
		case <-changes:
		case <-ctx.Done():
			return ctx.Err()
		case <-w.quit:
			return ErrClosed
		}
	}
	return nil
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() WatcherStats {
	w.mu.Lock()
	s := WatcherStats{}
	for _, f := range w.followers {
		if f.up {
			s.Up++
		}
	}
	for _, m := range w.merged {
		s.Instances += len(m)
	}
	w.mu.Unlock()
	s.Syncs = w.stats.syncs.Load()
	s.Resyncs = w.stats.resyncs.Load()
	s.Deltas = w.stats.deltas.Load()
	s.BadDeltas = w.stats.badDeltas.Load()
	s.Overflows = w.stats.overflows.Load()
	return s
}

// Close stops following and closes the links. The last view stays readable.
func (w *Watcher) Close() {
	if !w.closed.CompareAndSwap(false, true) {
		return
	}
	close(w.quit)
	w.wg.Wait()
	for _, f := range w.followers {
		if f.sub != nil {
			_ = f.sub.Close()
		}
		_ = f.peer.Close()
	}
}

func (w *Watcher) notify() {
	select {
	case w.changes <- struct{}{}:
	default:
	}
	w.subMu.Lock()
	for ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	w.subMu.Unlock()
}

// Subscribe returns a channel of its own that receives a value after the
// merged view changed (coalesced, like Changes), for a second consumer
// beside the one reading Changes; cancel stops the notifications.
func (w *Watcher) Subscribe() (changes <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	w.subMu.Lock()
	if w.subs == nil {
		w.subs = map[chan struct{}]struct{}{}
	}
	w.subs[ch] = struct{}{}
	w.subMu.Unlock()
	return ch, func() {
		w.subMu.Lock()
		delete(w.subs, ch)
		w.subMu.Unlock()
	}
}

// eligible returns the followers whose views make up the merged view: the
// ones that are up, or all when none is. Caller holds w.mu.
func (w *Watcher) eligible() []*follower {
	up := make([]*follower, 0, len(w.followers))
	for _, f := range w.followers {
		if f.up {
			up = append(up, f)
		}
	}
	if len(up) == 0 {
		return w.followers
	}
	return up
}

// lookup returns f's record for k, falling back to the records of f's
// previous epoch while they are warming up. Caller holds w.mu.
func (f *follower) lookup(k instanceKey, now time.Time) *platformpb.Instance {
	if r := f.st.recs[k]; r != nil {
		return r
	}
	if f.prev != nil && now.Before(f.prevUntil) {
		return f.prev[k]
	}
	return nil
}

// remerge recomputes the merged record of k. Caller holds w.mu.
func (w *Watcher) remerge(k instanceKey) {
	now := time.Now()
	var rec *platformpb.Instance
	for _, f := range w.eligible() {
		if rec = f.lookup(k, now); rec != nil {
			break
		}
	}
	m := w.merged[k.service]
	old := m[k.id]
	if old == rec {
		return
	}
	if rec == nil {
		delete(m, k.id)
		if len(m) == 0 {
			delete(w.merged, k.service)
		}
	} else {
		if m == nil {
			m = make(map[string]*platformpb.Instance)
			w.merged[k.service] = m
		}
		m[k.id] = rec
	}
	w.notify()
}

// remergeAll rebuilds the merged view. Caller holds w.mu.
func (w *Watcher) remergeAll() {
	now := time.Now()
	merged := make(map[string]map[string]*platformpb.Instance)
	put := func(r *platformpb.Instance) {
		m := merged[r.GetService()]
		if m == nil {
			m = make(map[string]*platformpb.Instance)
			merged[r.GetService()] = m
		}
		if _, ok := m[r.GetId()]; !ok {
			m[r.GetId()] = r
		}
	}
	for _, f := range w.eligible() {
		for _, r := range f.st.recs {
			put(r)
		}
		if f.prev != nil && now.Before(f.prevUntil) {
			for _, r := range f.prev {
				put(r)
			}
		}
	}
	if !sameView(w.merged, merged) {
		w.merged = merged
		w.notify()
	}
}

func sameView(a, b map[string]map[string]*platformpb.Instance) bool {
	if len(a) != len(b) {
		return false
	}
	for s, am := range a {
		bm := b[s]
		if len(am) != len(bm) {
			return false
		}
		for id, r := range am {
			if bm[id] != r {
				return false
			}
		}
	}
	return true
}

// deliver is the subscription's callback: queue the event for the
// follower, never blocking the subscriber.
func (f *follower) deliver(topic string, ev *platformpb.Event) {
	if topic != TopicDelta {
		return
	}
	select {
	case f.events <- ev:
	default:
		f.overflow.Store(true)
	}
}

// run follows one yellow until the watcher closes.
func (f *follower) run() {
	defer f.w.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-f.w.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	needSync := true
	backoff := f.interval / 2
	lastHeard := time.Now()
	check := time.NewTicker(f.interval / 2)
	defer check.Stop()
	for {
		if needSync {
			ok, again := f.sync(ctx)
			if ctx.Err() != nil {
				return
			}
			if !ok {
				select {
				case <-f.w.quit:
					return
				case <-time.After(jitter(backoff)):
				}
				backoff = min(2*backoff, 4*f.interval)
				continue
			}
			backoff = f.interval / 2
			needSync = again
			if again {
				f.w.stats.resyncs.Add(1)
			}
			lastHeard = time.Now()
			check.Reset(f.interval / 2)
			continue
		}
		select {
		case <-f.w.quit:
			return
		case ev := <-f.events:
			lastHeard = time.Now()
			if f.overflow.Swap(false) {
				f.w.stats.overflows.Add(1)
				f.log.Warn("yellow: delta queue overflowed, re-syncing")
				needSync = true
			} else {
				needSync = f.handle(ev)
			}
		case now := <-check.C:
			if f.overflow.Swap(false) {
				f.w.stats.overflows.Add(1)
				needSync = true
			}
			if now.Sub(lastHeard) > silentTicks*f.interval {
				f.log.Debug("yellow: silent, checking with a snapshot")
				needSync = true
			}
			f.expirePrev(now)
		}
		if needSync {
			f.w.stats.resyncs.Add(1)
		}
	}
}

// handle decodes and applies one event; it reports whether a re-sync is
// needed.
func (f *follower) handle(ev *platformpb.Event) bool {
	f.w.stats.deltas.Add(1)
	d, err := decodeDelta(ev)
	if err != nil {
		f.w.stats.badDeltas.Add(1)
		f.log.Debug("yellow: bad delta", "err", err)
		return false
	}
	w := f.w
	w.mu.Lock()
	res, k := f.st.apply(d)
	if res == applyChanged {
		w.remerge(k)
	}
	w.mu.Unlock()
	if res == applyResync {
		f.log.Debug("yellow: gap or new epoch, re-syncing", "seq", d.GetSeq(), "epoch", d.GetEpoch())
		return true
	}
	return false
}

// expirePrev drops the previous epoch's records once their warm-up is
// over.
func (f *follower) expirePrev(now time.Time) {
	w := f.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.prev != nil && !now.Before(f.prevUntil) {
		f.prev = nil
		w.remergeAll()
	}
}

// setUp records whether the yellow is up and remerges if that changed.
func (f *follower) setUp(up bool) {
	w := f.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.up != up {
		f.up = up
		w.remergeAll()
	}
}

// subscribe (re)subscribes to the yellow's PUB endpoint ep.
func (f *follower) subscribe(ep string) {
	if f.sub != nil {
		_ = f.sub.Close()
		f.sub = nil
	}
	f.subEP = ep
	sub, err := f.w.tr.subscribe(ep, TopicDelta, f.deliver)
	if err != nil {
		f.log.Warn("yellow: cannot subscribe to deltas", "pub", ep, "err", err)
		return
	}
	f.sub = sub
}

// sync takes a snapshot and installs it, then applies the deltas that
// arrived meanwhile. ok is false when the yellow did not answer; again is
// true when the buffered deltas already call for another snapshot.
func (f *follower) sync(ctx context.Context) (ok, again bool) {
	// Subscribing before the snapshot means deltas published while it is
	// taken are buffered, not lost. (The subscription reconnects by itself
	// after a yellow restart.)
	if f.subEP != "" && f.sub == nil {
		f.subscribe(f.subEP)
	}
	waitAlive(ctx, f.peer, f.w.opts.Timeout)
	req := &platformpb.YellowRequest{Op: platformpb.YellowOp_YELLOW_OP_SNAPSHOT}
	rep, err := call(ctx, f.peer, f.w.opts.Timeout, MethodSnapshot, req)
	if err != nil {
		if ctx.Err() == nil {
			if f.up {
				f.log.Warn("yellow: unreachable, keeping the last view", "err", err)
			}
			f.setUp(false)
		}
		return false, false
	}
	if rep.GetEpoch() == "" {
		f.log.Warn("yellow: snapshot without epoch")
		f.setUp(false)
		return false, false
	}
	// Yellow ticks at least once per its heartbeat: that, not ours, is
	// what silence is measured in.
	if ms := rep.GetHeartbeatIntervalMs(); ms > 0 {
		f.interval = max(time.Duration(ms)*time.Millisecond, minInterval)
	}
	if pub := pubEndpoint(rep.GetPub(), f.endpoint); pub != "" && (pub != f.subEP || f.sub == nil) {
		f.subscribe(pub)
	}

	w := f.w
	now := time.Now()
	w.mu.Lock()
	if f.st.epoch != "" && f.st.epoch != rep.GetEpoch() {
		// Yellow restarted: keep what it forgot visible while providers
		// register again.
		prev := make(map[instanceKey]*platformpb.Instance, len(f.st.recs)+len(f.prev))
		if f.prev != nil && now.Before(f.prevUntil) {
			maps.Copy(prev, f.prev)
		}
		maps.Copy(prev, f.st.recs)
		f.prev, f.prevUntil = prev, now.Add(warmupBeats*f.interval)
		f.log.Info("yellow: new epoch, re-synced", "epoch", rep.GetEpoch(), "records", len(rep.GetInstances()))
	}
	recs := make([]*platformpb.Instance, 0, len(rep.GetInstances()))
	for _, r := range rep.GetInstances() {
		if ValidateInstance(r, maxMaxRecordBytes) == nil {
			recs = append(recs, r)
		}
	}
	f.st.install(recs, rep.GetSeq(), rep.GetEpoch())
	f.up = true
	w.remergeAll()
	w.mu.Unlock()
	w.stats.syncs.Add(1)
	w.syncedOnce.Do(func() { close(w.synced) })

	// Apply what arrived while the snapshot was in flight.
	for {
		select {
		case ev := <-f.events:
			if f.handle(ev) {
				return true, true
			}
		default:
			return true, false
		}
	}
}

// pubEndpoint returns the PUB endpoint to dial: yellow's own, with a
// wildcard host replaced by the host of the router endpoint we reached it
// on; "" when either is not an endpoint.
func pubEndpoint(pub, router string) string {
	host, port, err := wire.SplitEndpoint(pub)
	if err != nil {
		return ""
	}
	if wire.IsWildcard(host) {
		if host, _, err = wire.SplitEndpoint(router); err != nil {
			return ""
		}
	}
	return "tcp://" + net.JoinHostPort(host, strconv.Itoa(port))
}
