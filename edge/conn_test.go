package edge

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/frame"
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// TestPipelineOrder sends 1,000 pipelined requests with random sleeps on one
// connection: they complete out of order, the replies come back in order.
func TestPipelineOrder(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s, _ := mustStart(t, nil)
			c := dial(t, s, tr)
			const n = 1000
			sendErr := make(chan error, 1)
			go func() {
				var buf []byte
				for i := range n {
					payload := fmt.Sprintf("%d:%d", rand.IntN(4), i)
					buf = frame.AppendRequest(buf, "sleep", []byte(payload))
					if tr == "ws" || i%10 == 9 || i == n-1 {
						if err := c.send(buf); err != nil {
							sendErr <- err
							return
						}
						buf = buf[:0]
					}
				}
				sendErr <- nil
			}()
			for i := range n {
				f, p, err := c.recv()
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				_, tag, _ := strings.Cut(p, ":")
				if f != "" || tag != strconv.Itoa(i) {
					t.Fatalf("reply %d: got (%q, %q), want tag %d", i, f, p, i)
				}
			}
			if err := <-sendErr; err != nil {
				t.Fatal(err)
			}
			if got := s.Stats().Requests; got != n {
				t.Fatalf("Stats.Requests = %d, want %d", got, n)
			}
		})
	}
}

// TestBadFrames sends malformed frames, each after a slow valid request:
// the valid reply comes first, then "bad_frame: ...", then the connection
// closes, while another connection's round trips keep coming.
func TestBadFrames(t *testing.T) {
	type badCase struct {
		name  string
		bytes []byte
		text  bool // send as a WebSocket text message
		want  string
		only  string // run over this transport only
	}
	cases := []badCase{
		{name: "oversized", bytes: header(frame.DefaultMaxFrame + 1),
			want: "bad_frame: frame length 1048577 exceeds maximum 1048576"},
		{name: "negative", bytes: header(-5),
			want: "bad_frame: negative frame length -5"},
		{name: "too short", bytes: header(4, 0),
			want: "bad_frame: frame length 4 is below minimum 8"},
		{name: "method too long", bytes: header(12, 200, "12345678"),
			want: "bad_frame: method length 200 exceeds maximum 128"},
		{name: "method over frame", bytes: header(12, 100, "12345678"),
			want: "bad_frame: method length 100 exceeds the 4 bytes left in the frame"},
		{name: "payload over frame", bytes: header(16, 4, "ping", 10, "abcd"),
			want: "bad_frame: payload length 10 exceeds the 4 bytes left in the frame"},
		{name: "payload short of frame", bytes: header(16, 4, "ping", 1, "abcd"),
			want: "bad_frame: payload length 1 leaves 3 trailing bytes in the frame"},
		{name: "negative payload", bytes: header(16, 4, "ping", -1, "abcd"),
			want: "bad_frame: negative payload length -1"},
		{name: "garbage", bytes: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
			want: "bad_frame: frame length 1195725856 exceeds maximum 1048576"},
		{name: "cut off", only: "tcp", bytes: header(20, 4, "ping", 8, "ab"),
			want: "bad_frame: connection closed inside a frame"},
		{name: "cut off", only: "ws", bytes: header(20, 4, "ping", 8, "ab"),
			want: "bad_frame: frame length 20 does not match the 14 bytes after it in the message"},
		{name: "message longer than frame", only: "ws", bytes: header(12, 4, "ping", 0, "trailing"),
			want: "bad_frame: frame length 12 does not match the 20 bytes after it in the message"},
		{name: "message shorter than length", only: "ws", bytes: []byte{0, 0},
			want: "bad_frame: message of 2 bytes is shorter than the 4-byte frame length"},
		{name: "text message", only: "ws", bytes: header(12, 4, "ping", 0), text: true,
			want: "bad_frame: text message, want one binary message per frame"},
	}
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s, _ := mustStart(t, nil)
			m := startMonitor(t, s, tr)
			ran := 0
			for _, tc := range cases {
				if tc.only != "" && tc.only != tr {
					continue
				}
				ran++
				t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
					c := dial(t, s, tr)
					c.sendReq("sleep", "30:first")
					var err error
					switch {
					case tc.text:
						err = c.ws.Write(context.Background(), 1, tc.bytes)
					default:
						err = c.send(tc.bytes)
					}
					if err != nil {
						t.Fatal(err)
					}
					if tc.name == "cut off" && tr == "tcp" {
						_ = c.tcp.(*net.TCPConn).CloseWrite()
					}
					c.mustRecv("", "30:first")
					c.mustRecv(tc.want, "")
					c.expectClosed(5 * time.Second)
				})
			}
			m.finish(t, time.Second)
			checkFor(t, 5*time.Second, func() bool { return s.Stats().BadFrames == uint64(ran) },
				"Stats.BadFrames = %d, want %d", s.Stats().BadFrames, ran)
		})
	}
}

