package broker

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// Session directives.
//
// A service changes connections with no request from their clients by
// publishing a wire.EventSession event (a platformpb.SessionDirectives) on
// wire.SessionTopic(<broker id>): the matchmaker binds room = <id> on each
// matched player's connection and pushes "@match.Matched". The broker
// follows that topic only on the PUB sockets of the instances of services
// whose routes may bind keys (RouteTable.BindKeys), which over TLS hold
// that service's certificate (pushHub), and takes from each only bindings
// of those keys. Each directive names a connection by its session id
// (Session.id, the edge.Conn's id) and the user it must still be logged
// in as; it is applied whole or not at all: its bindings, as a reply's
// are made (setBinding), then its push, so a client that sees the push
// finds the binding in place.
//
// Every directive is counted by result (broker_session_directives_total):
// applied; no_connection (not on this broker, or closed); user_mismatch
// (logged out or in as someone else since); refused (a key the service
// may not bind, a bad value or push type, over a limit); an event that
// does not decode, or is over the limits below, counts once as malformed.

// Limits of a session directives event.
const (
	// maxDirectivesBytes bounds the payload of one event (1 MiB): a
	// directive is a session id, a user id, a binding or two and a push of
	// a few hundred bytes, so a matchmaker's batch for one broker of a
	// thousand matched players is a few hundred KiB.
	maxDirectivesBytes = 1 << 20
	// maxDirectives bounds the directives of one event (4096), counted
	// before any is decoded: more than a busy matchmaker places on one
	// broker in one batch; it bounds what one event makes the broker do.
	maxDirectives = 4096
)

// Results of a session directive, the values of
// broker_session_directives_total's result label.
const (
	directiveApplied      = "applied"
	directiveNoConnection = "no_connection"
	directiveUserMismatch = "user_mismatch"
	directiveRefused      = "refused"
	directiveMalformed    = "malformed" // an event, not a directive
)

// errTooManyDirectives is decodeDirectives' error past maxDirectives.
var errTooManyDirectives = errors.New("too many directives")

// connIndex indexes the sessions of the open connections by connection
// id, for session directives. It is a leaf lock.
type connIndex struct {
	mu sync.RWMutex
	m  map[string]*session
}

func newConnIndex() *connIndex { return &connIndex{m: make(map[string]*session)} }

// add indexes s under its connection's id.
func (x *connIndex) add(s *session) {
	x.mu.Lock()
	x.m[s.c.ID()] = s
	x.mu.Unlock()
}

// remove drops s from the index.
func (x *connIndex) remove(s *session) {
	x.mu.Lock()
	if x.m[s.c.ID()] == s {
		delete(x.m, s.c.ID())
	}
	x.mu.Unlock()
}

// get returns the session of the connection with id, or nil.
func (x *connIndex) get(id string) *session {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.m[id]
}

// sessionEvent takes an event on the broker's session topic from an
// instance of service (pushHub calls it only for services that may bind).
func (b *Broker) sessionEvent(service string, ev *platformpb.Event) {
	if ev.GetType() != wire.EventSession {
		b.m.directives.With(directiveMalformed).Inc()
		b.log.Warn("broker: ignored event on the session topic: wrong type", "service", service, "type", wire.Snippet(ev.GetType()))
		return
	}
	b.sessionDirectives(service, ev.GetPayload())
}

// sessionDirectives decodes a SessionDirectives payload from an instance
// of service and applies each directive.
func (b *Broker) sessionDirectives(service string, payload []byte) {
	ds, err := decodeDirectives(payload)
	if err != nil {
		b.m.directives.With(directiveMalformed).Inc()
		b.log.Warn("broker: ignored session directives", "service", service, "bytes", len(payload), "err", err)
		return
	}
	for _, d := range ds.GetDirectives() {
		result, why := b.applyDirective(service, d)
		b.m.directives.With(result).Inc()
		switch result {
		case directiveRefused:
			b.log.Warn("broker: refused session directive", "service", service, "why", why,
				"conn", wire.Snippet(d.GetSession()), "user_id", wire.Snippet(d.GetUserId()))
		case directiveNoConnection, directiveUserMismatch:
			b.log.Debug("broker: session directive not applied", "service", service, "result", result,
				"conn", wire.Snippet(d.GetSession()), "user_id", wire.Snippet(d.GetUserId()))
		}
	}
}

