package services

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

var (
	// ErrNoPublisher is returned by Publish when the server has no PUB
	// socket (Options.PubBind is empty).
	ErrNoPublisher = errors.New("services: no publisher (pub_bind is empty)")
	// ErrClosed is returned by Main and Publish after Exit.
	ErrClosed = errors.New("services: server closed")
)

// exitDeregisterTimeout bounds the best-effort deregistration in Exit: a
// yellow on the network answers in a millisecond; one that does not answer
// within half a second expires the record on its own.
const exitDeregisterTimeout = 500 * time.Millisecond

// linkInFlightMargin is how many requests beyond Concurrency the link layer
// accepts: they get an immediate overloaded reply from the server, which
// names the instance, rather than the link's generic one.
const linkInFlightMargin = 1024

var _ daemon.Daemon = (*Server)(nil)

// Server is one instance of a service: a ROUTER that runs the handlers, an
// optional PUB socket for events, and a registration with every yellow.
//
// Lock order: mu is a leaf but for the SetMeta function, which Main calls
// (registering) with mu held: that function must not call the Server.
type Server struct {
	opts     Options
	log      *slog.Logger // with service and instance
	baseLog  *slog.Logger
	handlers map[string]HandlerFunc
	inline   map[string]bool // Options.Inline
	id       string
	kind     platformpb.ServiceKind

	ln       *link.Server
	pub      *link.Publisher // nil without PubBind
	routerEP string          // advertised endpoints
	pubEP    string

	sem      chan struct{} // Concurrency slots
	inflight atomic.Int64
	stats    serverCounters
	draining atomic.Bool
	pubSeq   atomic.Uint64
	meta     atomic.Pointer[func() map[string]string] // SetMeta
	drainReq atomic.Pointer[func()]                   // SetDrainRequest
	drainAsk atomic.Bool                              // a drain request was taken: not ready
	admin    string                                   // the wire.MetaAdmin label, "" for none

	mu      sync.Mutex // guards closed, reg, started and wg.Add
	closed  bool
	started bool
	reg     *yellow.Registration

	exiting atomic.Bool
	quit    chan struct{}
	wg      sync.WaitGroup // request goroutines
}

// ServerStats are a server's counters since NewServer.
type ServerStats struct {
	// Requests counts requests received, whatever the answer.
	Requests uint64
	// Served counts handler runs; Errors those that returned an error,
	// Panics those that panicked.
	Served, Errors, Panics uint64
	// Overloaded counts requests refused at capacity; Refused those
	// refused while draining or closing; Expired those whose deadline had
	// passed; UnknownMethod those for no handler.
	Overloaded, Refused, Expired, UnknownMethod uint64
	// InFlight is the number of handlers running now.
	InFlight int
	// Inline counts handlers of Options.Inline run on their link's
	// reading goroutine; InlineOverruns those that held it longer than
	// link.InlineBudget.
	Inline, InlineOverruns uint64
	// InProcess counts in-process links admitted (Options.InProcess).
	InProcess uint64
	// Replies counts replies handed to the link to be written; BurstReplies
	// those of inline handlers that left with the rest of their read
	// burst's; LinkWrites the writes that carried replies (Replies /
	// LinkWrites: how well replies batch).
	Replies, BurstReplies, LinkWrites uint64
}

type serverCounters struct {
	requests, served, errors, panics, overloaded, refused, expired, unknown atomic.Uint64
}

// Stats returns the server's counters.
func (s *Server) Stats() ServerStats {
	c := &s.stats
	st := ServerStats{
		Requests: c.requests.Load(), Served: c.served.Load(), Errors: c.errors.Load(), Panics: c.panics.Load(),
		Overloaded: c.overloaded.Load(), Refused: c.refused.Load(), Expired: c.expired.Load(),
		UnknownMethod: c.unknown.Load(), InFlight: s.InFlight(),
	}
	if s.ln != nil {
		ls := s.ln.Stats()
		st.Inline, st.InlineOverruns = ls.Inline, ls.InlineOverruns
		st.InProcess = ls.InProcess
		st.Replies, st.BurstReplies, st.LinkWrites = ls.Replies, ls.BurstReplies, ls.Writes
	}
	return st
}

