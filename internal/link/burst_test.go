package link

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
)

// burstConn is a hand-driven DEALER: it writes whole bursts of requests in
// one write, and reads the Server's messages.
type burstConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// dialBurst connects to s as DEALER identity id (over TLS with c) and
// waits for the Server's READY.
func dialBurst(t *testing.T, s *Server, id string, c *pki.Credentials) *burstConn {
	t.Helper()
	nc := dialTCP(t, strings.TrimPrefix(s.Endpoint(), "tcp://"))
	if c != nil {
		nc = tls.Client(nc, c.ClientConfig(pki.Identity{}))
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "Identity", id)...)); err != nil {
		t.Fatal(err)
	}
	b := &burstConn{t: t, c: nc, br: bufio.NewReader(nc)}
	if _, err := io.ReadFull(b.br, make([]byte, greetingLen)); err != nil {
		t.Fatalf("server greeting: %v", err)
	}
	if f, body := b.frame(); f&flagCommand == 0 || !strings.Contains(string(body), "READY") {
		t.Fatalf("want the server's READY, got flags %#x %q", f, body)
	}
	return b
}

// frame reads one frame.
func (b *burstConn) frame() (byte, []byte) {
	b.t.Helper()
	f, err := b.br.ReadByte()
	if err != nil {
		b.t.Fatal(err)
	}
	var n uint64
	if f&flagLong != 0 {
		var size [8]byte
		if _, err := io.ReadFull(b.br, size[:]); err != nil {
			b.t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(size[:])
	} else {
		c, err := b.br.ReadByte()
		if err != nil {
			b.t.Fatal(err)
		}
		n = uint64(c)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(b.br, body); err != nil {
		b.t.Fatal(err)
	}
	return f, body
}

// burst writes n requests of method, ids from first, in one write.
func (b *burstConn) burst(method string, first uint64, n int) {
	b.t.Helper()
	var out []byte
	for i := range n {
		id := first + uint64(i)
		body, err := proto.Marshal(&platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, RequestId: id, Method: method,
			Payload: fmt.Appendf(nil, "p%d", id), DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano()})
		if err != nil {
			b.t.Fatal(err)
		}
		out = append(append(out, 0, byte(len(body))), body...)
	}
	if _, err := b.c.Write(out); err != nil {
		b.t.Fatal(err)
	}
}

// replies reads n replies and checks each answers one of ids first.. with
// its payload.
func (b *burstConn) replies(first uint64, n int) {
	b.t.Helper()
	seen := make(map[uint64]bool)
	for len(seen) < n {
		f, body := b.frame()
		if f&flagCommand != 0 {
			continue
		}
		var env platformpb.Envelope
		if err := proto.Unmarshal(body, &env); err != nil {
			b.t.Fatal(err)
		}
		id := env.GetRequestId()
		if env.GetKind() != platformpb.Kind_KIND_REPLY || id < first || id >= first+uint64(n) || seen[id] ||
			string(env.GetPayload()) != fmt.Sprintf("p%d", id) {
			b.t.Fatalf("unexpected message: %v", &env)
		}
		seen[id] = true
	}
}

// TestReadBurstReplies: the replies of inline handlers run for the requests
// of one read leave in one write, plain and over TLS; past the burst's
// inline budget the rest of a burst runs on goroutines of its own, and
// every request is answered.
func TestReadBurstReplies(t *testing.T) {
	for _, withTLS := range []bool{false, true} {
		for _, budget := range []time.Duration{time.Hour, time.Nanosecond} {
			t.Run(fmt.Sprintf("tls=%v/budget=%v", withTLS, budget), func(t *testing.T) {
				testReadBurst(t, withTLS, budget)
			})
		}
	}
}

func testReadBurst(t *testing.T, withTLS bool, budget time.Duration) {
	opts := ServerOptions{
		InstanceID:  "x-1",
		Inline:      func(m string) bool { return m == "x.Fast" },
		burstBudget: budget,
	}
	var client *pki.Credentials
	if withTLS {
		opts.TLS, client = creds(t, loginID, false), creds(t, brokerID, false)
	}
	s := mustListen(t, "", opts, func(_ context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
		reply(&platformpb.Envelope{Payload: req.GetPayload()})
	})
	b := dialBurst(t, s, "burst", client)

	const n = 16
	for round := range 3 {
		first := uint64(1 + round*n)
		before := s.Stats()
		b.burst("x.Fast", first, n)
		b.replies(first, n)
		after := s.Stats()
		inline, burst, writes := after.Inline-before.Inline, after.BurstReplies-before.BurstReplies, after.Writes-before.Writes
		if budget < time.Second {
			// The burst's first request runs inline; the rest are past the
			// budget, but for the last, which may run inline if the others
			// are done.
			if inline < 1 || inline > 2 || burst != inline {
				t.Errorf("past the budget: %d of %d requests ran inline, %d replies left with the burst", inline, n, burst)
			}
			continue
		}
		if inline != n || burst != n || writes != 1 {
			t.Errorf("%d of %d requests ran inline, %d replies left with their burst, in %d writes (want %d, %d, 1)",
				inline, n, burst, writes, n, n)
		}
	}
}
