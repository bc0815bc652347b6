package edge

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/noonhq/noon/internal/rawio"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/deadline"
	"github.com/noonhq/noon/internal/realip"
)

// transport is what differs between a TCP and a WebSocket connection: how a
// request frame is read and how replies and pushes are written. Everything
// else (ordering, in-flight and rate limits, timeouts) is Conn's, shared.
//
// The read methods are called only by the connection's reader goroutine, the
// write methods only by its writer goroutine; close may be called by anyone,
// more than once, and unblocks both.
type transport interface {
	// name is "tcp" or "ws".
	name() string
	// remoteAddr is the client's address.
	remoteAddr() net.Addr
	// handshake runs first in the reader goroutine, before Handler.Open:
	// TCP reads a trusted proxy's PROXY header there. An error closes the
	// connection.
	handshake() error

	// readRequest reads the next request frame: its first byte must arrive
	// by idle, the rest within frameTimeout of it. It returns io.EOF when
	// the client closed cleanly between frames, io.ErrUnexpectedEOF inside
	// one, an error matching frame.ErrBadFrame for a malformed frame, one
	// matching errFrameTimeout when the frame was not complete in time, and
	// one matching os.ErrDeadlineExceeded when no frame began by idle. The
	// slices are valid until release or the next readRequest.
	readRequest(idle time.Time, frameTimeout time.Duration) (method, payload []byte, err error)
	// release gives back the read buffers if nothing is buffered, so an idle
	// connection holds none.
	release()
	// dropReader gives back the read buffers for good (the reader exits).
	dropReader()

	// beginWrite starts a batch of frames that must reach the socket by
	// deadline.
	beginWrite(deadline time.Time)
	// writeResponse writes a reply. errStr and payload already fit the
	// limits.
	writeResponse(errStr string, payload []byte) error
	// writeFrame writes an encoded frame (a push) as is.
	writeFrame(b []byte) error
	// flush ends the batch: everything written reaches the socket, and the
	// write buffers are given back.
	flush() error
	// dropWriter gives back the write buffers for good (the writer exits).
	dropWriter()
	// flushPending writes, by deadline, what tryWrite left (nothing for
	// a transport without tryWrite) and returns how many bytes that was.
	flushPending(deadline time.Time) (int, error)

	// close closes the connection now.
	close()
}

// inlineWriter is a transport that can write without blocking (plain
// TCP; WebSocket over plain TCP when the socket's send queue is empty):
// from a goroutine that must not wait for a client.
type inlineWriter interface {
	// tryWrite writes b as far as the socket takes it at once, and keeps
	// the rest for flushPending. It returns how many bytes it kept, or
	// ok false (having written and kept nothing) when it cannot try.
	tryWrite(b []byte) (kept int, ok bool, err error)
}

var (
	_ transport    = (*tcpTransport)(nil)
	_ transport    = (*wsTransport)(nil)
	_ inlineWriter = (*tcpTransport)(nil)
	_ inlineWriter = (*wsTransport)(nil)
)

// bufPools hands out the frame readers and writers of TCP connections. A
// connection holds a reader only while it has unread bytes and a writer only
// while it writes, so an idle connection holds neither.
type bufPools struct {
	readers, writers sync.Pool
	readSize         int
}

func newBufPools(lim frame.Limits, readSize, writeSize int) *bufPools {
	p := &bufPools{readSize: readSize}
	p.readers.New = func() any { return frame.NewReaderSize(nil, lim, readSize) }
	p.writers.New = func() any { return frame.NewWriterSize(nil, lim, writeSize) }
	return p
}