// TestOversizedWebSocketMessage: a message announcing a frame over MaxFrame
// is answered bad_frame without being read; one over MaxFrame+4 bytes is cut
// off by the WebSocket read limit and the connection closed.
func TestOversizedWebSocketMessage(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) { o.MaxFrame = 1024 })
	c := dial(t, s, "ws")
	body := make([]byte, 2000)
	// The TotalLen prefix is honest here, so only the size is wrong.
	msg := frame.AppendRequest(nil, "echo", body)
	if err := c.send(msg); err != nil {
		t.Fatal(err)
	}
	// The frame length is checked before the body is read.
	c.mustRecv("bad_frame: frame length 2012 exceeds maximum 1024", "")
	c.expectClosed(5 * time.Second)

	// A message whose TotalLen is small but which goes on past the read
	// limit is cut off by the library: closed without a reply.
	c = dial(t, s, "ws")
	msg = append(header(12, 4, "echo", 0), body...)
	if err := c.send(msg); err != nil {
		t.Fatal(err)
	}
	c.expectClosed(5 * time.Second)
}

// TestSlowWriter: a client sending one byte per 50 ms never completes a
// frame within FrameTimeout and is closed, without a reply and without
// holding up another connection, however long IdleTimeout is.
func TestSlowWriter(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) { o.FrameTimeout = 300 * time.Millisecond })
	m := startMonitor(t, s, "tcp")
	c := dial(t, s, "tcp")
	msg := frame.AppendRequest(nil, "echo", []byte("hello, slowly"))
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for _, b := range msg {
			if _, err := c.tcp.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.expectClosed(5 * time.Second)
	took := time.Since(start)
	<-closed
	if took < 250*time.Millisecond || took > 2*time.Second {
		t.Fatalf("closed after %v, want about 300ms", took)
	}
	m.finish(t, time.Second)
	if got := s.Stats().FrameTimeouts; got != 1 {
		t.Fatalf("Stats.FrameTimeouts = %d, want 1", got)
	}
}

// TestIdleTimeout: a silent connection is closed after IdleTimeout; one
// that keeps sending stays.
func TestIdleTimeout(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s, _ := mustStart(t, func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
			idle := dial(t, s, tr)
			busy := dial(t, s, tr)
			start := time.Now()
			for time.Since(start) < 500*time.Millisecond {
				busy.mustCall("echo", "x", "x")
				time.Sleep(50 * time.Millisecond)
			}
			idle.expectClosed(time.Second)
			busy.mustCall("echo", "still here", "still here")
			if got := s.Stats().IdleTimeouts; got != 1 {
				t.Fatalf("Stats.IdleTimeouts = %d, want 1", got)
			}
		})
	}
}

// TestAuthTimeout: an unauthenticated connection is closed after
// AuthTimeout even while it sends requests; an authenticated one stays.
func TestAuthTimeout(t *testing.T) {
	s, h := mustStart(t, func(o *Options) { o.AuthTimeout = 150 * time.Millisecond })
	anon := dial(t, s, "tcp")
	user := dial(t, s, "tcp")
	user.mustCall("auth", "u1", "")
	anon.mustCall("echo", "a", "a")
	anon.expectClosed(2 * time.Second)
	time.Sleep(100 * time.Millisecond)
	user.mustCall("echo", "b", "b")
	if got := s.Stats().AuthTimeouts; got != 1 {
		t.Fatalf("Stats.AuthTimeouts = %d, want 1", got)
	}
	var uid string
	s.Range(func(c *Conn) bool {
		uid = c.UserID()
		return true
	})
	if uid != "u1" {
		t.Fatalf("UserID = %q, want u1", uid)
	}
	checkFor(t, 2*time.Second, func() bool { return h.closes.Load() == 1 }, "Handler.Close called %d times, want 1", h.closes.Load())
}

