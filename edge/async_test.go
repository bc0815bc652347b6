package edge

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// asyncHandler is the test handler as an AsyncHandler: it starts every
// method but those prefixed "sync." (Request serves them, without the
// prefix) in a goroutine of its own, which calls done after hold (when
// not nil) is closed. "startpanic" panics in StartRequest; "seq" answers
// a reply of <n> bytes carrying its index.
type asyncHandler struct {
	*testHandler
	started, declined atomic.Int64
	done              atomic.Int64 // dones called
	hold              chan struct{}
}

func (h *asyncHandler) Request(ctx context.Context, c *Conn, method string, payload []byte) ([]byte, error) {
	return h.testHandler.Request(ctx, c, strings.TrimPrefix(method, "sync."), payload)
}

func (h *asyncHandler) StartRequest(ctx context.Context, c *Conn, method string, payload []byte, done func([]byte, error)) bool {
	switch {
	case strings.HasPrefix(method, "sync."):
		h.declined.Add(1)
		return false
	case method == "startpanic":
		panic("start boom")
	}
	h.started.Add(1)
	go func() {
		if h.hold != nil {
			<-h.hold
		}
		var resp []byte
		var err error
		if method == "seq" {
			// payload "<index>:<size>": a reply of size bytes, the index
			// in its first 4.
			i, n, _ := strings.Cut(string(payload), ":")
			idx, _ := strconv.Atoi(i)
			size, _ := strconv.Atoi(n)
			resp = bytes.Repeat([]byte{byte(idx)}, size)
			binary.BigEndian.PutUint32(resp, uint32(idx))
		} else {
			resp, err = h.testHandler.Request(ctx, c, method, payload)
		}
		h.done.Add(1)
		done(resp, err)
	}()
	return true
}

// mustStartAsync starts a server with the async test handler.
func mustStartAsync(t *testing.T, edit func(*Options)) (*Server, *asyncHandler) {
	t.Helper()
	h := &asyncHandler{testHandler: newTestHandler()}
	return startWith(t, edit, h, h.testHandler), h
}

// TestAsyncRepliesInOrder pipelines requests that complete out of order
// from other goroutines, declined ones (served by Request) among them,
// and checks every reply comes back in request order, over TCP and
// WebSocket.
func TestAsyncRepliesInOrder(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			s, h := mustStartAsync(t, func(o *Options) { o.MaxInFlight = 64 })
			c := dial(t, s, tr)
			const n = 300
			want := make([][2]string, n)
			rnd := rand.New(rand.NewPCG(1, 2))
			for i := range n {
				tag := strconv.Itoa(i)
				switch rnd.IntN(5) {
				case 0:
					p := fmt.Sprintf("%d:%s", rnd.IntN(5), tag)
					c.sendReq("sleep", p)
					want[i] = [2]string{"", p}
				case 1:
					c.sendReq("sync.echo", tag)
					want[i] = [2]string{"", tag}
				case 2:
					c.sendReq("fail", "not_found: "+tag)
					want[i] = [2]string{"not_found: " + tag, ""}
				case 3:
					c.sendReq("startpanic", tag)
					want[i] = [2]string{"unknown_method: startpanic", ""}
				default:
					c.sendReq("echo", tag)
					want[i] = [2]string{"", tag}
				}
			}
			for i := range n {
				f, p, err := c.recv()
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if f != want[i][0] || p != want[i][1] {
					t.Fatalf("reply %d: got (%q, %q), want (%q, %q)", i, f, p, want[i][0], want[i][1])
				}
			}
			if h.started.Load() == 0 || h.declined.Load() == 0 {
				t.Fatalf("started %d, declined %d: want both", h.started.Load(), h.declined.Load())
			}
			checkFor(t, 5*time.Second, func() bool { st := s.Stats(); return st.InFlight == 0 && st.BufferedBytes == 0 },
				"in flight or buffered bytes left: %+v", s.Stats())
		})
	}
}

