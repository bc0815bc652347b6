package edge

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/noonhq/noon/internal/rawio"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/gopool"
	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/wire"
)

// Handler is the broker's side of the edge: it is told about connections
// opening and closing and serves their requests.
type Handler interface {
	// Open is called once, in the connection's reader goroutine, before its
	// first request is read; it should not block. A non-nil error closes
	// the connection (and Close is then not called).
	Open(c *Conn) error
	// Request serves one request and returns the reply payload or an error.
	// It is called concurrently, up to Options.MaxInFlight at a time per
	// connection, each in its own goroutine; replies are still sent in
	// request order. ctx is cancelled when the connection closes. payload
	// belongs to the handler; the returned slice belongs to the edge until
	// written.
	//
	// An error becomes the reply's Err: its own text if it already has the
	// form of a wire error "<code>: <text>" (it implements WireCoder, or its
	// text starts with a known code, as a wire.Error's does),
	// "timeout: ..." / "unavailable: ..." for context errors, and
	// "internal: <text>" otherwise. A panic is recovered and answered
	// "internal: ...".
	Request(ctx context.Context, c *Conn, method string, payload []byte) ([]byte, error)
	// Close is called once when an opened connection has closed, after its
	// reader and writer ended. Requests may still be running; their ctx is
	// cancelled.
	Close(c *Conn)
}

// AsyncHandler is a Handler that can also start a request and answer it
// later from another goroutine, so that no goroutine waits for the reply:
// the broker starts a request on a link and completes it from the link's
// reader. The edge calls StartRequest first and Request (in a goroutine
// of its own) only when StartRequest declines.
type AsyncHandler interface {
	Handler
	// StartRequest is called in the connection's reader goroutine and must
	// not block. It returns false, having done nothing, when the request
	// needs Request (a wait, a retry, a local method...). When it returns
	// true it calls done exactly once, from any goroutine, with what
	// Request would have returned (the same error rules apply); done does
	// not block. ctx and payload are as for Request.
	StartRequest(ctx context.Context, c *Conn, method string, payload []byte, done func(resp []byte, err error)) bool
}

// Stats are the edge's counters, for the broker to export as metrics.
type Stats struct {
	// Conns is the number of open connections.
	Conns int64
	// InFlight is the number of requests running in handlers.
	InFlight int64
	// Accepted counts connections accepted (including rejected ones).
	Accepted uint64
	// Rejected counts connections refused: MaxConnections or a
	// per-address limit reached, the edge over MaxBufferedBytes, or the
	// server draining.
	Rejected uint64
	// AddrRejected counts the connections refused by a per-address limit
	// (MaxConnsPerAddr, ConnRatePerAddr); they count in Rejected too.
	AddrRejected uint64
	// BufferedBytes is the bytes the edge holds for its connections
	// (requests and replies not yet written, pushes queued).
	BufferedBytes int64
	// ByteWaits counts the times a connection's reader waited for bytes to
	// be freed (MaxInFlightBytes, MaxInFlightBytesPerAddr,
	// MaxBufferedBytes).
	ByteWaits uint64
	// FrameTimeouts counts connections closed for a frame not complete
	// within FrameTimeout of its first byte.
	FrameTimeouts uint64
	// BadMethods counts requests answered bad_request for an invalid
	// method name.
	BadMethods uint64
	// Closed counts connections that have closed.
	Closed uint64
	// SlowConsumers counts clients disconnected for not reading: a full
	// push queue or a write past WriteTimeout.
	SlowConsumers uint64
	// BadFrames counts connections closed for a malformed or truncated
	// frame.
	BadFrames uint64
	// RateLimited counts requests answered rate_limited.
	RateLimited uint64
	// AuthTimeouts counts connections closed for not authenticating in time.
	AuthTimeouts uint64
	// IdleTimeouts counts connections closed for not completing a frame in
	// time.
	IdleTimeouts uint64
	// BadProxyHeaders counts connections from trusted proxies closed for a
	// missing, malformed or late PROXY header.
	BadProxyHeaders uint64
	// Requests counts request frames read.
	Requests uint64
	// Panics counts panics recovered in handlers and connections.
	Panics uint64
	// InlineWrites counts batches of replies written in the goroutine
	// that completed them (no switch to the connection's writer): plain
	// TCP whenever the socket takes them, WebSocket when the socket's
	// send queue is empty.
	InlineWrites uint64
}