// TestRateLimit: requests over the token bucket are answered rate_limited
// and the connection kept.
func TestRateLimit(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) {
		o.Rate = 5
		o.Burst = 3
	})
	c := dial(t, s, "tcp")
	var buf []byte
	for i := range 10 {
		buf = frame.AppendRequest(buf, "echo", []byte(strconv.Itoa(i)))
	}
	if err := c.send(buf); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if i < 3 {
			c.mustRecv("", strconv.Itoa(i))
		} else {
			c.mustRecv("rate_limited: too many requests on this connection", "")
		}
	}
	time.Sleep(250 * time.Millisecond) // one token back
	c.mustCall("echo", "later", "later")
	if got := s.Stats().RateLimited; got != 7 {
		t.Fatalf("Stats.RateLimited = %d, want 7", got)
	}
}

// TestMaxInFlight: at most MaxInFlight requests of a connection run at once;
// the rest wait, and all replies come back in order.
func TestMaxInFlight(t *testing.T) {
	s, h := mustStart(t, func(o *Options) { o.MaxInFlight = 4 })
	c := dial(t, s, "tcp")
	var buf []byte
	for i := range 20 {
		buf = frame.AppendRequest(buf, "block", []byte(strconv.Itoa(i)))
	}
	if err := c.send(buf); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 5*time.Second, func() bool { return h.running.Load() == 4 }, "%d running, want 4", h.running.Load())
	time.Sleep(50 * time.Millisecond)
	if got := h.maxRunning.Load(); got != 4 {
		t.Fatalf("%d ran at once, want 4", got)
	}
	if got := s.Stats().Requests; got > 5 {
		t.Fatalf("the reader read %d requests while 4 were blocked, want at most 5", got)
	}
	close(h.release)
	for i := range 20 {
		c.mustRecv("", strconv.Itoa(i))
	}
	if got := h.maxRunning.Load(); got != 4 {
		t.Fatalf("%d ran at once, want 4", got)
	}
}

// TestMaxConnections: connections over the limit are answered
// "overloaded" in a frame and closed at once, over TCP and WebSocket.
func TestMaxConnections(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s, _ := mustStart(t, func(o *Options) { o.MaxConnections = 3 })
			var conns []*rawConn
			for range 3 {
				c := dial(t, s, tr)
				c.mustCall("echo", "x", "x")
				conns = append(conns, c)
			}
			extra := dial(t, s, tr)
			extra.mustRecv("overloaded: too many connections on this broker, try another", "")
			extra.expectClosed(2 * time.Second)
			if got := s.Stats().Rejected; got != 1 {
				t.Fatalf("Stats.Rejected = %d, want 1", got)
			}
			conns[0].close()
			checkFor(t, 2*time.Second, func() bool { return s.NumConns() == 2 }, "NumConns = %d, want 2", s.NumConns())
			dial(t, s, tr).mustCall("echo", "y", "y")
		})
	}
}

// TestPush: pushes reach only connections that enabled them; they are
// written before the reply of the request that pushed them.
func TestPush(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s, h := mustStart(t, nil)
			c := dial(t, s, tr)
			c.mustCall("push", "3", "0")
			c.mustCall("pushon", "", "")
			c.sendReq("push", "3")
			for i := range 3 {
				c.mustRecv("@test.Event", strconv.Itoa(i))
			}
			c.mustRecv("", "3")

			// Pushes from outside a request, while a request is in flight.
			c.sendReq("block", "held")
			checkFor(t, 5*time.Second, func() bool { return h.running.Load() == 1 }, "the request is not running")
			s.Range(func(cc *Conn) bool {
				if !cc.Push("room.Event", []byte("outside")) {
					t.Errorf("Push returned false")
				}
				return true
			})
			c.mustRecv("@room.Event", "outside")
			close(h.release)
			c.mustRecv("", "held")
		})
	}
}

