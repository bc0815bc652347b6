package broker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/wire"
)

// Session state.
//
// A connection's bindings (room = r42) and the push topics services
// subscribed it to are the broker's, in memory; when the broker dies, a
// client that resumes its session on another broker (edge.Hello with its
// token) would get its user back but not its room. So the broker keeps a
// copy where any broker finds it: with the login session, in the login
// service's Redis hash, bounded (loginpb.MAX_SESSION_STATE_*) and expiring
// with the token.
//
//   - Saving: whenever a logged-in session's bindings or topics change (a
//     reply's or a session directive's), the session is marked; a few
//     workers (Options.StateSaveWorkers) save marked sessions with
//     Options.StateSaveMethod (login.SaveSessionState), an internal call
//     carrying no client session, which login takes only from a broker.
//     Saves are coalesced per session: at most one in flight, and changes
//     made meanwhile make one more save of the latest state. Marking never
//     blocks: past Options.StateSaveQueue sessions waiting, a save is
//     dropped (counted). A save is fenced by login (holder and seq, see
//     idl/login.thrift): the broker that lost a session cannot overwrite
//     its new holder's state.
//   - Restoring: edge.Hello with a resume token asks the validating method
//     for the state too (ValidateRequest.resume_holder = this broker, again
//     an internal call), which makes this broker the state's holder. Every
//     binding and topic of the state is checked as the live paths check
//     them (a key some route may bind, never "user", a value a reply could
//     bind; a topic a reply could subscribe to, never another user's) and
//     applied to the resumed connection, whose user must be the state's.
//     The player is in their room again, with its pushes, with no client
//     action.
//   - Drain waits up to Options.StateDrainWait for pending saves; Exit does
//     not wait.
//
// What is not kept: a save lost with its broker (marked but not yet
// stored when the broker died), and the pushes published while the client
// was away (room.Get since a seq replays a room's).

// Results of a save, the values of broker_session_state_saves_total's
// result label: loginpb.SAVE_STATE_SAVED, _STALE and _GONE as login
// answers them, and these.
const (
	stateSaveError   = "error"   // the call failed (login unavailable, timeout)
	stateSaveDropped = "dropped" // not made: the save queue was full, or the broker exiting
)

// stateSaveResults are every result of a save.
var stateSaveResults = []string{loginpb.SAVE_STATE_SAVED, loginpb.SAVE_STATE_STALE, loginpb.SAVE_STATE_GONE, stateSaveError, stateSaveDropped}

// Results of a restore, the values of broker_session_state_restores_total's
// result label.
const (
	stateRestored     = "restored"      // bindings or topics restored on a resumed connection
	stateMalformed    = "malformed"     // the state did not decode or was over the bounds
	stateUserMismatch = "user_mismatch" // the state is another user's
)

// decodeState decodes a saved session state (a loginpb.SessionState in
// Thrift compact), within loginpb.MAX_SESSION_STATE_BYTES and the counts
// of bindings and topics.
func decodeState(raw []byte) (*loginpb.SessionState, error) {
	if len(raw) > loginpb.MAX_SESSION_STATE_BYTES {
		return nil, fmt.Errorf("state of %d bytes exceeds %d", len(raw), loginpb.MAX_SESSION_STATE_BYTES)
	}
	var st loginpb.SessionState
	if err := thriftx.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("bad state: %w", err)
	}
	switch {
	case len(st.GetBindings()) > loginpb.MAX_SESSION_STATE_BINDINGS:
		return nil, fmt.Errorf("state has %d bindings, limit %d", len(st.GetBindings()), loginpb.MAX_SESSION_STATE_BINDINGS)
	case len(st.GetTopics()) > loginpb.MAX_SESSION_STATE_TOPICS:
		return nil, fmt.Errorf("state has %d topics, limit %d", len(st.GetTopics()), loginpb.MAX_SESSION_STATE_TOPICS)
	}
	return &st, nil
}

// The session's own bounds are within the state's, so that a state saved
// from a full session is never refused.
var _ = [1]struct{}{}[max(0, maxBindings-loginpb.MAX_SESSION_STATE_BINDINGS, maxTopics-loginpb.MAX_SESSION_STATE_TOPICS)]