type counters struct {
	accepted, rejected, closed, slowConsumers, badFrames, rateLimited,
	authTimeouts, idleTimeouts, badProxyHeaders, requests, panics,
	addrRejected, byteWaits, frameTimeouts, badMethods, inlineWrites atomic.Uint64
}

// maxInterned bounds the method-name cache: real method names are a few
// dozen, and a client sending random names must not grow it without bound.
const maxInterned = 1024

// Server is the client edge of a broker: the TCP and WebSocket listeners and
// every client connection. The broker plugs in through a Handler.
type Server struct {
	opts  Options
	h     Handler
	async AsyncHandler // h, when it is one
	log   *slog.Logger
	lim   frame.Limits
	pools *bufPools
	epoch time.Time
	// idPrefix makes connection ids unique across brokers and restarts.
	idPrefix string
	nextID   atomic.Uint64

	tcpLn   net.Listener
	wsLn    net.Listener
	httpSrv *http.Server
	wsOpts  websocket.AcceptOptions

	started  atomic.Bool
	exiting  atomic.Bool
	draining atomic.Bool
	quit     chan struct{}
	fatal    chan error
	closeLn  sync.Once
	wg       sync.WaitGroup
	workers  gopool.Pool // runs requests (Conn.serve) on reused goroutines
	nconns   atomic.Int64
	inflight atomic.Int64
	pending  atomic.Int64 // reply slots queued and not yet taken by a writer
	stats    counters
	internMu sync.RWMutex
	methods  map[string]string
	mu       sync.Mutex // guards conns; see Conn.mu for lock order
	conns    map[*Conn]struct{}
	// tlsConfig is the TLS of both listeners, nil without; the TCP
	// listener's connections start it after their PROXY header.
	tlsConfig *tls.Config
	// trusted are the proxies whose PROXY headers and X-Forwarded-For are
	// read.
	trusted realip.Trusted
	// exempt are the addresses the per-address limits do not apply to.
	exempt realip.Trusted
	// addrs is the per-address state (see limits.go).
	addrs addrTable
	// buffered is the bytes held for all connections; room wakes the
	// readers waiting for it to drop under MaxBufferedBytes.
	buffered atomic.Int64
	room     gate
	// refusing counts the goroutines writing a refusal.
	refusing atomic.Int32
}

// New validates opts and binds the listeners (port 0 picks a free port; see
// TCPAddr and WSAddr). Serving starts with Main. A nil log discards logs.
func New(opts Options, h Handler, log *slog.Logger) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("edge: nil Handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &Server{
		opts:     opts,
		h:        h,
		log:      log,
		lim:      opts.limits(),
		epoch:    time.Now(),
		idPrefix: hex.EncodeToString(rnd[:]) + "-",
		quit:     make(chan struct{}),
		fatal:    make(chan error, 2),
		methods:  make(map[string]string),
		conns:    make(map[*Conn]struct{}),
	}
	s.async, _ = h.(AsyncHandler)
	if n := clampConnections(opts.MaxConnections, fileLimit()); n < opts.MaxConnections {
		log.Warn("edge: max_connections lowered to fit the open files limit (RLIMIT_NOFILE, less a tenth for the broker's own files); raise the limit (ulimit -n) to allow more",
			"max_connections", opts.MaxConnections, "lowered_to", n, "open_files_limit", fileLimit())
		opts.MaxConnections = n
		s.opts.MaxConnections = n
	}
	s.exempt = newExempt(opts.AddrLimitsExempt)
	s.addrs.m = make(map[addrKey]*addrState)
	s.pools = newBufPools(s.lim, int(opts.ReadBuffer), int(opts.WriteBuffer))
	tlsConfig, err := opts.TLS.ServerConfig()
	if err != nil {
		return nil, fmt.Errorf("edge: %w", err)
	}
	s.tlsConfig = tlsConfig
	if s.trusted, err = realip.ParseTrusted(opts.TrustedProxies); err != nil {
		return nil, err // Validate said no already
	}
	if opts.TCPAddr != "" {
		// TLS starts per connection, after a PROXY header.
		ln, err := net.Listen("tcp", opts.TCPAddr)
		if err != nil {
			return nil, fmt.Errorf("edge: listen tcp_addr %s: %w", opts.TCPAddr, err)
		}
		s.tcpLn = ln
	}
	if opts.WSAddr != "" {
		ln, err := s.listen(opts.WSAddr)
		if err != nil {
			if s.tcpLn != nil {
				_ = s.tcpLn.Close()
			}
			return nil, fmt.Errorf("edge: listen ws_addr %s: %w", opts.WSAddr, err)
		}
		s.wsLn = ln
		s.wsOpts = websocket.AcceptOptions{OriginPatterns: opts.WSOrigins}
		if len(opts.WSOrigins) == 1 && opts.WSOrigins[0] == AnyOrigin {
			// The library's way to say so, rather than a "*" pattern.
			s.wsOpts = websocket.AcceptOptions{InsecureSkipVerify: true}
		}
		mux := http.NewServeMux()
		mux.HandleFunc(opts.WSPath, s.serveWS)
		s.httpSrv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: opts.IdleTimeout,
			IdleTimeout:       opts.IdleTimeout,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		}
	}
	return s, nil
}

