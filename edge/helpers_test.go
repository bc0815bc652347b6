package edge

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// testHandler serves the methods the tests use:
//
//	echo      reply with the payload
//	sleep     payload "<ms>" or "<ms>:<tag>": sleep (or until cancelled), reply with the payload
//	fail      fail with wire.Parse(payload)
//	coded     fail with a WireCoder error whose code is "not_found" and text the payload
//	panic     panic
//	auth      Authenticate(payload)
//	bye       Close the connection, then reply with the payload
//	pushon    SetPush(true)
//	push      payload "<n>": push n "test.Event" frames, reply with how many were queued
//	block     wait until release is closed (or cancelled), tracking how many run at once
//	big       reply with a payload of <payload> bytes
//	remote    reply with the connection's RemoteAddr
//	edge.Hello  Server.Hello, with broker id "b1"
type testHandler struct {
	srv *Server

	opens, closes atomic.Int64
	refuse        atomic.Bool // Open fails

	running, maxRunning atomic.Int64
	release             chan struct{}
}

func newTestHandler() *testHandler {
	return &testHandler{release: make(chan struct{})}
}

func (h *testHandler) Open(c *Conn) error {
	h.opens.Add(1)
	if h.refuse.Load() {
		return errors.New("refused")
	}
	return nil
}

func (h *testHandler) Close(c *Conn) { h.closes.Add(1) }

type notFoundErr string

func (e notFoundErr) Error() string    { return string(e) }
func (e notFoundErr) WireCode() string { return "not_found" }