// tcpTransport is a pandaparty connection over TCP (or TLS over TCP),
// which a trusted proxy starts with a PROXY header.
type tcpTransport struct {
	srv   *Server
	pools *bufPools
	// nc is what requests are read from and replies written to: the
	// accepted connection, past its PROXY header, under TLS. handshake
	// sets it before the writer starts.
	nc net.Conn

	// mu guards the fields below, which close and remoteAddr (called from
	// any goroutine) read while handshake may change them.
	mu     sync.Mutex
	closer net.Conn // what close closes: nc once handshake set it
	remote net.Addr
	closed bool

	// Reader state, touched only by the reader goroutine.
	r *frame.Reader // nil while no bytes are buffered
	// given counts the bytes handed to r, used the bytes of the frames it
	// returned: when they are equal, r's buffer is empty and r can go back to
	// the pool.
	given, used int64
	// big is set once r read a frame larger than its buffer: it then holds
	// a body buffer of up to MaxFrame and is dropped, not pooled.
	big bool
	// pre holds bytes read before r was taken, yet to be handed to it: the
	// byte of a one-byte wait (in first), or what waitReadable's read got
	// (in preBuf, a pooled buffer).
	first  [1]byte
	pre    []byte
	preBuf *[]byte
	// rc, on a plain TCP connection (no PROXY header, no TLS), waits for
	// the next frame with one read into a pooled buffer (see
	// waitReadable): a frame that has arrived costs one syscall, and one
	// that has not, a read that finds nothing and the read after the wait.
	rc syscall.RawConn
	// Read deadlines. rdl is the idle deadline, moved lazily; a frame's
	// deadline makes it forget it. framing: bytes of the frame
	// being read have arrived; frameSet: its frameTimeout deadline is set,
	// which happens only when a read of the frame would wait (a frame that
	// arrives whole moves no deadline).
	rdl          deadline.Lazy
	framing      bool
	frameSet     bool
	frameTimeout time.Duration
	// waitReadable's state: its callback's error, function.
	waitErr error
	waitFn  func(uintptr) bool

	// Writer state, touched only by the writer goroutine (or the
	// goroutine holding the writer's claim: see Conn.writeReady).
	w   *frame.Writer // nil between batches
	wdl deadline.Lazy // the write deadline
	// tryWrite's state: the bytes being written, how far, the error, its
	// callback; pend is what the socket did not take, for flushPending.
	tw    []byte
	twn   int
	twErr error
	twFn  func(uintptr) bool
	pend  []byte
}

func newTCPTransport(nc net.Conn, s *Server) *tcpTransport {
	return &tcpTransport{srv: s, pools: s.pools, nc: nc, closer: nc, remote: nc.RemoteAddr()}
}

// waitReadable waits for the next frame under the read deadline, without
// holding a buffer while it waits: its callback reads into a pooled
// buffer, kept in t.pre if bytes came, given back if none had (the
// runtime then waits for readability and calls it again). A read error or
// the end of the stream is returned as the read's. The reads are raw
// system calls (internal/rawio): the socket is non-blocking.
func (t *tcpTransport) waitReadable() error {
	if t.waitFn == nil {
		t.waitFn = func(fd uintptr) bool {
			buf := preBufs.Get().(*[]byte)
			for {
				n, err := rawio.Read(fd, *buf)
				switch {
				case n > 0:
					t.preBuf, t.pre = buf, (*buf)[:n]
					return true
				case err == syscall.EINTR:
					continue
				}
				preBufs.Put(buf)
				switch {
				case err == syscall.EAGAIN:
					return false
				case err == nil:
					t.waitErr = io.EOF
				default:
					t.waitErr = os.NewSyscallError("read", err)
				}
				return true
			}
		}
	}
	t.waitErr = nil
	if err := t.rc.Read(t.waitFn); err != nil {
		return err
	}
	return t.waitErr
}

// preBufs are waitReadable's read buffers: held only from a frame's
// arrival until its bytes are handed to the frame reader.
var preBufs = sync.Pool{New: func() any {
	b := make([]byte, preBufSize)
	return &b
}}

// preBufSize is the most waitReadable reads at once: a typical request
// whole, the rest of a bigger one comes through the frame reader.
const preBufSize = 2 << 10