// listen binds the WebSocket listener's addr, with TLS if configured.
func (s *Server) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	// The HTTP server, then the WebSocket library, read and write each
	// connection with raw system calls (internal/rawio).
	ln = rawio.Listener{Listener: ln}
	if s.tlsConfig != nil {
		ln = tls.NewListener(ln, s.tlsConfig)
	}
	return ln, nil
}

// TCPAddr returns the bound address of the TCP listener, or nil if disabled.
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// WSAddr returns the bound address of the WebSocket listener, or nil if
// disabled. Clients connect to ws://<WSAddr><WSPath>.
func (s *Server) WSAddr() net.Addr {
	if s.wsLn == nil {
		return nil
	}
	return s.wsLn.Addr()
}

// Options returns the options the server runs with.
func (s *Server) Options() Options { return s.opts }

// Main serves until Exit and returns nil, or returns the first fatal error
// (a listener failing for good) after calling Exit. It must be called once.
func (s *Server) Main() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("edge: Main called twice")
	}
	if s.tcpLn != nil {
		s.goroutine(s.acceptLoop)
	}
	if s.httpSrv != nil {
		s.goroutine(func() {
			err := s.httpSrv.Serve(s.wsLn)
			if err != nil && !errors.Is(err, http.ErrServerClosed) && !s.exiting.Load() && !s.draining.Load() {
				s.fatal <- fmt.Errorf("edge: serve websocket: %w", err)
			}
		})
	}
	select {
	case <-s.quit:
		return nil
	case err := <-s.fatal:
		s.Exit()
		return err
	}
}

