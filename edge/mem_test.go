package edge

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/frame"
)

// idleConns is how many connections TestIdleConnMemory opens: enough that
// per-connection costs dominate the noise, few enough for a test's file
// descriptor limit.
const idleConns = 2000

// memInUse returns the heap and stack memory in use after a GC.
func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// openIdle opens n TCP connections to addr, each authenticated by one round
// trip (so its reader and writer have run and gone idle) when auth is set.
func openIdle(t *testing.T, addr string, n int, auth bool) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	req := frame.AppendRequest(nil, "auth", []byte("user"))
	reply := make([]byte, 12)
	for i := range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v (file descriptor limit?)", i, err)
		}
		conns = append(conns, nc)
		if !auth {
			continue
		}
		if _, err := nc.Write(req); err != nil {
			t.Fatal(err)
		}
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(nc, reply); err != nil {
			t.Fatalf("conn %d: reading auth reply: %v", i, err)
		}
	}
	return conns
}

// openIdleWS is openIdle over WebSocket, with a client that is a bare socket
// (an upgrade request by hand, one masked message, the reply read raw), so
// the client's share of the memory is a bare socket's, as over TCP.
func openIdleWS(t *testing.T, addr, path string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	upgrade := []byte("GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	req := frame.AppendRequest(nil, "auth", []byte("user"))
	// One final binary frame, masked with a zero key (masking is then the
	// identity).
	msg := append([]byte{0x82, 0x80 | byte(len(req)), 0, 0, 0, 0}, req...)
	reply := make([]byte, 2+12)
	for i := range n {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v (file descriptor limit?)", i, err)
		}
		conns = append(conns, nc)
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write(upgrade); err != nil {
			t.Fatal(err)
		}
		// The 101 response has no body; read exactly its header, byte by
		// byte, so nothing after it is buffered away.
		br := bufio.NewReaderSize(nc, 16)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || br.Buffered() != 0 {
			t.Fatalf("conn %d: upgrade: %v %v (%d buffered)", i, err, resp, br.Buffered())
		}
		if _, err := nc.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(nc, reply); err != nil {
			t.Fatalf("conn %d: reading auth reply: %v", i, err)
		}
	}
	return conns
}

// bareSocketCost returns the memory a bare pair of sockets (client and
// accepted, no goroutines) costs, measured with a plain listener that holds
// them.
func bareSocketCost(t *testing.T) float64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan net.Conn, idleConns)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			held <- nc
		}
	}()
	before := memInUse()
	bare := openIdle(t, ln.Addr().String(), idleConns, false)
	for range idleConns {
		<-held
	}
	bareCost := float64(memInUse()-before) / idleConns
	ln.Close()
	for _, nc := range bare {
		nc.Close()
	}
	close(held)
	for nc := range held {
		nc.Close()
	}
	return bareCost
}

// TestIdleConnMemory measures the broker memory an idle, authenticated TCP
// connection costs: heap and stack growth for 2,000 connections, minus what
// the same number of bare client and server sockets cost (measured with a
// plain listener that holds them). The goal is at most 8 KiB.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes memory use; run without -race")
	}
	// Baseline: bare sockets, both ends in this process.
	bareCost := bareSocketCost(t)

	s, _ := mustStart(t, func(o *Options) {
		o.MaxConnections = 2 * idleConns
		o.WSAddr = ""
	})
	before := memInUse()
	conns := openIdle(t, s.TCPAddr().String(), idleConns, true)
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == idleConns }, "NumConns = %d", s.NumConns())
	time.Sleep(100 * time.Millisecond)
	total := float64(memInUse()-before) / idleConns
	perConn := total - bareCost/2 // the client's half of the bare cost is not the broker's
	t.Logf("idle TCP connection: %.0f bytes with the client socket, bare socket pair %.0f bytes, broker memory per idle connection ≈ %.0f bytes (%.1f KiB)",
		total, bareCost, perConn, perConn/1024)
	if perConn > 8<<10 {
		t.Errorf("broker memory per idle connection is %.0f bytes, want at most 8 KiB", perConn)
	}
	for _, nc := range conns {
		nc.Close()
	}
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == 0 }, "NumConns = %d", s.NumConns())
}

// TestIdleWSConnMemory is TestIdleConnMemory over WebSocket. It reports the
// figure and checks it against a looser bound: the WebSocket library keeps
// the HTTP server's buffered reader and writer for the connection's life.
func TestIdleWSConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes memory use; run without -race")
	}
	bareCost := bareSocketCost(t)
	s, _ := mustStart(t, func(o *Options) {
		o.MaxConnections = 2 * idleConns
		o.TCPAddr = ""
	})
	before := memInUse()
	conns := openIdleWS(t, s.WSAddr().String(), s.opts.WSPath, idleConns)
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == idleConns }, "NumConns = %d", s.NumConns())
	time.Sleep(100 * time.Millisecond)
	total := float64(memInUse()-before) / idleConns
	perConn := total - bareCost/2
	t.Logf("idle WebSocket connection: %.0f bytes with the client socket, bare socket pair %.0f bytes, broker memory per idle connection ≈ %.0f bytes (%.1f KiB)",
		total, bareCost, perConn, perConn/1024)
	if perConn > 32<<10 {
		t.Errorf("broker memory per idle WebSocket connection is %.0f bytes, want at most 32 KiB", perConn)
	}
	for _, nc := range conns {
		nc.Close()
	}
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == 0 }, "NumConns = %d", s.NumConns())
}

// TestIdleConnGoroutines checks that an idle connection, once its replies
// are written, keeps one goroutine (its reader), and that its writer comes
// back for a push and a reply.
func TestIdleConnGoroutines(t *testing.T) {
	const n = 50
	const slack = 10 // the server's and the runtime's own, which may vary
	s, _ := mustStart(t, func(o *Options) { o.WSAddr = "" })
	base := runtime.NumGoroutine()
	conns := openIdle(t, s.TCPAddr().String(), n, true)
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == n }, "NumConns = %d", s.NumConns())
	// The writers end once they have flushed; the readers stay.
	checkFor(t, 10*time.Second, func() bool { return runtime.NumGoroutine()-base <= n+slack }, "%d goroutines for %d idle connections", runtime.NumGoroutine()-base, n)

	// The writer is started again for a reply, and ends again.
	c := dial(t, s, "tcp")
	c.mustCall("auth", "user", "")
	c.mustCall("pushon", "", "")
	c.mustCall("echo", "hello", "hello")
	checkFor(t, 10*time.Second, func() bool { return runtime.NumGoroutine()-base <= n+1+slack }, "%d goroutines for %d idle connections", runtime.NumGoroutine()-base, n+1)
	c.mustCall("echo", "again", "again")

	// And for a push to an idle connection, from outside a request.
	checkFor(t, 10*time.Second, func() bool { return runtime.NumGoroutine()-base <= n+1+slack }, "%d goroutines for %d idle connections", runtime.NumGoroutine()-base, n+1)
	pushed := 0
	s.Range(func(cc *Conn) bool {
		if cc.Push("room.Event", []byte("idle")) {
			pushed++
		}
		return true
	})
	if pushed != 1 {
		t.Fatalf("%d pushes queued, want 1 (only one connection asked for them)", pushed)
	}
	c.mustRecv("@room.Event", "idle")
	c.mustCall("echo", "after", "after")
}
