package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/gopool"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// Handler runs one REQUEST. It runs in its own goroutine; ctx ends at the
// request's deadline, when the caller sends CANCEL, when reply is called, or
// when the Server closes. On a Server with TLS, CallerFrom(ctx) is the
// verified identity of the connection the request came from. The handler answers by calling reply exactly once,
// from any goroutine, now or later (even after it returned); further calls
// are counted and ignored. reply sets kind, request_id, load and (if empty)
// sender itself, does not modify or keep the envelope, and waits at most
// ServerOptions.ReplyWait for room in the writer's queue; a lone reply
// written directly (see Server.enqueue) waits at most SendTimeout for a
// socket whose remote stopped reading, as the writer would.
type Handler func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope))

// ServerOptions configures a Server. Zero values take the defaults in limits.go.
type ServerOptions struct {
	// InstanceID is sent as the sender of PONGs and of replies that have none.
	InstanceID string
	// Load, if set, reports this instance's load in [0,1]; it is sent in every
	// PONG and REPLY. It is called from the connections' reading goroutines
	// and from reply, concurrently: it must be cheap and must not block.
	Load func() float64
	// OnCancel, if set, is called when a caller cancels a request (after the
	// request's context has been canceled). peer is the caller socket's
	// identity. It runs on the connection's reading goroutine (several
	// connections' concurrently): it must not block.
	OnCancel func(peer string, requestID uint64)
	// MaxMessage bounds a request or reply envelope (default 4 MiB). Bigger
	// requests are dropped and counted; a connection that sends a message
	// bigger than MaxMessage + 4 KiB is closed.
	MaxMessage int
	// QueueSize bounds the writer queue (default 1024).
	QueueSize int
	// ReplyWait is how long reply waits for room in a full writer queue
	// before the reply is dropped (default 5 ms).
	ReplyWait time.Duration
	// MaxInFlight bounds the requests running at once (default 4096); past
	// it requests are answered with error_code "overloaded".
	MaxInFlight int
	// SendTimeout bounds one socket write (default 1 s); a connection whose
	// write blocks longer is closed.
	SendTimeout time.Duration
	// DefaultTimeout is the deadline of requests that carry none (default 5 s).
	DefaultTimeout time.Duration
	// HandshakeTimeout bounds a new connection's TLS and ZMTP handshake (default 2 s).
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that sent nothing for this long
	// (default 30 s; negative: never). It must exceed the peers' heartbeat
	// interval.
	IdleTimeout time.Duration
	// InProcess makes the Server reachable without a socket by the Peers
	// of its own process that dial its bound endpoint (see inproc.go):
	// `noon dev`, where every daemon shares one process.
	InProcess bool
	// TLS, when set, runs mutual TLS 1.3 on every connection: a client
	// must present a certificate from the credentials' CA, and every
	// request is handed to the Handler with the verified identity of its
	// connection (CallerFrom). Nil: plain ZMTP, nobody verified (tests, and
	// deployments that set tls.insecure).
	TLS *pki.Credentials
	// Logger receives the Server's logs (default slog.Default()).
	Logger *slog.Logger
	// Inline, if set, reports whether method's handler never blocks (no
	// I/O, no wait on anything but short locks): such a handler may run
	// on its connection's reading goroutine instead of a goroutine of its
	// own, when it is the only request running (see dispatch and
	// inlineRule), and its reply leaves with the other replies of the
	// read burst (burst.go). That saves the wake of a second thread per
	// request, and writes; meanwhile the connection's next messages wait
	// (at most burstInlineBudget for a burst's), so inline handlers that run longer than
	// InlineBudget twice in a row stop every inline run for
	// inlineCooldown; overruns are counted (InlineOverruns) and the stop is
	// logged.
	Inline func(method string) bool
	// burstBudget, in tests, replaces burstInlineBudget.
	burstBudget time.Duration
}

// InlineBudget is how long an inline handler may hold its connection's
// reading goroutine. One overrun may be the machine's (a preempted
// thread, a GC pause); two in a row stop inline runs for inlineCooldown.
const InlineBudget = time.Millisecond

// inlineCooldown is how long inline runs stop after an overrun.
const inlineCooldown = 10 * time.Second