// Per-session save states in stateSaver.pending.
const (
	saveQueued        = iota + 1 // in the queue
	saveInFlight                 // being saved
	saveInFlightDirty            // being saved, and changed since its snapshot
)

// stateSaver saves sessions' states asynchronously (see above). Lock
// order: session.mu, then stateSaver.mu (mark is called under session.mu);
// the workers take session.mu only while holding nothing.
type stateSaver struct {
	b       *Broker
	method  string // the save method, resolved
	route   Route
	queue   chan *session
	timeout time.Duration

	mu      sync.Mutex       // guards the fields below
	pending map[*session]int // sessions queued or being saved
	idle    chan struct{}    // closed when pending empties; nil when no one waits

	lastSeq atomic.Int64
	// lastWarn is when a failed save was last logged (Unix ns): while
	// login is down every change fails, and one line a second says so
	// (broker_session_state_saves_total{result="error"} counts them all).
	lastWarn atomic.Int64
}

// stateWarnEvery is how often a failed save is logged at most.
const stateWarnEvery = time.Second

// warn logs a failed save, at most once per stateWarnEvery.
func (q *stateSaver) warn(msg string, args ...any) {
	now := time.Now().UnixNano()
	last := q.lastWarn.Load()
	if now-last < int64(stateWarnEvery) || !q.lastWarn.CompareAndSwap(last, now) {
		return
	}
	q.b.log.Warn(msg, args...)
}

// newStateSaver returns the saver of b's options, or nil when saving is off
// (Options.StateSaveMethod empty) or the method has no route.
func newStateSaver(b *Broker) *stateSaver {
	if b.opts.StateSaveMethod == "" {
		return nil
	}
	method, rt, ok := b.routes.Resolve(b.opts.StateSaveMethod)
	if !ok || rt.Kind == KindLocal {
		return nil // Validate refuses it
	}
	timeout := rt.Timeout
	if timeout == 0 {
		timeout = b.opts.DefaultTimeout
	}
	return &stateSaver{
		b:       b,
		method:  method,
		route:   rt,
		queue:   make(chan *session, b.opts.StateSaveQueue),
		timeout: timeout,
		pending: make(map[*session]int),
	}
}

// start starts the workers; they stop at b.quit. The caller holds
// nothing; b.wg counts them.
func (q *stateSaver) start() {
	for range q.b.opts.StateSaveWorkers {
		q.b.wg.Add(1)
		go q.work()
	}
}

// mark asks for a save of s's state. It never blocks: a session already
// queued is not queued again, one being saved is saved once more after;
// with the queue full the save is dropped and counted. s.mu may be held.
func (q *stateSaver) mark(s *session) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch q.pending[s] {
	case 0:
		select {
		case q.queue <- s:
			q.pending[s] = saveQueued
		default:
			q.b.m.stateSaves.With(stateSaveDropped).Inc()
		}
	case saveInFlight:
		q.pending[s] = saveInFlightDirty
	}
}

// work saves the sessions of the queue until the broker exits.
func (q *stateSaver) work() {
	defer q.b.wg.Done()
	for {
		var s *session
		select {
		case <-q.b.quit:
			return
		case s = <-q.queue:
		}
		q.mu.Lock()
		q.pending[s] = saveInFlight
		q.mu.Unlock()
		q.save(s)
		q.mu.Lock()
		if q.pending[s] == saveInFlightDirty {
			select {
			case q.queue <- s:
				q.pending[s] = saveQueued
				q.mu.Unlock()
				continue
			default:
				q.b.m.stateSaves.With(stateSaveDropped).Inc()
			}
		}
		delete(q.pending, s)
		if len(q.pending) == 0 && q.idle != nil {
			close(q.idle)
			q.idle = nil
		}
		q.mu.Unlock()
	}
}

// flush waits until no save is pending, or ctx ends.
func (q *stateSaver) flush(ctx context.Context) error {
	q.mu.Lock()
	if len(q.pending) == 0 {
		q.mu.Unlock()
		return nil
	}
	if q.idle == nil {
		q.idle = make(chan struct{})
	}
	idle := q.idle
	n := len(q.pending)
	q.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d session state saves pending: %w", n, ctx.Err())
	}
}

