package link

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// rawDealer is a bare zmq4 DEALER (plain tcp, no guard) for sending what a
// Peer never would.
func rawDealer(t *testing.T, ep string) zmq4.Socket {
	t.Helper()
	d := zmq4.NewDealer(context.Background(), zmq4.WithID(zmq4.SocketIdentity(newIdentity("raw-"))), zmq4.WithDialerMaxRetries(0))
	if err := d.Dial(ep); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestMalformedMessagesDropped(t *testing.T) {
	s := mustListen(t, "", ServerOptions{MaxMessage: 1024, InstanceID: "srv", Load: func() float64 { return 0.25 }}, echo)
	d := rawDealer(t, s.Endpoint())

	garbage := []zmq4.Msg{
		zmq4.NewMsgString("\xff\xff\xff\xff not a protobuf"),
		zmq4.NewMsg([]byte{0x0a, 0xff}),                             // truncated length-delimited field
		zmq4.NewMsg([]byte{0x1a, 0x02, 0xc3, 0x28}),                 // invalid UTF-8 in method
		zmq4.NewMsgFrom([]byte("a"), []byte("b")),                   // two frames
		zmq4.NewMsg(make([]byte, 2000)),                             // over MaxMessage, under the guard's limit
		zmq4.NewMsg(mustMarshal(t, &platformpb.Envelope{Kind: 42})), // unknown kind
		zmq4.NewMsg(mustMarshal(t, &platformpb.Envelope{Kind: platformpb.Kind_KIND_REPLY})),
	}
	for _, m := range garbage {
		if err := d.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, time.Second, "bad messages counted", func() bool { return s.Stats().BadMessages == uint64(len(garbage)) })

	// The same raw socket still gets answers: a PING gets its PONG.
	if err := d.Send(zmq4.NewMsg(mustMarshal(t, &platformpb.Envelope{Kind: platformpb.Kind_KIND_PING, RequestId: 77}))); err != nil {
		t.Fatal(err)
	}
	pong := recvEnvelope(t, d)
	if pong.GetKind() != platformpb.Kind_KIND_PONG || pong.GetRequestId() != 77 || pong.GetLoad() != 0.25 || pong.GetSender() != "srv" {
		t.Fatalf("PONG = %v", pong)
	}
	// And a Peer is served as usual.
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	rep, err := p.Call(context.Background(), &platformpb.Envelope{Payload: []byte("ok")})
	if err != nil || string(rep.GetPayload()) != "ok" {
		t.Fatalf("Call after garbage: %v %v", rep, err)
	}
	if st := s.Stats(); st.BadMessages != uint64(len(garbage)) || st.Guard.Rejected != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// recvEnvelope receives one message on a raw DEALER and decodes it.
func recvEnvelope(t testing.TB, d zmq4.Socket) *platformpb.Envelope {
	t.Helper()
	msg, err := d.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var env platformpb.Envelope
	if err := proto.Unmarshal(msg.Frames[0], &env); err != nil {
		t.Fatal(err)
	}
	return &env
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func zmtpGreeting() []byte {
	g := make([]byte, greetingLen)
	g[0], g[9], g[10] = 0xff, 0x7f, 3
	copy(g[12:], "NULL")
	return g
}

func readyCommand(props ...string) []byte {
	body := append([]byte{5}, "READY"...)
	for i := 0; i+1 < len(props); i += 2 {
		body = append(body, byte(len(props[i])))
		body = append(body, props[i]...)
		body = binary.BigEndian.AppendUint32(body, uint32(len(props[i+1])))
		body = append(body, props[i+1]...)
	}
	return append([]byte{flagCommand, byte(len(body))}, body...)
}

// hostileInput is a stream that crashes or stalls a bare zmq4 v0.17.0.
type hostileInput struct {
	name string
	send []byte
}

// hostileInputs are what the guard must refuse, plain or over TLS.
func hostileInputs() []hostileInput {
	return []hostileInput{
		// zmq4: panic "slice bounds out of range" in Metadata.UnmarshalZMTP.
		{"truncated READY property", append(zmtpGreeting(), flagCommand, 10, 5, 'R', 'E', 'A', 'D', 'Y', 3, 'a', 'b', 'c')},
		// zmq4: panic "makeslice: len out of range" in Conn.read.
		{"huge frame length", append(append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "Identity", "h")...),
			flagLong, 0x10, 0, 0, 0, 0, 0, 0, 0)},
		// zmq4 would allocate and wait for 1 GiB.
		{"frame over MaxMessage", append(append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "Identity", "m")...),
			flagLong, 0, 0, 0, 0, 0x40, 0, 0, 0)},
		{"HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat(" ", 64))},
		{"data before READY", append(zmtpGreeting(), 0, 3, 'a', 'b', 'c')},
		{"unknown command", append(zmtpGreeting(), flagCommand, 6, 5, 'H', 'E', 'L', 'L', 'O')},
		{"non-ASCII READY property", append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "\xc4\xb1dentity", "x")...)},
	}
}

