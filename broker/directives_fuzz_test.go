package broker

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/edge/frame"
	edgepb "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// fuzzUser is the user the fuzzed connection is logged in as.
const fuzzUser = "u1"

// startFuzzBroker starts a broker (with no yellow to reach: directives
// need none) whose route "mm." may bind kv and room, and one client
// connection that asked for pushes, logged in as fuzzUser; it returns the
// broker and the connection's session.
func startFuzzBroker(tb testing.TB) (*Broker, *session) {
	tb.Helper()
	o := NewOptions()
	o.Yellows = []string{"tcp://127.0.0.1:1"} // nobody there
	o.Edge.TCPAddr, o.Edge.WSAddr = "127.0.0.1:0", ""
	o.Edge.Rate = 0
	o.Routes = append(o.Routes, Route{Prefix: "mm.", Service: "mm", Kind: KindStateless, Binds: []string{"kv", "room"}})
	b, err := New(o, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Main() }()
	tb.Cleanup(func() {
		b.Exit()
		<-done
	})
	nc, err := net.Dial("tcp", b.TCPAddr().String())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = nc.Close() })
	hello, err := thriftx.Marshal(&edgepb.HelloRequest{ProtocolVersion: wire.ProtocolVersion, Push: true})
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := nc.Write(frame.AppendRequest(nil, wire.MethodHello, hello)); err != nil {
		tb.Fatal(err)
	}
	r := frame.NewReader(nc, frame.DefaultLimits())
	if first, _, err := r.ReadResponse(); err != nil || len(first) != 0 {
		tb.Fatalf("edge.Hello: %q %v", first, err)
	}
	go func() { // read and drop the pushes, so the connection is never a slow consumer
		for {
			if _, _, err := r.ReadResponse(); err != nil {
				return
			}
		}
	}()
	// The hello was answered, so the connection is open and indexed.
	b.conns.mu.RLock()
	var s *session
	for _, x := range b.conns.m {
		s = x
	}
	b.conns.mu.RUnlock()
	if s == nil {
		tb.Fatal("no session indexed")
	}
	b.authenticate(s, fuzzUser, "", time.Time{})
	return b, s
}

// directivesPayload encodes directives.
func directivesPayload(tb testing.TB, ds ...*platformpb.SessionDirective) []byte {
	tb.Helper()
	b, err := proto.Marshal(&platformpb.SessionDirectives{Directives: ds})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// FuzzSessionDirectives feeds arbitrary event payloads to the broker's
// session directives entry as from the mm service: nothing panics, and
// whatever is applied, the connection stays logged in as its user with at
// most maxBindings bindings, each of a key mm's routes may bind.
func FuzzSessionDirectives(f *testing.F) {
	b, s := startFuzzBroker(f)
	sid := s.c.ID()
	bind := func(k, v string) *platformpb.Binding { return &platformpb.Binding{Key: k, Value: v} }
	f.Add(directivesPayload(f, &platformpb.SessionDirective{Session: sid, UserId: fuzzUser,
		Bindings: []*platformpb.Binding{bind("room", "r1")}, PushType: "mm.Matched", PushPayload: []byte("hi")}))
	f.Add(directivesPayload(f, &platformpb.SessionDirective{Session: sid, UserId: fuzzUser,
		Bindings: []*platformpb.Binding{{Key: "room", Unset: true}, bind("kv", "k")}}))
	f.Add(directivesPayload(f, &platformpb.SessionDirective{Session: sid, UserId: fuzzUser,
		Bindings: []*platformpb.Binding{bind("user", "evil"), bind("other", "x")}}))
	f.Add(directivesPayload(f, &platformpb.SessionDirective{Session: sid, UserId: "u2", PushType: "mm.Matched"}))
	f.Add(directivesPayload(f, &platformpb.SessionDirective{Session: "nope", UserId: fuzzUser, PushType: "_noon.X"}))
	f.Add(directivesPayload(f, &platformpb.SessionDirective{Session: sid, UserId: fuzzUser, PushType: "mm.Matched"},
		&platformpb.SessionDirective{Session: sid, UserId: fuzzUser, Bindings: []*platformpb.Binding{bind("kv", strings.Repeat("v", 300))}}))
	f.Add(bytes.Repeat([]byte{0x0a, 0x00}, maxDirectives+1)) // one directive too many
	f.Add([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f})        // a length past the end
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		b.sessionDirectives("mm", payload)
		user, _, closed := s.current()
		bindings, _ := s.snapshot()
		if closed {
			return // a push over the connection's queue closes it: allowed
		}
		if user != fuzzUser {
			t.Fatalf("the connection's user is %q, want %q", user, fuzzUser)
		}
		if len(bindings) > maxBindings {
			t.Fatalf("%d bindings, limit %d", len(bindings), maxBindings)
		}
		for k, v := range bindings {
			if !b.routes.mayBind("mm", k) || checkBindingValue(k, v) != "" {
				t.Fatalf("binding %q = %q made by mm", k, v)
			}
		}
	})
}

// TestDecodeDirectivesLimits: an event over maxDirectivesBytes or with
// more than maxDirectives directives is refused before the directives are
// decoded; at the limits it decodes.
func TestDecodeDirectivesLimits(t *testing.T) {
	at := bytes.Repeat([]byte{0x0a, 0x00}, maxDirectives)
	if ds, err := decodeDirectives(at); err != nil || len(ds.GetDirectives()) != maxDirectives {
		t.Fatalf("%d directives: %d, %v", maxDirectives, len(ds.GetDirectives()), err)
	}
	if _, err := decodeDirectives(append(at, 0x0a, 0x00)); !errors.Is(err, errTooManyDirectives) {
		t.Fatalf("%d directives: %v, want errTooManyDirectives", maxDirectives+1, err)
	}
	big := directivesPayload(t, &platformpb.SessionDirective{PushPayload: make([]byte, maxDirectivesBytes)})
	if _, err := decodeDirectives(big); err == nil || !strings.Contains(err.Error(), "exceeds 1048576") {
		t.Fatalf("%d bytes: %v", len(big), err)
	}
	if _, err := decodeDirectives([]byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f}); err == nil {
		t.Fatal("a truncated payload decoded")
	}
}
