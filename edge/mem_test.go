package edge

import (
	"io"
	"net"
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

// TestIdleConnMemory measures the broker memory an idle, authenticated TCP
// connection costs: heap and stack growth for 2,000 connections, minus what
// the same number of bare client and server sockets cost (measured with a
// plain listener that holds them). The goal is at most 16 KiB.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	if raceEnabled {
		t.Skip("the race detector changes memory use; run without -race")
	}
	// Baseline: bare sockets, both ends in this process.
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

	s, _ := mustStart(t, func(o *Options) {
		o.MaxConnections = 2 * idleConns
		o.WSAddr = ""
	})
	before = memInUse()
	conns := openIdle(t, s.TCPAddr().String(), idleConns, true)
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == idleConns }, "NumConns = %d", s.NumConns())
	time.Sleep(100 * time.Millisecond)
	total := float64(memInUse()-before) / idleConns
	perConn := total - bareCost/2 // the client's half of the bare cost is not the broker's
	t.Logf("idle TCP connection: %.0f bytes with the client socket, bare socket pair %.0f bytes, broker memory per idle connection ≈ %.0f bytes (%.1f KiB)",
		total, bareCost, perConn, perConn/1024)
	if perConn > 16<<10 {
		t.Errorf("broker memory per idle connection is %.0f bytes, want at most 16 KiB", perConn)
	}
	for _, nc := range conns {
		nc.Close()
	}
	checkFor(t, 10*time.Second, func() bool { return s.NumConns() == 0 }, "NumConns = %d", s.NumConns())
}
