package edge

import (
	"bufio"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/realip"
)

// heapInUse returns HeapInuse after a GC.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// pipelineNoRead opens n TCP connections (from local address from, ""
// for any) that each pipeline reqs echo requests of size bytes and never
// read a reply. It returns the connections, still writing in the
// background; the writes end when the connections close.
func pipelineNoRead(t *testing.T, s *Server, from string, n, reqs, size int) []net.Conn {
	return pipeline(t, s, "echo", from, n, reqs, size)
}

// pipeline is pipelineNoRead with requests of method.
func pipeline(t *testing.T, s *Server, method, from string, n, reqs, size int) []net.Conn {
	t.Helper()
	msg := frame.AppendRequest(nil, method, make([]byte, size))
	open := s.NumConns()
	var conns []net.Conn
	for range n {
		d := net.Dialer{}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		nc, err := d.Dial("tcp", s.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Small client buffers, so replies pile up on the broker's side
		// rather than in the client's kernel.
		_ = nc.(*net.TCPConn).SetReadBuffer(4096)
		t.Cleanup(func() { nc.Close() })
		conns = append(conns, nc)
	}
	// Every connection is admitted before any sends: past the edge's
	// budget, new ones would be refused.
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() >= open+n }, "NumConns = %d, want %d", s.NumConns(), open+n)
	for _, nc := range conns {
		go func() {
			for range reqs {
				if _, err := nc.Write(msg); err != nil {
					return
				}
			}
		}()
	}
	return conns
}

// TestBytesInFlightBounded is the attack of issue 14: connections that
// pipeline 1 MiB echo requests and never read took a broker's heap from 9
// to 522 MiB, because in-flight requests were bounded by count (64 per
// connection, each 1 MiB in and 1 MiB out) and a reply's slot was freed
// before the reply was written. Now a connection holds at most
// MaxInFlightBytes plus one frame read and its reply: the reader stops
// until replies are written.
func TestBytesInFlightBounded(t *testing.T) {
	const (
		conns  = 3
		size   = 1 << 20
		budget = 2 << 20
	)
	s, _ := mustStart(t, func(o *Options) {
		o.MaxFrame = 2 << 20
		o.MaxInFlightBytes = budget
		o.WriteTimeout = time.Minute // not the slow-consumer cut-off: the budget holds
		o.WSAddr = ""
	})
	before := heapInUse()
	pipelineNoRead(t, s, "", conns, 64, size)
	// Every reader ends up waiting for its replies to be written.
	checkFor(t, 20*time.Second, func() bool { return s.Stats().ByteWaits >= conns && s.Stats().InFlight == 0 },
		"ByteWaits = %d, InFlight = %d", s.Stats().ByteWaits, s.Stats().InFlight)
	perConn := int64(budget + 2*(size+64)) // the budget, the frame over it and its reply
	buffered := s.Stats().BufferedBytes
	t.Logf("buffered %d bytes for %d connections (bound %d each)", buffered, conns, perConn)
	if buffered > conns*perConn {
		t.Fatalf("BufferedBytes = %d, want at most %d", buffered, conns*perConn)
	}
	if raceEnabled {
		return // the race detector's shadow memory makes the heap meaningless
	}
	grown := int64(heapInUse()) - int64(before)
	t.Logf("heap grew %d MiB (522 MiB before the byte budgets)", grown>>20)
	// Generous: the budgets, each reader's frame buffer, pooled buffers.
	if bound := int64(conns) * 4 * perConn; grown > bound {
		t.Fatalf("heap grew %d bytes, want at most %d", grown, bound)
	}
}

