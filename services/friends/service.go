package friends

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// Push event types, on the user's topic ("@friends.Online").
const (
	PushRequest  = "friends.Request"
	PushAccepted = "friends.Accepted"
	PushOnline   = "friends.Online"
	PushOffline  = "friends.Offline"
	PushInvited  = "friends.Invited"
)

// BindingRoom is the session binding of the room a player is in (the room
// service's routing key): friends.Invite invites into it.
const BindingRoom = "room"

// Limits of the service's own work.
const (
	// presenceQueue bounds each presence worker's queue; past it the
	// follower waits (the broker's PUB socket drops a subscriber that
	// stops reading for long: presence then resyncs only by what comes
	// next).
	presenceQueue = 1024
	// brokerCheckEvery is how often the brokers in Redis are compared
	// with yellow's view when the view did not change.
	brokerCheckEvery = 5 * time.Second
	// unknownBrokerAfter is the least time a broker this instance never
	// saw in yellow must stay absent before its connections are ended: it
	// may just have registered and not reached this instance's view yet.
	unknownBrokerAfter = 10 * time.Second
	// purgeEvery is how often expired requests are deleted (they are
	// ignored from the moment they expire; this only frees the rows).
	purgeEvery = time.Minute
	// purgeBatch bounds one purge.
	purgeBatch = 1000
	// tickTimeout bounds one tick.
	tickTimeout = 10 * time.Second
	// fanoutTimeout bounds one transition's pushes (the friends read and
	// their presence).
	fanoutTimeout = 5 * time.Second
	// maxSessionIDLen bounds the broker and session ids of a presence
	// event.
	maxSessionIDLen = 128
)

// Deps are what a Service works with besides its options.
type Deps struct {
	// Store keeps the relations.
	Store Store
	// Redis holds presence.
	Redis redis.UniversalClient
	// Users finds the users players name (login).
	Users Directory
	// Publisher publishes pushes; it may be set after New (SetPublisher).
	Publisher Publisher
	// Brokers, when set, is the view of live brokers: the connections of a
	// broker that left yellow are ended.
	Brokers Brokers
	// Now is the clock; nil means time.Now. Tests use a fake one.
	Now func() time.Time
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives the service's metrics; nil means none.
	Metrics metrics.Sink
}

// Service is the friends service of one instance: its handlers, its
// presence workers and its tick. Instances share Postgres and Redis only.
type Service struct {
	opts    Options
	store   Store
	pres    *presenceStore
	users   Directory
	pub     atomic.Pointer[Publisher]
	brokers Brokers
	now     func() time.Time
	log     *slog.Logger
	m       *serviceMetrics

	ctx     context.Context
	cancel  context.CancelFunc
	stop    chan struct{} // closed by Drain or Close
	stopped atomic.Bool
	running atomic.Bool
	queues  []chan presenceJob
	wg      sync.WaitGroup

	mu        sync.Mutex           // guards the fields below (the tick's)
	seen      map[string]bool      // brokers seen in yellow
	missing   map[string]time.Time // brokers in Redis absent from yellow, since
	brokerDue time.Time            // when the first missing broker is due (zero: none)
	lastCheck time.Time
	lastPurge time.Time
}

// presenceJob is a presence event for a worker.
type presenceJob struct {
	ev connEvent
}

