package match

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// Push event types, on the player's connection ("@match.Matched").
const (
	PushSearching = "match.Searching"
	PushMatched   = "match.Matched"
	PushTimedOut  = "match.TimedOut"
	PushCancelled = "match.Cancelled"
)

// BindingRoom is the session binding a room match sets (the room
// service's routing key).
const BindingRoom = "room"

// Reasons of cancelled tickets (Ticket.reason).
const (
	ReasonCancelled    = "cancelled"
	ReasonDisconnected = "disconnected"
	ReasonOperator     = "operator"
)

// Limits of the service's own work.
const (
	// storeTimeout bounds one script run or read: Redis answers in a
	// millisecond; a second means it is away.
	storeTimeout = 2 * time.Second
	// tickTimeout bounds one tick of every queue, placements included.
	tickTimeout = 10 * time.Second
	// jobQueue bounds the placements Start hands to the workers; past it
	// the next tick finds the session in SessionsReady.
	jobQueue = 4096
	// maxRoomTries bounds the search for a room id owned by an instance
	// with free capacity: with a quarter of the instances free, 64 tries
	// all miss with probability 1e-8.
	maxRoomTries = 64
	// fullFor is how long a room instance that refused a room
	// (overloaded) is skipped: its rooms_free in yellow catches up within
	// a heartbeat or two.
	fullFor = 5 * time.Second
	// retryMin and retryMax bound the wait before this instance tries
	// again a session whose placement failed (doubling per failure): a
	// room service that is down is not asked five times a second per
	// session.
	retryMin = 250 * time.Millisecond
	retryMax = 10 * time.Second
	// maxGraceMs bounds a presence event's resume grace.
	maxGraceMs = int64(time.Hour / time.Millisecond)
)

// Deps are what a Service works with besides its options.
type Deps struct {
	// Redis holds the model.
	Redis redis.UniversalClient
	// Pusher sends directives to players' connections.
	Pusher Pusher
	// Rooms creates matched rooms (placement "room").
	Rooms RoomCreator
	// Cluster is the view of room instances and brokers.
	Cluster Cluster
	// Now is the clock; nil means time.Now. Tests use a fake one.
	Now func() time.Time
	// InstanceID names this instance in placement claims; "" picks a
	// random one.
	InstanceID string
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives the service's metrics; nil means none.
	Metrics metrics.Sink
}

// Service is the matchmaker of one instance: its handlers, its tick and
// its placements. Instances share nothing but Redis.
type Service struct {
	opts    Options
	queues  map[string]*queue
	order   []*queue
	st      *store
	push    Pusher
	rooms   RoomCreator
	cluster Cluster
	now     func() time.Time
	self    string
	log     *slog.Logger
	m       *serviceMetrics

	ctx     context.Context
	cancel  context.CancelFunc
	stop    chan struct{} // closed by Drain or Close: no new work
	stopped atomic.Bool
	running atomic.Bool
	kick    chan struct{}
	jobs    chan placeJob
	wg      sync.WaitGroup

	mu      sync.Mutex // guards pending, figs, noCap, full and retry
	pending map[string]bool
	full    map[string]time.Time // room instance -> skipped until
	retry   map[string]*backoff  // session -> when this instance tries again
	figs    map[string]figuresAt
	noCap   map[string]bool
}

// figuresAt are a queue's figures and when they were read.
type figuresAt struct {
	queueFigures
	at time.Time
}

// placeJob is a ready session to place.
type placeJob struct {
	q   *queue
	sid string
}

