package link

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/noonhq/noon/internal/rawio"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"

	"github.com/noonhq/noon/internal/deadline"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// guardNetwork is the zmq4 transport name under which the guarded TCP
// transport is registered. Only this process sees it: on the wire it is plain
// ZMTP over TCP, and endpoints are published as tcp://host:port.
const guardNetwork = "noon+tcp"

func init() {
	if err := zmq4.RegisterTransport(guardNetwork, guardTransport{}); err != nil {
		panic(err) // only a second registration of the same name can fail
	}
}

// zmtpEndpoint maps a public "tcp://host:port" endpoint to the guarded
// transport's endpoint. Other transports are refused: the guard is what keeps
// a hostile or broken peer from crashing the process (and runs TLS).
func zmtpEndpoint(ep string) (string, error) {
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return "", fmt.Errorf("link: endpoint %q: want tcp://host:port", ep)
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return "", fmt.Errorf("link: endpoint %q: %w", ep, err)
	}
	return guardNetwork + "://" + rest, nil
}

// guardConfig is what a guarded connection enforces. A socket's config
// travels to the transport in the context given to zmq4.NewXxx, which zmq4
// passes to Transport.Dial and Transport.Listen.
type guardConfig struct {
	maxMessage   uint64        // largest ZMTP message (all frames) the remote may send
	handshake    time.Duration // greeting + READY must be done within this
	writeTimeout time.Duration // one write may not block longer than this
	idle         time.Duration // close when nothing was read for this long; 0: never
	hwm          int           // > 0: writes go through a per-connection queue of hwm messages
	hwmBytes     int64         // and of at most hwmBytes bytes
	sockBuf      int           // > 0: SO_SNDBUF and SO_RCVBUF (tests)
	// tls, when set, runs TLS 1.3 on every connection before ZMTP: the
	// listener's server configuration or the dialer's client one.
	tls *tls.Config
	// callers, set on a TLS ROUTER's listener, binds the routing identity
	// of each connection's READY to its certificate (see callerTable).
	callers *callerTable
	// conns, set on a ROUTER's listener, maps the routing identity of each
	// connection's READY to the connection, for the Server's writer.
	conns *connTable
	// dialed, set on a DEALER's, is told the connection it dialled (before
	// the handshake), for the Peer's writer.
	dialed func(*guardConn)
	// sink, when set, takes over reading once the handshake is over (see
	// serveReads): it is called in the connection's reading goroutine with
	// each message's body (ok) or for a message of more than one frame
	// (!ok, body nil). body is valid only during the call. A ROUTER's
	// connection is taken over only when its READY named an identity.
	sink func(g *guardConn, body []byte, ok bool)
	// beforeRead, when set, is called in the connection's reading
	// goroutine before each read from the socket (see burst.go): with
	// TLS, when the raw bytes read so far are used up.
	beforeRead func(g *guardConn)
	stats      *guardStats
	log        *slog.Logger
}

// guardStats counts what guarded connections did on their own.
type guardStats struct {
	rejected atomic.Uint64 // closed for a protocol violation, a failed TLS handshake or a handshake timeout
	idle     atomic.Uint64 // closed after the idle timeout
	stuck    atomic.Uint64 // closed because a write passed writeTimeout
	dropped  atomic.Uint64 // messages dropped because the connection's queue was full
}

type guardKey struct{}

func withGuard(ctx context.Context, cfg *guardConfig) context.Context {
	return context.WithValue(ctx, guardKey{}, cfg)
}

func guardFrom(ctx context.Context) *guardConfig {
	if cfg, ok := ctx.Value(guardKey{}).(*guardConfig); ok {
		return cfg
	}
	return &guardConfig{
		maxMessage:   DefaultMaxMessage + frameOverhead,
		handshake:    DefaultHandshakeTimeout,
		writeTimeout: DefaultSendTimeout,
		stats:        new(guardStats),
		log:          slog.Default(),
	}
}

// guardTransport is the zmq4 transport.Transport for guardNetwork.
type guardTransport struct{}

