package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/wire"
)

// Conn is one client connection: one client session. The broker keeps its
// per-connection state in it with SetData, authenticates it, and pushes
// events to it; everything else (reading frames, running requests under the
// limits, writing replies in order) the edge does.
//
// A connection has at most two goroutines of its own: a reader, which reads
// a frame, checks the rate limit, waits for an in-flight slot, queues an
// ordered reply slot and runs the handler in a goroutine of its own; and a
// writer, which writes the replies strictly in request order as they
// complete, pushes in between, and flushes when nothing more is queued. The
// writer runs only while there is something to write: it is started when a
// reply or push becomes ready (or runs in the request's goroutine, once the
// handler returned, when that reply is next) and ends once it has flushed and
// found nothing more; at most one runs at a time. So an idle connection costs one goroutine (the reader, parked in a
// one-byte read with no buffer) and no write buffer.
//
// All methods are safe for concurrent use.
type Conn struct {
	srv *Server
	t   transport
	id  string

	// ctx is what Handler.Request gets; it is cancelled when the connection
	// closes (or starts to close).
	ctx    context.Context
	cancel context.CancelFunc

	// sem holds one token per reply slot queued and not yet taken by the
	// writer: the reader blocks on it at MaxInFlight, which stops it
	// reading (backpressure down to the client's TCP window).
	sem chan struct{}
	// room tells the reader bytes of this connection were freed;
	// capacity 1.
	room chan struct{}
	// addr is the connection's share of its address's limits; nil for an
	// exempt address. Set before the writer starts, by admit (admitted).
	addr     *addrState
	admitted bool
	// bytes is what the connection holds against MaxInFlightBytes: the
	// requests and replies not yet written and the pushes queued. Changed
	// only under mu (chargeLocked, settleLocked); read without it.
	bytes atomic.Int64

	userID atomic.Pointer[string]
	push   atomic.Bool
	// live counts the connection's goroutines (reader, writer); the last to
	// exit finishes the connection. The reader lives until the connection
	// is dead, so the writer, which comes and goes, never ends it early.
	live atomic.Int32
	// opened is set by the reader once Handler.Open succeeded.
	opened bool

	// Rate limiter (token bucket), reader only.
	tokens float64
	last   time.Duration // since srv.epoch

	// mu guards the fields below. Lock order: Server.mu is never acquired
	// while holding Conn.mu, and Conn.mu is never held across a call out
	// (the Handler, the transport, a channel send that may block).
	mu sync.Mutex
	// head and tail are the reply slots, in request order.
	head, tail *call
	// npending counts the slots in the list that hold a sem token.
	npending int
	// pushes are encoded push frames waiting for the writer, pushBytes
	// their size.
	pushes    []*frame.Buffer
	pushBytes int64
	// closing: no more requests are taken; the last slot in the list is
	// final, and the writer closes the connection when it gets there.
	closing bool
	// dead: the connection is closed.
	dead bool
	// canWrite: the writer may run (Handler.Open succeeded); writing: it
	// runs.
	canWrite, writing bool
	// pendBytes are the bytes the transport kept from a writeInline, for
	// the writer to write first.
	pendBytes int64
	reason    string
	data      any
	// authTimer closes the connection unless it authenticates in time.
	authTimer *time.Timer
	// endTimer bounds how long the connection may take to write its last
	// replies once closing.
	endTimer *time.Timer
}

// call is one reply slot.
type call struct {
	next    *call
	done    bool   // the reply is ready
	final   bool   // close the connection once it is written (no sem token)
	err     string // the reply's Err
	payload []byte
	cost    int64 // bytes charged for the request and its reply
}

