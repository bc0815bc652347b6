package broker

import (
	"sync"
	"time"

	edgepb "github.com/noonhq/noon/idl/gen/edge"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// Sessions that end.
//
// A connection logs in by the reply of an authenticating route that binds
// "user" (login.Login: the binding also names the login session, by its id
// wire.SessionID(token), and its expiry), or by edge.Hello's resume token
// (login.Validate gives the expiry; the id is the token's). The broker then
// indexes the connection by its login session (authIndex) and sets a timer
// at the session's expiry.
//
// The login service publishes a login.Revoked event naming the sessions
// that a logout or a logout-all ended, on wire.TopicRevoked, which the
// broker follows on every instance of the service of its
// AuthValidateMethod (and takes from no one else). Every connection indexed
// under a revoked session is logged out, on every broker, as soon as the
// event arrives. Publishing is best effort: a broker that missed the event
// logs the connection out at the session's expiry, so no session outlives
// its TTL. A revocation that arrives before the login it ends (a Validate
// or login reply still in flight) is remembered for revokedWindow and
// ends that login as it completes.
//
// Logging out leaves the connection open but unauthenticated: non-public
// calls answer unauthenticated, the edge's auth timeout runs again, the
// bindings and topics of the user are dropped, and a connection that asked
// for pushes is told why by "@edge.LoggedOut" (edge.LoggedOut{reason}). A
// closed connection would make a client that was told nothing reconnect
// and fail in a loop; an open one can simply log in again.

// Bounds of the revocation memory.
const (
	// revokedWindow is how long a revoked session id is remembered for a
	// login that completes after its revocation arrived: longer than any
	// request's deadline (maxTimeout), which bounds how long a Validate or
	// login reply may be in flight.
	revokedWindow = 2 * maxTimeout
	// maxRevoked bounds the ids remembered: 100,000 revocations within
	// revokedWindow (800 logouts per second) hold about 10 MB; beyond it the
	// oldest are forgotten early, which only reopens the narrow race above.
	maxRevoked = 100_000
)

// authIndex is the broker's index of logged-in connections by the login
// session they authenticated with, and its memory of recent revocations.
// It is a leaf lock: taken under session.mu, it calls nothing.
type authIndex struct {
	mu        sync.Mutex
	bySession map[string]map[*session]struct{}
	revoked   map[string]string // session id -> reason, within revokedWindow
	order     []revokedID       // revoked's ids, oldest first
}

// revokedID is one remembered revocation.
type revokedID struct {
	id string
	at time.Time
}

func newAuthIndex() *authIndex {
	return &authIndex{bySession: make(map[string]map[*session]struct{}), revoked: make(map[string]string)}
}

// add indexes s under the login session id and returns the reason the
// session was revoked, or "" if it was not (recently).
func (x *authIndex) add(s *session, id string) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	m := x.bySession[id]
	if m == nil {
		m = make(map[*session]struct{})
		x.bySession[id] = m
	}
	m[s] = struct{}{}
	return x.revoked[id]
}

// remove drops s from the index of id.
func (x *authIndex) remove(s *session, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if m := x.bySession[id]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(x.bySession, id)
		}
	}
}

// revoke remembers that the session id was revoked for reason and returns
// the sessions indexed under it.
func (x *authIndex) revoke(id, reason string, now time.Time) []*session {
	x.mu.Lock()
	defer x.mu.Unlock()
	for len(x.order) > 0 && (len(x.order) >= maxRevoked || now.Sub(x.order[0].at) > revokedWindow) {
		delete(x.revoked, x.order[0].id)
		x.order = x.order[1:]
	}
	if _, dup := x.revoked[id]; !dup {
		x.revoked[id] = reason
		x.order = append(x.order, revokedID{id: id, at: now})
	}
	out := make([]*session, 0, len(x.bySession[id]))
	for s := range x.bySession[id] {
		out = append(out, s)
	}
	return out
}

// loggedIn returns the number of login sessions with a connection.
func (x *authIndex) loggedIn() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.bySession)
}