var _ transport.Transport = guardTransport{}

// Dial connects to addr and guards the connection.
func (guardTransport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	cfg := guardFrom(ctx)
	g := newGuardConn(ctx, c, cfg, false)
	if err := g.handshakeTLS(false); err != nil {
		return nil, err
	}
	if cfg.dialed != nil {
		cfg.dialed(g)
	}
	return g, nil
}

// Listen binds addr; accepted connections are guarded.
func (guardTransport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	gl := &guardListener{
		Listener: l,
		ctx:      ctx,
		cfg:      guardFrom(ctx),
		ready:    make(chan net.Conn),
		done:     make(chan struct{}),
	}
	go gl.acceptLoop()
	return gl, nil
}

// Addr normalises "host:port" the way zmq4's own tcp transport does.
func (guardTransport) Addr(ep string) (string, error) {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return "", err
	}
	switch port {
	case "", "*":
		port = "0"
	}
	switch host {
	case "", "*":
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, port), nil
}

// guardListener hands zmq4 only connections that have finished their TLS
// handshake (with TLS on) and sent the ZMTP signature. zmq4 runs each
// handshake inline in its one accept loop, with no deadline, so a
// connection that sends nothing (a port scanner, a load balancer's TCP
// probe) would stop every other connection from being accepted; here such
// connections wait in their own goroutine and are closed at the handshake
// timeout. (A peer that sends the signature and then stalls still holds
// zmq4's loop, for at most what is left of the handshake timeout.)
type guardListener struct {
	net.Listener
	ctx       context.Context
	cfg       *guardConfig
	ready     chan net.Conn // connections whose signature arrived
	done      chan struct{}
	closeOnce sync.Once
	pending   atomic.Int32 // connections waiting for their signature
}

// Accept returns the next connection whose peer has sent its signature.
func (l *guardListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops accepting.
func (l *guardListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *guardListener) acceptLoop() {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.ctx.Err() != nil {
				return
			}
			// Back off 5 ms -> 1 s on EMFILE and the like, like net/http's
			// Serve; zmq4's own loop would retry at once and spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.cfg.log.Warn("link: accept failed", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-l.done:
				return
			}
			continue
		}
		delay = 0
		if l.pending.Add(1) > maxPendingHandshakes {
			l.pending.Add(-1)
			l.cfg.stats.rejected.Add(1)
			c.Close()
			continue
		}
		go l.awaitSignature(newGuardConn(l.ctx, c, l.cfg, true))
	}
}

// awaitSignature runs the TLS handshake, if any, and waits for the first
// signatureLen bytes of the greeting (all within the handshake timeout,
// which closes g), then hands g to zmq4. The bytes stay in g's read buffer
// for zmq4 to read and the guard to check.
func (l *guardListener) awaitSignature(g *guardConn) {
	defer l.pending.Add(-1)
	if g.handshakeTLS(true) != nil {
		return
	}
	if _, err := g.br.Peek(signatureLen); err != nil {
		g.Close()
		return
	}
	select {
	case l.ready <- g:
	case <-l.done:
		g.Close()
	}
}

// guardError is what a guarded connection returns once it has closed itself.
// It wraps io.EOF because zmq4 only drops a connection on io.EOF or on a
// non-timeout net.Error; any other error would leave the dead connection in
// the socket's pools.
type guardError struct {
	reason string
	stuck  bool // a write passed the write deadline
}

func (e *guardError) Error() string { return "link: connection closed: " + e.reason }
func (e *guardError) Unwrap() error { return io.EOF }

