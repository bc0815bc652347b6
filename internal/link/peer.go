package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// PeerOptions configures a Peer. Zero values take the defaults in limits.go.
type PeerOptions struct {
	// IdentityPrefix starts the ZeroMQ identity of each DEALER socket
	// (default "noon-"; at most 200 bytes). A random suffix makes every socket
	// unique, including each redialled one.
	IdentityPrefix string
	// InstanceID, when set, is sent as the sender of requests that have none.
	InstanceID string
	// HeartbeatInterval is how often the Peer pings (default 1 s).
	HeartbeatInterval time.Duration
	// DeadAfter declares the link dead when nothing at all was received for
	// this long (default 3 x HeartbeatInterval, at least 2 x).
	DeadAfter time.Duration
	// SendTimeout declares the link dead when one socket send blocks for
	// longer (default 1 s).
	SendTimeout time.Duration
	// DefaultTimeout is the deadline of a Call whose context has none
	// (default 5 s).
	DefaultTimeout time.Duration
	// QueueSize bounds the send queue (default 1024). When it is full Call
	// fails at once with ErrOverloaded.
	QueueSize int
	// BackoffMin and BackoffMax bound the redial delay (defaults 50 ms, 2 s).
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds a TCP connect (default 1 s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds the TLS and ZMTP handshake (default 2 s).
	HandshakeTimeout time.Duration
	// MaxMessage bounds a request or reply envelope (default 4 MiB).
	MaxMessage int
	// TLS, when set, runs mutual TLS 1.3: the Peer presents the
	// credentials' certificate and accepts only a server whose certificate
	// the same CA issued. Nil: plain ZMTP.
	TLS *pki.Credentials
	// ExpectIdentity, with TLS, is who the server must be: the handshake
	// fails if its certificate says otherwise (e.g. service:login for an
	// instance yellow lists under login). The zero Identity accepts any
	// identity of the CA; a role without a name, any of that role.
	ExpectIdentity pki.Identity
	// Logger receives the Peer's logs (default slog.Default()).
	Logger *slog.Logger
	// OnUp, when set, is called (on the Peer's reader goroutine; it must
	// not block) each time a link comes up: the first message of a fresh
	// connection was heard. A pool uses it to wake callers waiting for an
	// instance, instead of polling.
	OnUp func()

	// loneDirect, in tests, writes directly only a lone call (the rule
	// before smallBatches), so that bursts go through the writer whatever
	// the timing.
	loneDirect bool
	// sockBuf, in tests, sets small socket buffers so that a remote that
	// does not read blocks sends soon.
	sockBuf int
}

func (o PeerOptions) withDefaults() PeerOptions {
	if o.IdentityPrefix == "" {
		o.IdentityPrefix = "noon-"
	}
	if len(o.IdentityPrefix) > maxIdentityPrefix {
		o.IdentityPrefix = o.IdentityPrefix[:maxIdentityPrefix]
	}
	o.HeartbeatInterval = orDefault(o.HeartbeatInterval, DefaultHeartbeatInterval)
	// Less than two intervals would declare a healthy link dead whenever one
	// PONG is a little late.
	o.DeadAfter = max(orDefault(o.DeadAfter, DefaultDeadIntervals*o.HeartbeatInterval), 2*o.HeartbeatInterval)
	o.SendTimeout = orDefault(o.SendTimeout, DefaultSendTimeout)
	o.DefaultTimeout = orDefault(o.DefaultTimeout, DefaultCallTimeout)
	o.QueueSize = orDefault(o.QueueSize, DefaultQueueSize)
	o.BackoffMin = orDefault(o.BackoffMin, DefaultBackoffMin)
	o.BackoffMax = max(orDefault(o.BackoffMax, DefaultBackoffMax), o.BackoffMin)
	o.DialTimeout = orDefault(o.DialTimeout, DefaultDialTimeout)
	o.HandshakeTimeout = orDefault(o.HandshakeTimeout, DefaultHandshakeTimeout)
	o.MaxMessage = orDefault(o.MaxMessage, DefaultMaxMessage)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// PeerStats is a snapshot of a Peer's counters.
type PeerStats struct {
	Calls       uint64 // Call invocations
	Replies     uint64 // replies matched to a waiting call
	Timeouts    uint64 // calls whose context ended first
	Unavailable uint64 // calls failed because the link was down or died
	Overloaded  uint64 // calls refused because the send queue was full
	LateReplies uint64 // replies with no waiting call (late or unknown), dropped
	BadMessages uint64 // frames that were not a valid Envelope, dropped
	Connects    uint64 // links established
	DialErrors  uint64 // failed dials
	Deaths      uint64 // links declared dead (heartbeats, stuck send, error)
	StuckSends  uint64 // sends that passed SendTimeout
	// DirectWrites counts messages written by their sender (a lone call:
	// see send); the rest went through the writer's batches.
	DirectWrites uint64
	// InProcess counts links made to an in-process Server (see inproc.go).
	InProcess uint64
	Guard     GuardStats
}

// GuardStats counts what the connection guard did on its own.
type GuardStats struct {
	Rejected uint64 // connections closed for a protocol violation, a failed TLS handshake or a handshake timeout
	Idle     uint64 // connections closed after the idle timeout
	Stuck    uint64 // connections closed because a write passed the send timeout
	Dropped  uint64 // messages dropped by a connection's full queue (PUB)
}

func (g *guardStats) snapshot() GuardStats {
	return GuardStats{
		Rejected: g.rejected.Load(),
		Idle:     g.idle.Load(),
		Stuck:    g.stuck.Load(),
		Dropped:  g.dropped.Load(),
	}
}

type peerCounters struct {
	calls, replies, timeouts, unavailable, overloaded, late, bad atomic.Uint64
	connects, dialErrors, deaths, stuck, direct, inproc          atomic.Uint64
}

// Peer is a consumer's link to one remote instance: one DEALER socket,
// connected in the background and redialled with a new socket whenever it
// dies. All methods are safe for concurrent use.
type Peer struct {
	endpoint string
	zep      string
	epErr    error
	opts     PeerOptions
	log      *slog.Logger
	gcfg     *guardConfig
	gstats   guardStats

	ctx    context.Context // ends at Close; parent of every socket
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	cur      atomic.Pointer[link] // nil while not connected
	nextID   atomic.Uint64
	inflight atomic.Int64
	load     atomic.Uint64 // math.Float64bits of the last load reported
	stats    peerCounters

	upMu sync.Mutex    // guards up
	up   chan struct{} // closed while a link is up; replaced when it goes down

	retiring atomic.Bool   // CloseWhenIdle was called
	idle     chan struct{} // closed when retiring and no call is in flight
	idleOnce sync.Once
}

// Dial returns a Peer for the instance at endpoint ("tcp://host:port"). It
// does not block: the Peer connects in the background and keeps redialling
// with backoff until Close. Calls fail with ErrUnavailable until it is
// connected; use Alive to wait for it.
func Dial(endpoint string, opts PeerOptions) *Peer {
	opts = opts.withDefaults()
	p := &Peer{
		endpoint: endpoint,
		opts:     opts,
		log:      opts.Logger.With("peer", endpoint),
		up:       make(chan struct{}),
		idle:     make(chan struct{}),
	}
	p.zep, p.epErr = zmtpEndpoint(endpoint)
	p.gcfg = &guardConfig{
		maxMessage:   uint64(opts.MaxMessage) + frameOverhead,
		handshake:    opts.HandshakeTimeout,
		writeTimeout: opts.SendTimeout,
		sockBuf:      opts.sockBuf,
		stats:        &p.gstats,
		log:          p.log,
	}
	if opts.TLS != nil {
		p.gcfg.tls = opts.TLS.ClientConfig(opts.ExpectIdentity)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.wg.Add(1)
	go p.run()
	return p
}

// Endpoint returns the endpoint the Peer dials.
func (p *Peer) Endpoint() string { return p.endpoint }

// Alive reports whether the link is connected and heard from within DeadAfter.
func (p *Peer) Alive() bool {
	l := p.cur.Load()
	if l == nil || !l.heard.Load() || l.isDead() {
		return false
	}
	return time.Since(time.Unix(0, l.lastRecv.Load())) < p.opts.DeadAfter
}

// Up returns a channel that is closed once a link is up (a message was
// heard on a fresh connection); while the link is down it is open. The
// channel returned after a link dies is a new one: wait on Up() again.
func (p *Peer) Up() <-chan struct{} {
	p.upMu.Lock()
	defer p.upMu.Unlock()
	return p.up
}

// setUp records that a link came up or went down.
func (p *Peer) setUp(up bool) {
	p.upMu.Lock()
	select {
	case <-p.up:
		if !up {
			p.up = make(chan struct{})
		}
	default:
		if up {
			close(p.up)
		}
	}
	p.upMu.Unlock()
	if up && p.opts.OnUp != nil {
		p.opts.OnUp()
	}
}

// CloseWhenIdle closes the Peer once no call is in flight, or after grace
// at the latest, without blocking: for a link to an instance that left
// discovery (nobody sends it new calls) whose calls in flight should still
// get their replies. quit, when closed, closes it at once.
func (p *Peer) CloseWhenIdle(grace time.Duration, quit <-chan struct{}) {
	p.retiring.Store(true)
	p.checkIdle()
	go func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.idle:
		case <-t.C:
		case <-quit:
		}
		_ = p.Close()
	}()
}

// checkIdle signals idle when retiring with no call in flight.
func (p *Peer) checkIdle() {
	if p.retiring.Load() && p.inflight.Load() == 0 {
		p.idleOnce.Do(func() { close(p.idle) })
	}
}

// InFlight returns the number of calls waiting for a reply.
func (p *Peer) InFlight() int { return int(p.inflight.Load()) }

// Load returns the load the remote last reported in a PONG or REPLY, in [0,1].
func (p *Peer) Load() float64 { return math.Float64frombits(p.load.Load()) }

// Stats returns a snapshot of the Peer's counters.
func (p *Peer) Stats() PeerStats {
	s := &p.stats
	return PeerStats{
		Calls: s.calls.Load(), Replies: s.replies.Load(), Timeouts: s.timeouts.Load(),
		Unavailable: s.unavailable.Load(), Overloaded: s.overloaded.Load(),
		LateReplies: s.late.Load(), BadMessages: s.bad.Load(), Connects: s.connects.Load(),
		DialErrors: s.dialErrors.Load(), Deaths: s.deaths.Load(), StuckSends: s.stuck.Load(),
		DirectWrites: s.direct.Load(), InProcess: s.inproc.Load(), Guard: p.gstats.snapshot(),
	}
}

// Close closes the link and stops redialling. Waiting calls fail with
// ErrClosed. It is idempotent.
func (p *Peer) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	p.cancel()
	p.wg.Wait()
	return nil
}

