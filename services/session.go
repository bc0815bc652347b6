package services

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// Session is what a handler knows of the client a request comes from, and
// how it changes the client's session: Bind / Unbind set the keys the broker
// routes stateful requests by (room = r42), Subscribe / Unsubscribe the
// topics pushed to the client. Changes are recorded into the reply envelope
// (with a success or an error reply, not after a panic) and the broker
// applies them. A Session is safe for concurrent use by a handler's
// goroutines.
type Session struct {
	pb     *platformpb.Session
	caller pki.Identity // the verified identity of the calling process, over TLS
	tls    bool

	addressed string // the stateful key value the request was routed by

	mu       sync.Mutex // guards the fields below
	bindings []*platformpb.Binding
	subs     []*platformpb.Subscription
	serves   *string // the key value the handler serves, when it said so
}

// NewSession wraps the session of a request envelope; pb may be nil (a call
// that comes from no client).
func NewSession(pb *platformpb.Session) *Session {
	return &Session{pb: pb}
}

// Caller returns the verified identity of the process that sent the
// request (a broker, or the service that called), and false on a plain
// link.
func (s *Session) Caller() (pki.Identity, bool) { return s.caller, s.tls }

// ID returns the broker-assigned session id, or "" when the request comes
// from no client.
func (s *Session) ID() string { return s.pb.GetId() }

// UserID returns the authenticated user's id, or "" before login.
func (s *Session) UserID() string { return s.pb.GetUserId() }

// RemoteAddr returns the client's address, for throttling and logs.
func (s *Session) RemoteAddr() string { return s.pb.GetRemoteAddr() }

// Broker returns the instance id of the broker holding the client's
// connection.
func (s *Session) Broker() string { return s.pb.GetBroker() }

// Binding returns the value bound to key on the session, as the request
// arrived, updated by this handler's own Bind and Unbind calls; "" if unset.
func (s *Session) Binding(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.bindings) - 1; i >= 0; i-- {
		if b := s.bindings[i]; b.Key == key {
			if b.Unset {
				return ""
			}
			return b.Value
		}
	}
	return s.pb.GetBindings()[key]
}

// Bind sets key = value on the client's session when the reply reaches the
// broker; later requests of the session that route by key go to the
// instance that owns value.
func (s *Session) Bind(key, value string) {
	s.mu.Lock()
	s.bindings = append(s.bindings, &platformpb.Binding{Key: key, Value: value})
	s.mu.Unlock()
}

// BindUser binds "user" = userID (wire.KeyUser; only an authenticating
// route's reply may) and names the session the user logged in with: its id
// (wire.SessionID of the token) and expiry. The broker logs the connection
// out when that session is revoked or expires.
func (s *Session) BindUser(userID, sessionID string, expires time.Time) {
	b := &platformpb.Binding{Key: wire.KeyUser, Value: userID, Session: sessionID}
	if !expires.IsZero() {
		b.ExpiresUnix = expires.Unix()
	}
	s.mu.Lock()
	s.bindings = append(s.bindings, b)
	s.mu.Unlock()
}

// UnbindUser clears "user" (wire.KeyUser; only an authenticating route's
// reply may), logging the connection out, if the connection logged in with
// the session sessionID (wire.SessionID of its token): a logout of one of
// the user's other sessions leaves it logged in.
func (s *Session) UnbindUser(sessionID string) {
	s.mu.Lock()
	s.bindings = append(s.bindings, &platformpb.Binding{Key: wire.KeyUser, Unset: true, Session: sessionID})
	s.mu.Unlock()
}

// Unbind clears key on the client's session when the reply reaches the
// broker.
func (s *Session) Unbind(key string) {
	s.mu.Lock()
	s.bindings = append(s.bindings, &platformpb.Binding{Key: key, Unset: true})
	s.mu.Unlock()
}

// Subscribe asks the broker to push events of topic ("user/<id>",
// "room/<id>") to the client.
func (s *Session) Subscribe(topic string) {
	s.mu.Lock()
	s.subs = append(s.subs, &platformpb.Subscription{Topic: topic})
	s.mu.Unlock()
}