func newConn(s *Server, t transport) *Conn {
	c := &Conn{
		srv:    s,
		t:      t,
		id:     s.newID(),
		sem:    make(chan struct{}, s.opts.MaxInFlight),
		room:   make(chan struct{}, 1),
		tokens: float64(s.opts.Burst),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.last = time.Since(s.epoch)
	c.live.Store(1) // the reader
	return c
}

// ID returns the connection's id, unique among this process's connections
// and, with a random per-server prefix, across brokers.
func (c *Conn) ID() string { return c.id }

// RemoteAddr returns the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.t.remoteAddr() }

// Transport returns "tcp" or "ws".
func (c *Conn) Transport() string { return c.t.name() }

// Context returns a context cancelled when the connection closes; it is the
// context Handler.Request gets.
func (c *Conn) Context() context.Context { return c.ctx }

// Authenticate marks the connection as logged in as userID and stops its
// auth timer. It may be called again to change the user.
func (c *Conn) Authenticate(userID string) {
	c.userID.Store(&userID)
	c.mu.Lock()
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	c.mu.Unlock()
}

// Deauthenticate logs the connection out (its user logged out): it is
// unauthenticated again, so only public methods are allowed, and it must
// authenticate within AuthTimeout or be closed.
func (c *Conn) Deauthenticate() {
	if c.userID.Swap(nil) == nil {
		return
	}
	if d := c.srv.opts.AuthTimeout; d > 0 {
		c.mu.Lock()
		if !c.dead && c.authTimer == nil {
			c.authTimer = time.AfterFunc(d, c.authExpired)
		}
		c.mu.Unlock()
	}
}

// UserID returns the id given to Authenticate, or "" before it.
func (c *Conn) UserID() string {
	if p := c.userID.Load(); p != nil {
		return *p
	}
	return ""
}

// Authenticated reports whether Authenticate was called.
func (c *Conn) Authenticated() bool { return c.userID.Load() != nil }

// SetPush turns pushes to this connection on or off (a client asks for them
// in its edge.Hello). They are off until then, so a plain pandaparty client
// never sees one.
func (c *Conn) SetPush(on bool) { c.push.Store(on) }

// PushEnabled reports whether pushes are on.
func (c *Conn) PushEnabled() bool { return c.push.Load() }

// SetData stores the broker's per-connection state.
func (c *Conn) SetData(v any) {
	c.mu.Lock()
	c.data = v
	c.mu.Unlock()
}

// Data returns what SetData stored, or nil.
func (c *Conn) Data() any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.data
}

// Push queues a push frame "@"+eventType with payload for the client, if it
// enabled pushes, and reports whether it was queued. It never blocks: if the
// connection's push queue (Options.OutQueue) is full, the client is not
// reading fast enough and is disconnected (counted in Stats.SlowConsumers).
// It returns false, too, when the connection is closed or the frame would
// exceed MaxFrame. payload is copied; the caller may reuse it.
func (c *Conn) Push(eventType string, payload []byte) bool {
	if !c.push.Load() {
		return false
	}
	s := c.srv
	if 1+len(eventType) > s.lim.MaxErr || frame.MinFrame+1+len(eventType)+len(payload) > s.lim.MaxFrame {
		s.log.Warn("edge: push too large, dropped", "conn", c.id, "event", wire.Snippet(eventType),
			"payload_bytes", len(payload))
		return false
	}
	b := frame.GetBuffer()
	b.B = frame.AppendPush(b.B, eventType, payload)
	c.mu.Lock()
	if c.dead || c.closing {
		c.mu.Unlock()
		frame.PutBuffer(b)
		return false
	}
	n := int64(len(b.B))
	if len(c.pushes) >= s.opts.OutQueue || (len(c.pushes) > 0 && c.pushBytes+n > int64(s.opts.MaxInFlightBytes)) {
		c.mu.Unlock()
		frame.PutBuffer(b)
		s.stats.slowConsumers.Add(1)
		c.hardClose("slow consumer: push queue full")
		return false
	}
	c.pushes = append(c.pushes, b)
	c.pushBytes += n
	c.chargeLocked(n)
	c.mu.Unlock()
	c.signal()
	return true
}

// Close closes the connection gracefully: no more requests are read, the
// pushes already queued and the replies to the requests already read are
// written (a request handler may call Close and still have its reply sent),
// then the connection closes. Replies not ready within WriteTimeout are
// dropped and their requests cancelled. reason is logged.
func (c *Conn) Close(reason string) {
	c.finish("", reason, c.srv.opts.WriteTimeout)
}