// New validates opts and returns the service; Run starts its presence
// workers and its tick.
func New(opts Options, deps Deps) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Redis == nil || deps.Users == nil {
		return nil, errors.New("friends: deps: Store, Redis and Users are required")
	}
	s := &Service{
		opts:    opts,
		store:   deps.Store,
		users:   deps.Users,
		brokers: deps.Brokers,
		now:     deps.Now,
		log:     deps.Logger,
		stop:    make(chan struct{}),
		seen:    map[string]bool{},
		missing: map[string]time.Time{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	sink := deps.Metrics
	if sink == nil {
		sink = metrics.Nop()
	}
	s.m = newMetrics(sink)
	s.pres = &presenceStore{rdb: deps.Redis, prefix: opts.RedisPrefix, onErr: func(script string, _ error) {
		s.m.scriptErrors.With(script).Inc()
	}}
	if deps.Publisher != nil {
		s.SetPublisher(deps.Publisher)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.queues = make([]chan presenceJob, opts.PresenceWorkers)
	for i := range s.queues {
		s.queues[i] = make(chan presenceJob, presenceQueue)
	}
	return s, nil
}

// SetPublisher sets where pushes are published (the instance's Server).
func (s *Service) SetPublisher(p Publisher) { s.pub.Store(&p) }

// Run starts the presence workers and the tick. It returns at once;
// calling it again has no effect.
func (s *Service) Run() {
	if s.stopped.Load() || !s.running.CompareAndSwap(false, true) {
		return
	}
	for _, q := range s.queues {
		s.wg.Add(1)
		go s.worker(q)
	}
	s.wg.Add(1)
	go s.loop()
}

// Drain stops taking presence events and the tick, and waits (bounded by
// ctx) for the work in flight; the other instances apply the same events.
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

// Close stops everything at once. Idempotent.
func (s *Service) Close() {
	if s.stopped.CompareAndSwap(false, true) {
		close(s.stop)
	}
	s.cancel()
	s.wg.Wait()
}

// HandlePresence takes a broker's presence event: broker is the id of the
// broker that published it (its yellow record's, not the event's word),
// seq the event's sequence number. It queues the event for the worker of
// its user (so a user's events apply in order) and waits while that queue
// is full; it drops the event once the service stops.
func (s *Service) HandlePresence(broker string, seq uint64, p *platformpb.Presence) {
	ev, ok := s.presenceEvent(broker, seq, p)
	if !ok {
		s.m.presence.With("malformed").Inc()
		return
	}
	q := s.queues[workerOf(ev.user, len(s.queues))]
	select {
	case q <- presenceJob{ev: ev}:
	case <-s.stop:
	}
}

// presenceEvent checks and converts a presence event.
func (s *Service) presenceEvent(broker string, seq uint64, p *platformpb.Presence) (connEvent, bool) {
	if !validUserID(p.GetUserId()) || !validToken(broker) || !validToken(p.GetSession()) {
		return connEvent{}, false
	}
	at := p.GetAtUnixMs()
	if at <= 0 {
		at = ms(s.now())
	}
	return connEvent{
		user: p.GetUserId(), broker: broker, session: p.GetSession(),
		at: at, seq: seq, online: p.GetOnline(),
		grace: time.Duration(min(max(p.GetGraceMs(), 0), maxGrace.Milliseconds())) * time.Millisecond,
	}, true
}

// validToken reports whether s may name a broker or a connection in a
// presence key: 1 to maxSessionIDLen bytes of [A-Za-z0-9_.:-] (never '|',
// the separator).
func validToken(s string) bool {
	if s == "" || len(s) > maxSessionIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// workerOf returns the worker of user among n.
func workerOf(user string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return int(h.Sum32() % uint32(n))
}

// worker applies the presence events of its queue until the service stops.
func (s *Service) worker(q chan presenceJob) {
	defer s.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case j := <-q:
			s.applyPresence(j.ev)
		}
	}
}

// applyPresence applies one event and, when this instance declared the
// user online, tells the user's online friends.
func (s *Service) applyPresence(ev connEvent) {
	ctx, cancel := context.WithTimeout(s.ctx, storeTimeout)
	r, err := s.pres.conn(ctx, ev, s.now())
	cancel()
	if err != nil {
		s.log.Warn("friends: presence", "user", ev.user, "online", ev.online, "err", err)
		return
	}
	switch r {
	case connStale:
		s.m.presence.With("stale").Inc()
	case connOnline:
		s.m.presence.With("online").Inc()
		s.m.transitions.With("online").Inc()
		s.tellFriends(ev.user, PushOnline, &friendspb.Online{UserID: ev.user})
	default:
		s.m.presence.With("applied").Inc()
	}
}

// tellFriends pushes msg (of eventType) to user's friends who are online.
func (s *Service) tellFriends(user, eventType string, msg thrift.TStruct) {
	ctx, cancel := context.WithTimeout(s.ctx, fanoutTimeout)
	defer cancel()
	friends, err := s.store.List(ctx, user, ListQuery{States: []State{StateFriend}, Limit: maxLimit})
	if err != nil {
		s.log.Warn("friends: reading friends to push to", "user", user, "push", eventType, "err", err)
		return
	}
	ids := make([]string, len(friends))
	for i, f := range friends {
		ids[i] = f.Other
	}
	online, err := s.pres.online(ctx, ids)
	if err != nil {
		s.log.Warn("friends: reading presence to push to", "user", user, "push", eventType, "err", err)
		return
	}
	payload, err := thriftx.Marshal(msg)
	if err != nil {
		s.log.Error("friends: encoding a push", "push", eventType, "err", err)
		return
	}
	for i, id := range ids {
		if online[i] {
			s.publish(id, eventType, payload)
		}
	}
}

// push pushes msg (of eventType) to user.
func (s *Service) push(user, eventType string, msg thrift.TStruct) {
	payload, err := thriftx.Marshal(msg)
	if err != nil {
		s.log.Error("friends: encoding a push", "push", eventType, "err", err)
		return
	}
	s.publish(user, eventType, payload)
}

// publish publishes one push on user's topic.
func (s *Service) publish(user, eventType string, payload []byte) {
	p := s.pub.Load()
	var err error
	if p == nil {
		err = errors.New("no publisher")
	} else {
		err = (*p).Publish(wire.KeyUser+"/"+user, eventType, payload)
	}
	if err != nil {
		s.m.pushErrors.Inc()
		s.log.Debug("friends: push not published", "user", user, "push", eventType, "err", err)
		return
	}
	s.m.pushes.With(eventType).Inc()
}

// loop runs the tick until the service stops, every TickInterval; a
// change of the brokers in yellow makes the next tick check them at once
// (the view changes at every instance's coming and going, so it only
// marks the check due).
func (s *Service) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.TickInterval)
	defer t.Stop()
	var changed <-chan struct{}
	if s.brokers != nil {
		changed = s.brokers.Changed()
	}
	var lastErr time.Time
	dirty := false
	for {
		select {
		case <-s.stop:
			return
		case <-changed:
			changed = s.brokers.Changed()
			dirty = true
			continue
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, tickTimeout)
		err := s.tick(ctx, dirty, false)
		cancel()
		dirty = false
		if err != nil && s.ctx.Err() == nil && time.Since(lastErr) > 10*time.Second { // at most one line per 10 s
			lastErr = time.Now()
			s.log.Warn("friends: tick", "err", err)
		}
	}
}