// TestSlowConsumer: a client that never reads while pushes flood in is
// disconnected (queue full, or write timeout), and another connection is
// not held up.
func TestSlowConsumer(t *testing.T) {
	big := make([]byte, 256<<10)
	for _, tr := range transports {
		for _, mode := range []string{"queue full", "write timeout"} {
			t.Run(tr+"/"+strings.ReplaceAll(mode, " ", "_"), func(t *testing.T) {
				s, _ := mustStart(t, func(o *Options) {
					o.OutQueue = 8
					o.WriteTimeout = 300 * time.Millisecond
					if mode == "write timeout" {
						o.OutQueue = 1000
					}
				})
				m := startMonitor(t, s, tr)
				c := dial(t, s, tr)
				c.mustCall("pushon", "", "")
				var slow *Conn
				s.Range(func(cc *Conn) bool {
					if cc.PushEnabled() {
						slow = cc
					}
					return true
				})
				start := time.Now()
				pushed := 0
				for i := 0; i < 400 && slow.Push("flood", big); i++ {
					pushed++
					if mode == "write timeout" {
						time.Sleep(time.Millisecond) // never fill the queue
					}
				}
				checkFor(t, 5*time.Second, func() bool { return s.NumConns() == 1 }, "the slow client is still connected")
				t.Logf("%s: disconnected after %d pushes of %d KiB in %v", mode, pushed, len(big)>>10, time.Since(start))
				if got := s.Stats().SlowConsumers; got != 1 {
					t.Fatalf("Stats.SlowConsumers = %d, want 1", got)
				}
				if slow.Push("flood", big) {
					t.Fatal("Push to a closed connection returned true")
				}
				m.finish(t, time.Second)
			})
		}
	}
}

// TestHandlerErrors: what a handler's errors look like on the wire.
func TestHandlerErrors(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) { o.MaxFrame = 4096 })
	c := dial(t, s, "tcp")
	for _, tc := range []struct{ method, payload, want string }{
		{"fail", "not_found: no such room", "not_found: no such room"},
		{"fail", "overloaded", "overloaded"},
		{"fail", "disk on fire", "internal: disk on fire"},
		{"fail", "@room.Event", "internal: @room.Event"},
		{"fail", "open: not_found: x", "internal: open: not_found: x"},
		{"coded", "no such user", "not_found: no such user"},
		{"coded", "not_found: already prefixed", "not_found: already prefixed"},
		{"panic", "", "internal: panic serving panic"},
		{"nope", "", "unknown_method: nope"},
		{"big", "5000", "internal: reply of 5008 bytes exceeds the maximum frame of 4096 bytes"},
	} {
		if got, p := c.call(tc.method, tc.payload); got != tc.want || p != "" {
			t.Errorf("%s(%q): got (%q, %q), want %q", tc.method, tc.payload, got, p, tc.want)
		}
	}
	c.mustCall("echo", "still open", "still open")
	if got := s.Stats().Panics; got != 1 {
		t.Fatalf("Stats.Panics = %d, want 1", got)
	}
	long := strings.Repeat("x", 2000)
	if got, _ := c.call("fail", long); got != "internal: "+long[:1024-len("internal: ")] {
		t.Fatalf("long error: got %d bytes, want 1024", len(got))
	}
}

// TestHello: edge.Hello turns pushes on and reports the session and limits.
func TestHello(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) { o.MaxInFlight = 7 })
	c := dial(t, s, "ws")
	c.mustCall("auth", "u9", "")
	req, _ := thriftx.Marshal(&edgeapi.HelloRequest{ProtocolVersion: wire.ProtocolVersion, Push: true})
	errStr, payload := c.call(wire.MethodHello, string(req))
	if errStr != "" {
		t.Fatal(errStr)
	}
	var reply edgeapi.HelloReply
	if err := thriftx.Unmarshal([]byte(payload), &reply); err != nil {
		t.Fatal(err)
	}
	var id string
	s.Range(func(cc *Conn) bool {
		id = cc.ID()
		if !cc.PushEnabled() || cc.Transport() != "ws" {
			t.Errorf("push %v, transport %q", cc.PushEnabled(), cc.Transport())
		}
		return true
	})
	if reply.ProtocolVersion != wire.ProtocolVersion || reply.SessionID != id || reply.BrokerID != "b1" ||
		reply.GetUserID() != "u9" || reply.MaxFrame != DefaultMaxFrame || reply.MaxInFlight != 7 {
		t.Fatalf("reply %v", &reply)
	}
	bad, _ := thriftx.Marshal(&edgeapi.HelloRequest{ProtocolVersion: 99})
	if got, _ := c.call(wire.MethodHello, string(bad)); got != "bad_request: edge.Hello: protocol version 99 not supported, this broker speaks 1" {
		t.Fatalf("got %q", got)
	}
}