// TestBytesPerAddrAndGlobal: the per-address and the edge-wide budgets hold
// whatever the per-connection budget allows. The requests block in the
// handler, so what they hold is not written away meanwhile.
func TestBytesPerAddrAndGlobal(t *testing.T) {
	const size = 256 << 10
	for _, tc := range []struct {
		name string
		edit func(*Options)
		from string
		want string // what a new connection from the same address gets
	}{
		{"per address", func(o *Options) { o.MaxInFlightBytesPerAddr = 1 << 20; o.AddrLimitsExempt = nil }, "127.0.0.3", ""},
		{"global", func(o *Options) { o.MaxBufferedBytes = 1 << 20 }, "", "overloaded: the broker is busy, try another"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			s, h := mustStart(t, func(o *Options) {
				o.MaxInFlightBytes = 64 << 20
				tc.edit(o)
			})
			const conns = 4
			pipeline(t, s, "block", tc.from, conns, 64, size)
			checkFor(t, 20*time.Second, func() bool { return s.Stats().ByteWaits >= conns },
				"ByteWaits = %d", s.Stats().ByteWaits)
			bound := int64(1<<20 + conns*(size+64))
			if got := s.Stats().BufferedBytes; got > bound {
				t.Fatalf("BufferedBytes = %d, want at most %d", got, bound)
			}
			if tc.want != "" {
				c := dial(t, s, "tcp")
				c.mustRecv(tc.want, "")
				c.expectClosed(2 * time.Second)
			} else {
				// Another address is not held up by this one's budget.
				dial(t, s, "tcp").mustCall("echo", "x", "x")
			}
			close(h.release)
		})
	}
}

// TestReplyFreedWhenWritten: a reply's bytes count until the client takes
// it, and all is given back when the connection closes.
func TestReplyFreedWhenWritten(t *testing.T) {
	s, _ := mustStart(t, nil)
	c := dial(t, s, "tcp")
	c.mustCall("echo", "x", "x")
	checkFor(t, 2*time.Second, func() bool { return s.Stats().BufferedBytes == 0 }, "BufferedBytes = %d after the reply", s.Stats().BufferedBytes)
	conns := pipelineNoRead(t, s, "", 1, 64, 512<<10)
	checkFor(t, 20*time.Second, func() bool { return s.Stats().BufferedBytes > 0 && s.Stats().InFlight == 0 }, "BufferedBytes = %d", s.Stats().BufferedBytes)
	conns[0].Close()
	checkFor(t, 5*time.Second, func() bool { return s.Stats().BufferedBytes == 0 && s.NumConns() == 1 },
		"BufferedBytes = %d, NumConns = %d after close", s.Stats().BufferedBytes, s.NumConns())
}

// TestWSAnnouncedFrame is the WebSocket attack of issue 14: connections
// that announce a 1 MiB frame and send 4 bytes of it cost the broker the
// announced megabyte each (200 cost 167 MiB). Now the buffer grows as bytes
// arrive, and a frame not complete within FrameTimeout closes the
// connection, however long IdleTimeout is.
func TestWSAnnouncedFrame(t *testing.T) {
	const n = 100
	s, _ := mustStart(t, func(o *Options) {
		o.FrameTimeout = 2 * time.Second
		o.IdleTimeout = time.Minute
		o.TCPAddr = ""
	})
	before := heapInUse()
	// TotalLen 1 MiB, then 4 bytes of it, in a non-final WebSocket frame:
	// the message goes on.
	msg := wsClientFrame(false, header(1<<20, 4))
	for range n {
		nc := dialRawWS(t, s)
		if _, err := nc.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == n }, "NumConns = %d", s.NumConns())
	if !raceEnabled {
		time.Sleep(200 * time.Millisecond) // proves nothing grows meanwhile
		grown := int64(heapInUse()) - int64(before)
		t.Logf("%d WebSockets announcing 1 MiB: heap grew %d KiB (%d MiB before)", n, grown>>10, 167*n/200)
		if bound := int64(n * 64 << 10); grown > bound {
			t.Fatalf("heap grew %d bytes, want at most %d", grown, bound)
		}
	}
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == 0 }, "NumConns = %d after FrameTimeout", s.NumConns())
	if got := s.Stats().FrameTimeouts; got != n {
		t.Fatalf("FrameTimeouts = %d, want %d", got, n)
	}
}

// dialRawWS opens a WebSocket to s by hand, so that a test can send frames
// the library would not (a message that stops half-way).
func dialRawWS(t testing.TB, s *Server) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", s.WSAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET " + s.opts.WSPath + " HTTP/1.1\r\nHost: " + s.WSAddr().String() +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := nc.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	_ = nc.SetReadDeadline(time.Time{})
	return nc
}