// TestHostileConnections sends what crashes or stalls a bare zmq4 v0.17.0
// ROUTER; the guard must close each connection and keep serving.
func TestHostileConnections(t *testing.T) {
	s := mustListen(t, "", ServerOptions{HandshakeTimeout: time.Second}, echo)
	addr := strings.TrimPrefix(s.Endpoint(), "tcp://")
	cases := hostileInputs()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := io.Copy(io.Discard, c); err != nil {
				t.Fatalf("connection not closed by the server: %v", err)
			}
		})
	}
	if st := s.Stats(); st.Guard.Rejected < uint64(len(cases)) {
		t.Fatalf("Guard.Rejected = %d, want >= %d", st.Guard.Rejected, len(cases))
	}

	// A silent connection would hold zmq4's accept loop (handshakes run
	// inline, with no deadline); the guard keeps it away from zmq4 and closes
	// it at the handshake timeout.
	rejected := s.Stats().Guard.Rejected
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// Dial returned once the kernel completed the handshake, so the silent
	// connection is ahead of the peer's in the listener's accept queue.
	start := time.Now()
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	took := time.Since(start)
	t.Logf("peer connected %v after a silent connection opened", took)
	if took > 500*time.Millisecond {
		t.Fatalf("a silent connection delayed a peer by %v (handshake timeout 1s)", took)
	}
	silent.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.Copy(io.Discard, silent); err != nil {
		t.Fatalf("silent connection not closed: %v", err)
	}
	if got := s.Stats().Guard.Rejected; got != rejected+1 {
		t.Fatalf("Guard.Rejected %d, want %d", got, rejected+1)
	}
	rep, err := p.Call(context.Background(), &platformpb.Envelope{Payload: []byte("still here")})
	if err != nil || string(rep.GetPayload()) != "still here" {
		t.Fatalf("Call: %v %v", rep, err)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	const idle = 400 * time.Millisecond
	s := mustListen(t, "", ServerOptions{IdleTimeout: idle}, echo)
	start := time.Now()
	rawDealer(t, s.Endpoint()) // sends nothing after the handshake
	checkFor(t, 3*time.Second, "idle connection closed", func() bool { return s.Stats().Guard.Idle == 1 })
	t.Logf("idle connection closed after %v (IdleTimeout %v)", time.Since(start), idle)
	// A Peer pings (every 50 ms) well within the idle timeout: never closed.
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	time.Sleep(2 * idle)
	if !p.Alive() || p.Stats().Deaths != 0 {
		t.Fatalf("peer alive=%v stats=%+v", p.Alive(), p.Stats())
	}
}

// TestStuckPeerDisconnected: a caller that stops reading must not stall the
// server's replies to everyone else for longer than SendTimeout.
func TestStuckPeerDisconnected(t *testing.T) {
	big := make([]byte, 512<<10)
	s := mustListen(t, "", ServerOptions{SendTimeout: 200 * time.Millisecond, QueueSize: 64},
		func(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
			if string(req.GetPayload()) == "big" {
				reply(&platformpb.Envelope{Payload: big})
				return
			}
			echo(ctx, req, reply)
		})
	// A raw DEALER asks for many big replies and never reads them.
	d := rawDealer(t, s.Endpoint())
	req := mustMarshal(t, &platformpb.Envelope{Kind: platformpb.Kind_KIND_REQUEST, Payload: []byte("big"),
		DeadlineUnixNano: time.Now().Add(time.Minute).UnixNano()})
	for i := range 64 {
		r := append([]byte(nil), req...)
		r = append(r, 0x10, byte(i+1)) // request_id
		if err := d.Send(zmq4.NewMsg(r)); err != nil {
			t.Fatal(err)
		}
	}
	checkFor(t, 5*time.Second, "stuck connection closed", func() bool { return s.Stats().Guard.Stuck >= 1 })
	p := mustDial(t, s.Endpoint(), fastPeerOptions(t), true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := p.Call(ctx, &platformpb.Envelope{Payload: []byte("x")}); err != nil {
		t.Fatalf("Call after a stuck peer: %v", err)
	}
	t.Logf("server %+v", s.Stats())
}

func TestFrameParserSplits(t *testing.T) {
	stream := append(append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "Identity", "x")...),
		flagMore, 1, 'a', flagLong, 0, 0, 0, 0, 0, 0, 0, 3, 'b', 'c', 'd', 0, 0)
	for cut := 0; cut <= len(stream); cut++ {
		p := frameParser{greet: greetingLen, check: true, limit: 64}
		if n, err := p.feed(stream[:cut]); err != nil || n != cut {
			t.Fatalf("cut %d: first half %d, %v", cut, n, err)
		}
		if n, err := p.feed(stream[cut:]); err != nil || n != len(stream)-cut {
			t.Fatalf("cut %d: second half %d, %v", cut, n, err)
		}
		if !p.atBoundary() || p.frames != 4 {
			t.Fatalf("cut %d: boundary=%v frames=%d", cut, p.atBoundary(), p.frames)
		}
	}
	// Over the limit counting both frames of a message.
	p := frameParser{greet: greetingLen, check: true, limit: 6} // the bare READY's body is 6 bytes
	over := append(append(zmtpGreeting(), readyCommand()...), flagMore, 2, 'a', 'b', 0, 5)
	n, err := p.feed(over)
	if err == nil || n != len(over)-1 {
		t.Fatalf("over limit: n=%d err=%v, want the size byte withheld", n, err)
	}
}
