package room

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"runtime/debug"
	"sync/atomic"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// A controller owns one room on this instance: one goroutine that takes the
// room's lease, loads the room, then handles its queued events strictly one
// at a time, each stored before it is answered and published.

// releaseTimeout bounds giving a lease back: a Redis round trip; a lease
// not released expires on its own.
const releaseTimeout = time.Second

// stopMode says how a controller stops.
type stopMode int

const (
	// stopDrain: handle what is queued, snapshot, release the lease.
	stopDrain stopMode = iota
	// stopEvict: idle; snapshot, release the lease.
	stopEvict
	// stopLost: the lease is gone; answer the queue "retry", keep nothing.
	stopLost
	// stopClose: answer the queue unavailable, release the lease.
	stopClose
	// stopKill: tests: die as a killed process would, releasing nothing.
	stopKill
	// stopMove: another instance owns the room now (rebalance): as
	// stopDrain, for this room alone.
	stopMove
)

type controller struct {
	s     *Service
	a     *attachment
	id    string
	fresh bool            // a room being created: nothing to load
	orNew bool            // opened for a KindMatched: a room not found is created by it
	prev  <-chan struct{} // the previous controller of the room, winding down
	q     chan *op        // the room's queue, in arrival order
	stopc chan stopMode   // cap 1
	done  chan struct{}   // closed when run returns
	lease atomic.Int64    // the lease epoch held, 0 for none; read by the renewer

	// Owned by the run goroutine.
	batch   []*op      // the ops being processed, answered if a panic strikes
	room    *roomState // nil until created or loaded
	snapSeq int64      // seq of the stored snapshot
	lastAt  int64      // time of the last entry, so entry times never go back
	timer   *time.Timer
	timerAt time.Time
	recent  []roomEvent        // the latest events, for room.Get since_seq (Options.Replay)
	recentB int                // their size
	buckets map[string]*bucket // each member's rate (Options.MemberRate)
}

func newController(s *Service, a *attachment, id string, fresh bool, prev <-chan struct{}) *controller {
	return &controller{
		s: s, a: a, id: id, fresh: fresh, prev: prev,
		q:     make(chan *op, s.opts.QueueSize),
		stopc: make(chan stopMode, 1),
		done:  make(chan struct{}),
	}
}

// signal asks the controller to stop; the first request wins.
func (c *controller) signal(m stopMode) {
	select {
	case c.stopc <- m:
	default:
	}
}

func (c *controller) run() {
	defer c.exit()
	defer c.recoverPanic()
	if c.prev != nil {
		select {
		case <-c.prev:
		case m := <-c.stopc:
			c.abort(stopError(m), false)
			return
		}
	}
	if err := c.open(); err != nil {
		c.abort(err, c.lease.Load() != 0 && !errors.Is(err, errRetry))
		return
	}
	idle := time.NewTimer(c.s.opts.IdleEvict)
	defer idle.Stop()
	for {
		select {
		case o := <-c.q:
			if !c.process(o) {
				return
			}
			// A closed room leaves memory at once: nothing more happens in
			// it, and it would hold a slot of MaxRooms until IdleEvict.
			if c.room != nil && c.room.status == StatusClosed && c.s.tryEvict(c) {
				c.s.st.closedEvicted.Add(1)
				c.shutdown(stopEvict)
				return
			}
			// A room that does not exist (a create that failed, or expired
			// in the queue) leaves at once: it holds a lease and a slot of
			// MaxRooms for nothing.
			if c.room == nil && c.s.tryEvict(c) {
				c.shutdown(stopEvict)
				return
			}
			idle.Reset(c.s.opts.IdleEvict)
		case <-c.tickC():
			c.timerAt = time.Time{}
			if !c.process(&op{kind: KindTick}) {
				return
			}
		case <-idle.C:
			// A room with a game timer pending stays: its timers must fire
			// whether or not anyone is sending.
			if (c.room == nil || c.room.deadline().IsZero()) && c.s.tryEvict(c) {
				c.s.st.evicted.Add(1)
				c.shutdown(stopEvict)
				return
			}
			idle.Reset(c.s.opts.IdleEvict)
		case m := <-c.stopc:
			c.shutdown(m)
			return
		}
	}
}