func (t *tcpTransport) name() string { return "tcp" }

func (t *tcpTransport) remoteAddr() net.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remote
}

// handshake reads the PROXY header of a connection from a trusted proxy
// (the client's address from then on), then starts TLS if configured (the
// TLS handshake itself happens on the first read, under its deadline).
func (t *tcpTransport) handshake() error {
	s := t.srv
	nc := t.nc
	// Every read and write of the connection is a raw system call
	// (internal/rawio), under the PROXY header and TLS too.
	var rw *rawio.Conn
	if tc, ok := nc.(*net.TCPConn); ok {
		if rw = rawio.New(tc); rw != nil {
			nc = rw
		}
	}
	if s.trusted.ContainsAddr(nc.RemoteAddr()) {
		pc, _, err := realip.Accept(nc, s.opts.ProxyTimeout)
		if err != nil {
			return fmt.Errorf("from trusted proxy %s: %w", nc.RemoteAddr(), err)
		}
		nc = pc
	}
	if s.tlsConfig != nil {
		nc = tls.Server(nc, s.tlsConfig)
	}
	if rw != nil && nc == net.Conn(rw) {
		t.rc = rw.RawConn() // plain TCP: see waitReadable and tryWrite
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return net.ErrClosed
	}
	t.nc, t.closer, t.remote = nc, nc, nc.RemoteAddr()
	return nil
}

// Read feeds r: first what was read before it was taken, then the socket.
func (t *tcpTransport) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(t.pre) > 0 {
		n := copy(p, t.pre)
		t.pre = t.pre[n:]
		t.given += int64(n)
		if len(t.pre) == 0 {
			t.dropPre()
		}
		t.framing = true
		return n, nil
	}
	if t.framing && !t.frameSet {
		// The frame goes on past what has arrived: the rest is due
		// within frameTimeout.
		t.frameSet = true
		t.rdl.Forget()
		if err := t.nc.SetReadDeadline(time.Now().Add(t.frameTimeout)); err != nil {
			return 0, err
		}
	}
	n, err := t.nc.Read(p)
	t.given += int64(n)
	if n > 0 {
		t.framing = true
	}
	return n, err
}

// dropPre gives back waitReadable's buffer.
func (t *tcpTransport) dropPre() {
	if t.preBuf != nil {
		preBufs.Put(t.preBuf)
		t.preBuf = nil
	}
	t.pre = nil
}

func (t *tcpTransport) readRequest(idle time.Time, frameTimeout time.Duration) (method, payload []byte, err error) {
	// Bytes buffered in r are the next frame's first.
	t.framing, t.frameSet, t.frameTimeout = t.r != nil, false, frameTimeout
	if t.r == nil {
		// At least idle, at most half an idle timeout later: a
		// connection busy with small requests moves it once per half an
		// idle timeout rather than twice per request.
		if err := t.rdl.Extend(t.nc.SetReadDeadline, idle); err != nil {
			return nil, nil, err
		}
		// Wait for the next frame without a buffer.
		if t.rc != nil {
			if err := t.waitReadable(); err != nil {
				return nil, nil, err
			}
		} else {
			// A one-byte read.
			n, err := t.nc.Read(t.first[:])
			if n == 0 {
				if err == nil {
					err = io.ErrNoProgress
				}
				return nil, nil, err
			}
			t.pre = t.first[:1]
		}
		t.r = t.pools.readers.Get().(*frame.Reader)
		t.r.Reset(t)
		t.given, t.used = 0, 0
	}
	method, payload, err = t.r.ReadRequest()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if !t.framing {
			// Not a byte came (a readiness with nothing to read): the
			// idle deadline passed.
			return nil, nil, err
		}
		return nil, nil, errFrameTimeout
	}
	if err == nil {
		n := int64(frame.MinFrame + 4 + len(method) + len(payload))
		t.used += n
		if n > int64(t.pools.readSize) {
			t.big = true
		}
	}
	return method, payload, err
}