func (h *testHandler) Request(ctx context.Context, c *Conn, method string, payload []byte) ([]byte, error) {
	switch method {
	case "echo":
		return payload, nil
	case "sleep":
		ms, _, _ := strings.Cut(string(payload), ":")
		n, err := strconv.Atoi(ms)
		if err != nil {
			return nil, err
		}
		select {
		case <-time.After(time.Duration(n) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return payload, nil
	case "fail":
		return nil, wire.Parse(string(payload))
	case "coded":
		return nil, notFoundErr(payload)
	case "panic":
		panic("boom")
	case "auth":
		c.Authenticate(string(payload))
		return nil, nil
	case "bye":
		c.Close("bye")
		time.Sleep(20 * time.Millisecond)
		return payload, nil
	case "pushon":
		c.SetPush(true)
		return nil, nil
	case "push":
		n, _ := strconv.Atoi(string(payload))
		queued := 0
		for i := range n {
			if c.Push("test.Event", []byte(strconv.Itoa(i))) {
				queued++
			}
		}
		return []byte(strconv.Itoa(queued)), nil
	case "block":
		n := h.running.Add(1)
		for {
			m := h.maxRunning.Load()
			if n <= m || h.maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		defer h.running.Add(-1)
		select {
		case <-h.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return payload, nil
	case "big":
		n, _ := strconv.Atoi(string(payload))
		return make([]byte, n), nil
	case "remote":
		return []byte(c.RemoteAddr().String()), nil
	case wire.MethodHello:
		_, reply, err := h.srv.Hello(c, payload)
		if err != nil {
			return nil, err
		}
		reply.BrokerID = "b1"
		return thriftx.Marshal(reply)
	}
	return nil, wire.Errorf(wire.CodeUnknownMethod, "%s", method)
}

// testOptions are fast defaults for tests: both listeners on 127.0.0.1
// port 0.
func testOptions() Options {
	o := NewOptions()
	o.TCPAddr = "127.0.0.1:0"
	o.WSAddr = "127.0.0.1:0"
	o.Rate = 0 // TestRateLimit turns it on
	return o
}

// mustStart starts a server with opts (after edit, if not nil) and the test
// handler, and stops it when the test ends.
func mustStart(t testing.TB, edit func(*Options)) (*Server, *testHandler) {
	t.Helper()
	h := newTestHandler()
	return startWith(t, edit, h, h), h
}

// startWith starts a server with opts (after edit, if not nil) and handler
// h, whose test handler th it is told of, and stops it when the test ends.
func startWith(t testing.TB, edit func(*Options), h Handler, th *testHandler) *Server {
	t.Helper()
	o := testOptions()
	if edit != nil {
		edit(&o)
	}
	s, err := New(o, h, testenv.Logger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	th.srv = s
	done := make(chan error, 1)
	go func() { done <- s.Main() }()
	t.Cleanup(func() {
		s.Exit()
		if err := <-done; err != nil {
			t.Errorf("Main: %v", err)
		}
	})
	return s
}

// checkFor polls cond every 5 ms until it holds or d passes.
func checkFor(t testing.TB, d time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, append([]any{d}, args...)...)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// transports is what the transport-independent tests run over.
var transports = []string{"tcp", "ws"}

// rawConn is a test client that sends raw bytes and reads whole frames,
// over TCP or WebSocket (one message per frame).
type rawConn struct {
	t   testing.TB
	tcp net.Conn
	r   *frame.Reader
	ws  *websocket.Conn
}

// dial opens a raw connection to s over transport.
func dial(t testing.TB, s *Server, transport string) *rawConn {
	t.Helper()
	c := &rawConn{t: t}
	switch transport {
	case "tcp":
		nc, err := net.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatalf("dial tcp: %v", err)
		}
		c.tcp = nc
		c.r = frame.NewReader(nc, frame.Limits{MaxFrame: 4 << 20})
	case "ws":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+s.WSAddr().String()+s.opts.WSPath, nil)
		if err != nil {
			t.Fatalf("dial ws: %v", err)
		}
		ws.SetReadLimit(4 << 20)
		c.ws = ws
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	t.Cleanup(c.close)
	return c
}

func (c *rawConn) close() {
	if c.tcp != nil {
		_ = c.tcp.Close()
	}
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
}

// send writes b, as one WebSocket message over ws.
func (c *rawConn) send(b []byte) error {
	if c.tcp != nil {
		_, err := c.tcp.Write(b)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageBinary, b)
}

// sendReq sends a request frame.
func (c *rawConn) sendReq(method, payload string) {
	c.t.Helper()
	if err := c.send(frame.AppendRequest(nil, method, []byte(payload))); err != nil {
		c.t.Fatalf("send %s: %v", method, err)
	}
}

// recv reads the next response or push frame within d.
func (c *rawConn) recvWithin(d time.Duration) (first, payload string, err error) {
	if c.tcp != nil {
		_ = c.tcp.SetReadDeadline(time.Now().Add(d))
		f, p, err := c.r.ReadResponse()
		return string(f), string(p), err
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	typ, msg, err := c.ws.Read(ctx)
	if err != nil {
		return "", "", err
	}
	if typ != websocket.MessageBinary {
		return "", "", fmt.Errorf("got a %v message", typ)
	}
	f, p, err := frame.DecodeResponseFrame(msg, frame.Limits{MaxFrame: 4 << 20})
	return string(f), string(p), err
}

func (c *rawConn) recv() (first, payload string, err error) { return c.recvWithin(5 * time.Second) }

// mustRecv reads the next frame and checks its first string and payload.
func (c *rawConn) mustRecv(wantFirst, wantPayload string) {
	c.t.Helper()
	f, p, err := c.recv()
	if err != nil {
		c.t.Fatalf("recv: %v (want %q %q)", err, wantFirst, wantPayload)
	}
	if f != wantFirst || p != wantPayload {
		c.t.Fatalf("got (%q, %q), want (%q, %q)", f, wire.Snippet(p), wantFirst, wire.Snippet(wantPayload))
	}
}

// call sends a request and returns its reply.
func (c *rawConn) call(method, payload string) (errStr, reply string) {
	c.t.Helper()
	c.sendReq(method, payload)
	f, p, err := c.recv()
	if err != nil {
		c.t.Fatalf("call %s: %v", method, err)
	}
	return f, p
}

// mustCall sends a request and checks that it succeeds with want.
func (c *rawConn) mustCall(method, payload, want string) {
	c.t.Helper()
	c.sendReq(method, payload)
	c.mustRecv("", want)
}

// expectClosed checks that the server closes the connection within d
// without sending anything more.
func (c *rawConn) expectClosed(d time.Duration) {
	c.t.Helper()
	f, p, err := c.recvWithin(d)
	if err == nil {
		c.t.Fatalf("got frame (%q, %q), want the connection closed", f, wire.Snippet(p))
	}
	if c.tcp != nil && !errors.Is(err, io.EOF) && !isReset(err) {
		c.t.Fatalf("got %v, want EOF", err)
	}
	if c.ws != nil && errors.Is(err, context.DeadlineExceeded) {
		c.t.Fatalf("connection still open after %v", d)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !ne.Timeout()
}

// header builds raw frame bytes from int32 fields and strings.
func header(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			b = binary.BigEndian.AppendUint32(b, uint32(int32(v)))
		case string:
			b = append(b, v...)
		case []byte:
			b = append(b, v...)
		}
	}
	return b
}

// monitor runs echo round trips on its own connection until stopped, and
// reports how many it made and the slowest: the proof that one bad
// connection does not hold up the others.
type monitor struct {
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	n       int
	slowest time.Duration
	err     error
}

func startMonitor(t testing.TB, s *Server, transport string) *monitor {
	c := dial(t, s, transport)
	c.mustCall("auth", "monitor", "")
	m := &monitor{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for i := 0; ; i++ {
			select {
			case <-m.stop:
				return
			default:
			}
			start := time.Now()
			want := strconv.Itoa(i)
			err := c.send(frame.AppendRequest(nil, "echo", []byte(want)))
			var f, p string
			if err == nil {
				f, p, err = c.recv()
			}
			if err == nil && (f != "" || p != want) {
				err = fmt.Errorf("echo %s: got (%q, %q)", want, f, p)
			}
			m.mu.Lock()
			m.n++
			m.slowest = max(m.slowest, time.Since(start))
			if err != nil {
				m.err = err
			}
			m.mu.Unlock()
			if err != nil {
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return m
}

// finish stops the monitor and checks that its round trips kept going and
// stayed fast.
func (m *monitor) finish(t testing.TB, limit time.Duration) {
	t.Helper()
	checkFor(t, 2*time.Second, func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.n >= 5 || m.err != nil
	}, "monitor connection stalled")
	close(m.stop)
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	t.Logf("monitor connection: %d round trips meanwhile, slowest %v", m.n, m.slowest)
	if m.err != nil {
		t.Fatalf("monitor connection: %v", m.err)
	}
	if m.n < 5 {
		t.Fatalf("monitor connection made only %d round trips", m.n)
	}
	if m.slowest > limit {
		t.Fatalf("monitor connection: slowest round trip %v, want under %v", m.slowest, limit)
	}
}