// recoverPanic keeps a panic in game code (Encode, Clone, Deadline,
// Decode: apply recovers its own) from killing the process: the ops in
// hand are answered internal, the room dropped (lease released) so the
// next event reloads it from the store.
func (c *controller) recoverPanic() {
	p := recover()
	if p == nil {
		return
	}
	c.s.log.Error("room: controller panicked", "room", c.id, "panic", p, "stack", string(debug.Stack()))
	err := wire.Errorf(wire.CodeInternal, "room %s failed", c.id)
	for _, o := range c.batch {
		o.reply(opResult{err: err})
	}
	c.s.detach(c)
	c.failQueue(errRetry)
	c.release()
}

// exit runs last: the room's next controller may start.
func (c *controller) exit() {
	if c.s.detach(c) { // every path detaches first; this is a backstop
		c.failQueue(errRetry)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	close(c.done)
	c.s.exited(c)
	c.s.wg.Done()
}

func stopError(m stopMode) error {
	if m == stopDrain {
		return wire.NewError(wire.CodeUnavailable, wire.DrainingMessage)
	}
	if m == stopLost || m == stopMove {
		return errRetry
	}
	return wire.Errorf(wire.CodeUnavailable, "closing")
}

// abort ends a controller that never ran: queued events get err.
func (c *controller) abort(err error, release bool) {
	c.s.detach(c)
	c.failQueue(err)
	if release {
		c.release()
	}
}

// failQueue answers everything queued with err. Caller detached c. A
// room.CreateMatched told the room is not found is told to retry instead:
// its own controller creates the room.
func (c *controller) failQueue(err error) {
	notFound := errors.Is(err, &wire.Error{Code: wire.CodeNotFound})
	for {
		select {
		case o := <-c.q:
			if notFound && o.kind == KindMatched {
				o.reply(opResult{err: errRetry})
				continue
			}
			o.reply(opResult{err: err})
		default:
			return
		}
	}
}

// open takes the lease and loads the room.
func (c *controller) open() error {
	epoch, err := c.acquire()
	if err != nil {
		return err
	}
	c.lease.Store(epoch)
	if c.fresh {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.LoadTimeout)
	defer cancel()
	c.s.st.loads.Add(1)
	snap, entries, err := c.s.store.Load(ctx, c.id, epoch)
	if fe := (*FencedError)(nil); errors.As(err, &fe) {
		// We hold the lease, so no other instance does, yet the store holds
		// a higher epoch: the lease store lost its epochs (a Redis restarted
		// without persistence, or flushed) and counts from 1 again. Move the
		// lease past the store's epoch, or every owner would be fenced
		// forever ("changing owner").
		if next, aerr := c.a.leases.Advance(ctx, c.id, epoch, fe.Epoch); aerr == nil {
			c.s.st.epochRepairs.Add(1)
			c.s.log.Warn("room: lease epoch behind the store's (the lease store lost its data): advanced", "room", c.id, "epoch", epoch, "stored", fe.Epoch, "now", next)
			epoch = next
			c.lease.Store(epoch)
			snap, entries, err = c.s.store.Load(ctx, c.id, epoch)
		}
	}
	if err != nil && c.orNew && errors.Is(err, ErrNotFound) {
		return nil // the KindMatched op that opened it creates it
	}
	if err != nil {
		c.s.st.loadErrors.Add(1)
		switch {
		case errors.Is(err, ErrNotFound):
			return wire.Errorf(wire.CodeNotFound, "no room %s", c.id)
		case errors.Is(err, ErrFenced):
			c.s.st.fenced.Add(1)
			return errRetry // a newer owner claimed it: ask again
		}
		c.s.log.Warn("room: load failed", "room", c.id, "err", err)
		return wire.Errorf(wire.CodeUnavailable, "loading room %s failed", c.id)
	}
	room, evs, err := rebuildEvents(c.id, snap, entries, c.s.games)
	if err != nil {
		c.s.st.loadErrors.Add(1)
		c.s.log.Error("room: does not rebuild", "room", c.id, "err", err)
		return wire.Errorf(wire.CodeInternal, "room %s does not load", c.id)
	}
	c.room = room
	c.remember(evs)
	if snap != nil {
		c.snapSeq = snap.Seq
	}
	for _, e := range entries {
		c.lastAt = max(c.lastAt, e.At)
	}
	if int64(len(entries)) >= int64(c.s.opts.SnapshotEvery) {
		c.saveSnapshot() // the next load starts here
	}
	c.armTimer()
	return nil
}

// acquire takes the room's lease. While a dead instance (one yellow no
// longer lists) holds it, acquire waits for it to expire, up to twice the
// TTL; a live holder is the owner: moved.
func (c *controller) acquire() (int64, error) {
	poll := min(max(c.s.opts.LeaseTTL/20, 10*time.Millisecond), 250*time.Millisecond)
	deadline := time.Now().Add(2 * c.s.opts.LeaseTTL)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.LoadTimeout)
		epoch, err := c.a.leases.Acquire(ctx, c.id)
		cancel()
		if err == nil {
			return epoch, nil
		}
		owner, ok := heldBy(err)
		if !ok {
			c.s.log.Warn("room: lease", "room", c.id, "err", err)
			return 0, wire.Errorf(wire.CodeUnavailable, "taking room %s: lease store unavailable", c.id)
		}
		if c.s.isListed(c.a, owner) {
			c.s.st.moved.Add(1)
			return 0, wire.NewError(wire.CodeMoved, owner)
		}
		if time.Now().After(deadline) {
			return 0, wire.Errorf(wire.CodeUnavailable, "room %s is held by %s, which is gone; its lease has not expired", c.id, owner)
		}
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case m := <-c.stopc:
			t.Stop()
			return 0, stopError(m)
		}
	}
}