// expiryTimer logs a connection out at its login session's expiry; the
// session's expiry field points at the live one.
type expiryTimer struct{ t *time.Timer }

// dropLogin forgets the login session of s: out of the index, its expiry
// timer stopped. The caller holds s.mu.
func (s *session) dropLogin(x *authIndex) {
	if s.login != "" {
		x.remove(s, s.login)
		s.login = ""
	}
	if s.expiry != nil {
		s.expiry.t.Stop()
		s.expiry = nil
	}
}

// authenticate logs the connection of s in as user, with the login session
// id ("" if unknown) that expires at expires (zero if unknown): from a
// login reply or a resume. A change of user drops the previous user's
// bindings and topics. It returns the session's gen afterwards.
func (b *Broker) authenticate(s *session, user, id string, expires time.Time) uint64 {
	s.mu.Lock()
	if s.closed {
		gen := s.gen
		s.mu.Unlock()
		return gen
	}
	if s.user != user {
		s.reset(b.hub)
		b.presence.publish(s.c.ID(), s.user, false) // the previous user's leave; none if there was none
		s.user = user
		s.addTopic(b.hub, userTopic(user))
		b.presence.publish(s.c.ID(), user, true)
	}
	s.dropLogin(b.auth)
	revoked := ""
	if id != "" {
		s.login = id
		revoked = b.auth.add(s, id)
	}
	if !expires.IsZero() {
		e := &expiryTimer{}
		e.t = time.AfterFunc(time.Until(expires), func() {
			b.logout(s, func(s *session) bool { return s.expiry == e }, edgepb.LOGGED_OUT_EXPIRED)
		})
		s.expiry = e
	}
	s.c.Authenticate(user)
	gen := s.gen
	s.mu.Unlock()
	if revoked != "" {
		b.logout(s, func(s *session) bool { return s.login == id }, revoked)
	}
	return gen
}

// logout logs the connection of s out if it is logged in and match (called
// under s.mu) agrees: it is unauthenticated again, its login is forgotten,
// its bindings and topics are dropped, its leave is published
// (presence.go). A non-empty reason is why the broker
// did it on its own (a revocation, an expiry): it is counted, and pushed as
// "@edge.LoggedOut" to a connection that asked for pushes. It reports
// whether the connection was logged out.
func (b *Broker) logout(s *session, match func(*session) bool, reason string) bool {
	s.mu.Lock()
	if s.closed || s.user == "" || !match(s) {
		s.mu.Unlock()
		return false
	}
	user := s.user
	s.c.Deauthenticate()
	s.reset(b.hub)
	s.user = ""
	s.dropLogin(b.auth)
	b.presence.publish(s.c.ID(), user, false)
	s.mu.Unlock()
	if reason == "" {
		return true
	}
	b.m.logouts.With(reason).Inc()
	b.log.Info("broker: connection logged out", "conn", s.c.ID(), "user_id", user, "reason", reason)
	if s.c.PushEnabled() {
		if payload, err := thriftx.Marshal(&edgepb.LoggedOut{Reason: reason}); err == nil {
			s.c.Push(wire.EventLoggedOut, payload)
		}
	}
	return true
}

// revoked acts on a login.Revoked event's payload: it logs out every
// connection authenticated with one of its sessions. The hub calls it for
// events on wire.TopicRevoked from the auth service's instances only.
func (b *Broker) revoked(payload []byte) {
	var ev loginpb.Revoked
	if err := thriftx.Unmarshal(payload, &ev); err != nil {
		b.log.Warn("broker: bad revocation event", "err", err, "bytes", len(payload))
		return
	}
	reason := ev.GetReason()
	if reason != edgepb.LOGGED_OUT_LOGOUT_ALL {
		reason = edgepb.LOGGED_OUT_LOGOUT
	}
	now := time.Now()
	for _, id := range ev.GetSessions() {
		for _, s := range b.auth.revoke(id, reason, now) {
			b.logout(s, func(s *session) bool { return s.login == id }, reason)
		}
	}
}