// NewServer validates opts and binds the ROUTER (and the PUB socket) at
// once, so a test can ask for port 0 and read Endpoint. Requests are served
// from now on; Main registers the instance with yellow.
func NewServer(opts Options, handlers map[string]HandlerFunc, log *slog.Logger) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.checkTLS(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for m, h := range handlers {
		svc, _, ok := strings.Cut(m, ".")
		if !ok || svc != opts.Name || h == nil {
			return nil, fmt.Errorf("services: handler %q: methods must be %q + \".<Method>\" with a non-nil handler", wire.Snippet(m), opts.Name)
		}
	}
	s := &Server{
		opts:     opts,
		handlers: make(map[string]HandlerFunc, len(handlers)),
		id:       newInstanceID(opts.Name),
		sem:      make(chan struct{}, opts.Concurrency),
		quit:     make(chan struct{}),
	}
	for m, h := range handlers {
		s.handlers[m] = h
	}
	for _, m := range opts.Inline {
		if handlers[m] == nil {
			return nil, fmt.Errorf("services: inline method %q has no handler", wire.Snippet(m))
		}
		if s.inline == nil {
			s.inline = make(map[string]bool, len(opts.Inline))
		}
		s.inline[m] = true
	}
	s.kind = platformpb.ServiceKind_SERVICE_KIND_STATELESS
	if opts.Kind == KindStateful {
		s.kind = platformpb.ServiceKind_SERVICE_KIND_STATEFUL
	}
	s.baseLog = log
	s.log = log.With("service", opts.Name, "instance", s.id)

	ln, err := link.Listen(opts.Bind, link.ServerOptions{
		InstanceID: s.id,
		Load:       s.Load,
		// Requests past Concurrency are answered overloaded here, at
		// once; the link's own bound only catches a burst beyond that.
		MaxInFlight:    opts.Concurrency + linkInFlightMargin,
		DefaultTimeout: opts.DefaultTimeout,
		TLS:            opts.TLS,
		Logger:         s.log,
		Inline:         s.inlineMethod,
		InProcess:      opts.InProcess,
	}, s.handle)
	if err != nil {
		return nil, fmt.Errorf("services: bind %s: %w", opts.Bind, err)
	}
	s.ln = ln
	if s.routerEP, err = wire.Advertised(ln.Endpoint(), opts.Advertise); err != nil {
		ln.Close()
		return nil, fmt.Errorf("services: bind: %w", err)
	}
	if opts.PubBind != "" {
		pub, err := link.NewPublisher(opts.PubBind, link.PubOptions{
			HeartbeatInterval: opts.Heartbeat,
			TLS:               opts.TLS, // brokers only subscribe
			Logger:            s.log,
		})
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("services: pub_bind %s: %w", opts.PubBind, err)
		}
		s.pub = pub
		if s.pubEP, err = wire.Advertised(pub.Endpoint(), opts.Advertise); err != nil {
			pub.Close()
			ln.Close()
			return nil, fmt.Errorf("services: pub_bind: %w", err)
		}
	}
	s.admin = wire.AdminLabel(opts.AdminAddr, wire.EndpointHost(s.routerEP))
	s.log.Info("services: listening", "router", s.routerEP, "pub", s.pubEP, "concurrency", opts.Concurrency)
	return s, nil
}