// tickC is the channel of the game's next timer, nil for none.
func (c *controller) tickC() <-chan time.Time {
	if c.timer == nil || c.timerAt.IsZero() {
		return nil
	}
	return c.timer.C
}

// armTimer sets the timer to the room's next deadline.
func (c *controller) armTimer() {
	var dl time.Time
	if c.room != nil {
		dl = c.room.deadline()
	}
	if dl.Equal(c.timerAt) {
		return
	}
	if c.timer != nil {
		c.timer.Stop()
		select { // drop a tick that fired meanwhile
		case <-c.timer.C:
		default:
		}
	}
	c.timerAt = dl
	if dl.IsZero() {
		return
	}
	d := max(time.Until(dl), 0)
	if c.timer == nil {
		c.timer = time.NewTimer(d)
	} else {
		c.timer.Reset(d)
	}
}

// now is the time of a new entry: the clock, but never before the last
// entry's.
func (c *controller) now() int64 {
	c.lastAt = max(c.lastAt, time.Now().UnixMilli())
	return c.lastAt
}

// process handles first and, with AppendBatch > 1, the events queued behind
// it: each is applied to a copy of the room in order; then the entries are
// stored in one write; only then is the copy kept, the events published
// and the callers answered. If the write fails nothing happened: the
// callers get an error and the controller drops the room (false), so the
// next event reloads it from the store.
func (c *controller) process(first *op) bool {
	batch := []*op{first}
	if first.kind != KindTick {
	more:
		for len(batch) < c.s.opts.AppendBatch {
			select {
			case o := <-c.q:
				batch = append(batch, o)
			default:
				break more
			}
		}
	}
	c.batch = batch
	results := make([]opResult, len(batch))
	views := make([]*roomState, len(batch)) // the room as each op left it
	work := c.room
	var entries []Entry
	var events []roomEvent
	for i, o := range batch {
		if o.res != nil && o.ctx.Err() != nil {
			results[i].err = wire.Errorf(wire.CodeTimeout, "room %s: the request expired in the queue", c.id)
			continue
		}
		if o.kind == opGet {
			if work == nil {
				results[i].err = wire.Errorf(wire.CodeNotFound, "no room %s", c.id)
			}
			views[i] = work
			continue
		}
		if work != nil && rated(o.kind) && work.member(o.player) >= 0 && !c.allow(o.player, len(o.body)) {
			c.s.st.rateLimited.Add(1)
			results[i].err = wire.Errorf(wire.CodeRateLimited, "room %s: %s sends events faster than member_rate allows; slow down", c.id, o.player)
			continue
		}
		next := newRoomState(c.id)
		switch {
		case work != nil:
			next = work.clone()
		case !createsRoom(o.kind):
			results[i].err = wire.Errorf(wire.CodeNotFound, "no room %s", c.id)
			continue
		}
		e := Entry{Seq: next.seq + 1, Kind: o.kind, Player: o.player, Body: o.body, At: c.now()}
		if o.kind == KindStart {
			e.Body = binary.BigEndian.AppendUint64(nil, randUint64())
		}
		evs, noop, err := next.apply(e, c.s.games)
		switch {
		case err != nil:
			results[i].err = err
		case noop:
			views[i] = work
		default:
			work = next
			views[i] = work
			results[i].changed = true
			entries = append(entries, e)
			events = append(events, evs...)
			if o.kind == KindLeave {
				delete(c.buckets, o.player)
			}
		}
	}
	if len(entries) > 0 {
		if err := c.persist(work, entries); err != nil {
			for i, o := range batch {
				if results[i].err == nil {
					results[i].err = err
				}
				o.reply(results[i])
			}
			c.batch = nil
			c.drop(err)
			return false
		}
		c.room = work
	}
	c.remember(events)
	for _, ev := range events {
		c.publish(ev)
		if ev.ev.Type == EventFinished && ev.ev.Player != "" {
			c.s.rewardWin(c.id, ev.ev.Player)
		}
	}
	for i, o := range batch {
		if results[i].err == nil && views[i] != nil {
			results[i].seq = views[i].eventSeq
			if o.wantState {
				st, err := views[i].protoFor(o.player)
				if err != nil {
					c.s.log.Error("room: encoding state", "room", c.id, "err", err)
					results[i].err = wire.Errorf(wire.CodeInternal, "room %s: encoding state", c.id)
				} else if o.since != nil && !st.PublicView {
					st.Events, st.Resync = c.replay(views[i].eventSeq, *o.since, o.player)
				}
				results[i].state = st
			}
		}
		o.reply(results[i])
	}
	c.batch = nil
	c.armTimer()
	return true
}