// TestDrain: notify reaches every connection, the request in flight is
// answered, then the connections close and no new ones are accepted.
func TestDrain(t *testing.T) {
	s, _ := mustStart(t, nil)
	var conns []*rawConn
	for _, tr := range transports {
		c := dial(t, s, tr)
		c.mustCall("pushon", "", "")
		c.sendReq("sleep", "200")
		conns = append(conns, c)
	}
	checkFor(t, 2*time.Second, func() bool { return s.Stats().InFlight == 2 }, "InFlight = %d, want 2", s.Stats().InFlight)
	payload, _ := thriftx.Marshal(&edgeapi.Draining{GraceMs: 1000})
	start := time.Now()
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		drained <- s.Drain(ctx, func(c *Conn) { c.Push(wire.EventDraining, payload) })
	}()
	for _, c := range conns {
		c.mustRecv("@"+wire.EventDraining, string(payload))
		c.mustRecv("", "200")
		c.expectClosed(2 * time.Second)
	}
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Fatalf("Drain returned after %v, before the request in flight finished", took)
	}
	if s.NumConns() != 0 {
		t.Fatalf("NumConns = %d after Drain", s.NumConns())
	}
	if nc, err := net.DialTimeout("tcp", s.TCPAddr().String(), time.Second); err == nil {
		_ = nc.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil {
			t.Fatalf("a new connection was served after Drain")
		}
		nc.Close()
	}
}

// TestDrainDeadline: Drain gives up waiting when ctx ends and closes all.
func TestDrainDeadline(t *testing.T) {
	s, _ := mustStart(t, nil)
	c := dial(t, s, "tcp")
	c.sendReq("sleep", "10000")
	checkFor(t, 2*time.Second, func() bool { return s.Stats().InFlight == 1 }, "InFlight = %d, want 1", s.Stats().InFlight)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.Drain(ctx, nil); err != context.DeadlineExceeded {
		t.Fatalf("Drain: %v, want deadline exceeded", err)
	}
	c.expectClosed(2 * time.Second)
}

// TestCloseFromBroker: Conn.Close writes what is ready, then closes;
// Handler.Open errors close the connection without calling Close.
func TestCloseFromBroker(t *testing.T) {
	s, h := mustStart(t, nil)
	c := dial(t, s, "tcp")
	c.mustCall("pushon", "", "")
	s.Range(func(cc *Conn) bool {
		cc.SetData("state")
		cc.Push("kicked", []byte("bye"))
		// Data is checked before Close: once closing, the writer may
		// finish the connection (which forgets Data) at any moment.
		if cc.Data() != "state" {
			t.Errorf("Data = %v", cc.Data())
		}
		cc.Close("kicked")
		return true
	})
	c.mustRecv("@kicked", "bye")
	c.expectClosed(2 * time.Second)
	checkFor(t, 2*time.Second, func() bool { return h.closes.Load() == 1 }, "closes = %d", h.closes.Load())

	// A handler closing its own connection still has its reply (and the
	// replies before it) sent.
	c = dial(t, s, "tcp")
	c.sendReq("sleep", "30:before")
	c.sendReq("bye", "see you")
	c.mustRecv("", "30:before")
	c.mustRecv("", "see you")
	c.expectClosed(2 * time.Second)

	h.refuse.Store(true)
	c2 := dial(t, s, "tcp")
	c2.expectClosed(2 * time.Second)
	checkFor(t, 2*time.Second, func() bool { return s.NumConns() == 0 }, "NumConns = %d", s.NumConns())
	if h.opens.Load() != 3 || h.closes.Load() != 2 {
		t.Fatalf("opens %d closes %d, want 3 and 2", h.opens.Load(), h.closes.Load())
	}
}