func (t *tcpTransport) release() {
	if t.r != nil && t.given == t.used && len(t.pre) == 0 {
		t.dropReader()
	}
}

func (t *tcpTransport) dropReader() {
	if t.r == nil {
		return
	}
	t.r.Reset(nil)
	if !t.big {
		t.pools.readers.Put(t.r)
	}
	t.dropPre()
	t.r, t.big = nil, false
}

func (t *tcpTransport) beginWrite(at time.Time) {
	// At least at, at most half a write timeout later: a busy
	// connection moves its write deadline once per half a write timeout,
	// not once per batch.
	_ = t.wdl.Extend(t.nc.SetWriteDeadline, at)
	if t.w == nil {
		t.w = t.pools.writers.Get().(*frame.Writer)
		t.w.Reset(t.nc)
	}
}

func (t *tcpTransport) writeResponse(errStr string, payload []byte) error {
	return t.w.WriteResponse(errStr, payload)
}

func (t *tcpTransport) writeFrame(b []byte) error { return t.w.WriteFrame(b) }

func (t *tcpTransport) flush() error {
	if t.w == nil {
		return nil
	}
	err := t.w.Flush()
	t.dropWriter()
	return err
}

func (t *tcpTransport) dropWriter() {
	if t.w == nil {
		return
	}
	t.w.Reset(nil)
	t.pools.writers.Put(t.w)
	t.w = nil
}

func (t *tcpTransport) tryWrite(b []byte) (int, bool, error) {
	if t.rc == nil || len(t.pend) > 0 {
		return 0, false, nil
	}
	if t.twFn == nil {
		t.twFn = func(fd uintptr) bool {
			for t.twn < len(t.tw) {
				n, err := rawio.Write(fd, t.tw[t.twn:])
				switch {
				case n > 0:
					t.twn += n
				case err == syscall.EINTR:
				case err == syscall.EAGAIN:
					return true // never wait: the rest is flushPending's
				case err == nil:
					t.twErr = io.ErrShortWrite
					return true
				default:
					t.twErr = os.NewSyscallError("write", err)
					return true
				}
			}
			return true
		}
	}
	t.tw, t.twn, t.twErr = b, 0, nil
	err := t.rc.Write(t.twFn)
	n := t.twn
	t.tw = nil
	if err != nil {
		// The runtime did not call back (e.g. a past write deadline):
		// nothing was written.
		return 0, false, nil
	}
	if t.twErr != nil {
		return 0, true, t.twErr
	}
	t.pend = append(t.pend[:0], b[n:]...)
	return len(t.pend), true, nil
}

func (t *tcpTransport) flushPending(at time.Time) (int, error) {
	n := len(t.pend)
	if n == 0 {
		return 0, nil
	}
	_ = t.wdl.Extend(t.nc.SetWriteDeadline, at)
	_, err := t.nc.Write(t.pend)
	t.pend = nil
	return n, err
}

func (t *tcpTransport) close() {
	t.mu.Lock()
	t.closed = true
	c := t.closer
	t.mu.Unlock()
	_ = c.Close()
}

// wsTransport is a connection over WebSocket: one binary message carries one
// whole frame, TotalLen included, each way.
type wsTransport struct {
	ws   *websocket.Conn
	addr net.Addr
	lim  frame.Limits
	// rc is the hijacked TCP connection's, for tryWrite (nil: behind TLS,
	// or not TCP: never inline).
	rc syscall.RawConn

	// rbuf holds the last message read, until release.
	rbuf *frame.Buffer

	// The connection's read and write contexts, made once: the library
	// closes the connection when the context of a read or write ends, so
	// each needs no fresh one; a timer of each, reset per message (read:
	// the idle deadline, then frameTimeout) or per batch (write), ends it
	// with its cause. (A context and two timers per message cost the
	// WebSocket path ~2 us of CPU a request.)
	rctx    context.Context
	rcancel context.CancelCauseFunc
	rtimer  *time.Timer
	rcause  atomic.Pointer[error] // what rtimer ends rctx with
	wctx    context.Context
	wcancel context.CancelFunc
	wtimer  *time.Timer
}