// guardConn is a TCP connection that zmq4 reads and writes through. See the
// package documentation for what it enforces. With TLS, Conn is the
// *tls.Conn over raw and the guard parses the TLS plaintext.
//
// Reading: one goroutine at a time (zmq4's handshake, then its listener), so
// br, rp, rerr, hsDone and idleAt need no lock. Writing: wmu serialises.
// peer and peerCert are set by the TLS handshake, before zmq4 sees g.
type guardConn struct {
	net.Conn
	raw   net.Conn // the TCP connection: what Close closes
	isTLS bool
	cfg   *guardConfig

	peer     pki.Identity // the verified identity of the remote (TLS, accepted side)
	peerCert [sha256.Size]byte

	br     *bufio.Reader
	rp     frameParser
	rerr   error
	hsDone bool
	idleAt deadline.Lazy // the idle read deadline

	wmu    sync.Mutex
	wp     frameParser
	wbuf   []byte
	werr   error
	wdl    deadline.Lazy // the write deadline
	bufs   [2][]byte
	q      chan []byte // async mode only
	qbytes atomic.Int64

	cmu     sync.Mutex // guards hsTimer and stopCtx, set after callbacks that may Close, and rid, bound
	hsTimer *time.Timer
	stopCtx func() bool
	rid     string // the routing identity bound in cfg.callers and cfg.conns, while bound
	ridB    []byte // rid, for the sink's callers (never modified)
	bound   bool
	server  bool
	rbuf    []byte // serveReads' message buffer
	burst   burst  // a Server's connection: replies of the read burst's inline runs

	closeOnce sync.Once
	closed    chan struct{}
}

// newGuardConn guards c, an accepted (server) or dialled TCP connection;
// with cfg.tls it wraps it in TLS, whose handshake handshakeTLS runs.
func newGuardConn(ctx context.Context, c net.Conn, cfg *guardConfig, server bool) *guardConn {
	if tc, ok := c.(*net.TCPConn); ok && cfg.sockBuf > 0 {
		_ = tc.SetReadBuffer(cfg.sockBuf)
		_ = tc.SetWriteBuffer(cfg.sockBuf)
	}
	c = rawio.Wrap(c)
	g := &guardConn{
		Conn:   c,
		raw:    c,
		cfg:    cfg,
		rp:     frameParser{greet: greetingLen, check: true, limit: cfg.maxMessage},
		wp:     frameParser{greet: greetingLen},
		closed: make(chan struct{}),
		server: server,
	}
	if cfg.tls != nil {
		g.isTLS = true
		bc := bufferedConn{Conn: c, r: bufio.NewReaderSize(c, readBufferSize), g: g}
		if server {
			g.Conn = tls.Server(bc, cfg.tls)
		} else {
			g.Conn = tls.Client(bc, cfg.tls)
		}
	}
	if server && (cfg.callers != nil || cfg.conns != nil) {
		g.rp.ready = g.bindCaller
	}
	g.br = bufio.NewReaderSize(rawReader{g}, readBufferSize)
	// The socket's context ends when the zmq4 socket is closed: close this
	// connection too, even if zmq4 lost track of it (it accepts after Close
	// has started, and never closes a connection whose handshake failed).
	stop := context.AfterFunc(ctx, func() { g.Close() })
	var hs *time.Timer
	if cfg.handshake > 0 {
		hs = time.AfterFunc(cfg.handshake, func() {
			cfg.stats.rejected.Add(1)
			cfg.log.Debug("link: handshake timed out", "remote", c.RemoteAddr().String(), "tls", g.isTLS)
			g.Close()
		})
	}
	g.cmu.Lock()
	g.stopCtx, g.hsTimer = stop, hs
	g.cmu.Unlock()
	if cfg.hwm > 0 {
		g.q = make(chan []byte, cfg.hwm)
		go g.writeLoop()
	}
	return g
}

// bufferedConn is the TCP connection under TLS, its reads buffered:
// crypto/tls reads only what the next record needs, so without a buffer a
// burst of small messages (one record each) costs a syscall every few
// records instead of one per readBufferSize. A read that will go to the
// socket calls the configuration's beforeRead first.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
	g *guardConn
}

func (c bufferedConn) Read(p []byte) (int, error) {
	if c.r.Buffered() == 0 && c.g.cfg.beforeRead != nil {
		c.g.cfg.beforeRead(c.g)
	}
	return c.r.Read(p)
}