// wsClientFrame encodes a masked binary WebSocket frame of p (at most 125
// bytes), final or not.
func wsClientFrame(fin bool, p []byte) []byte {
	b0 := byte(0x2) // binary
	if fin {
		b0 |= 0x80
	}
	mask := [4]byte{1, 2, 3, 4}
	out := append([]byte{b0, 0x80 | byte(len(p))}, mask[:]...)
	for i, c := range p {
		out = append(out, c^mask[i%4])
	}
	return out
}

// TestConnsPerAddr: one address may hold MaxConnsPerAddr connections; the
// next is answered overloaded in a frame and closed, over TCP and
// WebSocket, and other addresses are not affected. Loopback is exempt by
// default, so the address limits are on here with an empty exemption.
func TestConnsPerAddr(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			s, _ := mustStart(t, func(o *Options) { o.MaxConnsPerAddr = 2; o.AddrLimitsExempt = nil })
			a := dial(t, s, tr)
			a.mustCall("echo", "x", "x")
			b := dial(t, s, tr)
			b.mustCall("echo", "x", "x")
			extra := dial(t, s, tr)
			extra.mustRecv("overloaded: too many connections from this address", "")
			extra.expectClosed(2 * time.Second)
			if got := s.Stats().AddrRejected; got != 1 {
				t.Fatalf("AddrRejected = %d, want 1", got)
			}
			if tr == "tcp" {
				// Another address still gets in.
				nc, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).Dial("tcp", s.TCPAddr().String())
				if err != nil {
					t.Fatal(err)
				}
				other := &rawConn{t: t, tcp: nc, r: frame.NewReader(nc, frame.Limits{})}
				t.Cleanup(other.close)
				other.mustCall("echo", "y", "y")
			}
			open := s.NumConns()
			a.close()
			checkFor(t, 2*time.Second, func() bool { return s.NumConns() == open-1 }, "NumConns = %d, want %d", s.NumConns(), open-1)
			dial(t, s, tr).mustCall("echo", "z", "z")
		})
	}
}

// TestConnsPerAddrExempt: loopback is exempt by default, so the platform's
// own tests and benchmarks open as many connections as they like.
func TestConnsPerAddrExempt(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) { o.MaxConnsPerAddr = 1; o.ConnRatePerAddr = 1; o.ConnBurstPerAddr = 1 })
	for range 5 {
		dial(t, s, "tcp").mustCall("echo", "x", "x")
	}
}

// TestConnRatePerAddr: an address opening connections faster than its
// bucket allows is refused, even when it closes them again.
func TestConnRatePerAddr(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) {
		o.ConnRatePerAddr = 0.01
		o.ConnBurstPerAddr = 3
		o.AddrLimitsExempt = nil
	})
	for range 3 {
		c := dial(t, s, "tcp")
		c.mustCall("echo", "x", "x")
		c.close()
	}
	c := dial(t, s, "tcp")
	c.mustRecv("overloaded: too many new connections from this address", "")
	c.expectClosed(2 * time.Second)
}

// TestConnsPerAddrBehindProxy: behind a trusted proxy the client's own
// address (from the PROXY header) is what the limits key on.
func TestConnsPerAddrBehindProxy(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) {
		o.TrustedProxies = []string{"127.0.0.0/8"}
		o.MaxConnsPerAddr = 1
		// Loopback (the proxy) exempt, as by default: the players are not.
	})
	first := dialProxied(t, s, realip.AppendV1(nil, player, lbAddr), nil)
	first.mustCall("echo", "x", "x")
	second := dialProxied(t, s, realip.AppendV1(nil, player, lbAddr), nil)
	second.mustRecv("overloaded: too many connections from this address", "")
	// Another player behind the same proxy, in the same IPv6 /64 or not.
	other := dialProxied(t, s, realip.AppendV1(nil, netip.MustParseAddrPort("198.51.100.8:1"), lbAddr), nil)
	other.mustCall("echo", "y", "y")
	lb6 := netip.MustParseAddrPort("[2001:db8::1]:1055")
	v6a := dialProxied(t, s, realip.AppendV1(nil, netip.MustParseAddrPort("[2001:db8:1:2::7]:1"), lb6), nil)
	v6a.mustCall("echo", "y", "y")
	v6b := dialProxied(t, s, realip.AppendV1(nil, netip.MustParseAddrPort("[2001:db8:1:2::8]:1"), lb6), nil)
	v6b.mustRecv("overloaded: too many connections from this address", "")
}

func TestKeyOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7:1", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:1", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:1", "2001:db8:1:2::"},
		{"[fe80::1%eth0]:1", "fe80::"},
	} {
		ap := netip.MustParseAddrPort(tc.in)
		k, ok := keyOf(net.TCPAddrFromAddrPort(ap))
		if !ok || k.String() != tc.want {
			t.Errorf("keyOf(%s) = %v %v, want %s", tc.in, k, ok, tc.want)
		}
		if k2, _ := keyOf(stringAddr(tc.in)); k2 != k {
			t.Errorf("keyOf(stringAddr %s) = %v, want %v", tc.in, k2, k)
		}
	}
	if _, ok := keyOf(stringAddr("@")); ok {
		t.Error("keyOf(@) ok")
	}
}

func TestClampConnections(t *testing.T) {
	for _, tc := range []struct {
		n      int
		nofile uint64
		want   int
	}{
		{100_000, 20_000, 18_000},
		{1000, 20_000, 1000},
		{100_000, 100, 256},
		{100_000, 0, 100_000},
		{100_000, 1 << 62, 100_000},
	} {
		if got := clampConnections(tc.n, tc.nofile); got != tc.want {
			t.Errorf("clampConnections(%d, %d) = %d, want %d", tc.n, tc.nofile, got, tc.want)
		}
	}
}

// TestMethodNames: a method name that is not a letter then [A-Za-z0-9_.-]
// (invalid UTF-8 among them) is answered bad_request, not routed, and the
// connection kept; before, invalid UTF-8 came back unavailable with an
// instance id in the text.
func TestMethodNames(t *testing.T) {
	s, _ := mustStart(t, nil)
	c := dial(t, s, "tcp")
	for _, m := range []string{"\xff\xfe.Echo", "echo\x00", "1echo", ".echo", "echo echo", "é.Echo", "-x"} {
		c.sendReq(m, "x")
		c.mustRecv(errBadMethod, "")
	}
	c.mustCall("echo", "ok", "ok")
	if got := s.Stats().BadMethods; got != 7 {
		t.Fatalf("BadMethods = %d, want 7", got)
	}
	for m, want := range map[string]bool{"echo": true, "room.Get": true, "CreateRoom": true, "a_b-c.D9": true, "": false, "x/y": false} {
		if got := validMethod([]byte(m), 128); got != want {
			t.Errorf("validMethod(%q) = %v, want %v", m, got, want)
		}
	}
	if validMethod([]byte(strings.Repeat("a", 129)), 128) {
		t.Error("validMethod accepts 129 bytes over a limit of 128")
	}
}

// TestPushBytes: queued pushes count against the connection's budget, and
// a client letting more than MaxInFlightBytes of pushes pile up is
// disconnected as a slow consumer.
func TestPushBytes(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) { o.MaxInFlightBytes = 64 << 10 })
	var mu sync.Mutex
	var conn *Conn
	c := dial(t, s, "tcp")
	c.mustCall("pushon", "", "")
	s.Range(func(x *Conn) bool { mu.Lock(); conn = x; mu.Unlock(); return false })
	big := make([]byte, 16<<10)
	queued := 0
	for conn.Push("test.Big", big) {
		queued++
		if queued > 1000 {
			t.Fatal("pushes never refused")
		}
	}
	t.Logf("%d pushes of 16 KiB queued before the connection was cut", queued)
	if got := s.Stats().SlowConsumers; got != 1 {
		t.Fatalf("SlowConsumers = %d, want 1", got)
	}
	checkFor(t, 5*time.Second, func() bool { return s.Stats().BufferedBytes == 0 }, "BufferedBytes = %d", s.Stats().BufferedBytes)
}