// finish stops reading and closes the connection after the reply slots
// already queued and a last reply errStr (none if empty), or after bound,
// whichever comes first.
func (c *Conn) finish(errStr, reason string, bound time.Duration) {
	last := &call{done: true, final: true, err: errStr}
	c.mu.Lock()
	if c.dead || c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	c.reason = reason
	c.endTimer = time.AfterFunc(bound, func() { c.hardClose(reason + ": replies not done in time") })
	if c.tail == nil {
		c.head = last
	} else {
		c.tail.next = last
	}
	c.tail = last
	wake := c.head == last
	c.mu.Unlock()
	if wake {
		c.signal()
	}
}

// signal starts the writer, unless it runs (it then finds the new work
// before it ends) or may not run yet.
func (c *Conn) signal() {
	if c.claimWriter() {
		c.srv.workers.Go(c.writeLoop)
	}
}

// claimWriter reports whether the caller is to run writeLoop (in a new
// goroutine, or in its own when it has nothing else to do): when the writer
// may run, does not, and the connection is alive. The writer is then
// counted as running.
func (c *Conn) claimWriter() bool {
	c.mu.Lock()
	start := c.canWrite && !c.writing && !c.dead
	if start {
		c.writing = true
		// Safe: the reader, which is counted and lives until the
		// connection is dead, has not exited.
		c.live.Add(1)
		c.srv.wg.Add(1)
	}
	c.mu.Unlock()
	return start
}

// hardClose closes the connection now, dropping whatever is queued. It is
// idempotent; the first reason wins.
func (c *Conn) hardClose(reason string) {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return
	}
	c.settleLocked()
	c.dead = true
	if !c.closing {
		c.reason = reason
	}
	n := c.npending
	c.npending = 0
	c.head, c.tail = nil, nil
	pushes := c.pushes
	c.pushes, c.pushBytes = nil, 0
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	if c.endTimer != nil {
		c.endTimer.Stop()
		c.endTimer = nil
	}
	c.mu.Unlock()
	c.srv.pending.Add(-int64(n))
	for _, b := range pushes {
		frame.PutBuffer(b)
	}
	c.roomFreed()
	c.cancel()
	c.t.close()
}

// stopped reports whether the connection is closed or closing.
func (c *Conn) stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead || c.closing
}

// run is the reader goroutine: it opens the connection, starts the writer,
// and reads requests until the connection ends.
func (c *Conn) run() {
	s := c.srv
	defer s.wg.Done()
	defer c.exit()
	defer c.t.dropReader()
	defer c.recoverPanic("reader")
	if err := c.t.handshake(); err != nil {
		if !c.stopped() { // not closed under it by Exit or Drain
			s.stats.badProxyHeaders.Add(1)
			s.log.Warn("edge: closing connection: bad PROXY header", "conn", c.id, "err", err)
		}
		c.hardClose("handshake: " + err.Error())
		return
	}
	if !c.admitted {
		if why := c.admit(); why != "" {
			c.refuseNow(why)
			return
		}
	}
	if !c.open() {
		c.hardClose("open failed")
		return
	}
	c.mu.Lock()
	c.canWrite = true
	c.mu.Unlock()
	c.signal() // anything queued while opening
	c.readLoop()
	// The connection is closing (or closed): its last replies may still be
	// written. Stay until it is dead, so that the writer, which ends when
	// idle, is never the last goroutine of a live connection.
	c.t.dropReader()
	<-c.ctx.Done()
}

// open calls Handler.Open and starts the auth timer.
func (c *Conn) open() (ok bool) {
	s := c.srv
	defer func() {
		if r := recover(); r != nil {
			s.logPanic("open", c, r)
			ok = false
		}
	}()
	if err := s.h.Open(c); err != nil {
		s.log.Debug("edge: connection refused by handler", "conn", c.id, "remote", c.RemoteAddr().String(), "err", err)
		return false
	}
	c.opened = true
	if d := s.opts.AuthTimeout; d > 0 {
		c.mu.Lock()
		if !c.dead && c.userID.Load() == nil {
			c.authTimer = time.AfterFunc(d, c.authExpired)
		}
		c.mu.Unlock()
	}
	return !c.stopped()
}