func newWSTransport(ws *websocket.Conn, addr net.Addr, lim frame.Limits, raw net.Conn) *wsTransport {
	// The library's limit is on the whole message: MaxFrame plus TotalLen.
	// Reading stops there and the connection is closed with 1009.
	ws.SetReadLimit(int64(lim.MaxFrame) + 4)
	t := &wsTransport{ws: ws, addr: addr, lim: lim}
	switch c := raw.(type) {
	case *rawio.Conn:
		t.rc = c.RawConn()
	case *net.TCPConn:
		if rc, err := c.SyscallConn(); err == nil {
			t.rc = rc
		}
	}
	return t
}

// wsInlineMax bounds what tryWrite writes at once: well under the
// smallest default TCP send buffer (16 KiB), so that a write into an
// empty send queue cannot block.
const wsInlineMax = 8 << 10

// tryWrite writes b, whole response frames, one message each, when the
// socket's send queue is empty (the client has taken everything sent so
// far), and otherwise declines: the library's writes block, and the
// caller must not wait for a client. It never keeps anything.
func (t *wsTransport) tryWrite(b []byte) (int, bool, error) {
	if t.rc == nil || len(b) > wsInlineMax || !sendQueueEmpty(t.rc) {
		return 0, false, nil
	}
	for len(b) >= 4 {
		n := 4 + int(binary.BigEndian.Uint32(b))
		// A context that never ends: no timer, and the socket has room.
		if err := t.ws.Write(context.Background(), websocket.MessageBinary, b[:n]); err != nil {
			return 0, true, err
		}
		b = b[n:]
	}
	return 0, true, nil
}

// hijackRecorder is the http.ResponseWriter given to websocket.Accept: it
// keeps the connection the library hijacks, for tryWrite.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// Hijack hijacks the underlying connection and records it.
func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := h.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("edge: the response writer cannot hijack")
	}
	c, rw, err := hj.Hijack()
	h.conn = c
	return c, rw, err
}

func (t *wsTransport) name() string         { return "ws" }
func (t *wsTransport) remoteAddr() net.Addr { return t.addr }

// handshake has nothing to do: the upgrade request was read already.
func (t *wsTransport) handshake() error { return nil }

// readRequest reads one message: its first frame header must arrive by
// idle, the whole message within frameTimeout of it.
func (t *wsTransport) readRequest(idle time.Time, frameTimeout time.Duration) (method, payload []byte, err error) {
	t.release()
	if t.rctx == nil {
		t.rctx, t.rcancel = context.WithCancelCause(context.Background())
		t.rtimer = time.AfterFunc(time.Hour, func() { t.rcancel(*t.rcause.Load()) })
	}
	ctx := t.rctx
	t.rcause.Store(&errIdle)
	t.rtimer.Reset(time.Until(idle))
	defer t.rtimer.Stop()
	typ, r, err := t.ws.Reader(ctx)
	if err != nil {
		return nil, nil, wsReadError(ctx, err)
	}
	t.rtimer.Stop()
	t.rcause.Store(&errFrameTimeout)
	t.rtimer.Reset(frameTimeout)
	if typ != websocket.MessageBinary {
		return nil, nil, errTextMessage
	}
	t.rbuf = frame.GetBuffer()
	method, payload, err = readWSMessage(r, t.rbuf, t.lim)
	if err != nil {
		return nil, nil, wsReadError(ctx, err)
	}
	return method, payload, nil
}