// newInstanceID returns "<name>-<12 hex digits>": unique per process start.
func newInstanceID(name string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

// Endpoint returns the ROUTER endpoint other processes dial (the real port
// when bound to port 0).
func (s *Server) Endpoint() string { return s.routerEP }

// PubEndpoint returns the PUB endpoint, or "" without one.
func (s *Server) PubEndpoint() string { return s.pubEP }

// InstanceID returns the instance's id in yellow, unique per process start.
func (s *Server) InstanceID() string { return s.id }

// Options returns the options the server runs with.
func (s *Server) Options() Options { return s.opts }

// Load returns the requests in flight over Concurrency, in [0, 1].
func (s *Server) Load() float64 {
	return float64(s.inflight.Load()) / float64(s.opts.Concurrency)
}

// InFlight returns the number of requests running now.
func (s *Server) InFlight() int { return int(s.inflight.Load()) }

// Instance returns the instance's yellow record.
func (s *Server) Instance() *platformpb.Instance {
	state := platformpb.InstanceState_INSTANCE_STATE_READY
	if s.draining.Load() {
		state = platformpb.InstanceState_INSTANCE_STATE_DRAINING
	}
	return &platformpb.Instance{
		Service:  s.opts.Name,
		Id:       s.id,
		Router:   s.routerEP,
		Pub:      s.pubEP,
		Kind:     s.kind,
		Version:  s.opts.Version,
		Capacity: uint32(s.opts.Concurrency),
		Load:     s.Load(),
		State:    state,
		Meta:     s.currentMeta(),
	}
}

// Main registers the instance with every yellow and serves until Exit or
// Drain; it returns nil then (also when Exit or Drain came first), or
// ErrClosed if Main was already called. (Requests are served from
// NewServer on; Main makes the instance discoverable.)
func (s *Server) Main() error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrClosed
	}
	s.started = true
	if s.closed || s.draining.Load() {
		// Exit or Drain came first: stopped on request, like after Main
		// started.
		s.mu.Unlock()
		return nil
	}
	s.reg = yellow.Register(yellow.ClientOptions{
		Yellows:   s.opts.Yellows,
		Heartbeat: s.opts.Heartbeat,
		TLS:       s.opts.TLS,
		Logger:    s.baseLog,
	}, s.Instance(), s.Load, yellow.WithMeta(s.currentMeta))
	s.mu.Unlock()
	<-s.quit
	return nil
}

// Publish publishes an event of eventType (e.g. "room.Event") with payload
// (its Thrift compact encoding) on topic ("user/<id>", "room/<id>"); brokers
// deliver it to the sessions subscribed to topic as an "@<eventType>" push.
func (s *Server) Publish(topic, eventType string, payload []byte) error {
	if s.pub == nil {
		return ErrNoPublisher
	}
	if s.exiting.Load() {
		return ErrClosed
	}
	ev := &platformpb.Event{
		Topic:        topic,
		Type:         eventType,
		Payload:      payload,
		Seq:          s.pubSeq.Add(1),
		TimeUnixNano: time.Now().UnixNano(),
	}
	if err := s.pub.Publish(topic, ev); err != nil {
		return fmt.Errorf("services: publish %q: %w", wire.Snippet(topic), err)
	}
	return nil
}

// PublishSession publishes directives for connections of the broker with
// instance id broker (the Session.Broker a handler sees, or the broker of
// a presence event): one wire.EventSession event, a
// platformpb.SessionDirectives, on wire.SessionTopic(broker). The broker
// applies each directive to the connection whose session id it names if
// that connection is still logged in as its user_id: its bindings first,
// then its push. It takes only bindings of keys the service's routes may
// bind (a stateful route's key, a route's binds), at most 4096 directives
// and 1 MiB an event; a directive it refuses changes nothing. Publishing
// is best effort, like Publish: the caller learns of a lost event only by
// what does not happen (the matchmaker's players poll as a fallback).
func (s *Server) PublishSession(broker string, ds ...*platformpb.SessionDirective) error {
	if s.pub == nil {
		return ErrNoPublisher
	}
	if broker == "" {
		return errors.New("services: publish session directives: no broker")
	}
	payload, err := proto.Marshal(&platformpb.SessionDirectives{Directives: ds})
	if err != nil {
		return fmt.Errorf("services: encoding session directives: %w", err)
	}
	return s.Publish(wire.SessionTopic(broker), wire.EventSession, payload)
}