// Tick runs the tick once, every part of it: brokers that left yellow,
// users whose offline grace ended (pushing Offline to their online
// friends), expired requests. The loop calls it; tests call it directly
// with a fake clock.
func (s *Service) Tick(ctx context.Context) error { return s.tick(ctx, true, true) }

// tick is Tick; the broker check and the purge run only when due, or
// when forced (the broker check when yellow's view changed).
func (s *Service) tick(ctx context.Context, forceBrokers, forcePurge bool) error {
	now := s.now()
	var errs []error
	s.mu.Lock()
	due := !s.brokerDue.IsZero() && !now.Before(s.brokerDue)
	checkBrokers := s.brokers != nil && (forceBrokers || due || now.Sub(s.lastCheck) >= brokerCheckEvery)
	if checkBrokers {
		s.lastCheck = now
	}
	purge := forcePurge || now.Sub(s.lastPurge) >= purgeEvery
	if purge {
		s.lastPurge = now
	}
	s.mu.Unlock()
	if checkBrokers {
		errs = append(errs, s.checkBrokers(ctx, now))
	}
	for n := range presenceShards {
		users, err := s.pres.sweep(ctx, n, now)
		if err != nil {
			errs = append(errs, err)
			if ctx.Err() != nil {
				return errors.Join(errs...)
			}
			continue
		}
		for _, u := range users {
			s.m.transitions.With("offline").Inc()
			s.tellFriends(u, PushOffline, &friendspb.Offline{UserID: u})
		}
	}
	if purge {
		n, err := s.store.Purge(ctx, now.Add(-s.opts.RequestTTL), purgeBatch)
		errs = append(errs, err)
		s.m.purged.Add(float64(n))
	}
	return errors.Join(errs...)
}

// checkBrokers ends the connections of the brokers that have connections
// in Redis and have been absent from yellow for a while: BrokerGrace for
// one this instance saw in yellow (it left, and its players had that long
// to resume elsewhere; one back within it, after a blip, keeps its
// connections), the longer of BrokerGrace and unknownBrokerAfter for one it
// never saw (it may be too new for this instance's view). Their users with
// no other connection are offline at once.
func (s *Service) checkBrokers(ctx context.Context, now time.Time) error {
	live, ok := s.brokers.LiveBrokers()
	if !ok {
		return nil
	}
	known, err := s.pres.brokers(ctx)
	if err != nil {
		return err
	}
	liveSet := make(map[string]bool, len(live))
	var gone []string
	var next time.Time // when the next missing broker is due
	s.mu.Lock()
	for _, id := range live {
		liveSet[id] = true
		s.seen[id] = true
		delete(s.missing, id)
	}
	for id := range known {
		if liveSet[id] {
			continue
		}
		since, ok := s.missing[id]
		if !ok {
			since = now
			s.missing[id] = now
		}
		wait := s.opts.BrokerGrace
		if !s.seen[id] {
			wait = max(wait, unknownBrokerAfter)
		}
		if now.Sub(since) >= wait {
			gone = append(gone, id)
		} else if at := since.Add(wait); next.IsZero() || at.Before(next) {
			next = at
		}
	}
	s.brokerDue = next
	for id := range s.missing { // forget the brokers gone from Redis too
		if !known[id] {
			delete(s.missing, id)
		}
	}
	for id := range s.seen {
		if !liveSet[id] && !known[id] {
			delete(s.seen, id)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, b := range gone {
		failed := false
		for n := range presenceShards {
			if err := s.pres.brokerGone(ctx, n, b, now); err != nil {
				errs = append(errs, err)
				failed = true
				if ctx.Err() != nil {
					return errors.Join(errs...)
				}
			}
		}
		if failed {
			continue // the next check tries again: the broker is still in Redis
		}
		s.mu.Lock()
		delete(s.seen, b)
		delete(s.missing, b)
		s.mu.Unlock()
		s.m.brokersGone.Inc()
		s.log.Info("friends: a broker left yellow: its connections ended", "broker", b)
	}
	return errors.Join(errs...)
}
