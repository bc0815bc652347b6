package link

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// FuzzDecodeEnvelope feeds the server's envelope decoder arbitrary frames:
// it must never panic, must refuse frames over its limit, and whatever it
// accepts must re-encode and decode to the same message. Each input is also
// decoded in two halves (a frame cut short).
func FuzzDecodeEnvelope(f *testing.F) {
	const limit = 4096
	full := &platformpb.Envelope{
		Kind: platformpb.Kind_KIND_REQUEST, RequestId: 1 << 40, Method: "room.Join",
		Session:          &platformpb.Session{Id: "s1", UserId: "u1", Bindings: map[string]string{"room": "r42"}},
		DeadlineUnixNano: 1_700_000_000_000_000_000, Payload: []byte{1, 2, 3},
		ErrorCode: "moved", ErrorMessage: "elsewhere", Load: 0.5, Sender: "room-1",
		Bindings:      []*platformpb.Binding{{Key: "room", Value: "r42"}},
		Subscriptions: []*platformpb.Subscription{{Topic: "room/r42"}},
	}
	b, _ := proto.Marshal(full)
	f.Add(b)
	for _, o := range []envelopeOverrides{
		{kind: platformpb.Kind_KIND_PING, requestID: 7},
		{kind: platformpb.Kind_KIND_PONG, requestID: 7, setLoad: true, load: 0.25, sender: "x"},
		{kind: platformpb.Kind_KIND_CANCEL, requestID: 9},
	} {
		b, _ := encodeEnvelope(nil, o)
		f.Add(b)
	}
	b, _ = encodeEnvelope(full, envelopeOverrides{kind: platformpb.Kind_KIND_REPLY, requestID: 3, deadline: 5})
	f.Add(b)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(make([]byte, limit+1))

	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := decodeEnvelope(b, limit)
		if len(b) > limit && err == nil {
			t.Fatalf("accepted a %d-byte frame over the %d limit", len(b), limit)
		}
		if err == nil {
			again, err := proto.Marshal(env)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			env2, err := decodeEnvelope(again, 2*limit+len(again))
			if err != nil || !proto.Equal(env, env2) {
				t.Fatalf("round trip: %v, equal=%v", err, proto.Equal(env, env2))
			}
		}
		_, _ = decodeEnvelope(b[:len(b)/2], limit)
		_, _ = decodeEnvelope(b[len(b)/2:], limit)
	})
}

// FuzzFrameParser feeds the guard's ZMTP parser arbitrary streams, whole and
// cut in two at every fuzzed point: it must never panic, must reach the same
// verdict at the same byte either way, and never hand on more than it got.
func FuzzFrameParser(f *testing.F) {
	valid := append(append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "Identity", "abc")...),
		flagMore, 0, 0, 3, 'a', 'b', 'c', flagLong, 0, 0, 0, 0, 0, 0, 0, 1, 'x')
	f.Add(valid, uint(70))
	f.Add(append(zmtpGreeting(), flagCommand, 10, 5, 'R', 'E', 'A', 'D', 'Y', 3, 'a', 'b', 'c'), uint(66))
	f.Add(append(append(zmtpGreeting(), readyCommand()...), flagLong, 0x10, 0, 0, 0, 0, 0, 0, 0), uint(3))
	f.Add([]byte("GET / HTTP/1.1\r\n"), uint(0))
	f.Add(append(zmtpGreeting(), readyCommand("Identity", "a", "identity", "b")...), uint(80))
	f.Add(append(zmtpGreeting(), readyCommand("Socket-Type", "DEALER", "\xc4\xb1dentity", "b")...), uint(90))

	f.Fuzz(func(t *testing.T, b []byte, cut uint) {
		const limit = 256
		// The READY's routing identity, as the ready hook of a TLS ROUTER's
		// connection sees it, must not depend on the cut either.
		var id1, id2 string
		whole := frameParser{greet: greetingLen, check: true, limit: limit,
			ready: func(id []byte, ok bool) error { id1 = fmt.Sprintf("%q %v", id, ok); return nil }}
		n1, err1 := whole.feed(b)
		if n1 > len(b) {
			t.Fatalf("handed on %d of %d bytes", n1, len(b))
		}

		c := int(cut % uint(len(b)+1))
		split := frameParser{greet: greetingLen, check: true, limit: limit,
			ready: func(id []byte, ok bool) error { id2 = fmt.Sprintf("%q %v", id, ok); return nil }}
		n2, err2 := split.feed(b[:c])
		if err2 == nil {
			var m int
			m, err2 = split.feed(b[c:])
			n2 = c + m
		}
		if n1 != n2 || (err1 == nil) != (err2 == nil) || id1 != id2 {
			t.Fatalf("whole: %d, %v, %s; cut at %d: %d, %v, %s", n1, err1, id1, c, n2, err2, id2)
		}
		if err1 == nil && n1 != len(b) {
			t.Fatalf("no error but handed on %d of %d bytes", n1, len(b))
		}
	})
}