// Close closes the connection; it is safe to call more than once. It closes
// the TCP connection itself, without a TLS close_notify (which could block
// on a peer that stopped reading; ZMTP needs none).
func (g *guardConn) Close() error {
	g.closeOnce.Do(func() {
		close(g.closed)
		g.cmu.Lock()
		hs, stop := g.hsTimer, g.stopCtx
		rid, bound := g.rid, g.bound
		g.bound = false
		g.cmu.Unlock()
		if hs != nil {
			hs.Stop()
		}
		if stop != nil {
			stop()
		}
		if bound {
			if g.cfg.callers != nil {
				g.cfg.callers.release(rid)
			}
			if g.cfg.conns != nil {
				g.cfg.conns.remove(rid, g)
			}
		}
	})
	return g.raw.Close()
}

// handshakeTLS runs the TLS handshake of a TLS connection (nothing for a
// plain one), under the handshake timer that also covers ZMTP's. On the
// accepted side it records the client's verified identity. A failed
// handshake closes the connection, is counted as rejected and logged once.
func (g *guardConn) handshakeTLS(server bool) error {
	tc, ok := g.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	err := tc.Handshake()
	if err == nil && server {
		g.peer, g.peerCert, err = peerOf(tc)
	}
	if err == nil {
		return nil
	}
	select {
	case <-g.closed: // the handshake timer closed it, and counted it
	default:
		g.cfg.stats.rejected.Add(1)
		args := []any{"remote", g.raw.RemoteAddr().String(), "err", err}
		var rhe tls.RecordHeaderError
		if errors.As(err, &rhe) {
			// Not TLS at all (a plain ZMTP peer, a probe): show what came.
			args = append(args, "snippet", fmt.Sprintf("%q", rhe.RecordHeader[:]))
		}
		// The accepting side says why it refused a peer; a connection
		// closed before saying anything, and the dialling side (whose
		// caller reports and retries), only at debug.
		if server && !errors.Is(err, io.EOF) {
			g.cfg.log.Warn("link: TLS handshake failed", args...)
		} else {
			g.cfg.log.Debug("link: TLS handshake failed", args...)
		}
		g.Close()
	}
	return fmt.Errorf("link: TLS handshake with %s: %w", g.raw.RemoteAddr(), err)
}

// bindCaller is the read parser's ready hook on a ROUTER's connection: it
// binds the READY's routing identity to the connection's certificate (TLS,
// see callerTable) or refuses the READY, and records the connection under
// it for the Server's writer (see connTable).
func (g *guardConn) bindCaller(rid []byte, ok bool) error {
	if !ok || len(rid) == 0 {
		if g.cfg.callers != nil {
			return fmt.Errorf("%s sent a READY without an Identity: a ROUTER over TLS needs one", g.peer)
		}
		return nil // zmq4 names the connection; the Server's writer sends to it through zmq4
	}
	g.cmu.Lock()
	defer g.cmu.Unlock()
	select {
	case <-g.closed:
		return errors.New("connection closed")
	default:
	}
	// Set before the connection is published in conns: the Server's
	// writer reads them of a connection it got from there.
	g.rid, g.ridB = string(rid), []byte(string(rid))
	if g.cfg.callers != nil {
		if err := g.cfg.callers.bind(string(rid), g.peer, g.peerCert); err != nil {
			return fmt.Errorf("%s sent routing identity %q: %w", g.peer, wire.Snippet(rid), err)
		}
	}
	if g.cfg.conns != nil {
		if err := g.cfg.conns.add(string(rid), g); err != nil {
			if g.cfg.callers != nil {
				g.cfg.callers.release(string(rid))
			}
			return fmt.Errorf("routing identity %q: %w", wire.Snippet(rid), err)
		}
	}
	g.bound = true
	return nil
}

// writeBatch writes a batch of whole messages (see frameBatch) with one
// write under the write deadline, without zmq4: only once the handshake is
// over, from the connection's one writer. A failed write closes the
// connection; stuck reports that it passed the deadline.
func (g *guardConn) writeBatch(bufs net.Buffers) (stuck bool, err error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.werr != nil {
		return false, g.werr
	}
	if !g.wp.atBoundary() || len(g.wbuf) > 0 {
		return false, errMidMessage
	}
	if err := g.writeVec(bufs); err != nil {
		g.werr = err
		var ge *guardError
		return errors.As(err, &ge) && ge.stuck, err
	}
	return false, nil
}