// New validates opts and returns the service with its placement workers
// running; Run starts its tick.
func New(opts Options, deps Deps) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if deps.Redis == nil || deps.Pusher == nil || deps.Cluster == nil {
		return nil, errors.New("match: deps: Redis, Pusher and Cluster are required")
	}
	s := &Service{
		opts:    opts,
		queues:  map[string]*queue{},
		push:    deps.Pusher,
		rooms:   deps.Rooms,
		cluster: deps.Cluster,
		now:     deps.Now,
		self:    deps.InstanceID,
		log:     deps.Logger,
		stop:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		jobs:    make(chan placeJob, jobQueue),
		pending: map[string]bool{},
		figs:    map[string]figuresAt{},
		noCap:   map[string]bool{},
		full:    map[string]time.Time{},
		retry:   map[string]*backoff{},
	}
	for _, qo := range opts.Queues {
		q := newQueue(opts.RedisPrefix, qo)
		if q.Placement == matchpb.PLACEMENT_ROOM && deps.Rooms == nil {
			return nil, errors.New("match: deps: Rooms is required for a room queue")
		}
		s.queues[q.Name] = q
		s.order = append(s.order, q)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.self == "" {
		s.self = "match-" + randomID()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	sink := deps.Metrics
	if sink == nil {
		sink = metrics.Nop()
	}
	s.m = newMetrics(sink, func() float64 {
		if s.ScaleOut() {
			return 1
		}
		return 0
	})
	s.st = &store{rdb: deps.Redis, opts: opts, onErr: func(script string, err error) {
		s.m.scriptErrors.With(script).Inc()
	}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	for range opts.PlaceWorkers {
		s.wg.Add(1)
		go s.worker()
	}
	return s, nil
}

// Run starts the tick: every TickInterval, and at once when the yellow
// view changes while a queue waits for capacity. It returns at once;
// calling it again has no effect.
func (s *Service) Run() {
	if s.stopped.Load() || !s.running.CompareAndSwap(false, true) {
		return
	}
	s.wg.Add(1)
	go s.loop()
}

// Drain stops the tick and waits (bounded by ctx) for the placements in
// flight; a stopped instance's ready sessions are placed by the others.
func (s *Service) Drain(ctx context.Context) error {
	if s.stopped.CompareAndSwap(false, true) {
		close(s.stop)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return ctx.Err()
	}
}

// Close stops everything at once: a placement in flight is abandoned (its
// claim expires and another instance places the session). Idempotent.
func (s *Service) Close() {
	if s.stopped.CompareAndSwap(false, true) {
		close(s.stop)
	}
	s.cancel()
	s.wg.Wait()
}

// loop runs the tick until the service stops.
func (s *Service) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.TickInterval)
	defer t.Stop()
	changed := s.cluster.Changed()
	var lastErr time.Time
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.kick:
		case <-changed:
			changed = s.cluster.Changed()
			if !s.waitingForCapacity() {
				continue
			}
		}
		ctx, cancel := context.WithTimeout(s.ctx, tickTimeout)
		err := s.Tick(ctx)
		cancel()
		if err != nil && time.Since(lastErr) > 10*time.Second { // at most one line per 10 s
			lastErr = time.Now()
			s.log.Warn("match: tick", "err", err)
		}
	}
}

// wake runs a tick soon (a server became available).
func (s *Service) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// waitingForCapacity reports whether a queue's last placement found no
// capacity.
func (s *Service) waitingForCapacity() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range s.noCap {
		if v {
			return true
		}
	}
	return false
}

// noCapacity reports whether q's last placement found no capacity.
func (s *Service) noCapacity(q *queue) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.noCap[q.Name]
}

// setNoCapacity records whether q's last placement found capacity.
func (s *Service) setNoCapacity(q *queue, v bool) {
	s.mu.Lock()
	s.noCap[q.Name] = v
	s.mu.Unlock()
}

// Tick runs every queue's tick once: the script (timeouts, min players
// after the wait, merges, disconnections, stale claims), the pushes for
// the tickets it ended, then the placement of the ready sessions it
// lists, PlaceWorkers at a time; it returns when those are done. The loop
// calls it; tests call it directly with a fake clock.
func (s *Service) Tick(ctx context.Context) error {
	live, liveOK := s.cluster.LiveBrokers()
	var errs []error
	var jobs []placeJob
	for _, q := range s.order {
		now := s.now()
		r, err := s.st.tick(ctx, q, now, liveOK, live)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.notify(q, r.timedOut, matchpb.STATE_TIMED_OUT, "", PushTimedOut)
		s.m.timeouts.With(q.Name).Add(float64(len(r.timedOut)))
		s.notify(q, r.cancelled, matchpb.STATE_CANCELLED, ReasonDisconnected, PushCancelled)
		s.m.cancels.With(q.Name, ReasonDisconnected).Add(float64(len(r.cancelled)))
		s.setFigures(q, r.figures, now)
		if len(r.ready) > 0 && s.canPlace(q) {
			if q.serverMode() && s.noCapacity(q) {
				// No server at the last claim: one claim finds out whether
				// one is back (ServerAvailable also wakes the tick).
				r.ready = r.ready[:1]
			}
			for _, sid := range r.ready {
				jobs = append(jobs, placeJob{q: q, sid: sid})
			}
		}
	}
	placed := make([]atomic.Bool, len(s.order))
	sem := make(chan struct{}, s.opts.PlaceWorkers)
	var wg sync.WaitGroup
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if s.place(ctx, j.q, j.sid) {
				placed[s.indexOf(j.q)].Store(true)
			}
		}()
	}
	wg.Wait()
	// Placements change the figures the signal is read from: re-read them.
	for i, q := range s.order {
		if placed[i].Load() {
			if f, _, _, err := s.st.figures(ctx, q); err == nil {
				s.setFigures(q, f, s.now())
			}
		}
	}
	return errors.Join(errs...)
}