// goroutine starts f counted in s.wg, unless the server is exiting.
func (s *Server) goroutine(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exiting.Load() {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// acceptLoop accepts TCP connections until the listener closes, backing off
// from 5 ms to 1 s on temporary errors.
func (s *Server) acceptLoop() {
	var delay time.Duration
	for {
		nc, err := s.tcpLn.Accept()
		if err != nil {
			if s.exiting.Load() || s.draining.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("edge: accept failed, retrying", "err", err, "delay", delay)
				select {
				case <-time.After(delay):
				case <-s.quit:
					return
				}
				continue
			}
			s.fatal <- fmt.Errorf("edge: accept tcp: %w", err)
			return
		}
		delay = 0
		s.stats.accepted.Add(1)
		if !s.reserve() {
			s.refuseAccepted(nc, "too many connections on this broker, try another")
			continue
		}
		c := newConn(s, newTCPTransport(nc, s))
		if !s.trusted.ContainsAddr(nc.RemoteAddr()) {
			// The address is the client's: admit it here, so a refused
			// connection costs no Conn and no goroutine but the
			// refusal's. A trusted proxy's connections are admitted
			// after their PROXY header, by the client's address.
			if why := c.admit(); why != "" {
				s.nconns.Add(-1)
				s.refuseAccepted(nc, why)
				continue
			}
		}
		if !s.register(c) {
			s.nconns.Add(-1)
			s.leave(c.addr)
			_ = nc.Close()
			continue
		}
		go c.run()
	}
}

// reserve takes a connection slot.
func (s *Server) reserve() bool {
	if s.nconns.Add(1) > int64(s.opts.MaxConnections) {
		s.nconns.Add(-1)
		return false
	}
	return true
}

// refuseAccepted answers a TCP connection that may not be served
// "overloaded: why" (after its PROXY header and TLS, as a served one) in a
// goroutine of its own, counted in wg, and closes it.
func (s *Server) refuseAccepted(nc net.Conn, why string) {
	s.stats.rejected.Add(1)
	if s.refusing.Add(1) > maxRefusing {
		s.refusing.Add(-1)
		_ = nc.Close()
		return
	}
	t := newTCPTransport(nc, s)
	if !s.goroutine(func() {
		defer s.refusing.Add(-1)
		defer t.close()
		if t.handshake() != nil {
			return
		}
		t.beginWrite(time.Now().Add(refusalWriteTimeout))
		if t.writeResponse(wire.CodeOverloaded+": "+why, nil) == nil {
			_ = t.flush()
		}
		t.dropWriter()
	}) {
		s.refusing.Add(-1)
		_ = nc.Close()
	}
}

// register adds c to the connections and counts its reader in s.wg, unless
// the server is exiting or draining.
func (s *Server) register(c *Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exiting.Load() || s.draining.Load() {
		s.stats.rejected.Add(1)
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// remove forgets c.
func (s *Server) remove(c *Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.nconns.Add(-1)
}

// serveWS upgrades an HTTP request to a WebSocket connection and starts its
// reader.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	s.stats.accepted.Add(1)
	if !s.reserve() {
		s.refuseWS(w, r, stringAddr(r.RemoteAddr), "too many connections on this broker, try another")
		return
	}
	var addr net.Addr = stringAddr(r.RemoteAddr)
	if ap := s.trusted.Request(r); ap.IsValid() {
		addr = net.TCPAddrFromAddrPort(ap) // the client's, behind a trusted proxy
	}
	c := newConn(s, nil)
	if why := c.admitAddr(addr); why != "" {
		s.nconns.Add(-1)
		s.refuseWS(w, r, addr, why)
		return
	}
	hr := &hijackRecorder{ResponseWriter: w}
	ws, err := websocket.Accept(hr, r, &s.wsOpts)
	if err != nil {
		s.leave(c.addr)
		s.nconns.Add(-1)
		s.log.Debug("edge: websocket upgrade failed", "remote", addr.String(), "origin", wire.Snippet(r.Header.Get("Origin")), "err", err)
		return
	}
	c.t = newWSTransport(ws, addr, s.lim, hr.conn)
	if !s.register(c) {
		s.leave(c.addr)
		s.nconns.Add(-1)
		_ = ws.CloseNow()
		return
	}
	// The reader runs in a goroutine of its own, not in the HTTP server's:
	// that one's stack grew reading the upgrade request and would stay so
	// for the connection's life; the hijacked connection is ours now.
	go c.run()
}

// refuseWS upgrades a WebSocket that may not be served, to answer it
// "overloaded: why" in a frame as a TCP client is, and closes it.
func (s *Server) refuseWS(w http.ResponseWriter, r *http.Request, addr net.Addr, why string) {
	s.stats.rejected.Add(1)
	ws, err := websocket.Accept(w, r, &s.wsOpts)
	if err != nil {
		return
	}
	s.log.Debug("edge: connection refused", "remote", addr.String(), "why", why)
	t := newWSTransport(ws, addr, s.lim, nil)
	t.beginWrite(time.Now().Add(refusalWriteTimeout))
	_ = t.writeResponse(wire.CodeOverloaded+": "+why, nil)
	t.dropWriter()
	_ = ws.CloseNow()
}

// stringAddr is a net.Addr for a remote address that does not parse.
type stringAddr string

func (a stringAddr) Network() string { return "tcp" }
func (a stringAddr) String() string  { return string(a) }

// newID returns a new connection id.
func (s *Server) newID() string {
	return s.idPrefix + strconv.FormatUint(s.nextID.Add(1), 36)
}

// intern returns method as a string, shared between requests for the names
// seen most, so that reading a request allocates no name.
func (s *Server) intern(method []byte) string {
	s.internMu.RLock()
	m, ok := s.methods[string(method)]
	s.internMu.RUnlock()
	if ok {
		return m
	}
	m = string(method)
	s.internMu.Lock()
	if len(s.methods) < maxInterned {
		s.methods[m] = m
	}
	s.internMu.Unlock()
	return m
}

// closeListeners stops accepting, once.
func (s *Server) closeListeners() {
	s.closeLn.Do(func() {
		if s.tcpLn != nil {
			_ = s.tcpLn.Close()
		}
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
		if s.wsLn != nil {
			_ = s.wsLn.Close()
		}
	})
}

// snapshot returns the open connections.
func (s *Server) snapshot() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c)
	}
	return out
}