// Drain shuts the instance down without failing requests: it marks it
// draining in yellow (consumers stop picking it), answers new requests
// "unavailable: draining" (callers retry elsewhere), waits for the requests
// in flight to finish (bounded by ctx and DrainTimeout), deregisters and
// closes everything (Exit). It returns an error if requests were still
// running when the wait ended; they are cancelled.
func (s *Server) Drain(ctx context.Context) error {
	if s.exiting.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.DrainTimeout)
	defer cancel()
	if !s.draining.CompareAndSwap(false, true) {
		// Another Drain is under way: wait for it.
		select {
		case <-s.quit:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("services: drain: %w", ctx.Err())
		}
	}
	start := time.Now()
	s.mu.Lock()
	reg := s.reg
	s.mu.Unlock()
	if reg != nil {
		reg.SetState(platformpb.InstanceState_INSTANCE_STATE_DRAINING)
	}
	s.log.Info("services: draining", "in_flight", s.InFlight())

	// Taking every slot waits for the requests in flight; none can start
	// while draining.
	var err error
	for i := 0; i < cap(s.sem) && err == nil; i++ {
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			err = fmt.Errorf("services: drain: %d requests still in flight: %w", s.InFlight(), ctx.Err())
		}
	}
	if reg != nil {
		dctx, dcancel := context.WithTimeout(context.Background(), exitDeregisterTimeout)
		if derr := reg.Close(dctx); derr != nil {
			s.log.Warn("services: deregistering", "err", derr)
		}
		dcancel()
		// Callers with a stale view keep getting "draining" (and retry
		// elsewhere) rather than a dead socket for one more beat.
		select {
		case <-time.After(s.opts.Heartbeat):
		case <-ctx.Done():
		}
	}
	s.exit(false)
	s.log.Info("services: drained", "took", time.Since(start).Round(time.Millisecond))
	return err
}

// Exit closes the instance at once: it deregisters (best effort, briefly),
// closes the sockets, cancels the handlers' contexts and waits for them to
// return. Replies of requests still running are lost; Drain is the graceful
// way. Exit is idempotent.
func (s *Server) Exit() { s.exit(true) }

// exit closes everything; deregister false abandons the registration as if
// the process had died (yellow expires it).
func (s *Server) exit(deregister bool) {
	if !s.exiting.CompareAndSwap(false, true) {
		return
	}
	s.mu.Lock()
	s.closed = true
	reg := s.reg
	s.mu.Unlock()
	if reg != nil {
		if deregister {
			ctx, cancel := context.WithTimeout(context.Background(), exitDeregisterTimeout)
			_ = reg.Close(ctx) // best effort: a record not removed expires
			cancel()
		} else {
			reg.Abandon()
		}
	}
	s.ln.Close() // cancels the handlers' contexts
	close(s.quit)
	s.wg.Wait()
	if s.pub != nil {
		_ = s.pub.Close()
	}
}