func (o ServerOptions) withDefaults() ServerOptions {
	o.MaxMessage = orDefault(o.MaxMessage, DefaultMaxMessage)
	o.QueueSize = orDefault(o.QueueSize, DefaultQueueSize)
	o.ReplyWait = orDefault(o.ReplyWait, DefaultReplyWait)
	o.MaxInFlight = orDefault(o.MaxInFlight, DefaultMaxInFlight)
	o.SendTimeout = orDefault(o.SendTimeout, DefaultSendTimeout)
	o.DefaultTimeout = orDefault(o.DefaultTimeout, DefaultCallTimeout)
	o.HandshakeTimeout = orDefault(o.HandshakeTimeout, DefaultHandshakeTimeout)
	o.burstBudget = orDefault(o.burstBudget, burstInlineBudget)
	switch {
	case o.IdleTimeout == 0:
		o.IdleTimeout = DefaultIdleTimeout
	case o.IdleTimeout < 0:
		o.IdleTimeout = 0
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ServerStats is a snapshot of a Server's counters.
type ServerStats struct {
	Requests    uint64 // REQUEST envelopes received
	Replies     uint64 // replies handed on to be written (a drop is counted in Dropped too)
	Late        uint64 // of which were sent after the request's deadline or CANCEL
	Pings       uint64 // PINGs answered
	Cancels     uint64 // CANCELs for a running request
	Expired     uint64 // requests whose deadline had passed on arrival, not run
	Overloaded  uint64 // requests refused because MaxInFlight were running
	Duplicate   uint64 // second calls of reply, and requests reusing a running id
	Panics      uint64 // handlers that panicked (answered "internal")
	Dropped     uint64 // replies and PONGs dropped: writer queue full or closed
	BadMessages uint64 // frames that were not a valid Envelope, dropped
	Sent        uint64 // messages handed to the socket (zmq4 discards those for a peer that left)
	SendErrors  uint64 // writes that failed
	StuckSends  uint64 // writes that passed SendTimeout
	// DirectWrites counts replies written by their handler's goroutine (a
	// lone reply: see enqueue) or with their read burst's; the rest went
	// through the writer's batches.
	DirectWrites uint64
	// BurstReplies counts replies of inline handlers that left with the
	// rest of their read burst's (burst.go).
	BurstReplies uint64
	// Writes counts the batches of messages handed to connections to be
	// written (direct, burst and writer's, one system call each but for
	// big ones): Sent / Writes is how well writes batch.
	Writes uint64
	// Inline counts handlers run on their connection's reading goroutine
	// (ServerOptions.Inline); InlineOverruns those that held it longer
	// than InlineBudget, each of which stopped inline runs for a while.
	Inline, InlineOverruns uint64
	// Unauthenticated counts messages (with TLS) whose routing identity
	// had no verified connection: not handed to the Handler; a REQUEST is
	// answered "unauthenticated".
	Unauthenticated uint64
	// InProcess counts in-process links admitted (ServerOptions.InProcess).
	InProcess uint64
	Guard     GuardStats
}

type serverCounters struct {
	requests, replies, late, pings, cancels, expired, overloaded, duplicate atomic.Uint64
	panics, dropped, bad, sent, sendErrors, stuck, unauthenticated, direct  atomic.Uint64
	inline, inlineOverruns, inproc, burst, writes                           atomic.Uint64
}

// Server is a service instance's ROUTER: it receives requests from any
// number of Peers and runs a Handler for each.
type Server struct {
	opts     ServerOptions
	h        Handler
	log      *slog.Logger
	sock     zmq4.Socket
	endpoint string
	gstats   guardStats
	callers  *callerTable // with TLS: routing identity -> verified identity
	conns    *connTable   // routing identity -> connection, for the writer

	ctx    context.Context // ends at Close: parent of the socket and of handler contexts
	cancel context.CancelFunc
	closed atomic.Bool
	done   chan struct{}
	wg     sync.WaitGroup // reader and writer
	outq   chan outMsg
	// turn is who writes to the connections: the writer, or a reply
	// written directly (see enqueue); direct is theirs while they hold
	// turn.mu.
	turn   writeTurn
	direct frameBatch
	// workers runs handlers on reused goroutines, whose stacks have grown
	// already (see gopool).
	workers gopool.Pool

	mu       sync.Mutex // guards active
	active   map[reqKey]*serverReq
	inflight atomic.Int64
	stats    serverCounters
	// inlineOff is when inline runs may start again after overruns (unix
	// nanoseconds; 0: they may); inlineStrike is set by an overrun and
	// cleared by an inline run within InlineBudget.
	inlineOff    atomic.Int64
	inlineStrike atomic.Bool

	localMu sync.RWMutex          // guards locals
	locals  map[string]*localConn // in-process links by routing identity
}

// inlineRule says when a request may run inline (ServerOptions.Inline):
// never (zmq4's own reads, and a message with more of its read burst
// behind it once the burst's inline runs took burstInlineBudget), when it
// is the only request running (a socket's reader: it holds up that
// connection's next messages), or always (an in-process link: it runs on
// its caller's goroutine, which holds up nobody else's).
type inlineRule uint8

const (
	inlineNever inlineRule = iota
	inlineAlone
	inlineAlways
)

type outMsg struct {
	peer, body []byte
}

type reqKey struct {
	peer string
	id   uint64
}

// Listen binds a ROUTER on endpoint ("tcp://host:port"; port 0 picks a free
// port, see Endpoint) and serves requests with h until Close.
func Listen(endpoint string, opts ServerOptions, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("link: Listen: nil Handler")
	}
	zep, err := zmtpEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	s := &Server{
		opts:   opts,
		h:      h,
		log:    opts.Logger.With("server", endpoint),
		done:   make(chan struct{}),
		outq:   make(chan outMsg, opts.QueueSize),
		active: make(map[reqKey]*serverReq),
		conns:  newConnTable(),
	}
	gcfg := &guardConfig{
		conns: s.conns,
		sink: func(g *guardConn, body []byte, ok bool) {
			s.onMessage(g.ridB, g.rid, body, ok, g.burst.rule(g.br.Buffered() > 0, opts.burstBudget), g)
		},
		beforeRead:   s.endBurst,
		maxMessage:   uint64(opts.MaxMessage) + frameOverhead,
		handshake:    opts.HandshakeTimeout,
		writeTimeout: opts.SendTimeout,
		idle:         opts.IdleTimeout,
		stats:        &s.gstats,
		log:          s.log,
	}
	if opts.TLS != nil {
		s.callers = newCallerTable()
		gcfg.tls = opts.TLS.ServerConfig(nil)
		gcfg.callers = s.callers
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sock = zmq4.NewRouter(withGuard(s.ctx, gcfg),
		zmq4.WithTimeout(opts.SendTimeout),
		zmq4.WithLogger(zmqLogger(s.log)),
	)
	if err := s.sock.Listen(zep); err != nil {
		s.cancel()
		_ = s.sock.Close()
		return nil, fmt.Errorf("link: listen %s: %w", endpoint, err)
	}
	s.endpoint = "tcp://" + s.sock.Addr().String()
	s.log = opts.Logger.With("server", s.endpoint)
	if opts.InProcess {
		registerInProcess(s)
	}
	s.wg.Add(2)
	go s.readLoop()
	go s.writeLoop()
	return s, nil
}

// Endpoint returns the bound endpoint, "tcp://host:port", with the real port
// when Listen was given port 0. A wildcard host stays as bound (0.0.0.0):
// advertise a reachable address instead.
func (s *Server) Endpoint() string { return s.endpoint }

// InFlight returns the number of requests accepted and not yet answered,
// canceled or expired.
func (s *Server) InFlight() int { return int(s.inflight.Load()) }

// Stats returns a snapshot of the Server's counters.
func (s *Server) Stats() ServerStats {
	c := &s.stats
	return ServerStats{
		Requests: c.requests.Load(), Replies: c.replies.Load(), Late: c.late.Load(),
		Pings: c.pings.Load(), Cancels: c.cancels.Load(), Expired: c.expired.Load(),
		Overloaded: c.overloaded.Load(), Duplicate: c.duplicate.Load(), Panics: c.panics.Load(),
		Dropped: c.dropped.Load(), BadMessages: c.bad.Load(), Sent: c.sent.Load(),
		SendErrors: c.sendErrors.Load(), StuckSends: c.stuck.Load(),
		DirectWrites: c.direct.Load(), BurstReplies: c.burst.Load(), Writes: c.writes.Load(),
		Unauthenticated: c.unauthenticated.Load(),
		Inline:          c.inline.Load(), InlineOverruns: c.inlineOverruns.Load(),
		InProcess: c.inproc.Load(), Guard: s.gstats.snapshot(),
	}
}

// Close unbinds the socket, closes every connection and cancels the
// contexts of running handlers; their replies are dropped. It does not wait
// for handlers to return. It is idempotent.
func (s *Server) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if s.opts.InProcess {
		unregisterInProcess(s)
		s.closeLocals()
	}
	s.mu.Lock()
	s.cancel() // under mu: dispatch starts no request after this
	running := make([]*serverReq, 0, len(s.active))
	for _, r := range s.active {
		running = append(running, r)
	}
	s.mu.Unlock()
	for _, r := range running {
		r.ctx.end(context.Canceled)
	}
	close(s.done)
	err := s.sock.Close()
	s.wg.Wait()
	s.workers.Close()
	return err
}

func (s *Server) load() (float64, bool) {
	if s.opts.Load == nil {
		return 0, false
	}
	return s.opts.Load(), true
}

// readLoop reads what zmq4 receives: messages of connections whose READY
// named no identity (the guard hands the others' to onMessage itself, see
// guardConn.serveReads).
func (s *Server) readLoop() {
	defer s.wg.Done()
	for {
		msg, err := s.sock.Recv()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			// zmq4's ROUTER only fails Recv when closed; do not spin if not.
			s.log.Error("link: receive failed", "err", err)
			time.Sleep(5 * time.Millisecond)
			continue
		}
		if msg.Type == zmq4.CmdMsg {
			continue // zmq4 hands ZMTP commands (e.g. libzmq's PING) up as messages
		}
		if len(msg.Frames) != 2 {
			s.onMessage(nil, "", nil, false, inlineNever, nil)
			continue
		}
		s.onMessage(msg.Frames[0], string(msg.Frames[0]), msg.Frames[1], true, inlineNever, nil)
	}
}