// Call sends req as a REQUEST and waits for its REPLY. It sets the kind, a
// fresh request id and the deadline (from ctx, or DefaultTimeout if ctx has
// none) on the wire without modifying req. A reply carrying an error_code is
// returned as is, with a nil error: errors here are the transport's.
//
// Call never waits past ctx: it returns ErrTimeout (or the context's error
// if it was canceled) and sends the remote a best-effort CANCEL. It returns
// ErrUnavailable at once when the link is down and as soon as it dies,
// ErrOverloaded when the send queue is full, ErrClosed after Close.
func (p *Peer) Call(ctx context.Context, req *platformpb.Envelope) (*platformpb.Envelope, error) {
	p.stats.calls.Add(1)
	if p.closed.Load() {
		return nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.DefaultTimeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		p.stats.timeouts.Add(1)
		return nil, ctxError(err)
	}
	deadline, _ := ctx.Deadline()
	l, id, b, err := p.prepare(req, deadline)
	if err != nil {
		return nil, err
	}
	ch := make(chan *platformpb.Envelope, 1)
	if !l.register(id, waiter{ch: ch}) {
		p.stats.unavailable.Add(1)
		return nil, l.deathError()
	}
	p.inflight.Add(1)
	defer p.endCall()
	if !l.send(b, true) {
		l.unregister(id)
		p.stats.overloaded.Add(1)
		return nil, ErrOverloaded
	}

	select {
	case rep := <-ch:
		return rep, nil
	case <-ctx.Done():
		if !l.unregister(id) {
			return <-ch, nil // the reply won the race
		}
		p.stats.timeouts.Add(1)
		l.cancelRemote(id)
		return nil, ctxError(ctx.Err())
	case <-l.dead:
		if !l.unregister(id) {
			return <-ch, nil
		}
		p.stats.unavailable.Add(1)
		return nil, l.deathError()
	}
}