// TestAsyncSocketFull completes many replies while the client reads
// nothing, so that the socket stops taking them: what a completing
// goroutine cannot write at once goes to the writer (over WebSocket, all
// of it once the socket's send queue is not empty), the bytes stay
// charged to the connection until written, and every reply arrives whole
// and in order once the client reads.
func TestAsyncSocketFull(t *testing.T) {
	// Replies small enough for WebSocket's inline writes (wsInlineMax);
	// 8-24 MB in all, more than loopback's socket buffers take.
	for _, tc := range []struct {
		tr      string
		n, size int
	}{{"tcp", 2000, 12 << 10}, {"ws", 2000, 4 << 10}} {
		t.Run(tc.tr, func(t *testing.T) {
			n, size := tc.n, tc.size
			s, h := mustStartAsync(t, func(o *Options) {
				o.MaxInFlight = 256
				o.MaxInFlightBytes = 64 << 20
			})
			c := dial(t, s, tc.tr)
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range n {
					c.sendReq("seq", fmt.Sprintf("%d:%d", i, size))
				}
			})
			t.Cleanup(wg.Wait)
			checkFor(t, 10*time.Second, func() bool { return s.Stats().BufferedBytes >= int64(size) },
				"buffered %d bytes with the client not reading; want the unwritten replies charged", s.Stats().BufferedBytes)
			for i := range n {
				f, p, err := c.recv()
				if err != nil {
					t.Fatalf("reply %d: %v", i, err)
				}
				if f != "" || len(p) != size || binary.BigEndian.Uint32([]byte(p)) != uint32(i) {
					t.Fatalf("reply %d: err %q, %d bytes, index %d", i, f, len(p), binary.BigEndian.Uint32([]byte(p)))
				}
			}
			if got := h.started.Load(); got != int64(n) {
				t.Fatalf("%d requests started, want %d", got, n)
			}
			checkFor(t, 5*time.Second, func() bool { return s.Stats().BufferedBytes == 0 }, "buffered bytes left: %d", s.Stats().BufferedBytes)
		})
	}
}

// TestInlineWrites: a client that waits for each reply gets them written
// by the goroutine that completed them, over TCP and WebSocket alike.
func TestInlineWrites(t *testing.T) {
	for _, tr := range []string{"tcp", "ws"} {
		t.Run(tr, func(t *testing.T) {
			s, _ := mustStartAsync(t, nil)
			c := dial(t, s, tr)
			const n = 50
			for i := range n {
				c.sendReq("echo", strconv.Itoa(i))
				f, p, err := c.recv()
				if err != nil || f != "" || p != strconv.Itoa(i) {
					t.Fatalf("reply %d: %q %q %v", i, f, p, err)
				}
			}
			// The odd reply may race its own completion into the
			// writer's hands; most are inline.
			if got := s.Stats().InlineWrites; got < n/2 {
				t.Fatalf("%d of %d replies written inline", got, n)
			}
		})
	}
}

// TestAsyncDoneAfterClose completes requests after their connection
// closed: nothing is written, nothing leaks, and the server still exits.
func TestAsyncDoneAfterClose(t *testing.T) {
	// A client that closed gets its replies until IdleTimeout: then the
	// connection is closed with the requests still running.
	s, h := mustStartAsync(t, func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
	h.hold = make(chan struct{})
	released := false
	t.Cleanup(func() {
		if !released {
			close(h.hold)
		}
	})
	c := dial(t, s, "tcp")
	for i := range 10 {
		c.sendReq("echo", strconv.Itoa(i))
	}
	checkFor(t, 5*time.Second, func() bool { return h.started.Load() == 10 }, "%d of 10 started", h.started.Load())
	c.close()
	checkFor(t, 5*time.Second, func() bool { return s.Stats().Conns == 0 }, "connection still open")
	close(h.hold)
	released = true
	checkFor(t, 5*time.Second, func() bool { st := s.Stats(); return h.done.Load() == 10 && st.InFlight == 0 && st.BufferedBytes == 0 },
		"after close: done %d, %+v", h.done.Load(), s.Stats())
}