// persist stores entries, which bring the room to work, fenced by the
// lease epoch; with a snapshot when SnapshotEvery entries passed since the
// last one. It returns the error to answer with: errRetry when fenced (the
// room has a newer owner), conflict for a taken id, unavailable otherwise.
func (c *controller) persist(work *roomState, entries []Entry) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.StoreTimeout)
	defer cancel()
	epoch := c.lease.Load()
	var err error
	var snap *Snapshot
	first := entries[0].Kind
	if createsRoom(first) {
		// A new room: its first entry creates it (the rest of a batch, if
		// any, follows in a second write).
		sum := work.summary()
		if first == KindCreate {
			sum.Creator = entries[0].Player
		}
		err = c.s.store.Create(ctx, epoch, sum, entries[0], c.s.opts.MaxRoomsPerUser)
		c.s.st.appends.Add(1)
		entries = entries[1:]
	}
	if err == nil && len(entries) > 0 {
		if work.seq-c.snapSeq >= int64(c.s.opts.SnapshotEvery) {
			if s, serr := work.snapshot(); serr == nil {
				snap = &s
			} else {
				c.s.log.Error("room: encoding snapshot", "room", c.id, "err", serr)
			}
		}
		err = c.s.store.Append(ctx, epoch, work.summary(), entries, snap)
		c.s.st.appends.Add(1)
	}
	if err == nil {
		c.s.st.entries.Add(uint64(len(entries)))
		if snap != nil {
			c.snapSeq = snap.Seq
			c.s.st.snapshots.Add(1)
		}
		return nil
	}
	c.s.st.appendErrors.Add(1)
	switch {
	case errors.Is(err, ErrFenced):
		c.s.st.fenced.Add(1)
		c.s.log.Warn("room: fenced: a newer owner claimed the room", "room", c.id, "epoch", epoch)
		return errRetry
	case errors.Is(err, ErrExists) && first == KindMatched:
		// The room was not found under our lease, yet it exists: another
		// owner took the lease meanwhile and created it. Ask again: the
		// owner answers the retry (idempotent when the members agree).
		c.s.st.fenced.Add(1)
		c.s.log.Warn("room: created meanwhile by a newer owner", "room", c.id, "epoch", epoch)
		return errRetry
	case errors.Is(err, ErrExists):
		return wire.Errorf(wire.CodeConflict, "room %s exists", c.id)
	case errors.Is(err, ErrQuota):
		c.s.st.quotaRefused.Add(1)
		return wire.Errorf(wire.CodeRateLimited, "you have %d open rooms (max_rooms_per_user): leave one before creating another", c.s.opts.MaxRoomsPerUser)
	}
	c.s.log.Warn("room: storing entries failed", "room", c.id, "err", err)
	return wire.Errorf(wire.CodeUnavailable, "room %s: storing the event failed; get the room's state before retrying", c.id)
}