// prepare encodes req as a REQUEST with a fresh id and the deadline, for
// the current link.
func (p *Peer) prepare(req *platformpb.Envelope, deadline time.Time) (*link, uint64, []byte, error) {
	l := p.cur.Load()
	if l == nil {
		p.stats.unavailable.Add(1)
		if p.epErr != nil {
			return nil, 0, nil, fmt.Errorf("%w: %w", ErrUnavailable, p.epErr)
		}
		return nil, 0, nil, fmt.Errorf("%w: %s %w", ErrUnavailable, p.endpoint, ErrNotConnected)
	}
	id := p.nextID.Add(1)
	o := envelopeOverrides{kind: platformpb.Kind_KIND_REQUEST, requestID: id, deadline: deadline.UnixNano()}
	if req.GetSender() == "" {
		o.sender = p.opts.InstanceID
	}
	b, err := encodeEnvelope(req, o)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("link: encode request: %w", err)
	}
	if len(b) > p.opts.MaxMessage {
		return nil, 0, nil, fmt.Errorf("%w: %d-byte request, limit %d", ErrTooLarge, len(b), p.opts.MaxMessage)
	}
	return l, id, b, nil
}

// endCall ends a call in flight.
func (p *Peer) endCall() {
	if p.inflight.Add(-1) == 0 && p.retiring.Load() {
		p.checkIdle()
	}
}