// FuzzServeReads feeds the guard's own message reader (what a connection
// sends after its handshake) arbitrary bytes: it must never panic, never
// hand the sink a message over the limit, and must end with an error (the
// stream's end or a broken rule) having delivered exactly the messages a
// batch of the same bodies encodes. Inputs built as batches of frames
// check the round trip: every body comes out whole and in order.
func FuzzServeReads(f *testing.F) {
	const limit = 300
	enc := func(bodies ...[]byte) []byte {
		var b frameBatch
		for _, x := range bodies {
			b.add(x)
		}
		var out []byte
		for _, v := range b.buffers() {
			out = append(out, v...)
		}
		return out
	}
	f.Add(enc([]byte("a"), []byte{}, make([]byte, 256)), true)
	f.Add(enc(make([]byte, limit+1)), true)
	f.Add([]byte{flagMore, 1, 'x', 0, 1, 'y', flagCommand, 4, 'P', 'I', 'N', 'G'}, false)
	f.Add([]byte{0x80, 0}, false)
	f.Add([]byte{flagLong, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, false)
	f.Fuzz(func(t *testing.T, data []byte, asBodies bool) {
		var want [][]byte
		if asBodies {
			// Cut data into bodies of the lengths its bytes say.
			for rest := data; len(rest) > 0; {
				n := min(int(rest[0])+int(rest[0])%3*100, len(rest)-1)
				want = append(want, rest[1:1+n])
				rest = rest[1+n:]
			}
			data = enc(want...)
		}
		var got [][]byte
		bad := 0
		g := &guardConn{
			cfg: &guardConfig{
				maxMessage: limit, stats: new(guardStats), log: slog.New(slog.DiscardHandler),
				sink: func(_ *guardConn, body []byte, ok bool) {
					if !ok {
						bad++
						return
					}
					if len(body) > limit {
						t.Fatalf("delivered a %d-byte message over the %d limit", len(body), limit)
					}
					got = append(got, append([]byte(nil), body...))
				},
			},
			raw:    nopConn{},
			Conn:   nopConn{},
			closed: make(chan struct{}),
			br:     bufio.NewReader(bytes.NewReader(data)),
		}
		if err := g.serveReads(); err == nil {
			t.Fatal("serveReads returned nil")
		}
		if !asBodies {
			return
		}
		over := slices.IndexFunc(want, func(b []byte) bool { return len(b) > limit })
		if over >= 0 {
			want = want[:over] // the connection is closed at the first one over
		}
		if bad != 0 || len(got) != len(want) {
			t.Fatalf("delivered %d messages (%d bad), want %d", len(got), bad, len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}

// nopConn is a net.Conn that does nothing (serveReads reads from the guard's
// buffer; a broken rule closes and logs the remote address).
type nopConn struct{ net.Conn }

func (nopConn) Close() error         { return nil }
func (nopConn) RemoteAddr() net.Addr { return &net.TCPAddr{} }