// indexOf returns q's index in s.order.
func (s *Service) indexOf(q *queue) int {
	for i, x := range s.order {
		if x == q {
			return i
		}
	}
	return 0
}

// setFigures records q's figures read at now and updates the gauges.
func (s *Service) setFigures(q *queue, f queueFigures, now time.Time) {
	s.mu.Lock()
	s.figs[q.Name] = figuresAt{queueFigures: f, at: now}
	if f.ready == 0 {
		s.noCap[q.Name] = false
	}
	s.mu.Unlock()
	s.m.ticketsActive.With(q.Name).Set(float64(f.tickets))
	s.m.oldestTicket.With(q.Name).Set(ageSeconds(now, f.oldestStarted))
	s.m.readySessions.With(q.Name).Set(float64(f.ready))
	s.m.readyWait.With(q.Name).Set(ageSeconds(now, f.oldestReady))
}

// ageSeconds is the age at now of Unix ms t (0 for none).
func ageSeconds(now time.Time, t int64) float64 {
	if t == 0 {
		return 0
	}
	return max(0, float64(ms(now)-t)/1000)
}

// canPlace reports whether q may have capacity: a room queue needs a room
// instance with free rooms; a server queue's claim finds out.
func (s *Service) canPlace(q *queue) bool {
	if q.serverMode() {
		return true
	}
	for _, ri := range s.roomInstances() {
		if ri.hasRoom() {
			return true
		}
	}
	s.setNoCapacity(q, true)
	return false
}

// ScaleOut reports the scale-out signal: some queue's ready sessions have
// waited ScaleOutAfter or longer for capacity, as of the last tick.
func (s *Service) ScaleOut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.figs {
		if f.ready > 0 && f.oldestReady != 0 && ms(f.at)-f.oldestReady >= s.opts.ScaleOutAfter.Milliseconds() {
			return true
		}
	}
	return false
}

// Meta is what the instance publishes in its yellow record: the
// scale-out signal ("scale_out" "1" or "0"), the ready sessions of every
// queue ("ready_sessions") and the oldest one's wait ("oldest_ready_ms"),
// as of the last tick.
func (s *Service) Meta() map[string]string {
	scale := s.ScaleOut()
	s.mu.Lock()
	var ready, oldest int64
	for _, f := range s.figs {
		ready += f.ready
		if f.oldestReady != 0 {
			oldest = max(oldest, ms(f.at)-f.oldestReady)
		}
	}
	s.mu.Unlock()
	return map[string]string{
		"scale_out":       boolArg(scale),
		"ready_sessions":  strconv.FormatInt(ready, 10),
		"oldest_ready_ms": strconv.FormatInt(oldest, 10),
	}
}

// enqueue hands a session Start just made ready to the workers.
func (s *Service) enqueue(q *queue, sid string) {
	select {
	case s.jobs <- placeJob{q: q, sid: sid}:
	default: // full: the next tick lists it
	}
}

// worker places the sessions Start hands over, until the service stops.
func (s *Service) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case j := <-s.jobs:
			if s.canPlace(j.q) {
				ctx, cancel := context.WithTimeout(s.ctx, storeTimeout+s.opts.PlaceTimeout)
				s.place(ctx, j.q, j.sid)
				cancel()
			}
		}
	}
}

// backoff is a session's failed placements on this instance.
type backoff struct {
	failures int
	wait     time.Duration
	next     time.Time
}

// begin marks sid as being placed by this instance; false if it already
// is, or if its last placement failed too recently.
func (s *Service) begin(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[sid] {
		return false
	}
	if b := s.retry[sid]; b != nil && s.now().Before(b.next) {
		return false
	}
	s.pending[sid] = true
	return true
}

// failed records a failed placement of sid and returns how many failed in
// a row.
func (s *Service) failed(sid string) int {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.retry[sid]
	if b == nil {
		if len(s.retry) >= jobQueue { // forget sessions long placed or gone
			for id, x := range s.retry {
				if now.Sub(x.next) > time.Minute {
					delete(s.retry, id)
				}
			}
		}
		b = &backoff{}
		s.retry[sid] = b
	}
	b.failures++
	b.wait = min(max(2*b.wait, retryMin), retryMax)
	b.next = now.Add(b.wait)
	return b.failures
}