// Start sends req as a REQUEST, as Call does, but does not wait: fn gets
// the reply (or the transport's error: ErrTimeout at deadline,
// ErrUnavailable when the link dies) exactly once, from the link's reader
// or a timer, and must not block. A non-nil error from Start means req was
// not sent and fn will not be called: ErrUnavailable (no link),
// ErrOverloaded (send queue full), ErrTooLarge, ErrClosed, ErrTimeout (the
// deadline has passed).
//
// Start is Call for a caller that has no goroutine to spare per request
// (the broker's edge): nothing waits for the reply, and no CANCEL is sent
// but at the deadline.
func (p *Peer) Start(req *platformpb.Envelope, deadline time.Time, fn func(*platformpb.Envelope, error)) error {
	p.stats.calls.Add(1)
	if p.closed.Load() {
		return ErrClosed
	}
	wait := time.Until(deadline)
	if wait <= 0 {
		p.stats.timeouts.Add(1)
		return errCallTimeout
	}
	l, id, b, err := p.prepare(req, deadline)
	if err != nil {
		return err
	}
	// The link's deadlines time the call out (one timer per link).
	w := waiter{fn: fn, sc: &startedCall{id: id, at: deadline, idx: -1}}
	p.inflight.Add(1)
	if !l.register(id, w) {
		p.endCall()
		p.stats.unavailable.Add(1)
		return l.deathError()
	}
	if l.send(b, true) {
		return nil
	}
	if !l.unregister(id) {
		// kill or the deadline took the call, and calls (called) fn.
		return nil
	}
	p.endCall()
	p.stats.overloaded.Add(1)
	return ErrOverloaded
}

// run owns the Peer's sockets: it dials, supervises the link until it dies,
// closes it and redials after a backoff, until Close.
func (p *Peer) run() {
	defer p.wg.Done()
	if p.epErr != nil {
		p.log.Error("link: peer not started", "err", p.epErr)
		return
	}
	bo := backoff{min: p.opts.BackoffMin, max: p.opts.BackoffMax}
	for {
		l, err := p.connect()
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			p.stats.dialErrors.Add(1)
			d := bo.next()
			p.log.Debug("link: dial failed", "err", err, "retry_in", d)
			if !p.sleep(d) {
				return
			}
			continue
		}
		p.stats.connects.Add(1)
		p.cur.Store(l)
		p.supervise(l)
		p.cur.CompareAndSwap(l, nil)
		p.setUp(false)
		l.close()
		if p.ctx.Err() != nil {
			return
		}
		p.stats.deaths.Add(1)
		if l.heard.Load() {
			bo.reset()
		}
		d := bo.next()
		p.log.Warn("link: link down, redialling", "identity", l.identity, "cause", l.cause, "retry_in", d)
		if !p.sleep(d) {
			return
		}
	}
}

