package link

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// zmtpFrame is the ZMTP encoding of a single-frame message with body.
func zmtpFrame(body []byte) []byte {
	var b []byte
	if len(body) <= 255 {
		b = []byte{0, byte(len(body))}
	} else {
		b = binary.BigEndian.AppendUint64([]byte{flagLong}, uint64(len(body)))
	}
	return append(b, body...)
}

// firstByte identifies a slice by its backing array (every body of the
// test has a capacity of at least 1).
func firstByte(b []byte) *byte { return &b[:cap(b)][0] }

// TestBatchFrameEncoding: a frameBatch writes the ZMTP encoding of what
// was added, in order; big bodies are written from where they are; reset
// recycles each body once; full turns true at the limits.
func TestBatchFrameEncoding(t *testing.T) {
	sizes := []int{0, 1, 255, 256, 4096, 4097, 70000}
	var batch frameBatch
	for round := range 3 { // the batch is reused after reset
		if !batch.empty() {
			t.Fatalf("round %d: batch not empty", round)
		}
		var bodies [][]byte
		var want []byte
		for i, n := range sizes {
			body := make([]byte, n, n+1)
			for j := range body {
				body[j] = byte(i*31 + j + round)
			}
			bodies = append(bodies, body)
			want = append(want, zmtpFrame(body)...)
			batch.add(body)
			if batch.empty() {
				t.Fatal("empty after add")
			}
		}
		bufs := batch.buffers()
		if got := bytes.Join(bufs, nil); !bytes.Equal(got, want) {
			t.Fatalf("round %d: batch bytes differ from the ZMTP encoding (%d bytes, want %d; first difference at %d)",
				round, len(got), len(want), firstDiff(got, want))
		}
		// Bodies over copyBody are written from where they are.
		for _, body := range bodies {
			if len(body) <= copyBody {
				continue
			}
			found := false
			for _, b := range bufs {
				if len(b) > 0 && &b[0] == &body[0] {
					found = true
				}
			}
			if !found {
				t.Errorf("round %d: the %d-byte body was copied", round, len(body))
			}
		}
		// buffers is idempotent until reset.
		if got := bytes.Join(batch.buffers(), nil); !bytes.Equal(got, want) {
			t.Fatalf("round %d: second buffers() differs", round)
		}
		seen := make(map[*byte]int)
		var order []*byte
		batch.reset(func(b []byte) {
			seen[firstByte(b)]++
			order = append(order, firstByte(b))
		})
		if len(order) != len(bodies) {
			t.Fatalf("round %d: recycled %d bodies, want %d", round, len(order), len(bodies))
		}
		for i, body := range bodies {
			if n := seen[firstByte(body)]; n != 1 {
				t.Fatalf("round %d: body %d (%d bytes) recycled %d times", round, i, len(body), n)
			}
			if order[i] != firstByte(body) {
				t.Fatalf("round %d: recycled out of order at %d", round, i)
			}
		}
		if !batch.empty() || batch.size != 0 || len(batch.buffers()) != 0 {
			t.Fatalf("round %d: reset left size %d, %d buffers", round, batch.size, len(batch.buffers()))
		}
	}

	// A reset with a nil recycler only empties.
	batch.add([]byte("x"))
	batch.reset(nil)
	if !batch.empty() {
		t.Fatal("reset(nil) did not empty")
	}

	// full: at maxBatchMsgs messages, however small.
	for i := range maxBatchMsgs {
		if batch.full() {
			t.Fatalf("full after %d empty messages", i)
		}
		batch.add(nil)
	}
	if !batch.full() {
		t.Fatalf("not full after %d messages", maxBatchMsgs)
	}
	if got, want := len(bytes.Join(batch.buffers(), nil)), 2*maxBatchMsgs; got != want {
		t.Fatalf("%d empty messages: %d bytes, want %d", maxBatchMsgs, got, want)
	}
	batch.reset(nil)

	// full: at maxBatchBytes (a message counts its body and 9 bytes).
	batch.add(make([]byte, maxBatchBytes-10))
	if batch.full() {
		t.Fatalf("full at %d bytes", batch.size)
	}
	batch.reset(nil)
	batch.add(make([]byte, maxBatchBytes-9))
	if !batch.full() {
		t.Fatalf("not full at %d bytes", batch.size)
	}
	batch.reset(nil)
	n := 0
	for !batch.full() {
		batch.add(make([]byte, 4096, 4097))
		n++
	}
	if want := (maxBatchBytes + 4105 - 1) / 4105; n != want {
		t.Fatalf("full after %d 4 KiB messages, want %d", n, want)
	}
	batch.reset(nil)
}