// settled forgets sid's failures: placed, or no longer this instance's to
// place.
func (s *Service) settled(sid string) {
	s.mu.Lock()
	delete(s.retry, sid)
	s.mu.Unlock()
}

// logFailure logs a placement failure the 1st, 2nd, 4th, 8th... time in a
// row (the metric counts them all).
func logFailure(log *slog.Logger, n int, msg string, args ...any) {
	if n&(n-1) == 0 {
		log.Warn(msg, append(args, "failures", n)...)
	}
}

func (s *Service) end(sid string) {
	s.mu.Lock()
	delete(s.pending, sid)
	s.mu.Unlock()
}

// roomInstances returns the ready room instances, those that refused a
// room lately counted as full.
func (s *Service) roomInstances() []RoomInstance {
	insts := s.cluster.RoomInstances()
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, until := range s.full {
		if now.After(until) {
			delete(s.full, id)
		}
	}
	for i := range insts {
		if _, ok := s.full[insts[i].ID]; ok {
			insts[i].Free, insts[i].Known = 0, true
		}
	}
	return insts
}

// markFull skips the owner of room among the ready room instances for a
// while: it refused the room.
func (s *Service) markFull(room string) {
	var ids []string
	for _, ri := range s.cluster.RoomInstances() {
		ids = append(ids, ri.ID)
	}
	if owner := placement.Owner(room, ids); owner != "" {
		s.mu.Lock()
		s.full[owner] = s.now().Add(fullFor)
		s.mu.Unlock()
	}
}

// pickRoomID returns a room id for session sid whose owner among the
// ready room instances (rendezvous hashing, as the router computes it)
// has free capacity; "" when none has.
func pickRoomID(sid string, insts []RoomInstance) string {
	ids := make([]string, len(insts))
	free := make(map[string]bool, len(insts))
	for i, ri := range insts {
		ids[i] = ri.ID
		if ri.hasRoom() {
			free[ri.ID] = true
		}
	}
	if len(free) == 0 {
		return ""
	}
	for n := range maxRoomTries {
		if id := roomIDFor(sid, n); free[placement.Owner(id, ids)] {
			return id
		}
	}
	return ""
}

// place places ready session sid of q: claim it, create its room (or take
// a server), record it placed, and tell its players. It reports whether
// this call placed it. Any failure leaves the session to a later try: on
// an error before the room exists the claim is given back; after, it
// expires and the next claim creates the same room (idempotently) again.
func (s *Service) place(ctx context.Context, q *queue, sid string) bool {
	if !s.begin(sid) {
		return false
	}
	defer s.end(sid)
	log := s.log.With("queue", q.Name, "session", sid)
	proposed := ""
	if !q.serverMode() {
		if proposed = pickRoomID(sid, s.roomInstances()); proposed == "" {
			s.setNoCapacity(q, true)
			return false
		}
	}
	token := randomID()
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	c, err := s.st.claim(sctx, q, s.now(), sid, s.self, token, proposed)
	cancel()
	if err != nil {
		s.m.placementErrors.With(q.Name).Inc()
		logFailure(log, s.failed(sid), "match: claim", "err", err)
		return false
	}
	switch c.status {
	case "ok":
	case "nocap":
		s.setNoCapacity(q, true)
		return false
	default: // placed, claimed by another instance, or no longer ready
		s.settled(sid)
		return false
	}
	if !q.serverMode() {
		rctx, cancel := context.WithTimeout(ctx, s.opts.PlaceTimeout)
		_, err := s.rooms.CreateMatched(rctx, &roompb.CreateMatchedRequest{
			RoomID: c.room, Members: c.players, Game: q.Game, Name: q.Name, MaxPlayers: int32(q.MaxPlayers),
		})
		cancel()
		if err != nil {
			s.m.placementErrors.With(q.Name).Inc()
			code := wire.CodeOf(err)
			// Refused without being created (full, or a room of that id
			// with other members): the next claim picks another room id.
			// Timeouts and unavailable keep it: the room may exist.
			reset := code == wire.CodeOverloaded || code == wire.CodeConflict || code == wire.CodeBadRequest
			if code == wire.CodeOverloaded {
				s.markFull(c.room)
			}
			logFailure(log, s.failed(sid), "match: room.CreateMatched", "room", c.room, "err", err)
			uctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
			if err := s.st.unclaim(uctx, q, s.now(), sid, token, reset); err != nil {
				log.Warn("match: unclaim", "err", err)
			}
			cancel()
			return false
		}
	}
	pctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
	now := s.now()
	r, err := s.st.placed(pctx, q, now, sid, token)
	cancel()
	if err != nil {
		s.m.placementErrors.With(q.Name).Inc()
		logFailure(log, s.failed(sid), "match: placed", "err", err)
		return false
	}
	s.settled(sid)
	if r.lost {
		log.Debug("match: claim lost before placed: another instance places it")
		return false
	}
	s.setNoCapacity(q, false)
	s.m.placements.With(q.Name).Inc()
	m := &matchpb.Match{Session: sid, Placement: q.Placement, RoomID: c.room, ServerAddr: c.addr, Players: r.players}
	var binds []*platformpb.Binding
	if !q.serverMode() {
		binds = []*platformpb.Binding{{Key: BindingRoom, Value: c.room}}
	}
	byBroker := map[string][]*platformpb.SessionDirective{}
	for _, e := range r.tickets {
		s.m.timeToMatch.With(q.Name).Observe(ageSeconds(now, e.started))
		t := &matchpb.Ticket{ID: e.ticket, Queue: q.Name, State: matchpb.STATE_MATCHED, StartedUnixMs: e.started, Match: m}
		if d := directive(e, PushMatched, &matchpb.Matched{Ticket: t}, binds); d != nil {
			byBroker[e.broker] = append(byBroker[e.broker], d)
		}
	}
	s.publish(byBroker)
	log.Debug("match: placed", "room", c.room, "server", c.addr, "players", len(r.players))
	return true
}