func (p *Peer) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// connect dials a new DEALER socket with a new identity and starts its reader
// and writer.
func (p *Peer) connect() (*link, error) {
	if s := inProcessServer(p.endpoint); s != nil {
		l, err := p.connectInProcess(s)
		if err == nil {
			p.stats.inproc.Add(1)
		}
		return l, err
	}
	id := newIdentity(p.opts.IdentityPrefix)
	l := &link{
		p:        p,
		identity: id,
		sendq:    make(chan []byte, p.opts.QueueSize),
		dead:     make(chan struct{}),
		pending:  make(map[uint64]waiter),
	}
	// The socket dials once (no retries): the connection it dials is the
	// one the writer writes to, and whose reads the link takes over.
	gcfg := *p.gcfg
	gcfg.dialed = func(g *guardConn) { l.conn = g }
	gcfg.sink = func(_ *guardConn, body []byte, ok bool) { l.onMessage(body, ok) }
	sock := zmq4.NewDealer(withGuard(p.ctx, &gcfg),
		zmq4.WithID(zmq4.SocketIdentity(id)),
		zmq4.WithDialerTimeout(p.opts.DialTimeout),
		zmq4.WithDialerMaxRetries(0), // we retry, with backoff and a new socket
		zmq4.WithTimeout(p.opts.SendTimeout),
		zmq4.WithLogger(zmqLogger(p.log)),
	)
	if err := sock.Dial(p.zep); err != nil {
		_ = sock.Close()
		return nil, err
	}
	if p.ctx.Err() != nil {
		_ = sock.Close()
		return nil, ErrClosed
	}
	if l.conn == nil { // cannot happen: Dial went through the guard
		_ = sock.Close()
		return nil, errors.New("link: dialled connection not seen by the guard")
	}
	l.sock = sock
	l.lastRecv.Store(time.Now().UnixNano())
	l.wg.Add(2)
	go l.readLoop()
	go l.writeLoop()
	return l, nil
}

// supervise pings l every HeartbeatInterval and declares it dead when it has
// been silent for DeadAfter, until it dies or the Peer is closed.
func (p *Peer) supervise(l *link) {
	hb := time.NewTicker(p.opts.HeartbeatInterval)
	defer hb.Stop()
	silence := time.NewTimer(p.opts.DeadAfter)
	defer silence.Stop()
	l.ping()
	for {
		select {
		case <-p.ctx.Done():
			l.kill(ErrClosed)
			return
		case <-l.dead:
			return
		case <-hb.C:
			l.ping()
		case <-silence.C:
			quiet := time.Since(time.Unix(0, l.lastRecv.Load()))
			if quiet >= p.opts.DeadAfter {
				l.kill(fmt.Errorf("no message for %v", quiet.Round(time.Millisecond)))
				return
			}
			silence.Reset(p.opts.DeadAfter - quiet)
		}
	}
}

// link is one DEALER socket's life: from a successful dial to its death.
// Requests pending on it fail with ErrUnavailable when it dies; they are
// never resent on the next link (the remote may have run them).
type link struct {
	p        *Peer
	sock     zmq4.Socket
	conn     *guardConn // what sock dialled, handshake done: the writer writes here
	identity string
	sendq    chan []byte
	wg       sync.WaitGroup // reader and writer

	// turn is who writes to conn: the writer, or a sender writing its
	// own message (see send); batch is theirs while they hold turn.mu.
	turn  writeTurn
	batch frameBatch
	// A direct sender with other calls in flight yields once before its
	// write and takes what other direct senders handed it meanwhile
	// (combine): combining is set while it yields; combined is what it
	// was handed (both under cmu).
	cmu       sync.Mutex
	combining atomic.Bool
	combined  [][]byte

	dead     chan struct{} // closed by kill
	deadOnce sync.Once
	cause    error // why it died; written before dead is closed

	mu      sync.Mutex // guards pending, dl and killed
	pending map[uint64]waiter
	dl      deadlines // of the started calls in pending
	killed  bool

	lastRecv atomic.Int64 // unix nanoseconds of the last message received
	heard    atomic.Bool  // a message was received since connect

	// local is set on an in-process link (inproc.go), which has no
	// socket, reader or writer.
	local *localConn
}

// close closes l's socket and waits for its reader and writer, or ends
// an in-process link.
func (l *link) close() {
	if l.local != nil {
		l.closeLocal()
		return
	}
	_ = l.sock.Close()
	l.wg.Wait()
}

// waiter is what waits for a reply: a Call's channel, or a Start's
// callback with its place in the link's deadlines.
type waiter struct {
	ch chan *platformpb.Envelope
	fn func(*platformpb.Envelope, error)
	sc *startedCall
}