// decodeDirectives decodes a SessionDirectives payload within the limits:
// at most maxDirectivesBytes, and at most maxDirectives directives,
// counted on the wire before they are decoded.
func decodeDirectives(payload []byte) (*platformpb.SessionDirectives, error) {
	if len(payload) > maxDirectivesBytes {
		return nil, fmt.Errorf("payload of %d bytes exceeds %d", len(payload), maxDirectivesBytes)
	}
	n := 0
	for rest := payload; len(rest) > 0; {
		num, _, l := protowire.ConsumeField(rest)
		if l < 0 {
			return nil, fmt.Errorf("bad protobuf: %w", protowire.ParseError(l))
		}
		if num == 1 { // SessionDirectives.directives
			if n++; n > maxDirectives {
				return nil, fmt.Errorf("%w: more than %d", errTooManyDirectives, maxDirectives)
			}
		}
		rest = rest[l:]
	}
	var ds platformpb.SessionDirectives
	if err := proto.Unmarshal(payload, &ds); err != nil {
		return nil, fmt.Errorf("bad protobuf: %w", err)
	}
	return &ds, nil
}

// applyDirective applies one directive from an instance of service and
// returns its result, and why when refused.
func (b *Broker) applyDirective(service string, d *platformpb.SessionDirective) (result, why string) {
	if why := b.checkDirective(service, d); why != "" {
		return directiveRefused, why
	}
	s := b.conns.get(d.GetSession())
	if s == nil {
		return directiveNoConnection, ""
	}
	user, gen, closed := s.current()
	switch {
	case closed:
		return directiveNoConnection, ""
	case user != d.GetUserId():
		return directiveUserMismatch, ""
	}
	for _, bd := range d.GetBindings() {
		if why := b.setBinding(s, gen, bd); why != "" {
			// Only a session at maxBindings gets here: the values were
			// checked, and the bindings before this one stay.
			return directiveRefused, why
		}
	}
	if !s.pushIf(b.hub, gen, d.GetPushType(), d.GetPushPayload()) {
		return directiveUserMismatch, "" // the user changed while it was applied
	}
	return directiveApplied, ""
}

// checkDirective returns why a directive from an instance of service is
// refused before it touches a connection, or "": it must name a session
// and a user, bind at most maxBindings keys, each one the service's routes
// may bind (never wire.KeyUser) to a value a reply could bind, and push
// (if at all) a "<service>.<Name>" type outside the platform's "_" names
// with a payload that fits the edge's frames.
func (b *Broker) checkDirective(service string, d *platformpb.SessionDirective) string {
	typ, payload := d.GetPushType(), d.GetPushPayload()
	switch {
	case d.GetSession() == "":
		return "no session"
	case d.GetUserId() == "" || len(d.GetUserId()) > maxUserID:
		return "bad user_id"
	case len(d.GetBindings()) > maxBindings:
		return fmt.Sprintf("%d bindings, limit %d", len(d.GetBindings()), maxBindings)
	case typ == "" && len(payload) > 0:
		return "a push payload without push_type"
	case typ != "" && (!wire.ValidMethod(typ) || strings.HasPrefix(typ, wire.ReservedTopicPrefix)):
		return fmt.Sprintf("push_type must be <service>.<Name>, got %q", wire.Snippet(typ))
	case typ != "" && frame.MinFrame+1+len(typ)+len(payload) > int(b.opts.Edge.MaxFrame):
		return fmt.Sprintf("a %d-byte push payload exceeds the edge's max_frame", len(payload))
	}
	for _, bd := range d.GetBindings() {
		key := bd.GetKey()
		if key == wire.KeyUser || !b.routes.mayBind(service, key) {
			return fmt.Sprintf("the %s service's routes may not bind %q", service, wire.Snippet(key))
		}
		if !bd.GetUnset() {
			if why := checkBindingValue(key, bd.GetValue()); why != "" {
				return why + " for " + key
			}
		}
	}
	return ""
}