func (c *Conn) authExpired() {
	if c.userID.Load() != nil {
		return
	}
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead {
		return
	}
	c.srv.stats.authTimeouts.Add(1)
	c.hardClose("auth timeout")
}

func (c *Conn) readLoop() {
	s := c.srv
	for {
		// Read nothing more while the connection, its address or the edge
		// holds its limit of bytes: replies must be written first.
		if !c.waitRoom() {
			return
		}
		method, payload, err := c.t.readRequest(time.Now().Add(s.opts.IdleTimeout), s.opts.FrameTimeout)
		if err != nil {
			c.readFailed(err)
			return
		}
		s.stats.requests.Add(1)
		var m string
		var p []byte
		badMethod := !validMethod(method, s.lim.MaxMethod)
		if badMethod {
			s.stats.badMethods.Add(1)
		} else {
			m = s.intern(method)
			if len(payload) > 0 {
				p = make([]byte, len(payload))
				copy(p, payload)
			}
		}
		c.t.release()

		// A reply slot; blocks while MaxInFlight replies are pending.
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
			return
		}
		cl := &call{cost: frameCost(len(m), len(p))}
		limited := !c.allow()
		switch {
		case limited:
			s.stats.rateLimited.Add(1)
			cl.done, cl.err, p = true, errRateLimited, nil
		case badMethod:
			cl.done, cl.err = true, errBadMethod
		}
		if cl.done {
			cl.cost = frameCost(len(cl.err), 0)
		}
		if !c.enqueue(cl) {
			return
		}
		if !cl.done {
			s.wg.Add(1) // safe: this goroutine is counted
			s.inflight.Add(1)
			if !c.start(cl, m, p) {
				s.workers.Go(func() { c.serve(cl, m, p) })
			}
		}
	}
}

// readFailed ends reading after err.
func (c *Conn) readFailed(err error) {
	s := c.srv
	if c.stopped() {
		return // the connection was closed under the reader
	}
	switch {
	case errors.Is(err, frame.ErrBadFrame):
		s.stats.badFrames.Add(1)
		s.log.Debug("edge: bad frame", "conn", c.id, "remote", c.RemoteAddr().String(), "err", err)
		c.endReading(wire.CodeBadFrame+": "+err.Error(), "bad frame")
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.stats.badFrames.Add(1)
		c.endReading(wire.CodeBadFrame+": "+errTruncated.Error(), "truncated frame")
	case errors.Is(err, io.EOF):
		c.endReading("", "client closed")
	case errors.Is(err, errFrameTimeout):
		s.stats.frameTimeouts.Add(1)
		c.hardClose("frame timeout")
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.stats.idleTimeouts.Add(1)
		c.hardClose("idle timeout")
	default:
		c.hardClose("read: " + err.Error())
	}
}

// endReading stops the connection after the replies already queued, with
// errStr as a last reply unless empty, within IdleTimeout.
func (c *Conn) endReading(errStr, reason string) {
	c.finish(errStr, reason, c.srv.opts.IdleTimeout)
}