// kill declares l dead; the first cause wins. The calls started on it
// fail (those of Call see dead themselves).
func (l *link) kill(cause error) {
	l.deadOnce.Do(func() {
		l.mu.Lock()
		l.killed = true
		var started []waiter
		for id, w := range l.pending {
			if w.fn != nil {
				started = append(started, w)
				delete(l.pending, id)
			}
		}
		l.stopDeadlinesLocked()
		l.mu.Unlock()
		l.cause = cause
		close(l.dead)
		if len(started) > 0 {
			err := l.deathError()
			for _, w := range started {
				l.p.stats.unavailable.Add(1)
				l.p.endCall()
				w.fn(nil, err)
			}
		}
	})
}

func (l *link) isDead() bool {
	select {
	case <-l.dead:
		return true
	default:
		return false
	}
}

// deathError is what calls on a dead link get. Call only once dead is closed
// (or register failed, which implies kill ran).
func (l *link) deathError() error {
	if l.p.closed.Load() {
		return ErrClosed
	}
	<-l.dead
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, l.p.endpoint, l.cause)
}

func (l *link) register(id uint64, w waiter) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.killed {
		return false
	}
	l.pending[id] = w
	if w.sc != nil {
		l.addDeadlineLocked(w.sc)
	}
	return true
}

// unregister removes id and reports whether it was still pending.
func (l *link) unregister(id uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.pending[id]
	if !ok {
		return false
	}
	delete(l.pending, id)
	l.removeDeadlineLocked(w.sc)
	return true
}

// take removes and returns the call waiting for id, if any.
func (l *link) take(id uint64) (waiter, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.pending[id]
	if ok {
		delete(l.pending, id)
		l.removeDeadlineLocked(w.sc)
	}
	return w, ok
}

// send writes b at once when direct allows it, nothing is queued, nobody
// is writing, and it is the only call in flight or the writer's batches
// have been small (under directBatchMax messages on average: batching
// saves little there, and the switch to the writer goroutine costs more
// than the write), and otherwise queues it for the writer, which batches
// what the other callers send meanwhile. A lone message is written
// without a goroutine switch, which is most of a round trip's cost at low
// load; under load (many calls in flight, big batches) the writer's
// batches save system calls. It reports false when the queue is
// full. PINGs and CANCELs are sent with direct false: their goroutines
// (the supervisor, a deadline's timer) must not wait on a write. A failed
// direct write kills the link (in a goroutine of its own: kill calls the
// callbacks of started calls, which must not run under the sender's
// feet); b is then lost with the link, as when the writer fails.
func (l *link) send(b []byte, direct bool) bool {
	if l.local != nil {
		return l.sendLocal(b)
	}
	if direct && l.handOver(b) {
		return true
	}
	if direct && l.directOK() && l.turn.tryDirect() {
		l.p.stats.direct.Add(1)
		l.batch.add(b)
		if l.p.inflight.Load() > 1 {
			l.combine()
		}
		err := l.write(&l.batch)
		l.turn.mu.Unlock()
		if err != nil {
			go l.kill(err)
		}
		return true
	}
	l.turn.queued.Add(1)
	select {
	case l.sendq <- b:
		return true
	default:
		l.turn.queued.Add(-1)
		return false
	}
}

// combine lets the goroutines ready to run go first (runtime.Gosched),
// once, while it holds the turn: senders among them hand their messages
// over (handOver) instead of queueing them for the writer, and they join
// the batch. The callers ready together (a broker's client connections
// whose requests one poll of the network brought) so leave in one write,
// without a wake of the writer goroutine. Caller holds turn.mu.
func (l *link) combine() {
	l.startCombine()
	runtime.Gosched()
	l.endCombine()
}

// startCombine makes direct senders hand their messages over.
func (l *link) startCombine() {
	l.cmu.Lock()
	l.combining.Store(true)
	l.cmu.Unlock()
}

// endCombine stops the hand-overs and adds what was handed over to the
// batch. Caller holds turn.mu.
func (l *link) endCombine() {
	l.cmu.Lock()
	l.combining.Store(false)
	for i, m := range l.combined {
		l.batch.add(m)
		l.combined[i] = nil
	}
	l.p.stats.direct.Add(uint64(len(l.combined)))
	l.combined = l.combined[:0]
	l.cmu.Unlock()
}

// handOver gives b to a sender that is combining, if one is and nothing
// is queued for the writer (which b must not overtake: a message queued
// between the combiner's turn and its combining is written after it).
func (l *link) handOver(b []byte) bool {
	if !l.combining.Load() || l.turn.queued.Load() != 0 {
		return false
	}
	l.cmu.Lock()
	defer l.cmu.Unlock()
	if !l.combining.Load() {
		return false
	}
	l.combined = append(l.combined, b)
	return true
}

