package broker

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/wire"

	"github.com/noonhq/noon/edge"
	"github.com/noonhq/noon/idl/gen/platformpb"
)

// errDraining refuses connections opened while the broker drains.
var errDraining = errors.New("broker: draining")

// Open implements edge.Handler: it gives the connection its session. A
// connection arriving while the broker drains is refused (the listeners
// close shortly after).
func (b *Broker) Open(c *edge.Conn) error {
	if b.draining.Load() || b.exiting.Load() {
		return errDraining
	}
	s := newSession(c)
	s.saver = b.states
	c.SetData(s)
	b.conns.add(s)
	return nil
}

// Close implements edge.Handler: the session leaves the push hub, the
// login index and the connection index, and a logged-in connection's leave
// is published.
func (b *Broker) Close(c *edge.Conn) {
	if s, ok := c.Data().(*session); ok {
		b.conns.remove(s)
		s.close(b.hub, b.auth, b.presence)
	}
}

// sessionOf returns c's session.
func sessionOf(c *edge.Conn) *session {
	s, _ := c.Data().(*session)
	return s
}

// request is one client request being routed.
type request struct {
	c       *edge.Conn
	s       *session
	method  string // full method name (after aliases)
	route   Route
	payload []byte
	timeout time.Duration
	// gen is the session's gen when the request was sent (see
	// session.gen): its reply changes the session only if it still is.
	gen uint64
}

// Request implements edge.Handler: the one place a request is routed. The
// method (or its alias) picks the route; the auth gate lets only public
// routes through before login; the route's kind picks the handler. The
// reply's bindings and subscriptions are applied to the session before the
// reply goes back.
func (b *Broker) Request(ctx context.Context, c *edge.Conn, method string, payload []byte) ([]byte, error) {
	start := time.Now()
	s := sessionOf(c)
	full, rt, ok := b.routes.Resolve(method)
	if !ok || s == nil {
		b.m.unknown.Inc()
		return nil, wire.Errorf(wire.CodeUnknownMethod, "%s", method)
	}
	rm := b.m.route(rt.Prefix)
	if !rt.Public && !c.Authenticated() {
		rm.result(wire.CodeUnauthenticated).Inc()
		return nil, wire.Errorf(wire.CodeUnauthenticated, "%s requires login", full)
	}
	r := b.newRequest(c, s, full, rt, payload)
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	var (
		out []byte
		err error
	)
	switch rt.Kind {
	case KindLocal:
		out, err = b.local(ctx, r)
	default:
		var rep *platformpb.Envelope
		rep, err = b.call(ctx, r)
		if rep != nil {
			b.apply(r, rep)
			if len(rep.GetBindings()) > 0 || len(rep.GetSubscriptions()) > 0 {
				b.awaitSubscriptions(ctx)
			}
			if err == nil {
				out, err = replyOf(rep)
			}
		}
	}
	rm.observe(start, err)
	return out, err
}

// newRequest is the request for method full of route rt, with the
// route's timeout (or the default).
func (b *Broker) newRequest(c *edge.Conn, s *session, full string, rt Route, payload []byte) *request {
	r := new(request)
	b.initRequest(r, c, s, full, rt, payload)
	return r
}

// initRequest sets r up as newRequest's.
func (b *Broker) initRequest(r *request, c *edge.Conn, s *session, full string, rt Route, payload []byte) {
	*r = request{c: c, s: s, method: full, route: rt, payload: payload, timeout: rt.Timeout}
	if r.timeout == 0 {
		r.timeout = b.opts.DefaultTimeout
	}
}

// StartRequest implements edge.AsyncHandler: a request for a stateless
// route, by a session that may make it, goes to a connected instance
// without a goroutine waiting for the reply; the reply completes it from
// the link's reader (see Request for what it does). A reply that changes
// the session is applied in a goroutine of its own (it may wait for
// subscriptions). Anything else is left to Request.
func (b *Broker) StartRequest(_ context.Context, c *edge.Conn, method string, payload []byte, done func([]byte, error)) bool {
	s := sessionOf(c)
	full, rt, ok := b.routes.Resolve(method)
	if !ok || s == nil || rt.Kind != KindStateless || !rt.Public && !c.Authenticated() {
		return false
	}
	sess, gen := s.proto(b.id)
	if !rt.Public && sess.GetUserId() == "" {
		return false
	}
	a := &asyncRequest{b: b, start: time.Now(), rm: b.m.route(rt.Prefix), done: done}
	b.initRequest(&a.request, c, s, full, rt, payload)
	a.gen = gen
	req := b.routerRequestIn(&a.request, sess, &a.env)
	return b.router.Start(req, a.start.Add(a.timeout), a.onReply)
}