// countingProxy is a TCP proxy that counts the reads that returned data in
// each direction: a read of the proxy returns whatever arrived since the
// last one, so many messages per read means that they arrived together.
type countingProxy struct {
	ln     net.Listener
	target string

	upReads, upBytes     atomic.Int64 // server -> client
	downReads, downBytes atomic.Int64 // client -> server
	writes               atomic.Int64 // Write calls of the proxy, both directions

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startProxy(t testing.TB, serverEndpoint string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: strings.TrimPrefix(serverEndpoint, "tcp://")}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(p.close)
	return p
}

func (p *countingProxy) endpoint() string { return "tcp://" + p.ln.Addr().String() }

func (p *countingProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, &p.downReads, &p.downBytes)
		go p.pipe(c, s, &p.upReads, &p.upBytes)
	}
}

func (p *countingProxy) pipe(dst, src net.Conn, reads, n *atomic.Int64) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 1<<20)
	for {
		k, err := src.Read(buf)
		if k > 0 {
			reads.Add(1)
			n.Add(int64(k))
			p.writes.Add(1)
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *countingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// writeSyscalls returns the number of write and writev system calls this
// process made (syscw of /proc/self/io, all threads), or false where there
// is no such file.
func writeSyscalls() (int64, bool) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// TestBatchConcurrentCalls: 64 goroutines calling concurrently over one
// Peer each get their own payload back, and the messages travel in far
// fewer TCP reads (and write syscalls) than there are messages: the
// writers of both sides batch.
func TestBatchConcurrentCalls(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			sopts := ServerOptions{InstanceID: "echo-1"}
			popts := fastPeerOptions(t)
			if useTLS {
				sopts.TLS = creds(t, loginID, false)
				popts.TLS = creds(t, brokerID, false)
			}
			s := mustListen(t, "", sopts, echo)
			proxy := startProxy(t, s.Endpoint())
			p := mustDial(t, proxy.endpoint(), popts, true)

			const callers, calls = 64, 200
			st0, ps0 := s.Stats(), p.Stats()
			up0, down0, pw0 := proxy.upReads.Load(), proxy.downReads.Load(), proxy.writes.Load()
			sys0, haveSys := writeSyscalls()

			runCallers(t, callers, calls, func(c, i int) error {
				rep, err := echoCall(p, "echo.Echo", fmt.Appendf(nil, "caller %d call %d", c, i))
				if err != nil {
					return err
				}
				return checkSender(rep, "echo-1")
			})
			sys1, _ := writeSyscalls()
			st1, ps1 := s.Stats(), p.Stats()
			up := proxy.upReads.Load() - up0
			down := proxy.downReads.Load() - down0
			proxyWrites := proxy.writes.Load() - pw0

			// Every reply was read by the Peer, so every message the Server
			// sent has gone through the proxy (PONGs included).
			replies := int64(st1.Sent - st0.Sent)
			requests := int64(st1.Requests-st0.Requests) + int64(st1.Pings-st0.Pings)
			if got := int64(ps1.Replies - ps0.Replies); got != callers*calls {
				t.Fatalf("%d replies matched, want %d", got, callers*calls)
			}
			if replies < callers*calls || requests < callers*calls {
				t.Fatalf("server sent %d messages and received %d, want at least %d", replies, requests, callers*calls)
			}
			if st1.SendErrors != 0 || st1.Dropped != 0 || st1.StuckSends != 0 || ps1.Deaths != 0 {
				t.Fatalf("server %+v, peer %+v", st1, ps1)
			}
			t.Logf("server -> peer: %d messages in %d reads (%.1f per read); peer -> server: %d messages in %d reads (%.1f per read)",
				replies, up, float64(replies)/float64(up), requests, down, float64(requests)/float64(down))
			if up >= replies/2 {
				t.Errorf("server -> peer: %d messages arrived in %d reads: not batched", replies, up)
			}
			if down >= requests/2 {
				t.Errorf("peer -> server: %d messages arrived in %d reads: not batched", requests, down)
			}
			if haveSys {
				// An upper bound of the Server's and the Peer's writes:
				// every other write of the process is counted too, and each
				// Write of the proxy is at least one system call.
				writes := sys1 - sys0 - proxyWrites
				t.Logf("at most %d write syscalls by server and peer for %d messages (%.1f per write)",
					writes, replies+requests, float64(replies+requests)/float64(writes))
				if writes >= replies+requests {
					t.Errorf("%d write syscalls for %d messages: not batched", writes, replies+requests)
				}
			}
		})
	}
}