func (l *link) ping() {
	b, _ := encodeEnvelope(nil, envelopeOverrides{kind: platformpb.Kind_KIND_PING, requestID: l.p.nextID.Add(1)})
	l.send(b, false)
}

// cancelRemote tells the remote, best effort, that the caller of id gave up.
func (l *link) cancelRemote(id uint64) {
	b, _ := encodeEnvelope(nil, envelopeOverrides{kind: platformpb.Kind_KIND_CANCEL, requestID: id})
	l.send(b, false)
}

// readLoop waits for the socket's end: the guard hands every message to
// onMessage itself (see guardConn.serveReads), and zmq4's Recv returns
// the connection's error when it fails.
func (l *link) readLoop() {
	defer l.wg.Done()
	for {
		msg, err := l.sock.Recv()
		if err != nil {
			l.kill(fmt.Errorf("receive: %w", err))
			return
		}
		if msg.Type == zmq4.CmdMsg {
			continue // zmq4 hands ZMTP commands (e.g. libzmq's PING) up as messages
		}
		if len(msg.Frames) != 1 {
			l.onMessage(nil, false)
		} else {
			l.onMessage(msg.Frames[0], true)
		}
	}
}

// onMessage takes one message (ok: of one frame, body) from the remote:
// it matches replies to calls and takes every message as a sign of life.
// It runs in the connection's reading goroutine and never blocks.
func (l *link) onMessage(body []byte, ok bool) {
	p := l.p
	l.lastRecv.Store(time.Now().UnixNano())
	if !l.heard.Load() {
		l.heard.Store(true)
		p.setUp(true)
	}
	if !ok {
		p.stats.bad.Add(1)
		return
	}
	env, err := decodeEnvelope(body, p.opts.MaxMessage)
	if err != nil {
		p.stats.bad.Add(1)
		p.log.Debug("link: bad message", "err", err, "snippet", fmt.Sprintf("%q", wire.Snippet(body)))
		return
	}
	switch env.GetKind() {
	case platformpb.Kind_KIND_REPLY:
		p.load.Store(math.Float64bits(env.GetLoad()))
		if w, ok := l.take(env.GetRequestId()); ok {
			p.stats.replies.Add(1)
			if w.fn == nil {
				w.ch <- env
				break
			}
			p.endCall()
			w.fn(env, nil)
		} else {
			p.stats.late.Add(1)
		}
	case platformpb.Kind_KIND_PONG:
		p.load.Store(math.Float64bits(env.GetLoad()))
	default:
		p.stats.bad.Add(1)
	}
}

// directOK reports whether send may write a message itself (when nobody
// else is writing): it is the only call in flight, or the writer's recent
// batches were small.
func (l *link) directOK() bool {
	return l.p.inflight.Load() <= 1 || !l.p.opts.loneDirect && l.turn.smallBatches()
}

// errSendStuck is the cause of death of a link whose send passed SendTimeout.
var errSendStuck = errors.New("send blocked for longer than SendTimeout")

// writeLoop writes what send queued: everything queued when it wakes,
// with one write (see frameBatch), under the guard's write deadline,
// which closes the connection when the remote stopped reading. It and the
// senders writing directly take turns (writeTurn).
func (l *link) writeLoop() {
	defer l.wg.Done()
	for {
		var first []byte
		select {
		case first = <-l.sendq:
		case <-l.dead:
			return
		}
		l.turn.mu.Lock()
		l.batch.add(first)
		drain(l.sendq, l.batch.full, l.batch.add)
		n := int64(len(l.batch.bodies))
		l.turn.noteBatch(n)
		err := l.write(&l.batch)
		l.turn.queued.Add(-n)
		l.turn.mu.Unlock()
		if err != nil {
			l.kill(err)
			return
		}
	}
}

// write writes a batch and empties it.
func (l *link) write(batch *frameBatch) error {
	stuck, err := l.conn.writeBatch(batch.buffers())
	if err != nil {
		batch.reset(nil)
		if stuck {
			l.p.stats.stuck.Add(1)
			return errSendStuck
		}
		return fmt.Errorf("send: %w", err)
	}
	// The write is over: nothing refers to the bodies any more.
	batch.reset(putBuf)
	return nil
}