// onMessage takes one message from the connection with routing identity
// peer (rid as a string; ok: of one frame, body; body is not kept; inline:
// when a request may run inline; from: the guarded connection whose reader
// calls, nil for zmq4's reads and in-process links). It runs in a connection's reading
// goroutine (or an in-process caller's), concurrently with other
// connections', and never
// blocks on anything: requests run in their own goroutines (but for an
// inline handler's, which must not block either: see ServerOptions.Inline),
// PONGs are queued or dropped.
func (s *Server) onMessage(peer []byte, rid string, body []byte, ok bool, inline inlineRule, from *guardConn) {
	if !ok {
		s.stats.bad.Add(1)
		s.log.Debug("link: bad message: not one frame")
		return
	}
	env, err := decodeEnvelope(body, s.opts.MaxMessage)
	if err != nil {
		s.stats.bad.Add(1)
		s.log.Debug("link: bad message", "peer", string(wire.Snippet(peer)), "err", err,
			"snippet", fmt.Sprintf("%q", wire.Snippet(body)))
		return
	}
	var caller pki.Identity
	if s.callers != nil {
		id, ok := s.callers.lookup(peer)
		if !ok {
			s.unauthenticated(peer, env)
			return
		}
		caller = id
	}
	switch env.GetKind() {
	case platformpb.Kind_KIND_REQUEST:
		s.dispatch(peer, rid, env, caller, inline, from)
	case platformpb.Kind_KIND_PING:
		s.stats.pings.Add(1)
		load, ok := s.load()
		b, _ := encodeEnvelope(nil, envelopeOverrides{
			kind: platformpb.Kind_KIND_PONG, requestID: env.GetRequestId(),
			setLoad: ok, load: load, sender: s.opts.InstanceID,
		})
		s.enqueue(peer, b, false)
	case platformpb.Kind_KIND_CANCEL:
		s.cancelRequest(peer, env.GetRequestId())
	default:
		s.stats.bad.Add(1)
		s.log.Debug("link: unexpected envelope kind", "kind", env.GetKind().String())
	}
}