// allow takes a token from the rate limiter.
func (c *Conn) allow() bool {
	o := &c.srv.opts
	if o.Rate <= 0 {
		return true
	}
	now := time.Since(c.srv.epoch)
	c.tokens = min(float64(o.Burst), c.tokens+(now-c.last).Seconds()*o.Rate)
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// enqueue appends a reply slot holding a sem token. It returns false,
// releasing the token, if the connection is closing.
func (c *Conn) enqueue(cl *call) bool {
	c.mu.Lock()
	if c.dead || c.closing {
		c.mu.Unlock()
		<-c.sem
		return false
	}
	if c.tail == nil {
		c.head = cl
	} else {
		c.tail.next = cl
	}
	c.tail = cl
	c.npending++
	c.srv.pending.Add(1)
	c.chargeLocked(cl.cost)
	wake := cl.done && c.head == cl
	c.mu.Unlock()
	if wake {
		c.signal()
	}
	return true
}

// serve runs one request and fills its reply slot.
func (c *Conn) serve(cl *call, method string, payload []byte) {
	resp, err := c.request(method, payload)
	if c.complete(cl, method, resp, err) && c.claimWriter() {
		// This goroutine is done with the request: it writes, rather than
		// starting a writer.
		c.writeLoop()
	}
}

// start offers the request to an AsyncHandler, which completes it from
// another goroutine; it reports whether the handler took it (a panic
// counts as declined: Request then serves it).
func (c *Conn) start(cl *call, method string, payload []byte) (started bool) {
	h := c.srv.async
	if h == nil {
		return false
	}
	defer func() {
		if r := recover(); r != nil {
			c.srv.logPanic("start "+wire.Snippet(method), c, r)
			started = false
		}
	}()
	return h.StartRequest(c.ctx, c, method, payload, func(resp []byte, err error) {
		if c.complete(cl, method, resp, err) {
			c.writeReady()
		}
	})
}

// inlineMax bounds the bytes writeReady writes in its caller's goroutine
// at once, and so what a connection's transport may keep for its writer.
const inlineMax = 16 << 10

// inlineBufs are writeReady's buffers.
var inlineBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 4<<10)
	return &b
}}

// writeReady sees that the ready replies at the head of the list get
// written, for a goroutine that must not wait for the client (a link's
// reader completing a request): it writes them itself when the transport
// can without blocking (plain TCP) and nothing else is queued, and leaves
// the rest, if any, to a writer goroutine, which it starts as signal does.
// The request's goroutine hand-off to a writer is saved when the socket
// takes the replies at once, as it does for a client that reads.
func (c *Conn) writeReady() {
	if !c.claimWriter() {
		return
	}
	if iw, ok := c.t.(inlineWriter); ok && c.writeInline(iw) {
		return
	}
	c.srv.workers.Go(c.writeLoop)
}

// writeInline writes ready replies, holding the writer's claim, without
// blocking. It returns true when it is done and gave the claim back, false
// when a writer goroutine is needed (something it does not write: pushes,
// a final slot, too many bytes; or bytes the socket did not take).
func (c *Conn) writeInline(iw inlineWriter) bool {
	s := c.srv
	for {
		c.mu.Lock()
		if c.dead || len(c.pushes) > 0 {
			c.mu.Unlock()
			return false
		}
		n, size := 0, 0
		for cl := c.head; cl != nil && cl.done && !cl.final; cl = cl.next {
			sz := int(frameCost(len(cl.err), len(cl.payload)))
			if n > 0 && size+sz > inlineMax || sz > inlineMax {
				break
			}
			n++
			size += sz
		}
		if n == 0 {
			if c.head != nil && c.head.done {
				c.mu.Unlock()
				return false // a final slot or a big reply: the writer's
			}
			// Nothing to write: give the claim back, as the writer
			// does when idle.
			c.writing = false
			c.pushes = nil
			c.mu.Unlock()
			c.exit()
			s.wg.Done()
			return true
		}
		first := c.head
		c.mu.Unlock()

		bp := inlineBufs.Get().(*[]byte)
		buf := (*bp)[:0]
		// Outside the lock: the n slots are done and stay at the head
		// until removed below. The last one's next is not read: it may be
		// the tail, whose next enqueue sets meanwhile.
		cl := first
		for i := range n {
			buf = frame.AppendResponse(buf, cl.err, cl.payload)
			if i < n-1 {
				cl = cl.next
			}
		}
		kept, ok, err := iw.tryWrite(buf)
		if cap(buf) <= 4*inlineMax {
			*bp = buf[:0]
			inlineBufs.Put(bp)
		}
		if !ok || err != nil {
			return false // the writer tries, and fails alike if broken
		}
		s.stats.inlineWrites.Add(1)
		c.mu.Lock()
		if c.dead {
			// Closed while writing: it dropped the list; the writer
			// ends the claim.
			c.mu.Unlock()
			return false
		}
		for range n {
			c.head.payload = nil
			c.head = c.head.next
		}
		if c.head == nil {
			c.tail = nil
		}
		// What the transport kept counts as the connection's until the
		// writer writes it.
		c.pendBytes = int64(kept)
		c.chargeLocked(c.pendBytes)
		c.mu.Unlock()
		cl = first
		for range n {
			next := cl.next
			cl.next = nil
			c.written(cl)
			cl = next
		}
		if kept > 0 {
			return false
		}
	}
}