// NumConns returns the number of open connections.
func (s *Server) NumConns() int { return int(s.nconns.Load()) }

// Range calls f for each open connection until f returns false. f runs
// without locks held and may close the connection.
func (s *Server) Range(f func(*Conn) bool) {
	for _, c := range s.snapshot() {
		if !f(c) {
			return
		}
	}
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Conns:           s.nconns.Load(),
		InFlight:        s.inflight.Load(),
		Accepted:        s.stats.accepted.Load(),
		Rejected:        s.stats.rejected.Load(),
		AddrRejected:    s.stats.addrRejected.Load(),
		BufferedBytes:   s.buffered.Load(),
		ByteWaits:       s.stats.byteWaits.Load(),
		FrameTimeouts:   s.stats.frameTimeouts.Load(),
		BadMethods:      s.stats.badMethods.Load(),
		Closed:          s.stats.closed.Load(),
		SlowConsumers:   s.stats.slowConsumers.Load(),
		BadFrames:       s.stats.badFrames.Load(),
		RateLimited:     s.stats.rateLimited.Load(),
		AuthTimeouts:    s.stats.authTimeouts.Load(),
		IdleTimeouts:    s.stats.idleTimeouts.Load(),
		InlineWrites:    s.stats.inlineWrites.Load(),
		BadProxyHeaders: s.stats.badProxyHeaders.Load(),
		Requests:        s.stats.requests.Load(),
		Panics:          s.stats.panics.Load(),
	}
}

// drainPoll is how often Drain checks whether the requests have finished.
const drainPoll = 10 * time.Millisecond

// Drain shuts the edge down gracefully: it stops accepting connections,
// calls notify (if not nil) for each open connection (the broker pushes
// "@edge.Draining" so clients move to another broker), waits until the
// requests in flight have been answered or ctx ends, then closes every
// connection (writing what is ready first) and waits for them to go. It
// returns ctx.Err() if ctx ended first, after closing the rest at once.
// Requests that arrive meanwhile are still served. Exit is still needed
// afterwards.
func (s *Server) Drain(ctx context.Context, notify func(*Conn)) error {
	s.draining.Store(true)
	s.closeListeners()
	if notify != nil {
		s.Range(func(c *Conn) bool {
			notify(c)
			return true
		})
	}
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	wait := func(done func() bool) error {
		for !done() {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return ctx.Err()
			case <-s.quit:
				return nil
			}
		}
		return nil
	}
	err := wait(func() bool { return s.pending.Load() <= 0 })
	s.Range(func(c *Conn) bool {
		c.Close("draining")
		return true
	})
	if err == nil {
		err = wait(func() bool { return s.nconns.Load() <= 0 })
	}
	if err != nil {
		s.Range(func(c *Conn) bool {
			c.hardClose("draining: " + err.Error())
			return true
		})
	}
	return err
}

// Exit stops the server: it closes the listeners, then every connection
// (cancelling the requests in flight), and waits for all of the server's
// goroutines (connections' readers and writers, running handlers) to end,
// so handlers must return once their ctx is cancelled. It is idempotent and
// must not be called from a handler.
func (s *Server) Exit() {
	if !s.exiting.CompareAndSwap(false, true) {
		return
	}
	s.closeListeners()
	close(s.quit)
	for _, c := range s.snapshot() {
		c.hardClose("server exit")
	}
	s.wg.Wait()
	s.workers.Close()
}