// notify tells the players of tickets a tick ended.
func (s *Service) notify(q *queue, list []ended, state, reason, pushType string) {
	if len(list) == 0 {
		return
	}
	byBroker := map[string][]*platformpb.SessionDirective{}
	for _, e := range list {
		t := &matchpb.Ticket{ID: e.ticket, Queue: q.Name, State: state, StartedUnixMs: e.started, Reason: reason}
		var ev thrift.TStruct = &matchpb.Cancelled{Ticket: t}
		if pushType == PushTimedOut {
			ev = &matchpb.TimedOut{Ticket: t}
		}
		if d := directive(e, pushType, ev, nil); d != nil {
			byBroker[e.broker] = append(byBroker[e.broker], d)
		}
	}
	s.publish(byBroker)
}

// tell sends one push to one ticket's connection.
func (s *Service) tell(e ended, pushType string, ev thrift.TStruct) {
	if d := directive(e, pushType, ev, nil); d != nil {
		s.publish(map[string][]*platformpb.SessionDirective{e.broker: {d}})
	}
}

// directive returns the directive that binds binds on e's connection and
// pushes ev; nil when the ticket has no connection to tell.
func directive(e ended, pushType string, ev thrift.TStruct, binds []*platformpb.Binding) *platformpb.SessionDirective {
	if e.conn == "" || e.broker == "" {
		return nil
	}
	payload, err := thriftx.Marshal(ev)
	if err != nil {
		return nil // our own structs always encode
	}
	return &platformpb.SessionDirective{Session: e.conn, UserId: e.user, Bindings: binds, PushType: pushType, PushPayload: payload}
}

// publish sends each broker its directives; failures are logged (the
// players' Status poll is the fallback).
func (s *Service) publish(byBroker map[string][]*platformpb.SessionDirective) {
	for broker, ds := range byBroker {
		if err := s.push.PublishSession(broker, ds...); err != nil {
			s.log.Warn("match: publish directives", "broker", broker, "directives", len(ds), "err", err)
		}
	}
}

// HandlePresence applies a broker's presence event to the user's tickets
// in every queue: offline marks the ticket held by that connection gone
// (cancelled after the event's grace unless the player comes back);
// online moves a gone ticket (or one held on a broker that left yellow)
// to the new connection.
func (s *Service) HandlePresence(p *platformpb.Presence) {
	if p.GetUserId() == "" || p.GetSession() == "" || len(s.order) == 0 {
		return
	}
	now := s.now()
	at := p.GetAtUnixMs()
	if at <= 0 {
		at = ms(now)
	}
	grace := min(max(p.GetGraceMs(), 0), maxGraceMs)
	s.log.Debug("match: presence", "user", p.GetUserId(), "session", p.GetSession(), "broker", p.GetBroker(), "online", p.GetOnline(), "grace_ms", grace)
	live, liveOK := s.cluster.LiveBrokers()
	ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
	defer cancel()
	if err := s.st.presence(ctx, s.order, now, p.GetUserId(), p.GetSession(), p.GetBroker(), p.GetOnline(), at, grace, liveOK, live); err != nil {
		s.log.Warn("match: presence", "user", p.GetUserId(), "online", p.GetOnline(), "err", err)
	}
}