// handle is the link Handler, on its own goroutine per request: the one
// place a request is routed. It answers at once what it can (draining,
// unknown method, expired deadline, saturation), otherwise runs the handler
// and replies. linkCtx ends at the caller's deadline or CANCEL, or when the
// ROUTER closes.
func (s *Server) handle(linkCtx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	now := time.Now()
	s.stats.requests.Add(1)
	if req.GetMethod() == wire.MethodDrain {
		s.handleDrain(linkCtx, req, reply)
		return
	}
	if s.draining.Load() {
		s.stats.refused.Add(1)
		reply(s.errorReply(req, wire.CodeUnavailable, wire.DrainingMessage))
		return
	}
	h := s.handlers[req.GetMethod()]
	if h == nil {
		s.stats.unknown.Add(1)
		reply(s.errorReply(req, wire.CodeUnknownMethod, wire.Snippet(req.GetMethod())))
		return
	}
	deadline := s.deadline(req, now)
	if !deadline.After(now) {
		s.stats.expired.Add(1)
		reply(s.errorReply(req, wire.CodeTimeout, "deadline passed before the request ran"))
		return
	}
	select {
	case s.sem <- struct{}{}:
	default:
		if s.draining.Load() { // Drain holds the slots
			s.stats.refused.Add(1)
			reply(s.errorReply(req, wire.CodeUnavailable, wire.DrainingMessage))
			return
		}
		s.stats.overloaded.Add(1)
		reply(s.errorReply(req, wire.CodeOverloaded, fmt.Sprintf("%s is running %d requests", s.id, cap(s.sem))))
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.sem
		s.stats.refused.Add(1)
		reply(s.errorReply(req, wire.CodeUnavailable, wire.ClosingMessage))
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.inflight.Add(1)
	s.run(linkCtx, req, h, deadline, reply)
}

// inlineMethod reports whether method is one of Options.Inline.
func (s *Server) inlineMethod(method string) bool { return s.inline[method] }

// deadline returns the request's deadline: its own, or now +
// DefaultTimeout, capped at now + MaxTimeout.
func (s *Server) deadline(req *platformpb.Envelope, now time.Time) time.Time {
	max := now.Add(s.opts.MaxTimeout)
	dl := req.GetDeadlineUnixNano()
	if dl == 0 {
		return now.Add(s.opts.DefaultTimeout)
	}
	if d := time.Unix(0, dl); d.Before(max) {
		return d
	}
	return max
}

// run runs one handler and replies. Caller took a semaphore slot and
// counted the request in wg and inflight.
func (s *Server) run(linkCtx context.Context, req *platformpb.Envelope, h HandlerFunc, deadline time.Time, reply func(*platformpb.Envelope)) {
	defer s.wg.Done()
	ctx, cancel := linkCtx, context.CancelFunc(nil)
	if d, ok := linkCtx.Deadline(); !ok || d.After(deadline) {
		// The runtime's cap is sooner than the caller's deadline, which
		// the link's context carries already.
		ctx, cancel = context.WithDeadline(linkCtx, deadline)
	}
	sess := sessionOf(linkCtx, req.GetSession())
	sess.addressed = req.GetAddressed()
	rc := &runCtx{Context: ctx, sess: sess}
	rc.log = reqLogger{base: s.log, method: req.GetMethod(), id: req.GetRequestId(), session: sess.ID()}
	ctx, log := rc, &rc.log

	payload, panicked, err := callHandler(ctx, h, sess, req.GetPayload(), log)
	if cancel != nil {
		cancel()
	}
	s.stats.served.Add(1)
	switch {
	case panicked:
		s.stats.panics.Add(1)
		s.stats.errors.Add(1)
	case err != nil:
		s.stats.errors.Add(1)
	}
	rep := &platformpb.Envelope{
		Kind:      platformpb.Kind_KIND_REPLY,
		RequestId: req.GetRequestId(),
		Method:    req.GetMethod(),
		Sender:    s.id,
	}
	if err != nil {
		rep.ErrorCode, rep.ErrorMessage = replyError(err, log.get())
	} else {
		rep.Payload = payload
	}
	if !panicked {
		rep.Bindings, rep.Subscriptions = sess.Changes()
	}
	rep.Addressed = sess.served()
	rep.Load = s.Load()
	// Reply before giving the slot back: Drain waits for the slots, and a
	// reply queued before the ROUTER closes is delivered.
	reply(rep)
	s.inflight.Add(-1)
	<-s.sem
}

// callHandler runs h, turning a panic into an internal error with the
// stack logged.
func callHandler(ctx context.Context, h HandlerFunc, sess *Session, payload []byte, log *reqLogger) (out []byte, panicked bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			log.get().Error("services: handler panicked", "panic", p, "stack", string(debug.Stack()))
			out, panicked, err = nil, true, wire.Errorf(wire.CodeInternal, "handler panicked")
		}
	}()
	out, err = h(ctx, sess, payload)
	return out, false, err
}

// replyError returns the wire code and text of a handler's error. An error
// that is not an *Error and maps to internal is logged, and its text
// replaced: internals are not for clients.
func replyError(err error, log *slog.Logger) (code, msg string) {
	var e *wire.Error
	if errors.As(err, &e) {
		return wire.CodeOf(e), e.Message
	}
	code = wire.CodeOf(err)
	if code == wire.CodeInternal && stores.IsOutage(err) {
		// A handler that did not map a store's outage (StoreError):
		// unavailable all the same, never internal.
		log.Warn("services: handler failed: store outage", "err", err)
		return wire.CodeUnavailable, "store unavailable"
	}
	if code == wire.CodeInternal {
		log.Error("services: handler failed", "err", err)
		return code, "internal error"
	}
	return code, err.Error()
}

// errorReply builds a reply carrying only an error.
func (s *Server) errorReply(req *platformpb.Envelope, code, msg string) *platformpb.Envelope {
	return &platformpb.Envelope{
		Kind:         platformpb.Kind_KIND_REPLY,
		RequestId:    req.GetRequestId(),
		Method:       req.GetMethod(),
		ErrorCode:    code,
		ErrorMessage: msg,
		Load:         s.Load(),
		Sender:       s.id,
	}
}

// sessionOf returns the Session a request may act on. Over TLS a client
// session (user id, bindings, remote address) is believed only from a
// broker: a service calling a service is that service, never a user, so
// the session it sends is dropped. On a plain link (an explicitly insecure
// deployment, tests) the envelope's session is taken as it is.
func sessionOf(ctx context.Context, pb *platformpb.Session) *Session {
	caller, ok := link.CallerFrom(ctx)
	if !ok {
		return NewSession(pb)
	}
	if caller.Role != pki.RoleBroker {
		pb = nil
	}
	s := NewSession(pb)
	s.caller, s.tls = caller, true
	return s
}