// readWSMessage decodes one WebSocket message r carrying a whole request
// frame into b. TotalLen is read and checked first, so an oversized frame is
// answered without buffering it; b then grows only as bytes arrive (as
// frame.Reader does), so announcing a big frame and sending little costs
// the sender what it sent, not what it announced; the message must then end
// after exactly TotalLen bytes.
func readWSMessage(r io.Reader, b *frame.Buffer, lim frame.Limits) (method, payload []byte, err error) {
	b.B = slices.Grow(b.B[:0], 4)[:4]
	if n, err := io.ReadFull(r, b.B); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			_, _, err = frame.DecodeRequestFrame(b.B[:n], lim) // too short
		}
		return nil, nil, err
	}
	total := int64(int32(binary.BigEndian.Uint32(b.B)))
	if total < frame.MinFrame || total > int64(lim.MaxFrame) {
		_, _, err = frame.DecodeRequestFrame(b.B, lim) // checks TotalLen first
		return nil, nil, err
	}
	want := 4 + int(total)
	for len(b.B) < want {
		if len(b.B) == cap(b.B) {
			grown := make([]byte, len(b.B), min(want, max(2*cap(b.B), wsGrowChunk)))
			copy(grown, b.B)
			b.B = grown
		}
		n, err := r.Read(b.B[len(b.B):min(want, cap(b.B))])
		b.B = b.B[:len(b.B)+n]
		if err == io.EOF {
			_, _, err = frame.DecodeRequestFrame(b.B, lim) // inconsistent
			return nil, nil, err
		}
		if err != nil {
			return nil, nil, err
		}
	}
	// The message must end here.
	extra, err := io.Copy(io.Discard, r)
	if err != nil {
		return nil, nil, err
	}
	if extra > 0 {
		return nil, nil, &frame.Error{Kind: frame.ErrInconsistent, Field: "frame", Len: total, Bound: total + extra}
	}
	return frame.DecodeRequestFrame(b.B, lim)
}

// wsGrowChunk is the first size a WebSocket message's buffer grows to past
// the pooled buffer, 64 KiB, as frame.Reader's: an honest large frame needs
// a few growth steps, a frame announced and not sent gains its sender
// little.
const wsGrowChunk = 64 << 10

// wsReadError maps the library's errors onto the transport contract; a
// read ended by ctx (cancelled with a cause by a timer) gets the cause.
func wsReadError(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return os.ErrDeadlineExceeded
	case websocket.CloseStatus(err) == websocket.StatusNormalClosure,
		websocket.CloseStatus(err) == websocket.StatusGoingAway:
		return io.EOF
	}
	return err
}

func (t *wsTransport) release() {
	if t.rbuf != nil {
		frame.PutBuffer(t.rbuf)
		t.rbuf = nil
	}
}

func (t *wsTransport) dropReader() { t.release() }

// errIdle is the cause the read timer ends a WebSocket's read context with
// while it waits for a message.
var errIdle = os.ErrDeadlineExceeded

func (t *wsTransport) beginWrite(deadline time.Time) {
	if t.wctx == nil {
		t.wctx, t.wcancel = context.WithCancel(context.Background())
		t.wtimer = time.AfterFunc(time.Hour, t.wcancel)
	}
	t.wtimer.Reset(time.Until(deadline))
}

func (t *wsTransport) writeResponse(errStr string, payload []byte) error {
	b := frame.GetBuffer()
	b.B = frame.AppendResponse(b.B, errStr, payload)
	err := t.writeFrame(b.B)
	frame.PutBuffer(b)
	return err
}

func (t *wsTransport) writeFrame(b []byte) error {
	err := t.ws.Write(t.wctx, websocket.MessageBinary, b)
	if err != nil && t.wctx.Err() != nil {
		return os.ErrDeadlineExceeded
	}
	return err
}

func (t *wsTransport) flush() error {
	// Every message was flushed as it was written.
	t.dropWriter()
	return nil
}

func (t *wsTransport) dropWriter() {
	if t.wtimer != nil {
		t.wtimer.Stop()
	}
}

func (t *wsTransport) flushPending(time.Time) (int, error) { return 0, nil }

func (t *wsTransport) close() { _ = t.ws.CloseNow() }