// rawConn is a hand-written ZMTP 3 DEALER over plain TCP, whose READY the
// test chooses.
type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, ep string, ready []byte) *rawConn {
	t.Helper()
	c := dialTCP(t, strings.TrimPrefix(ep, "tcp://"))
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(append(zmtpGreeting(), ready...)); err != nil {
		t.Fatal(err)
	}
	r := &rawConn{c: c, br: bufio.NewReader(c)}
	if _, err := io.ReadFull(r.br, make([]byte, greetingLen)); err != nil {
		t.Fatalf("server greeting: %v", err)
	}
	flags, body, err := r.frame()
	if err != nil || flags&flagCommand == 0 || !bytes.HasPrefix(body, []byte("\x05READY")) {
		t.Fatalf("server READY: flags %#x body %q err %v", flags, body, err)
	}
	return r
}

func (r *rawConn) frame() (flags byte, body []byte, err error) {
	if flags, err = r.br.ReadByte(); err != nil {
		return 0, nil, err
	}
	var n uint64
	if flags&flagLong != 0 {
		var b [8]byte
		if _, err := io.ReadFull(r.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	} else {
		c, err := r.br.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n = uint64(c)
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("%d-byte frame", n)
	}
	body = make([]byte, n)
	_, err = io.ReadFull(r.br, body)
	return flags, body, err
}

func (r *rawConn) send(t testing.TB, body []byte) {
	t.Helper()
	if _, err := r.c.Write(zmtpFrame(body)); err != nil {
		t.Fatal(err)
	}
}

// recv returns the next envelope, skipping commands.
func (r *rawConn) recv(t testing.TB) *platformpb.Envelope {
	t.Helper()
	for {
		flags, body, err := r.frame()
		if err != nil {
			t.Fatal(err)
		}
		if flags&flagCommand != 0 {
			continue
		}
		if flags&flagMore != 0 {
			t.Fatalf("a DEALER got a multi-frame message (flags %#x, %q)", flags, body)
		}
		env, err := decodeEnvelope(body, DefaultMaxMessage)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
}

// testRequest is a REQUEST as a Peer encodes it.
func testRequest(t testing.TB, id uint64, payload string) []byte {
	t.Helper()
	b, err := encodeEnvelope(&platformpb.Envelope{Method: "echo.Echo", Payload: []byte(payload)}, envelopeOverrides{
		kind: platformpb.Kind_KIND_REQUEST, requestID: id, deadline: time.Now().Add(10 * time.Second).UnixNano(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkReply(t testing.TB, rep *platformpb.Envelope, id uint64, payload string) {
	t.Helper()
	if rep.GetKind() != platformpb.Kind_KIND_REPLY || rep.GetRequestId() != id || string(rep.GetPayload()) != payload {
		t.Fatalf("reply %v, want a REPLY to %d with %q", rep, id, payload)
	}
}

// dealerEcho makes one echo round trip on a zmq4 DEALER: it sends the
// request id with payload and fails the test unless the REPLY to id with
// the same payload comes back.
func dealerEcho(t testing.TB, d zmq4.Socket, id uint64, payload string) {
	t.Helper()
	if err := d.Send(zmq4.NewMsg(testRequest(t, id, payload))); err != nil {
		t.Fatal(err)
	}
	checkReply(t, recvEnvelope(t, d), id, payload)
}

func connCount(s *Server) int {
	s.conns.mu.RLock()
	defer s.conns.mu.RUnlock()
	return len(s.conns.m)
}

// plainDealer is a bare zmq4 DEALER over zmq4's own tcp transport; id ""
// sets no identity option.
func plainDealer(t testing.TB, ep, id string) (zmq4.Socket, error) {
	t.Helper()
	opts := []zmq4.Option{zmq4.WithDialerMaxRetries(0), zmq4.WithLogger(zmqLogger(testLogger(t)))}
	if id != "" {
		opts = append(opts, zmq4.WithID(zmq4.SocketIdentity(id)))
	}
	d := zmq4.NewDealer(context.Background(), opts...)
	t.Cleanup(func() { d.Close() })
	return d, d.Dial(ep)
}

// TestFallbackWithoutIdentity: a connection whose READY names no routing
// identity is not in the Server's connection table; its replies go
// through zmq4 (sendZMQ) and arrive, also while other connections are
// served by batches. A zmq4 DEALER with an identity is in the table.
func TestFallbackWithoutIdentity(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, echo)

	for _, tc := range []struct {
		name  string
		ready []byte
	}{
		{"no Identity property", readyCommand("Socket-Type", "DEALER")},
		{"empty Identity", readyCommand("Socket-Type", "DEALER", "Identity", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := s.Stats().Sent
			r := dialRaw(t, s.Endpoint(), tc.ready)
			r.send(t, testRequest(t, 1, "x"))
			checkReply(t, r.recv(t), 1, "x")
			if n := connCount(s); n != 0 {
				t.Fatalf("%d connections in the table, want none", n)
			}
			// Pipelined requests on the same connection.
			const n = 200
			for i := range n {
				r.send(t, testRequest(t, uint64(2+i), fmt.Sprint("p", i)))
			}
			got := make(map[uint64]bool)
			for range n {
				rep := r.recv(t)
				id := rep.GetRequestId()
				if id < 2 || id >= 2+n || got[id] {
					t.Fatalf("unexpected reply %v", rep)
				}
				checkReply(t, rep, id, fmt.Sprint("p", id-2))
				got[id] = true
			}
			// Sent counts after the write has returned: possibly after
			// the reply arrived.
			checkFor(t, 5*time.Second, "replies counted as sent", func() bool { return s.Stats().Sent-sent == n+1 })
		})
	}

	t.Run("zmq4 DEALER with identity", func(t *testing.T) {
		d, err := plainDealer(t, s.Endpoint(), "fallback-with-id")
		if err != nil {
			t.Fatal(err)
		}
		dealerEcho(t, d, 1, "x")
		if s.conns.get([]byte("fallback-with-id")) == nil {
			t.Fatal("the DEALER's identity is not in the table")
		}
	})

	// zmq4 gives a socket without WithID a random identity (a UUID), which
	// it sends in its READY: such a DEALER takes the table's path too.
	t.Run("zmq4 DEALER without identity option", func(t *testing.T) {
		// The previous subtests' connections have closed: wait until the
		// server has seen it.
		checkFor(t, 5*time.Second, "table empty", func() bool { return connCount(s) == 0 })
		d, err := plainDealer(t, s.Endpoint(), "")
		if err != nil {
			t.Fatal(err)
		}
		dealerEcho(t, d, 1, "x")
		s.conns.mu.RLock()
		var ids []string
		for id := range s.conns.m {
			ids = append(ids, id)
		}
		s.conns.mu.RUnlock()
		if len(ids) != 1 {
			t.Fatalf("table %q, want the DEALER's zmq4-made identity", ids)
		}
		t.Logf("zmq4 DEALER without WithID sent the identity %q in its READY: table path", ids[0])
	})

	// Both paths in the same batches: a Peer's concurrent calls (table)
	// and a raw connection's pipelined requests (zmq4).
	t.Run("mixed", func(t *testing.T) {
		p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
		r := dialRaw(t, s.Endpoint(), readyCommand("Socket-Type", "DEALER"))
		const n = 500
		// The test goroutine reads the raw connection's replies while the
		// Peer's callers and the raw writer run.
		waitCallers := goCallers(16, n/16, func(c, i int) error {
			_, err := echoCall(p, "", fmt.Append(nil, "peer ", c, " ", i))
			return err
		})
		reqs := make([][]byte, n)
		for i := range n {
			reqs[i] = zmtpFrame(testRequest(t, uint64(1+i), fmt.Sprint("raw ", i)))
		}
		writeErr := make(chan error, 1)
		go func() {
			for _, req := range reqs {
				if _, err := r.c.Write(req); err != nil {
					writeErr <- fmt.Errorf("raw write: %w", err)
					return
				}
			}
			writeErr <- nil
		}()
		got := make(map[uint64]bool)
		for range n {
			rep := r.recv(t)
			id := rep.GetRequestId()
			if id < 1 || id > n || got[id] || string(rep.GetPayload()) != fmt.Sprint("raw ", id-1) {
				t.Fatalf("unexpected reply %v", rep)
			}
			got[id] = true
		}
		if err := waitCallers(); err != nil {
			t.Fatal(err)
		}
		if err := <-writeErr; err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(); st.SendErrors != 0 || st.Dropped != 0 || st.Guard.Rejected != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// TestDisconnectBeforeReply: a reply for a caller whose connection has
// gone is dropped without harm, and the Server keeps serving others.
func TestDisconnectBeforeReply(t *testing.T) {
	started := make(chan struct{}, 1)
	var (
		mu      sync.Mutex
		release = make(chan struct{})
	)
	h := func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		if req.GetMethod() == "block" {
			mu.Lock()
			rel := release
			mu.Unlock()
			started <- struct{}{}
			<-rel
		}
		echo(ctx, req, reply)
	}
	s := mustListen(t, "", ServerOptions{}, h)

	for _, wait := range []bool{true, false} {
		name := "connection gone from the table"
		if !wait {
			name = "racing the close"
		}
		t.Run(name, func(t *testing.T) {
			mu.Lock()
			release = make(chan struct{})
			rel := release
			mu.Unlock()
			st0 := s.Stats()
			p1 := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
			errc := make(chan error, 1)
			go func() {
				_, err := p1.Call(context.Background(), &platformpb.Envelope{Method: "block"})
				errc <- err
			}()
			<-started
			p1.Close()
			if err := <-errc; !errors.Is(err, ErrClosed) {
				t.Fatalf("Call on a closed Peer: %v", err)
			}
			if wait {
				checkFor(t, 5*time.Second, "the server saw the connection close", func() bool { return connCount(s) == 0 })
			}
			close(rel)
			// The reply is queued; it leaves the writer before anything
			// queued later (p2's replies), one way or the other: sent (zmq4
			// drops a message for an identity it does not know) or a
			// failed write.
			checkFor(t, 5*time.Second, "reply queued", func() bool { return s.Stats().Replies == st0.Replies+1 })

			p2 := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
			for i := range 50 {
				if _, err := echoCall(p2, "", fmt.Append(nil, "after ", i)); err != nil {
					t.Fatalf("Call after the disconnect: %v", err)
				}
			}
			p2.Close()
			st := s.Stats()
			if st.Panics != 0 || st.Dropped != 0 || st.StuckSends != 0 || st.Guard.Rejected != 0 {
				t.Fatalf("stats %+v", st)
			}
			t.Logf("sent %d, send errors %d", st.Sent-st0.Sent, st.SendErrors-st0.SendErrors)
		})
	}
}

// TestDuplicateRoutingIdentity: on a plain Server, a second connection
// whose READY names the routing identity of a live connection is refused
// (zmq4 would send each reply to both); the first keeps being served, and
// once it has gone the identity may be taken again.
func TestDuplicateRoutingIdentity(t *testing.T) {
	var calls atomic.Int32
	s := mustListen(t, "", ServerOptions{}, func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		calls.Add(1)
		echo(ctx, req, reply)
	})
	first, err := plainDealer(t, s.Endpoint(), "dup-id")
	if err != nil {
		t.Fatal(err)
	}
	dealerEcho(t, first, 1, "first")
	holder := s.conns.get([]byte("dup-id"))
	if holder == nil {
		t.Fatal("dup-id not in the table")
	}

	rejected := s.Stats().Guard.Rejected
	second, err := plainDealer(t, s.Endpoint(), "dup-id")
	t.Logf("second Dial: %v", err)
	checkFor(t, 5*time.Second, "second connection refused", func() bool { return s.Stats().Guard.Rejected == rejected+1 })
	if err == nil {
		// Its handshake may have completed on its side before the server
		// closed the connection: what it sends reaches no Handler.
		_ = second.Send(zmq4.NewMsg(testRequest(t, 7, "second")))
	}
	if g := s.conns.get([]byte("dup-id")); g != holder {
		t.Fatal("the table no longer holds the first connection")
	}
	for i := uint64(2); i < 20; i++ {
		dealerEcho(t, first, i, "first")
	}
	if n := calls.Load(); n != 19 {
		t.Fatalf("the Handler ran %d times, want 19 (the first DEALER's requests only)", n)
	}

	// The holder leaves: the identity is free again.
	first.Close()
	checkFor(t, 5*time.Second, "identity released", func() bool { return s.conns.get([]byte("dup-id")) == nil })
	next, err := plainDealer(t, s.Endpoint(), "dup-id")
	if err != nil {
		t.Fatal(err)
	}
	dealerEcho(t, next, 1, "next")
	if st := s.Stats(); st.Guard.Rejected != rejected+1 || st.Panics != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBatchMixedSizes: concurrent calls whose payloads are empty, small,
// around the 1-byte/8-byte size boundary, around copyBody (copied into the
// batch or written from where they are) and over maxBatchBytes all come
// back intact, plain and over TLS.
func TestBatchMixedSizes(t *testing.T) {
	sizes := []int{0, 1, 200, 255, 256, 300, copyBody - 20, copyBody + 1, 70000, maxBatchBytes + 1000}
	for _, useTLS := range []bool{false, true} {
		name := "plain"
		if useTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			sopts := ServerOptions{}
			popts := fastPeerOptions(t)
			if useTLS {
				sopts.TLS = creds(t, loginID, false)
				popts.TLS = creds(t, brokerID, false)
			}
			s := mustListen(t, "", sopts, echo)
			p := mustDial(t, s.Endpoint(), popts, true)
			runCallers(t, 16, 40, func(c, i int) error {
				payload := make([]byte, sizes[(c+i)%len(sizes)])
				for j := range payload {
					payload[j] = byte(c*7 + i*13 + j)
				}
				_, err := echoCall(p, "echo.Echo", payload)
				return err
			})
			if st := s.Stats(); st.SendErrors != 0 || st.BadMessages != 0 || st.Guard.Rejected != 0 || p.Stats().Deaths != 0 {
				t.Fatalf("server %+v, peer %+v", st, p.Stats())
			}
		})
	}
}

// TestTLSDuplicateRoutingIdentitySameCert: with TLS, a second connection
// of the same certificate naming the routing identity of a live
// connection is refused too (the connection table holds one connection
// per identity); the first keeps its verified identity, and both tables
// forget the identity once the first has gone.
func TestTLSDuplicateRoutingIdentitySameCert(t *testing.T) {
	var rec callerRecorder
	s := mustListen(t, "", ServerOptions{TLS: creds(t, loginID, false)}, rec.handle)
	c := creds(t, brokerID, false)
	first := tlsDealer(t, s.Endpoint(), c, "same-cert-id")
	if rep := roundTrip(t, first, 1); rep.GetRequestId() != 1 || rep.GetErrorCode() != "" {
		t.Fatalf("first's reply %v", rep)
	}
	rejected := s.Stats().Guard.Rejected
	second := tlsDealer(t, s.Endpoint(), c, "same-cert-id")
	checkFor(t, 5*time.Second, "second refused", func() bool { return s.Stats().Guard.Rejected == rejected+1 })
	_ = second.Send(zmq4.NewMsg(mustMarshal(t, &platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, RequestId: 9})))
	// The refusal gave back the second's hold only: the first is still
	// verified (not answered "unauthenticated").
	for i := uint64(2); i < 6; i++ {
		if rep := roundTrip(t, first, i); rep.GetRequestId() != i || rep.GetErrorCode() != "" {
			t.Fatalf("first's reply %v", rep)
		}
	}
	if got := rec.seen(); len(got) != 5 {
		t.Fatalf("callers %q, want the first's 5 requests", got)
	}
	first.Close()
	checkFor(t, 5*time.Second, "identity released", func() bool {
		_, held := s.callers.lookup([]byte("same-cert-id"))
		return !held && s.conns.get([]byte("same-cert-id")) == nil
	})
	next := tlsDealer(t, s.Endpoint(), c, "same-cert-id")
	if rep := roundTrip(t, next, 1); rep.GetRequestId() != 1 || rep.GetErrorCode() != "" {
		t.Fatalf("reply %v", rep)
	}
	if st := s.Stats(); st.Unauthenticated != 0 || st.Guard.Rejected != rejected+1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBatchManyPeers: the Server's writer sorts each batch by connection:
// with 8 Peers calling at once, every reply reaches the Peer that asked,
// and none gets another's (a late or unknown reply).
func TestBatchManyPeers(t *testing.T) {
	s := mustListen(t, "", ServerOptions{}, echo)
	const peers, callers, calls = 8, 8, 100
	ps := make([]*Peer, peers)
	for i := range ps {
		ps[i] = mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	}
	// Caller k calls through Peer k/callers. The payload names both: a
	// reply handed to the wrong Peer and matched there by request id comes
	// back with another's payload; one matched to nothing is a late reply,
	// checked below.
	runCallers(t, peers*callers, calls, func(k, i int) error {
		pi, c := k/callers, k%callers
		_, err := echoCall(ps[pi], "", fmt.Appendf(nil, "peer %d caller %d call %d", pi, c, i))
		return err
	})
	for i, p := range ps {
		if st := p.Stats(); st.Replies != callers*calls || st.LateReplies != 0 || st.BadMessages != 0 || st.Deaths != 0 {
			t.Fatalf("peer %d: %+v", i, st)
		}
	}
	if st := s.Stats(); st.SendErrors != 0 || st.Dropped != 0 {
		t.Fatalf("server %+v", st)
	}
}

// TestDirectWritePolicy: a sender writes its own message while the
// writer's batches are small, whatever else is in flight, and leaves it
// to the writer once they are big, unless it is the only call in flight.
func TestDirectWritePolicy(t *testing.T) {
	l := &link{p: &Peer{}}
	l.p.inflight.Store(8)
	if !l.directOK() {
		t.Fatal("no batches yet: direct writes refused")
	}
	for range 20 {
		l.turn.noteBatch(1)
	}
	if !l.directOK() {
		t.Fatalf("batches of 1 (average %d/16): direct writes refused", l.turn.batchAvg.Load())
	}
	for range 20 {
		l.turn.noteBatch(32)
	}
	if l.directOK() {
		t.Fatalf("batches of 32 (average %d/16): direct writes allowed with 8 calls in flight", l.turn.batchAvg.Load())
	}
	l.p.inflight.Store(1)
	if !l.directOK() {
		t.Fatal("a lone call may not write itself")
	}
	l.p.inflight.Store(8)
	for range 40 {
		l.turn.noteBatch(2)
	}
	if !l.directOK() {
		t.Fatalf("batches back to 2 (average %d/16): direct writes still refused", l.turn.batchAvg.Load())
	}
}

// TestCombinedSends: while a direct sender holding the turn combines
// (yields before its write), the direct sends of other callers are handed
// over to it instead of queued for the writer, and leave in its write.
func TestCombinedSends(t *testing.T) {
	s := mustListen(t, "", ServerOptions{InstanceID: "x-1"}, echo)
	opts := fastPeerOptions(t)
	// No heartbeat queued meanwhile: a message queued for the writer
	// stops hand-overs (nothing overtakes it).
	opts.HeartbeatInterval, opts.DeadAfter = time.Minute, 3*time.Minute
	p := mustDial(t, s.Endpoint(), opts, true)
	l := p.cur.Load()
	if l == nil {
		t.Fatal("no link")
	}
	// The writer may hold the turn for a first heartbeat: wait for it.
	checkFor(t, 5*time.Second, "the turn", l.turn.tryDirect)
	l.startCombine()
	const n = 5
	results := make([]<-chan startResult, n)
	for i := range n {
		results[i] = startCall(t, p, &platformpb.Envelope{Payload: fmt.Appendf(nil, "c%d", i)}, 10*time.Second)
	}
	l.cmu.Lock()
	handed := len(l.combined)
	l.cmu.Unlock()
	l.endCombine()
	if l.combining.Load() || len(l.combined) != 0 || len(l.batch.bodies) != n {
		t.Errorf("after endCombine: combining %v, %d left, %d in the batch", l.combining.Load(), len(l.combined), len(l.batch.bodies))
	}
	err := l.write(&l.batch)
	l.turn.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if handed != n {
		t.Errorf("%d of %d sends handed over to the combining sender", handed, n)
	}
	for i, ch := range results {
		r := <-ch
		if want := fmt.Sprintf("c%d", i); r.err != nil || string(r.rep.GetPayload()) != want {
			t.Errorf("call %d: %v, %q", i, r.err, r.rep.GetPayload())
		}
	}
	// Not combining, or combining with a message queued for the writer: a
	// send is not handed over.
	if l.handOver([]byte("x")) {
		t.Error("handed over with nobody combining")
	}
	l.startCombine()
	l.turn.queued.Add(1)
	if l.handOver([]byte("x")) {
		t.Error("handed over past a queued message")
	}
	l.turn.queued.Add(-1)
	l.combining.Store(false)
}