// asyncRequest is a request of the asynchronous path (StartRequest) with
// its envelope and what its reply needs: one allocation (and its onReply's
// closure) per request.
type asyncRequest struct {
	request
	b     *Broker
	env   platformpb.Envelope
	start time.Time
	rm    *routeMetrics
	done  func([]byte, error)
}

// onReply completes the request with the instance's reply or err. A reply
// that changes the session is applied in a goroutine of its own (it may
// wait for subscriptions).
func (a *asyncRequest) onReply(rep *platformpb.Envelope, err error) {
	if rep == nil {
		a.finish(nil, err)
		return
	}
	if len(rep.GetBindings()) > 0 || len(rep.GetSubscriptions()) > 0 {
		go func() {
			a.b.apply(&a.request, rep)
			ctx, cancel := context.WithDeadline(a.c.Context(), a.start.Add(a.timeout))
			a.b.awaitSubscriptions(ctx)
			cancel()
			a.finish(replyOf(rep))
		}()
		return
	}
	a.finish(replyOf(rep))
}

func (a *asyncRequest) finish(out []byte, err error) {
	a.rm.observe(a.start, err)
	a.done(out, err)
}

// replyOf returns the client's reply of a service's reply envelope.
func replyOf(rep *platformpb.Envelope) ([]byte, error) {
	if err := wire.FromEnvelope(rep); err != nil {
		return nil, err
	}
	return rep.GetPayload(), nil
}

// subscribeWait bounds how long a reply that changed the session's
// subscriptions waits for them to be written to the publishers.
const subscribeWait = 250 * time.Millisecond

// awaitSubscriptions holds a reply that changed the session's push topics
// until the subscriptions are written to every publisher's socket (at most
// subscribeWait): the publisher then hears of them before anything the
// client does after the reply, e.g. a room.Create's creator gets the
// joined event of a player who joins right after (a publisher delivers
// nothing it sent before it read the subscription).
func (b *Broker) awaitSubscriptions(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, subscribeWait)
	defer cancel()
	b.hub.feeds.Synced(ctx)
}

// local serves the broker's own methods.
func (b *Broker) local(ctx context.Context, r *request) ([]byte, error) {
	switch r.method {
	case wire.MethodHello:
		return b.hello(ctx, r)
	}
	return nil, wire.Errorf(wire.CodeUnknownMethod, "%s", r.method)
}

// call sends r through the router: to the least-loaded instance of its
// route's service, or, for a stateful route, to the owner of the value of
// the session's binding of the route's key.
func (b *Broker) call(ctx context.Context, r *request) (*platformpb.Envelope, error) {
	sess, gen := r.s.proto(b.id)
	if !r.route.Public && sess.GetUserId() == "" {
		// Logged out after the auth gate let the request in.
		return nil, wire.Errorf(wire.CodeUnauthenticated, "%s requires login", r.method)
	}
	r.gen = gen
	return b.router.Call(ctx, b.routerRequest(r, sess))
}

// routerRequest is what the router gets for r from session sess: its
// route's service, for a stateful route the owner of the session's
// binding of the route's key, and the envelope.
func (b *Broker) routerRequest(r *request, sess *platformpb.Session) router.Request {
	return b.routerRequestIn(r, sess, new(platformpb.Envelope))
}

// routerRequestIn is routerRequest with its envelope in env (new).
func (b *Broker) routerRequestIn(r *request, sess *platformpb.Session, env *platformpb.Envelope) router.Request {
	t := router.Target{Service: r.route.Service}
	if r.route.Kind == KindStateful {
		t.Stateful, t.Key, t.Value = true, r.route.Key, sess.GetBindings()[r.route.Key]
	}
	env.Method, env.Session, env.Payload, env.Sender = r.method, sess, r.payload, b.id
	return router.Request{Target: t, Env: env, Timeout: r.timeout}
}