// serverReq is one running request.
type serverReq struct {
	s       *Server
	key     reqKey
	peer    []byte
	id      uint64
	ctx     reqCtx // the handler's context is &ctx
	env     *platformpb.Envelope
	replied atomic.Bool
	// from, for an inline run on a connection's reader, is that
	// connection: the reply joins its read burst (burst.go).
	from *guardConn
}

// unauthenticated refuses a message whose routing identity has no verified
// connection (with TLS): one that was queued as its connection closed, or
// that zmq4 named itself. A REQUEST is answered, nothing else.
func (s *Server) unauthenticated(peer []byte, env *platformpb.Envelope) {
	s.stats.unauthenticated.Add(1)
	s.log.Debug("link: message from an unverified connection", "peer", string(wire.Snippet(peer)), "kind", env.GetKind().String())
	if env.GetKind() != platformpb.Kind_KIND_REQUEST {
		return
	}
	b, _ := s.encodeReply(&platformpb.Envelope{
		ErrorCode: wire.CodeUnauthenticated, ErrorMessage: "no verified certificate for this connection",
	}, env.GetRequestId())
	s.enqueue(peer, b, false)
}

// dispatch starts a request's Handler; caller is its connection's verified
// identity (with TLS). inline says when the handler may run inline (see
// ServerOptions.Inline and inlineRule); from is the guarded connection
// whose reader calls (nil: none), whose read burst an inline run's reply
// joins (burst.go).
func (s *Server) dispatch(peer []byte, rid string, env *platformpb.Envelope, caller pki.Identity, inline inlineRule, from *guardConn) {
	s.stats.requests.Add(1)
	now := time.Now()
	deadline := now.Add(s.opts.DefaultTimeout)
	if d := env.GetDeadlineUnixNano(); d != 0 {
		deadline = time.Unix(0, d)
	}
	if !deadline.After(now) {
		s.stats.expired.Add(1)
		return
	}
	if s.inflight.Add(1) > int64(s.opts.MaxInFlight) {
		s.inflight.Add(-1)
		s.stats.overloaded.Add(1)
		b, _ := s.encodeReply(&platformpb.Envelope{
			ErrorCode: wire.CodeOverloaded, ErrorMessage: "too many requests in flight",
		}, env.GetRequestId())
		s.enqueue(peer, b, false)
		return
	}
	r := &serverReq{s: s, key: reqKey{rid, env.GetRequestId()}, peer: peer, id: env.GetRequestId()}
	s.mu.Lock()
	if _, dup := s.active[r.key]; dup || s.ctx.Err() != nil {
		s.mu.Unlock()
		s.inflight.Add(-1)
		if dup {
			s.stats.duplicate.Add(1)
		}
		return
	}
	// Whatever ends the context (reply, deadline, CANCEL, Close) releases
	// the request's slot, in the goroutine that ends it.
	r.env = env
	r.ctx.init(deadline, caller, s.callers != nil, r)
	s.active[r.key] = r
	s.mu.Unlock()
	if inline != inlineNever && s.opts.Inline != nil && (inline == inlineAlways || s.inflight.Load() == 1) &&
		s.inlineOn(now) && s.opts.Inline(env.GetMethod()) {
		r.from = from
		s.serveInline(r, env.GetMethod(), now)
		return
	}
	s.workers.Go(r.serve)
}