// Unsubscribe asks the broker to stop pushing events of topic to the client.
func (s *Session) Unsubscribe(topic string) {
	s.mu.Lock()
	s.subs = append(s.subs, &platformpb.Subscription{Topic: topic, Unsubscribe: true})
	s.mu.Unlock()
}

// Addressed returns the value of the stateful key the request was routed
// by (the session's binding room = r42 the broker routed a room.* request
// by), or "" for a request routed by no key.
func (s *Session) Addressed() string { return s.addressed }

// Serves records that the request is about key value value, not (or not
// only) the one it was routed by (Addressed): a room.Get naming another
// room. The reply says so, and the router then caches neither this
// instance nor a "moved" owner as the owner of the key it routed by: a
// request about another key cannot redirect the routed key's later
// requests.
func (s *Session) Serves(value string) {
	s.mu.Lock()
	s.serves = &value
	s.mu.Unlock()
}

// served returns the key value the reply says the handler served: the
// one Serves recorded, else the routed one.
func (s *Session) served() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serves != nil {
		return *s.serves
	}
	return s.addressed
}

// Proto returns the session as the request carried it (nil for none), to
// pass on when calling another service on the client's behalf. The caller
// must not modify it.
func (s *Session) Proto() *platformpb.Session { return s.pb }

// Changes returns the bindings and subscriptions recorded so far, in call
// order.
func (s *Session) Changes() ([]*platformpb.Binding, []*platformpb.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*platformpb.Binding(nil), s.bindings...), append([]*platformpb.Subscription(nil), s.subs...)
}

// Internal methods are those the platform's own processes call, never a
// game client (room.CreateMatched, which a matchmaker calls): the broker
// routes every method of a service's prefix, so the handler itself refuses
// a client. RequireService and RequireAdmin are that refusal, decided on
// what the request cannot forge: the verified identity of the calling
// process (over TLS) and whether a broker passed a client session.

// RequireService refuses a request that did not come from one of the
// services names (or an admin): it returns nil to go on, else a
// *wire.Error to return as is (unauthenticated, the code for a caller who
// may not do this). A request carrying a client session (ID() != "": a
// client's call through a broker) is refused. Over TLS the calling
// process must hold a service certificate of one of names
// (service:match), or an admin one (noonctl). On a plain link (loopback
// development: the caller is not known) a request with no client session
// is accepted.
func (s *Session) RequireService(names ...string) error {
	if err := s.notFromClient(); err != nil {
		return err
	}
	id, ok := s.Caller()
	if !ok || id.Role == pki.RoleAdmin || id.Role == pki.RoleService && slices.Contains(names, id.Name) {
		return nil
	}
	return wire.Errorf(wire.CodeUnauthenticated, "an internal method: %s may not call it (services %s and admins may)", id, strings.Join(names, ", "))
}

// RequireAdmin refuses a request that did not come from an admin (noonctl
// with an admin certificate), as RequireService does: a client session is
// refused; over TLS the caller must hold an admin certificate; on a plain
// link a request with no client session is accepted.
func (s *Session) RequireAdmin() error {
	if err := s.notFromClient(); err != nil {
		return err
	}
	if id, ok := s.Caller(); ok && id.Role != pki.RoleAdmin {
		return wire.Errorf(wire.CodeUnauthenticated, "an admin method: %s may not call it", id)
	}
	return nil
}

// notFromClient refuses a request that carries a client session.
func (s *Session) notFromClient() error {
	if s.ID() != "" {
		return wire.Errorf(wire.CodeUnauthenticated, "an internal method: clients may not call it")
	}
	return nil
}

type sessionKey struct{}

// ContextWithSession returns ctx carrying s. The server gives every handler
// such a context, so that a Client.Call made from a handler passes the
// client's session on.
func ContextWithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// SessionFromContext returns the Session ctx carries, or nil.
func SessionFromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}