// numPending returns the number of sessions waiting for or in a save.
func (q *stateSaver) numPending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// nextSeq returns a save seq above every earlier one of this process, and
// (the clock permitting) of earlier processes with the broker's id: Unix
// microseconds, or one more than the last. Microseconds keep it exact in
// a Lua number (below 2^53) for centuries.
func (q *stateSaver) nextSeq() int64 {
	for {
		last := q.lastSeq.Load()
		next := max(last+1, time.Now().UnixMicro())
		if q.lastSeq.CompareAndSwap(last, next) {
			return next
		}
	}
}

// save sends s's state now, and counts the result.
func (q *stateSaver) save(s *session) {
	id, st, ok := s.stateSnapshot()
	if !ok {
		return // logged out since: nothing to save
	}
	raw, err := thriftx.Marshal(st)
	if err == nil && len(raw) > loginpb.MAX_SESSION_STATE_BYTES {
		err = fmt.Errorf("%d bytes exceed %d", len(raw), loginpb.MAX_SESSION_STATE_BYTES)
	}
	if err != nil {
		q.b.m.stateSaves.With(stateSaveError).Inc()
		q.b.log.Warn("broker: session state not saved: encoding", "conn", s.c.ID(), "err", err)
		return
	}
	payload, err := thriftx.Marshal(&loginpb.SaveSessionStateRequest{
		SessionID: id, UserID: st.GetUserID(), Holder: q.b.id, Seq: q.nextSeq(), State: raw,
	})
	if err != nil {
		q.b.m.stateSaves.With(stateSaveError).Inc()
		return
	}
	ctx, cancel := context.WithTimeout(q.b.ctx, q.timeout)
	defer cancel()
	out, err := q.b.internalCall(ctx, q.method, q.route, payload, q.timeout)
	var rep loginpb.SaveSessionStateReply
	if err == nil {
		if err = thriftx.Unmarshal(out, &rep); err == nil && rep.GetResult_() == "" {
			err = fmt.Errorf("no result")
		}
	}
	if err != nil {
		q.b.m.stateSaves.With(stateSaveError).Inc()
		q.warn("broker: session state not saved", "conn", s.c.ID(), "user_id", st.GetUserID(), "err", err)
		return
	}
	result := rep.GetResult_()
	switch result {
	case loginpb.SAVE_STATE_SAVED, loginpb.SAVE_STATE_STALE, loginpb.SAVE_STATE_GONE:
	default:
		result = stateSaveError
	}
	q.b.m.stateSaves.With(result).Inc()
	if result == loginpb.SAVE_STATE_STALE {
		q.b.log.Debug("broker: session state held elsewhere", "conn", s.c.ID(), "user_id", st.GetUserID())
	}
}