// TestClientHalfClose: a client that sends requests and shuts down its
// sending side still gets every reply before the close.
func TestClientHalfClose(t *testing.T) {
	s, _ := mustStart(t, nil)
	c := dial(t, s, "tcp")
	c.sendReq("sleep", "50:a")
	c.sendReq("echo", "b")
	_ = c.tcp.(*net.TCPConn).CloseWrite()
	c.mustRecv("", "50:a")
	c.mustRecv("", "b")
	c.expectClosed(2 * time.Second)
}

// TestExit: Exit closes everything, cancels running requests, and is
// idempotent.
func TestExit(t *testing.T) {
	s, _ := mustStart(t, nil)
	var wg sync.WaitGroup
	for _, tr := range transports {
		c := dial(t, s, tr)
		c.sendReq("sleep", "60000")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.expectClosed(5 * time.Second)
		}()
	}
	checkFor(t, 2*time.Second, func() bool { return s.Stats().InFlight == 2 }, "InFlight = %d", s.Stats().InFlight)
	start := time.Now()
	s.Exit()
	s.Exit()
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("Exit took %v", took)
	}
	wg.Wait()
	if st := s.Stats(); st.Conns != 0 || st.InFlight != 0 {
		t.Fatalf("after Exit: %+v", st)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := NewOptions().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		edit func(*Options)
		want string
	}{
		{func(o *Options) { o.TCPAddr, o.WSAddr = "", "" }, "tcp_addr"},
		{func(o *Options) { o.TCPAddr = "nope" }, "tcp_addr"},
		{func(o *Options) { o.WSPath = "ws" }, "ws_path"},
		{func(o *Options) { o.MaxFrame = 4 }, "max_frame"},
		{func(o *Options) { o.MaxMethod = 0 }, "max_method"},
		{func(o *Options) { o.MaxConnections = 0 }, "max_connections"},
		{func(o *Options) { o.MaxInFlight = 0 }, "max_in_flight"},
		{func(o *Options) { o.OutQueue = 0 }, "out_queue"},
		{func(o *Options) { o.Rate = -1 }, "rate"},
		{func(o *Options) { o.Burst = 0 }, "burst"},
		{func(o *Options) { o.IdleTimeout = 0 }, "idle_timeout"},
		{func(o *Options) { o.WriteTimeout = 0 }, "write_timeout"},
		{func(o *Options) { o.AuthTimeout = -1 }, "auth_timeout"},
		{func(o *Options) { o.ReadBuffer = 1 }, "read_buffer"},
		{func(o *Options) { o.TLS.CertFile = "x.pem" }, "tls.key_file"},
		{func(o *Options) { o.WSOrigins = nil }, "ws_origins"},
		{func(o *Options) { o.WSOrigins = []string{"ok.example", "[bad"} }, "ws_origins[1]"},
		{func(o *Options) { o.WSOrigins = []string{"a.example", "*"} }, "ws_origins[1]"},
		{func(o *Options) { o.TrustedProxies = []string{"10.0.0.0/8", "10.0.0.0/99"} }, "trusted_proxies[1]"},
		{func(o *Options) { o.TrustedProxies, o.ProxyTimeout = []string{"10.0.0.1"}, 0 }, "proxy_timeout"},
	} {
		o := NewOptions()
		tc.edit(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want+":") {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
	o := NewOptions()
	o.Rate = 0
	o.Burst = 0
	if err := o.Validate(); err != nil {
		t.Errorf("rate 0 (off) with burst 0: %v", err)
	}
	o = NewOptions()
	o.WSAddr, o.WSOrigins = "", nil
	if err := o.Validate(); err != nil {
		t.Errorf("no ws_origins without a WebSocket listener: %v", err)
	}
	o = NewOptions()
	o.WSOrigins = nil
	if err := o.Validate(); err == nil || !strings.HasPrefix(err.Error(), `config: ws_origins: must list the Origins whose pages may open a WebSocket`) {
		t.Errorf("empty ws_origins: %v", err)
	}
}