// complete fills a request's reply slot and ends the request (the
// Server's count of it). It reports whether the slot is at the head of
// the connection's list: the caller is then to see that a writer runs.
func (c *Conn) complete(cl *call, method string, resp []byte, err error) bool {
	s := c.srv
	defer s.wg.Done()
	s.inflight.Add(-1)
	var errStr string
	if err != nil {
		errStr = wire.Text(err, s.lim.MaxErr)
		resp = nil
	}
	if n := frame.MinFrame + len(errStr) + len(resp); n > s.lim.MaxFrame {
		s.log.Warn("edge: reply too large", "conn", c.id, "method", method, "bytes", n)
		errStr = fmt.Sprintf("%s: reply of %d bytes exceeds the maximum frame of %d bytes", wire.CodeInternal, n, s.lim.MaxFrame)
		resp = nil
	}
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return false
	}
	cl.done, cl.err, cl.payload = true, errStr, resp
	n := frameCost(len(errStr), len(resp))
	cl.cost += n
	c.chargeLocked(n)
	wake := c.head == cl
	c.mu.Unlock()
	return wake
}

// request calls the handler, turning a panic into an internal error.
func (c *Conn) request(method string, payload []byte) (resp []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			c.srv.logPanic("request "+wire.Snippet(method), c, r)
			resp, err = nil, wire.Errorf(wire.CodeInternal, "panic serving %s", wire.Snippet(method))
		}
	}()
	return c.srv.h.Request(c.ctx, c, method, payload)
}

// writeLoop is the writer goroutine.
func (c *Conn) writeLoop() {
	s := c.srv
	defer s.wg.Done()
	defer c.exit()
	idle := false
	defer func() {
		// Not once idle: a new writer may be running, and flush gave the
		// buffers back already.
		if !idle {
			c.t.dropWriter()
		}
	}()
	defer c.recoverPanic("writer")
	c.mu.Lock()
	pend := c.pendBytes
	c.pendBytes = 0
	c.mu.Unlock()
	if pend > 0 {
		if _, err := c.t.flushPending(time.Now().Add(s.opts.WriteTimeout)); err != nil {
			c.writeFailed(err)
			return
		}
		c.free(pend)
	}
	var spare []*frame.Buffer
	batch := false // beginWrite was called and flush is due
	for {
		c.mu.Lock()
		if c.dead {
			c.mu.Unlock()
			return
		}
		if len(c.pushes) == 0 && (c.head == nil || !c.head.done) {
			if !batch {
				// Nothing to write and nothing buffered: end, until
				// signal starts a writer again.
				c.writing = false
				c.pushes = nil // an idle connection holds no queue
				c.mu.Unlock()
				idle = true
				return
			}
			c.mu.Unlock()
			batch = false
			if err := c.t.flush(); err != nil {
				c.writeFailed(err)
				return
			}
			continue
		}
		pushes, pushBytes := c.pushes, c.pushBytes
		c.pushes, c.pushBytes = spare, 0
		first, n := c.head, 0
		for cl := c.head; cl != nil && cl.done; cl = cl.next {
			n++
			c.head = cl.next
		}
		if c.head == nil {
			c.tail = nil
		}
		c.mu.Unlock()

		if !batch {
			batch = true
			c.t.beginWrite(time.Now().Add(s.opts.WriteTimeout))
		}
		for i, b := range pushes {
			err := c.t.writeFrame(b.B)
			frame.PutBuffer(b)
			pushes[i] = nil
			if err != nil {
				for _, b := range pushes[i+1:] {
					frame.PutBuffer(b)
				}
				c.writeFailed(err)
				return
			}
		}
		c.free(pushBytes)
		if cap(pushes) <= 64 {
			spare = pushes[:0]
		} else {
			spare = nil
		}
		cl := first
		for range n {
			next := cl.next
			cl.next = nil
			if cl.final {
				if cl.err != "" {
					if err := c.t.writeResponse(cl.err, nil); err != nil {
						c.writeFailed(err)
						return
					}
				}
				if err := c.t.flush(); err != nil {
					c.writeFailed(err)
					return
				}
				c.mu.Lock()
				reason := c.reason
				c.mu.Unlock()
				c.hardClose(reason)
				return
			}
			err := c.t.writeResponse(cl.err, cl.payload)
			cl.payload = nil
			if err != nil {
				c.writeFailed(err)
				return
			}
			c.written(cl)
			cl = next
		}
	}
}