// inlineOn reports whether inline runs are allowed at now.
func (s *Server) inlineOn(now time.Time) bool {
	off := s.inlineOff.Load()
	return off == 0 || now.UnixNano() >= off
}

// serveInline runs r's handler on the connection's reading goroutine, and
// stops inline runs for inlineCooldown after the second overrun of
// InlineBudget in a row.
func (s *Server) serveInline(r *serverReq, method string, start time.Time) {
	s.stats.inline.Add(1)
	if r.from != nil {
		r.from.burst.runInline(start, r.serve)
	} else {
		r.serve()
	}
	took := time.Since(start)
	if took <= InlineBudget {
		if s.inlineStrike.Load() {
			s.inlineStrike.Store(false)
		}
		return
	}
	s.stats.inlineOverruns.Add(1)
	if !s.inlineStrike.Swap(true) {
		return
	}
	s.inlineStrike.Store(false)
	s.inlineOff.Store(time.Now().Add(inlineCooldown).UnixNano())
	s.log.Warn("link: inline handlers held their connection's reader too long: inline runs stop for a while",
		"method", method, "took", took, "budget", InlineBudget, "pause", inlineCooldown)
}

func (r *serverReq) release() {
	s := r.s
	s.mu.Lock()
	if s.active[r.key] == r {
		delete(s.active, r.key)
	}
	s.mu.Unlock()
	s.inflight.Add(-1)
}