// Read hands zmq4 the stream after checking it frame by frame. A frame that
// breaks a rule is never completed: its header (or the last byte of a bad
// READY) is withheld, the connection is closed and the next Read fails.
func (g *guardConn) Read(p []byte) (int, error) {
	if g.rerr != nil {
		return 0, g.rerr
	}
	if !g.hsDone && g.rp.frames > 0 {
		// zmq4 reads again after the peer's READY only once Open succeeded and
		// the socket started its listener: the handshake is over.
		g.hsDone = true
		g.cmu.Lock()
		hs := g.hsTimer
		g.cmu.Unlock()
		if hs != nil {
			hs.Stop()
		}
		if g.cfg.sink != nil && (!g.server || g.ridB != nil) {
			return 0, g.serveReads()
		}
	}
	n, err := g.br.Read(p)
	if n > 0 {
		k, perr := g.rp.feed(p[:n])
		if perr != nil {
			err := g.violation(perr)
			if k > 0 {
				return k, nil
			}
			return 0, err
		}
	}
	return n, err
}

// serveReads reads every message from here on itself and hands it to the
// sink, in the goroutine zmq4 reads with, which never gets a byte more
// (zmq4 would allocate each message, hand it to a goroutine of its own and
// from there through a channel to the socket's reader: two goroutine
// switches per message). It is called at a message boundary, right after
// the handshake, and returns only when the connection fails or breaks a
// rule: zmq4 then drops the connection as before. It enforces what the
// read parser does after the handshake: no reserved flag bits, messages of
// at most maxMessage bytes in all. Commands (a libzmq PING) are skipped.
func (g *guardConn) serveReads() error {
	var size [8]byte
	var msg uint64 // bytes of the message so far
	multi := false // a frame with MORE was seen and the message is not over
	for {
		f, err := g.br.ReadByte()
		if err != nil {
			return g.endReads(err)
		}
		if f&^(flagMore|flagLong|flagCommand) != 0 {
			return g.violation(fmt.Errorf("reserved bits set in frame flags %#02x", f))
		}
		var n uint64
		if f&flagLong != 0 {
			if _, err := io.ReadFull(g.br, size[:]); err != nil {
				return g.endReads(err)
			}
			n = binary.BigEndian.Uint64(size[:])
		} else {
			c, err := g.br.ReadByte()
			if err != nil {
				return g.endReads(err)
			}
			n = uint64(c)
		}
		if n > g.cfg.maxMessage || msg+n > g.cfg.maxMessage {
			return g.violation(fmt.Errorf("message of %d+ bytes over the %d limit", msg+n, g.cfg.maxMessage))
		}
		body := g.rbuf
		if uint64(cap(body)) < n {
			body = make([]byte, n)
			if n <= maxKeptReadBuf {
				g.rbuf = body
			}
		}
		body = body[:n]
		if _, err := io.ReadFull(g.br, body); err != nil {
			return g.endReads(err)
		}
		switch {
		case f&flagCommand != 0:
		case f&flagMore != 0:
			multi = true
			msg += n
		case multi:
			multi, msg = false, 0
			g.cfg.sink(g, nil, false)
		default:
			g.cfg.sink(g, body, true)
		}
	}
}

// maxKeptReadBuf: serveReads keeps a message buffer up to this size.
const maxKeptReadBuf = 64 << 10

// endReads is what serveReads returns after a read error: an unexpected
// EOF in the middle of a frame is the remote closing all the same.
func (g *guardConn) endReads(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = io.EOF
	}
	g.rerr = err
	return err
}

// violation closes the connection for breaking a rule.
func (g *guardConn) violation(perr error) error {
	g.rerr = &guardError{reason: perr.Error()}
	g.cfg.stats.rejected.Add(1)
	g.cfg.log.Warn("link: closing connection", "remote", g.RemoteAddr().String(), "err", perr)
	g.Close()
	return g.rerr
}