// apply makes a reply's session changes: bindings of the keys the route may
// set (its stateful Key, its Binds, and wire.KeyUser on an Authenticates route,
// which logs the connection in or out) and push subscriptions. Anything else
// is ignored, counted and logged. Changes other than a login are dropped
// when the connection's user changed since the request was sent: the reply
// was for the previous user.
func (b *Broker) apply(r *request, rep *platformpb.Envelope) {
	for _, bd := range rep.GetBindings() {
		key, value := bd.GetKey(), bd.GetValue()
		switch {
		case key == wire.KeyUser && r.route.Authenticates:
			if bd.GetUnset() {
				// The user logged out: the connection is logged out too,
				// if it still is that user's, and logged in with the
				// session that ended when the reply names one.
				id := bd.GetSession()
				b.logout(r.s, func(s *session) bool {
					return s.gen == r.gen && (value == "" || value == s.user) &&
						(id == "" || s.login == "" || s.login == id)
				}, "")
				continue
			}
			if value == "" || len(value) > maxUserID {
				b.ignoreBinding(r, key, "bad user id")
				continue
			}
			var expires time.Time
			if u := bd.GetExpiresUnix(); u > 0 {
				expires = time.Unix(u, 0)
			}
			id := bd.GetSession()
			if len(id) > maxBindingValue {
				b.ignoreBinding(r, key, "bad session id")
				id = ""
			}
			r.gen = b.authenticate(r.s, value, id, expires)
		case key != wire.KeyUser && (key == r.route.Key && key != "" || slices.Contains(r.route.Binds, key)):
			if why := b.setBinding(r.s, r.gen, bd); why != "" {
				b.ignoreBinding(r, key, why)
			}
		default:
			b.ignoreBinding(r, key, "the route may not bind it")
		}
	}
	for _, sub := range rep.GetSubscriptions() {
		topic := sub.GetTopic()
		if sub.GetUnsubscribe() {
			r.s.unsubscribe(b.hub, r.gen, topic)
			continue
		}
		if !validTopic(topic) {
			b.m.ignoredSubs.Inc()
			b.log.Warn("broker: ignored subscription: bad topic", "method", r.method, "sender", rep.GetSender(), "topic", wire.Snippet(topic))
			continue
		}
		if !r.s.subscribe(b.hub, r.gen, topic) {
			b.m.ignoredSubs.Inc()
			b.log.Warn("broker: ignored subscription: too many topics", "method", r.method, "conn", r.c.ID(), "topic", wire.Snippet(topic))
		}
	}
}

// setBinding makes one binding of a key other than wire.KeyUser that the
// sender may set (the caller checked) on s, unless s's user changed since
// gen: an unset clears the key, a value is checked (checkBindingValue)
// and bound. It returns why the binding was refused, or "". A reply's
// bindings and a session directive's are made here.
func (b *Broker) setBinding(s *session, gen uint64, bd *platformpb.Binding) string {
	key, value := bd.GetKey(), bd.GetValue()
	if bd.GetUnset() {
		s.unbind(b.hub, gen, key)
		return ""
	}
	if why := checkBindingValue(key, value); why != "" {
		return why
	}
	if !s.bind(b.hub, gen, key, value) {
		return "too many bindings"
	}
	return ""
}

// checkBindingValue returns why value may not be bound to key ("" if it
// may): it must be 1..maxBindingValue bytes, and its topic
// ("<key>/<value>") one the link layer takes.
func checkBindingValue(key, value string) string {
	if value == "" || len(value) > maxBindingValue || len(key)+1+len(value) > maxTopicLen ||
		strings.IndexByte(value, 0) >= 0 { // its topic would be refused by the link
		return "bad value"
	}
	return ""
}

// ignoreBinding counts and logs a binding a reply may not make.
func (b *Broker) ignoreBinding(r *request, key, why string) {
	b.m.ignoredBindings.Inc()
	b.log.Warn("broker: ignored binding", "why", why, "method", r.method, "key", wire.Snippet(key), "conn", r.c.ID())
}

// validTopic checks a topic as the link layer will (1..1024 bytes, no NUL)
// and refuses the platform's own (wire.ReservedTopicPrefix: the revocation
// feed).
func validTopic(t string) bool {
	if t == "" || len(t) > maxTopicLen || strings.HasPrefix(t, wire.ReservedTopicPrefix) {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] == 0 {
			return false
		}
	}
	return true
}