func (r *serverReq) serve() {
	s, env := r.s, r.env
	r.env = nil
	defer func() {
		if v := recover(); v != nil {
			s.stats.panics.Add(1)
			s.log.Error("link: handler panicked", "method", env.GetMethod(), "request_id", r.id,
				"panic", v, "stack", string(debug.Stack()))
			r.reply(&platformpb.Envelope{ErrorCode: "internal", ErrorMessage: "internal error"})
		}
	}()
	s.h(&r.ctx, env, r.reply)
}

// reply is the function handed to the Handler.
func (r *serverReq) reply(rep *platformpb.Envelope) {
	s := r.s
	if !r.replied.CompareAndSwap(false, true) {
		s.stats.duplicate.Add(1)
		return
	}
	late := !r.ctx.end(context.Canceled) // deadline passed or the caller canceled
	b, err := s.encodeReply(rep, r.id)
	if err == nil && len(b) > s.opts.MaxMessage {
		err = fmt.Errorf("%w: %d-byte reply, limit %d", ErrTooLarge, len(b), s.opts.MaxMessage)
	}
	if err != nil {
		s.log.Error("link: cannot send reply", "request_id", r.id, "err", err)
		b, _ = s.encodeReply(&platformpb.Envelope{ErrorCode: "internal", ErrorMessage: "reply could not be encoded"}, r.id)
	}
	if r.from != nil && s.addReply(r.from, b) || s.enqueue(r.peer, b, true) {
		s.stats.replies.Add(1)
		if late {
			// Sent anyway: clocks differ between hosts, and the caller
			// drops it if it really gave up.
			s.stats.late.Add(1)
		}
	}
}

func (s *Server) encodeReply(rep *platformpb.Envelope, id uint64) ([]byte, error) {
	load, ok := s.load()
	o := envelopeOverrides{kind: platformpb.Kind_KIND_REPLY, requestID: id, setLoad: ok, load: load}
	if rep.GetSender() == "" {
		o.sender = s.opts.InstanceID
	}
	return encodeEnvelope(rep, o)
}

func (s *Server) cancelRequest(peer []byte, id uint64) {
	s.mu.Lock()
	r := s.active[reqKey{string(peer), id}]
	s.mu.Unlock()
	if r == nil {
		return // already answered or expired
	}
	s.stats.cancels.Add(1)
	r.ctx.end(context.Canceled)
	if s.opts.OnCancel != nil {
		s.opts.OnCancel(string(peer), id)
	}
}

// enqueue sends a message: at once, from the caller's goroutine, when no
// other request is running, nothing is queued and nobody is writing (a
// lone reply: no goroutine switch to the writer), and otherwise through
// the writer's queue, which batches. With wait it waits up to ReplyWait
// for room in the queue; otherwise a full queue drops the message at
// once. A direct write to a connection whose
// remote stopped reading blocks up to SendTimeout, as the writer would,
// and closes it; the replies behind it go through the queue meanwhile.
func (s *Server) enqueue(peer, body []byte, wait bool) bool {
	if s.closed.Load() {
		s.stats.dropped.Add(1)
		return false
	}
	if s.opts.InProcess {
		if lc := s.local(peer); lc != nil {
			lc.deliver(body)
			return true
		}
	}
	// Only a handler's reply (wait) is written directly: a connection's
	// reading goroutine (PONGs, refusals) never writes, so that reading
	// goes on whatever the remote does with its end; an inline handler's
	// reply is the exception (it is the only request running, and the
	// write takes the same turn and deadline as any).
	if wait && s.inflight.Load() == 0 {
		if g := s.conns.get(peer); g != nil && s.writeDirect(g, &s.direct, body) {
			return true
		}
	}
	m := outMsg{peer: peer, body: body}
	s.turn.queued.Add(1)
	select {
	case s.outq <- m:
		return true
	default:
	}
	if wait {
		t := time.NewTimer(s.opts.ReplyWait)
		defer t.Stop()
		select {
		case s.outq <- m:
			return true
		case <-t.C:
		case <-s.done:
		}
	}
	s.turn.queued.Add(-1)
	s.stats.dropped.Add(1)
	return false
}