// rawReader is what the bufio.Reader reads from: the TCP connection with the
// idle deadline applied.
type rawReader struct{ g *guardConn }

func (r rawReader) Read(p []byte) (int, error) {
	g := r.g
	if g.cfg.beforeRead != nil && !g.isTLS {
		g.cfg.beforeRead(g)
	}
	if idle := g.cfg.idle; idle > 0 {
		// Move the deadline only when it is less than idle away: one
		// SetReadDeadline per idle/2 rather than per read. The connection
		// is closed after between idle and 1.5 x idle of silence.
		_ = g.idleAt.Extend(g.Conn.SetReadDeadline, time.Now().Add(idle))
	}
	n, err := g.Conn.Read(p)
	if err != nil && isTimeout(err) {
		g.cfg.stats.idle.Add(1)
		g.Close()
		return n, &guardError{reason: "idle timeout"}
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Write takes the bytes zmq4 writes (a header, then a body, per frame) and
// writes each complete ZMTP message with one syscall, under a deadline; in
// async mode it queues the message for this connection's writer instead.
func (g *guardConn) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	if g.werr != nil {
		return 0, g.werr
	}
	if _, err := g.wp.feed(p); err != nil {
		return 0, err // the write parser checks nothing; cannot happen
	}
	if !g.wp.atBoundary() && (g.q != nil || len(g.wbuf)+len(p) <= coalesceLimit) {
		g.wbuf = append(g.wbuf, p...)
		return len(p), nil
	}
	if g.q != nil {
		m := make([]byte, 0, len(g.wbuf)+len(p))
		m = append(append(m, g.wbuf...), p...)
		g.wbuf = g.wbuf[:0]
		g.enqueue(m)
		return len(p), nil
	}
	var err error
	if g.isTLS && len(g.wbuf) > 0 && len(g.wbuf)+len(p) <= coalesceLimit {
		// One TLS record rather than two: tls.Conn cannot writev.
		g.wbuf = append(g.wbuf, p...)
		err = g.writeNow(nil, g.wbuf)
	} else {
		err = g.writeNow(g.wbuf, p)
	}
	g.wbuf = g.wbuf[:0]
	if err != nil {
		g.werr = err
		return 0, err
	}
	return len(p), nil
}

// enqueue queues one complete message for the async writer, or drops it when
// the queue is at its high-water mark. Caller holds wmu.
func (g *guardConn) enqueue(m []byte) {
	select {
	case <-g.closed:
		return
	default:
	}
	if g.qbytes.Load()+int64(len(m)) > g.cfg.hwmBytes {
		g.cfg.stats.dropped.Add(1)
		return
	}
	select {
	case g.q <- m:
		g.qbytes.Add(int64(len(m)))
	default:
		g.cfg.stats.dropped.Add(1)
	}
}

func (g *guardConn) writeLoop() {
	for {
		select {
		case m := <-g.q:
			g.qbytes.Add(-int64(len(m)))
			if g.writeNow(nil, m) != nil {
				return
			}
		case <-g.closed:
			return
		}
	}
}

// writeNow writes a then b with one writev under the write deadline; when the
// write fails or times out the connection is closed. Callers serialise.
func (g *guardConn) writeNow(a, b []byte) error {
	if len(a) == 0 {
		g.bufs[0] = b
		return g.writeVec(g.bufs[:1])
	}
	g.bufs[0], g.bufs[1] = a, b
	return g.writeVec(g.bufs[:2])
}

// writeVec writes bufs with one writev (plain TCP; over TLS, a write per
// buffer) under the write deadline; when the write fails or times out the
// connection is closed. Callers serialise. It clears bufs' elements.
func (g *guardConn) writeVec(bufs net.Buffers) error {
	if t := g.cfg.writeTimeout; t > 0 {
		// As for reads: move the deadline only when it is less than t away,
		// so every write gets between t and 1.5 x t.
		_ = g.wdl.Extend(g.Conn.SetWriteDeadline, time.Now().Add(t))
	}
	var err error
	if len(bufs) == 1 {
		_, err = g.Conn.Write(bufs[0])
		bufs[0] = nil
	} else {
		all := bufs
		if rc, ok := g.Conn.(*rawio.Conn); ok {
			_, err = rc.WriteBuffers(&bufs) // consumes bufs
		} else {
			_, err = bufs.WriteTo(g.Conn) // consumes bufs
		}
		clear(all)
	}
	if err == nil {
		return nil
	}
	ge := &guardError{reason: err.Error()}
	if isTimeout(err) {
		g.cfg.stats.stuck.Add(1)
		ge.reason, ge.stuck = "write blocked for longer than the send timeout", true
		g.cfg.log.Warn("link: closing connection: peer stopped reading", "remote", g.RemoteAddr().String())
	}
	g.Close()
	return ge
}

// ZMTP 3 framing, as much as the guard needs.
const (
	greetingLen  = 64
	signatureLen = 10 // what libzmq sends before it waits for the peer's
	flagMore     = 0x01
	flagLong     = 0x02
	flagCommand  = 0x04
)

type parseState uint8

const (
	stGreeting parseState = iota
	stFlags
	stSize
	stBody
)

// frameParser follows a ZMTP 3 byte stream: a 64-byte greeting, then frames
// of flags, a 1- or 8-byte size and a body. With check set (the read side) it
// enforces the guard's rules; otherwise (the write side) it only tracks where
// messages end.
type frameParser struct {
	check bool
	limit uint64 // largest message, all frames (check only)

	state   parseState
	greet   int // greeting bytes still to come
	flags   byte
	size    [8]byte
	sizeN   int
	sizeLen int
	body    uint64 // body bytes still to come
	msg     uint64 // bytes of the message so far
	inMsg   bool   // a frame with MORE was seen and the message is not over
	frames  int    // frames completed since the greeting
	hs      []byte // body of the first frame (the handshake command), check only
	// ready, when set (check only), decides on the READY's Identity
	// property (ok: present) once the command is valid; its error refuses
	// the READY like a malformed one.
	ready func(identity []byte, ok bool) error
}

// feed follows b. It returns how many bytes of b may be handed on and, when a
// rule is broken, why; the bytes from the offending one on must not be.
func (p *frameParser) feed(b []byte) (int, error) {
	i := 0
	for i < len(b) {
		switch p.state {
		case stGreeting:
			n := min(p.greet, len(b)-i)
			if p.check {
				for j := 0; j < n; j++ {
					if err := checkGreetingByte(greetingLen-p.greet+j, b[i+j]); err != nil {
						return i + j, err
					}
				}
			}
			p.greet -= n
			i += n
			if p.greet == 0 {
				p.state = stFlags
			}
		case stFlags:
			f := b[i]
			if p.check {
				if f&^(flagMore|flagLong|flagCommand) != 0 {
					return i, fmt.Errorf("reserved bits set in frame flags %#02x", f)
				}
				if p.frames == 0 && (f&flagCommand == 0 || f&flagMore != 0) {
					return i, errors.New("first frame is not a single-frame command")
				}
			}
			p.flags = f
			p.sizeN, p.sizeLen = 0, 1
			if f&flagLong != 0 {
				p.sizeLen = 8
			}
			p.state = stSize
			i++
		case stSize:
			p.size[p.sizeN] = b[i]
			p.sizeN++
			if p.sizeN < p.sizeLen {
				i++
				continue
			}
			size := uint64(p.size[0])
			if p.sizeLen == 8 {
				size = binary.BigEndian.Uint64(p.size[:])
			}
			if p.check {
				if p.frames == 0 && size > maxHandshakeFrame {
					return i, fmt.Errorf("handshake command of %d bytes", size)
				}
				if size > p.limit || p.msg+size > p.limit {
					return i, fmt.Errorf("message of %d+ bytes over the %d limit", p.msg+size, p.limit)
				}
			}
			i++
			p.msg += size
			p.inMsg = true
			p.body = size
			if p.check && p.frames == 0 {
				p.hs = make([]byte, 0, size)
			}
			if size > 0 {
				p.state = stBody
				continue
			}
			if err := p.endFrame(); err != nil {
				return i - 1, err
			}
		case stBody:
			n := min(uint64(len(b)-i), p.body)
			if p.hs != nil {
				p.hs = append(p.hs, b[i:i+int(n)]...)
			}
			p.body -= n
			i += int(n)
			if p.body == 0 {
				if err := p.endFrame(); err != nil {
					return i - 1, err
				}
			}
		}
	}
	return i, nil
}

// endFrame closes the current frame; for the handshake command it first
// validates it, so that a bad one is never completed.
func (p *frameParser) endFrame() error {
	if p.check && p.frames == 0 {
		id, ok, err := checkReady(p.hs)
		if err != nil {
			return err
		}
		if p.ready != nil {
			if err := p.ready(id, ok); err != nil {
				return err
			}
		}
		p.hs = nil
	}
	p.frames++
	p.state = stFlags
	if p.flags&flagMore == 0 {
		p.msg = 0
		p.inMsg = false
	}
	return nil
}

// atBoundary reports whether the stream is between messages (or just after
// the greeting): what was written so far can be flushed.
func (p *frameParser) atBoundary() bool {
	return p.state == stFlags && !p.inMsg
}

// checkGreetingByte checks the ZMTP greeting bytes that identify the
// protocol: signature 0xFF ... 0x7F and major version 3 or later.
func checkGreetingByte(off int, c byte) error {
	switch {
	case off == 0 && c != 0xFF, off == 9 && c != 0x7F:
		return fmt.Errorf("bad ZMTP signature byte %d: %#02x", off, c)
	case off == 10 && c < 3:
		return fmt.Errorf("ZMTP version %d, want 3", c)
	}
	return nil
}

// checkReady validates the peer's handshake command the way zmq4 will parse
// it, but without zmq4's out-of-range slicing: a READY whose metadata lies
// about its lengths makes zmq4 panic in Metadata.UnmarshalZMTP. It returns
// the value of the Identity property (ok: there is one), which zmq4's
// ROUTER takes as the connection's routing identity.
//
// zmq4 title-cases property names (with Unicode rules: "ıdentity" becomes
// "Identity" too) and keeps the last of equal names, so that the identity
// read here is surely the one zmq4 uses, names must be printable ASCII, and
// a READY with two Identity properties, or one spelt otherwise than
// "Identity" or "identity", is refused.
func checkReady(b []byte) (identity []byte, ok bool, err error) {
	if len(b) == 0 || int(b[0])+1 > len(b) {
		return nil, false, errors.New("truncated handshake command")
	}
	if name := string(b[1 : 1+int(b[0])]); name != zmq4.CmdReady {
		return nil, false, fmt.Errorf("handshake command %q, want READY", name)
	}
	props := b[1+int(b[0]):]
	for len(props) > 0 {
		klen := int(props[0])
		if 1+klen+4 > len(props) {
			return nil, false, errors.New("truncated READY property")
		}
		key := props[1 : 1+klen]
		vlen := binary.BigEndian.Uint32(props[1+klen:])
		props = props[1+klen+4:]
		if uint64(vlen) > uint64(len(props)) {
			return nil, false, errors.New("READY property value overruns the command")
		}
		val := props[:vlen]
		props = props[vlen:]
		for _, c := range key {
			if c <= ' ' || c > '~' {
				return nil, false, fmt.Errorf("READY property name %q is not printable ASCII", wire.Snippet(key))
			}
		}
		if !strings.EqualFold(string(key), zmtpIdentity) {
			continue
		}
		if string(key[1:]) != zmtpIdentity[1:] || ok {
			return nil, false, fmt.Errorf("ambiguous READY property %q", wire.Snippet(key))
		}
		identity, ok = val, true
	}
	return identity, ok, nil
}

// zmtpIdentity is the READY property that names a socket (zmq4's spelling).
const zmtpIdentity = "Identity"