// SetMeta makes meta the source of the labels the instance publishes in
// its yellow record (Instance.meta): it is called at registration and
// before every heartbeat, from several goroutines (one per yellow), so it
// must be quick and safe for concurrent use; a change reaches yellow, and
// its watchers, with the next beat. The labels keep yellow's bounds
// (yellow.WithMeta): at most yellow.MaxMetaEntries (16), keys of 1..64
// bytes, values of at most 256, the record within yellow's
// max_record_bytes (4 KiB by default); labels past those are logged and
// not sent. Call it before Main (Module.Start does, with Impl.Meta).
func (s *Server) SetMeta(meta func() map[string]string) {
	if meta == nil {
		s.meta.Store(nil)
		return
	}
	s.meta.Store(&meta)
}

// Ready returns nil once the instance is registered with a yellow and can
// be picked (its /readyz check), an error before that and once it drains
// or closes. Registration is the first one: a yellow that becomes
// unreachable later does not make the instance unready (consumers keep
// their last view and keep calling it).
func (s *Server) Ready() error {
	switch {
	case s.exiting.Load():
		return ErrClosed
	case s.draining.Load() || s.drainAsk.Load():
		return errors.New(wire.DrainingMessage)
	}
	s.mu.Lock()
	reg := s.reg
	s.mu.Unlock()
	switch {
	case reg == nil:
		return errors.New("not registered: Main not running")
	case !reg.EverRegistered():
		return errors.New("not registered in yellow yet")
	}
	return nil
}

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// SetDrainRequest makes f what runs when an admin asks the instance to
// drain (wire.MethodDrain, noonctl drain): `noon service` drains the whole
// process, as on SIGTERM. f must return at once and may run more than once.
// Without one (nil) the Server drains itself (Drain, in a goroutine);
// Module.Start sets one that drains the Instance with its module's hooks.
func (s *Server) SetDrainRequest(f func()) {
	if f == nil {
		s.drainReq.Store(nil)
		return
	}
	s.drainReq.Store(&f)
}

// handleDrain serves wire.MethodDrain: an admin (over TLS: the caller's
// certificate says admin; no client session) asks the instance to drain.
// It replies at once, then starts the drain; an instance already draining
// says so and starts nothing.
func (s *Server) handleDrain(linkCtx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	sess := sessionOf(linkCtx, req.GetSession())
	if err := sess.RequireAdmin(); err != nil {
		s.stats.refused.Add(1)
		code, msg := replyError(err, s.log)
		s.log.Warn("services: drain request refused", "caller", callerString(sess), "err", msg)
		reply(s.errorReply(req, code, msg))
		return
	}
	rep := &platformpb.Envelope{
		Kind:      platformpb.Kind_KIND_REPLY,
		RequestId: req.GetRequestId(),
		Method:    req.GetMethod(),
		Sender:    s.id,
		Load:      s.Load(),
	}
	if s.draining.Load() || s.exiting.Load() {
		rep.Payload = []byte(wire.DrainingMessage)
		reply(rep)
		return
	}
	s.log.Info("services: drain requested by an admin", "caller", callerString(sess))
	s.drainAsk.Store(true)
	rep.Payload = []byte("ok")
	reply(rep)
	if f := s.drainReq.Load(); f != nil {
		(*f)()
		return
	}
	go func() { _ = s.Drain(context.Background()) }()
}

// callerString names the calling process of sess for logs: its identity
// over TLS, "plain link" otherwise.
func callerString(sess *Session) string {
	if id, ok := sess.Caller(); ok {
		return id.String()
	}
	return "plain link"
}

// currentMeta returns the labels of SetMeta's function now, with the
// wire.MetaAdmin label when the instance has an admin endpoint; nil
// without either.
func (s *Server) currentMeta() map[string]string {
	var m map[string]string
	if f := s.meta.Load(); f != nil {
		m = (*f)()
	}
	if s.admin == "" {
		return m
	}
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	out[wire.MetaAdmin] = s.admin
	return out
}