// internalCall calls method (routed by rt) as the broker itself: with no
// client session, so that services take it as the broker's internal
// request (login's SaveSessionState and resume). It returns the reply's
// payload, or its error.
func (b *Broker) internalCall(ctx context.Context, method string, rt Route, payload []byte, timeout time.Duration) ([]byte, error) {
	rep, err := b.router.Call(ctx, router.Request{
		Target:  router.Target{Service: rt.Service},
		Env:     &platformpb.Envelope{Method: method, Payload: payload, Sender: b.id},
		Timeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	if err := wire.FromEnvelope(rep); err != nil {
		return nil, err
	}
	return rep.GetPayload(), nil
}

// stateSnapshot returns the session's login session id and its state (the
// bindings, and the topics that are neither the user's nor a binding's),
// read together; ok is false when the connection is not logged in with a
// known login session.
func (s *session) stateSnapshot() (id string, st *loginpb.SessionState, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.login == "" || s.user == "" {
		return "", nil, false
	}
	derived := make(map[string]bool, len(s.bindings)+1)
	derived[userTopic(s.user)] = true
	for k, v := range s.bindings {
		derived[bindingTopic(k, v)] = true
	}
	topics := make([]string, 0, len(s.topics))
	for t := range s.topics {
		if !derived[t] {
			topics = append(topics, t)
		}
	}
	slices.Sort(topics)
	return s.login, &loginpb.SessionState{UserID: s.user, Bindings: maps.Clone(s.bindings), Topics: topics}, true
}

// stateChanged marks s for a save when it is logged in with a known login
// session; the caller holds s.mu.
func (s *session) stateChanged() {
	if s.saver != nil && s.login != "" {
		s.saver.mark(s)
	}
}

// restoreState applies a saved state (raw, from the resume's validation)
// to s, resumed as user with gen: each binding and topic is checked as the
// live paths check a reply's, and the refused ones are counted and logged
// like a reply's.
func (b *Broker) restoreState(s *session, gen uint64, user string, raw []byte) {
	if len(raw) == 0 {
		return
	}
	st, err := decodeState(raw)
	if err != nil {
		b.m.stateRestores.With(stateMalformed).Inc()
		b.log.Warn("broker: session state not restored", "conn", s.c.ID(), "user_id", user, "bytes", len(raw), "err", err)
		return
	}
	if st.GetUserID() != user {
		b.m.stateRestores.With(stateUserMismatch).Inc()
		b.log.Warn("broker: session state not restored: another user's", "conn", s.c.ID(), "user_id", user, "state_user_id", wire.Snippet(st.GetUserID()))
		return
	}
	if len(st.GetBindings()) == 0 && len(st.GetTopics()) == 0 {
		return
	}
	ignore := func(key, why string) {
		b.m.ignoredBindings.Inc()
		b.log.Warn("broker: ignored binding of a session state", "why", why, "key", wire.Snippet(key), "conn", s.c.ID())
	}
	for _, key := range slices.Sorted(maps.Keys(st.GetBindings())) {
		value := st.GetBindings()[key]
		switch {
		case key == wire.KeyUser || !b.anyMayBind(key):
			ignore(key, "no route may bind it")
			continue
		}
		if why := checkBindingValue(key, value); why != "" {
			ignore(key, why)
			continue
		}
		if why := b.setBinding(s, gen, &platformpb.Binding{Key: key, Value: value}); why != "" {
			ignore(key, why)
		}
	}
	for _, topic := range st.GetTopics() {
		if !validTopic(topic) || strings.HasPrefix(topic, wire.KeyUser+"/") && topic != userTopic(user) {
			b.m.ignoredSubs.Inc()
			b.log.Warn("broker: ignored subscription of a session state: bad topic", "conn", s.c.ID(), "topic", wire.Snippet(topic))
			continue
		}
		if !s.subscribe(b.hub, gen, topic) {
			b.m.ignoredSubs.Inc()
			b.log.Warn("broker: ignored subscription of a session state: too many topics", "conn", s.c.ID(), "topic", wire.Snippet(topic))
		}
	}
	b.m.stateRestores.With(stateRestored).Inc()
	b.log.Debug("broker: session state restored", "conn", s.c.ID(), "user_id", user,
		"bindings", len(st.GetBindings()), "topics", len(st.GetTopics()))
}

// anyMayBind reports whether the routes of some service may bind key.
func (b *Broker) anyMayBind(key string) bool {
	for _, svc := range b.routes.Services() {
		if b.routes.mayBind(svc, key) {
			return true
		}
	}
	return false
}

// flushStates waits up to Options.StateDrainWait (and within ctx) for the
// pending session state saves, so that the clients moving off a draining
// broker find their state where they resume.
func (b *Broker) flushStates(ctx context.Context) {
	if b.states == nil || b.opts.StateDrainWait <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.StateDrainWait)
	defer cancel()
	if err := b.states.flush(ctx); err != nil {
		b.log.Warn("broker: drained with session state saves pending", "err", err)
	}
}

// PendingStateSaves returns the number of sessions whose state waits for,
// or is in, a save (0 when saving is off). A change's save is pending
// before the reply that made it is sent, so 0 after a reply means the
// change was saved (or its save failed, counted). Tests wait on it.
func (b *Broker) PendingStateSaves() int {
	if b.states == nil {
		return 0
	}
	return b.states.numPending()
}