// writeDirect writes b's messages, and body if not nil, to g from the
// caller's goroutine when the turn is free (nothing queued, nobody
// writing), and reports whether it did. b is the turn holder's: it is
// touched only once the turn is taken.
func (s *Server) writeDirect(g *guardConn, b *frameBatch, body []byte) bool {
	if !s.turn.tryDirect() {
		return false
	}
	if body != nil {
		b.add(body)
	}
	s.stats.direct.Add(uint64(len(b.bodies)))
	s.writeTo(g, b)
	s.turn.mu.Unlock()
	return true
}

// writeTo writes b's messages to g and empties b. Caller holds turn.mu.
func (s *Server) writeTo(g *guardConn, b *frameBatch) {
	n := uint64(len(b.bodies))
	s.stats.writes.Add(1)
	if stuck, err := g.writeBatch(b.buffers()); err != nil {
		b.reset(nil)
		s.stats.sendErrors.Add(n)
		if stuck {
			s.stats.stuck.Add(1)
		}
		s.log.Debug("link: send failed", "peer", string(wire.Snippet(g.ridB)), "err", err)
		return
	}
	b.reset(putBuf)
	s.stats.sent.Add(n)
}

// writeLoop is the socket's only writer. It takes everything queued when
// it wakes (up to a batch's limits) and writes each connection's messages
// with one write (see frameBatch), in queue order per connection. One
// writer serves every connection: a stuck write delays the others for up
// to SendTimeout, when the guard's write deadline closes that connection.
func (s *Server) writeLoop() {
	defer s.wg.Done()
	var (
		msgs    []outMsg
		batches = make(map[*guardConn]*frameBatch)
		order   []*guardConn
		spare   []*frameBatch
		size    int // bytes of msgs' bodies
	)
	full := func() bool { return len(msgs) >= maxBatchMsgs || size >= maxBatchBytes }
	take := func(m outMsg) { msgs, size = append(msgs, m), size+len(m.body) }
	for {
		select {
		case m := <-s.outq:
			msgs, size = append(msgs, m), len(m.body)
		case <-s.done:
			return
		}
		s.turn.mu.Lock()
		drain(s.outq, full, take)
		n := int64(len(msgs))
		for _, m := range msgs {
			g := s.conns.get(m.peer)
			if g == nil {
				s.sendZMQ(m)
				continue
			}
			b := batches[g]
			if b == nil {
				if n := len(spare); n > 0 {
					b, spare = spare[n-1], spare[:n-1]
				} else {
					b = new(frameBatch)
				}
				batches[g] = b
				order = append(order, g)
			}
			b.add(m.body)
		}
		clear(msgs)
		msgs = msgs[:0]
		for _, g := range order {
			b := batches[g]
			delete(batches, g)
			s.writeTo(g, b)
			spare = append(spare, b)
		}
		clear(order)
		order = order[:0]
		s.turn.queued.Add(-n)
		s.turn.mu.Unlock()
	}
}

// sendZMQ sends m through zmq4: to a connection the guard has not recorded
// (one whose READY named no identity, which zmq4 names itself) or that has
// gone (zmq4 drops it). zmq4's ROUTER Send holds the socket's writer lock
// while writing; the watchdog counts and logs a send that blocks past
// SendTimeout (the guard's write deadline then closes that connection).
func (s *Server) sendZMQ(m outMsg) {
	watchdog := time.AfterFunc(s.opts.SendTimeout, func() {
		s.stats.stuck.Add(1)
		s.log.Warn("link: send blocked for longer than SendTimeout")
	})
	err := s.sock.Send(zmq4.NewMsgFrom(m.peer, m.body))
	watchdog.Stop()
	if err != nil {
		// m.body is not recycled: zmq4 may still be writing it (see bufPool).
		s.stats.sendErrors.Add(1)
		s.log.Debug("link: send failed", "peer", string(wire.Snippet(m.peer)), "err", err)
		return
	}
	putBuf(m.body)
	s.stats.sent.Add(1)
}