// written gives back the slot and the bytes of a request whose reply was
// written (the writer's transport holds no reference to it any more).
func (c *Conn) written(cl *call) {
	c.mu.Lock()
	if !c.dead {
		c.npending--
		c.srv.pending.Add(-1)
		c.chargeLocked(-cl.cost)
	}
	c.mu.Unlock()
	select {
	case <-c.sem:
	default:
	}
	c.roomFreed()
}

// writeFailed ends the connection after a write error.
func (c *Conn) writeFailed(err error) {
	if c.stopped() && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.hardClose("write after close: " + err.Error())
		return
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.srv.stats.slowConsumers.Add(1)
		c.hardClose("slow consumer: write timeout")
		return
	}
	c.hardClose("write: " + err.Error())
}

// admit takes the connection's share of its address's limits, once its
// address is known (at accept, or after a trusted proxy's PROXY header),
// and returns why it may not be served ("" if it may).
func (c *Conn) admit() string { return c.admitAddr(c.RemoteAddr()) }

// admitAddr is admit for the client address remote.
func (c *Conn) admitAddr(remote net.Addr) string {
	s := c.srv
	c.admitted = true
	if s.overBudget() {
		return "the broker is busy, try another"
	}
	a, why := s.admit(remote)
	if why != "" {
		s.stats.addrRejected.Add(1)
		return why
	}
	c.addr = a
	return ""
}

// refuseNow answers a connection that may not be served "overloaded: why"
// in one frame, from its reader (no writer runs yet), and closes it.
func (c *Conn) refuseNow(why string) {
	s := c.srv
	s.stats.rejected.Add(1)
	s.log.Debug("edge: connection refused", "conn", c.id, "remote", c.RemoteAddr().String(), "why", why)
	c.t.beginWrite(time.Now().Add(refusalWriteTimeout))
	if c.t.writeResponse(wire.CodeOverloaded+": "+why, nil) == nil {
		_ = c.t.flush()
	}
	c.t.dropWriter()
	c.hardClose("refused: " + why)
}

// recoverPanic, deferred in the connection's goroutines, logs a panic with
// its stack and closes the connection.
func (c *Conn) recoverPanic(where string) {
	if r := recover(); r != nil {
		c.srv.logPanic(where, c, r)
		c.hardClose("panic in " + where)
	}
}

// exit is called by each of the connection's goroutines as it ends; the
// last one finishes the connection.
func (c *Conn) exit() {
	if c.live.Add(-1) != 0 {
		return
	}
	c.hardClose("closed")
	s := c.srv
	s.remove(c)
	s.leave(c.addr)
	if c.opened {
		func() {
			defer func() {
				if r := recover(); r != nil {
					s.logPanic("close", c, r)
				}
			}()
			s.h.Close(c)
		}()
	}
	s.stats.closed.Add(1)
	c.mu.Lock()
	reason := c.reason
	c.data = nil
	c.mu.Unlock()
	s.log.Debug("edge: connection closed", "conn", c.id, "transport", c.t.name(), "reason", reason)
}

// logPanic logs a recovered panic with its stack.
func (s *Server) logPanic(where string, c *Conn, r any) {
	s.stats.panics.Add(1)
	s.log.Error("edge: panic", "where", where, "conn", c.id, "panic", fmt.Sprint(r),
		slog.String("stack", string(debug.Stack())))
}