// drop ends the controller after a failed write: what is queued is
// re-submitted (to a new controller that reloads the room, or, fenced, to
// the new owner); the lease is released unless it was lost.
func (c *controller) drop(err error) {
	c.s.detach(c)
	c.failQueue(errRetry)
	if errors.Is(err, errRetry) {
		c.s.st.leaseLost.Add(1)
		c.lease.Store(0)
		return
	}
	c.release()
}

// shutdown stops a running controller.
func (c *controller) shutdown(m stopMode) {
	c.s.detach(c)
	switch m {
	case stopDrain, stopMove:
		// Nothing more arrives (detached): handle what is queued.
		for len(c.q) > 0 {
			if !c.process(<-c.q) {
				return
			}
		}
		c.saveSnapshot()
		c.release()
	case stopEvict:
		c.saveSnapshot()
		c.release()
	case stopLost:
		c.s.st.leaseLost.Add(1)
		c.failQueue(errRetry)
		c.lease.Store(0)
	case stopClose:
		c.failQueue(stopError(m))
		c.release()
	case stopKill:
		c.failQueue(stopError(m))
	}
}

// saveSnapshot stores a snapshot of the room if entries came after the
// last one, so the next owner loads without replaying.
func (c *controller) saveSnapshot() {
	if c.room == nil || c.room.seq <= c.snapSeq || c.lease.Load() == 0 {
		return
	}
	snap, err := c.room.snapshot()
	if err != nil {
		c.s.log.Error("room: encoding snapshot", "room", c.id, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.StoreTimeout)
	defer cancel()
	if err := c.s.store.SaveSnapshot(ctx, c.id, c.lease.Load(), snap); err != nil {
		c.s.log.Warn("room: snapshot failed", "room", c.id, "err", err)
		return
	}
	c.snapSeq = snap.Seq
	c.s.st.snapshots.Add(1)
}

// release gives the lease back so the next owner need not wait for it to
// expire.
func (c *controller) release() {
	epoch := c.lease.Swap(0)
	if epoch == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := c.a.leases.Release(ctx, c.id, epoch); err != nil {
		c.s.log.Debug("room: release lease", "room", c.id, "err", err)
	}
}

// publish sends ev to the room's members: on the room's topic, or, for
// an event with private bodies, to each member apart (topic user/<id>).
func (c *controller) publish(ev roomEvent) {
	if !ev.private() {
		c.publishTo(Topic(c.id), ev.ev)
		return
	}
	if c.room == nil {
		return
	}
	for _, p := range c.room.players {
		c.publishTo(UserTopic(p.ID), ev.forMember(p.ID))
	}
}

func (c *controller) publishTo(topic string, ev *roompb.Event) {
	b, err := thriftx.Marshal(ev)
	if err == nil {
		err = c.a.publish(topic, EventType, b)
	}
	if err != nil {
		c.s.st.publishErrors.Add(1)
		c.s.log.Debug("room: publish", "room", c.id, "seq", ev.Seq, "err", err)
		return
	}
	c.s.st.published.Add(1)
}

// remember keeps evs in the replay buffer, dropping the oldest past
// Options.Replay's bounds.
func (c *controller) remember(evs []roomEvent) {
	maxN, maxB := c.s.opts.Replay.MaxEvents, c.s.opts.Replay.MaxBytes
	for _, e := range evs {
		c.recent = append(c.recent, e)
		c.recentB += e.size()
	}
	drop := 0
	for drop < len(c.recent) && (len(c.recent)-drop > maxN || c.recentB > maxB) {
		c.recentB -= c.recent[drop].size()
		drop++
	}
	if drop > 0 {
		c.recent = append(c.recent[:0:0], c.recent[drop:]...)
	}
}

// replay returns the events after since up to upto as member sees them,
// or resync when they are not all kept (or since is past upto).
func (c *controller) replay(upto, since int64, member string) ([]*roompb.Event, bool) {
	if since >= upto {
		return nil, since > upto
	}
	if since < 0 || len(c.recent) == 0 || c.recent[0].ev.Seq > since+1 {
		return nil, true
	}
	var out []*roompb.Event
	for _, e := range c.recent {
		if e.ev.Seq > since && e.ev.Seq <= upto {
			out = append(out, e.forMember(member))
		}
	}
	return out, false
}

// rated reports whether a member's op of kind counts against MemberRate.
func rated(kind string) bool {
	return kind == KindReady || kind == KindUnready || kind == KindStart || kind == KindAct
}

// bucket is a member's token buckets: events and bytes.
type bucket struct {
	events, bytes float64
	at            time.Time
}

// allow takes an event of n bytes from player's buckets, false when they
// are empty (MemberRate).
func (c *controller) allow(player string, n int) bool {
	r := c.s.opts.MemberRate
	if r.Events <= 0 && r.Bytes <= 0 {
		return true
	}
	now := time.Now()
	if c.buckets == nil {
		c.buckets = make(map[string]*bucket)
	}
	b := c.buckets[player]
	if b == nil {
		b = &bucket{events: float64(r.Burst), bytes: 2 * float64(r.Bytes), at: now}
		c.buckets[player] = b
	}
	dt := now.Sub(b.at).Seconds()
	b.at = now
	if r.Events > 0 {
		b.events = min(b.events+dt*r.Events, float64(r.Burst))
		if b.events < 1 {
			return false
		}
	}
	if r.Bytes > 0 {
		b.bytes = min(b.bytes+dt*float64(r.Bytes), 2*float64(r.Bytes))
		if b.bytes < float64(n) {
			return false
		}
		b.bytes -= float64(n)
	}
	if r.Events > 0 {
		b.events--
	}
	return true
}

func randUint64() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}
