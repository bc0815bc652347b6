package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/broker"
	edgeclient "github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
)

// startResumePlatform starts login and room (TLS on every internal link,
// cheap argon2) with the first broker's metrics in reg, and a second
// broker.
func startResumePlatform(t *testing.T, reg *metrics.Registry) (*platform.Platform, *broker.Broker) {
	t.Helper()
	opts := platformtest.Options(t, login.Module, room.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	opts.Sink = func(name string) metrics.Sink {
		if name == "broker" {
			return reg
		}
		return metrics.Nop()
	}
	p := platformtest.Start(t, opts)
	return p, platformtest.StartBroker(t, p)
}

// player is a client of the resume tests.
type player struct {
	t *testing.T
	*edgeclient.Client
}

// dialPlayer connects to b with pushes, resuming token if set.
func dialPlayer(t *testing.T, b *broker.Broker, token string) *player {
	t.Helper()
	o := edgeclient.DefaultOptions()
	o.Push, o.ResumeToken = true, token
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := edgeclient.Dial(ctx, b.TCPAddr().String(), o)
	if err != nil {
		t.Fatalf("dial %s: %v", b.ID(), err)
	}
	t.Cleanup(func() { c.Close() })
	if token != "" && c.HelloReply().GetUserID() == "" {
		t.Fatalf("resume on %s: token refused", b.ID())
	}
	return &player{t: t, Client: c}
}

func (p *player) call(method string, req, resp thrift.TStruct) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return p.CallThrift(ctx, method, req, resp)
}

func (p *player) must(method string, req, resp thrift.TStruct) {
	p.t.Helper()
	if err := p.call(method, req, resp); err != nil {
		p.t.Fatalf("%s: %v", method, err)
	}
}

// signup registers user and logs in, returning the session token.
func (p *player) signup(user string) string {
	p.t.Helper()
	p.must(loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: user, Password: "password1"}, nil)
	var rep loginpb.LoginReply
	p.must(loginrpc.MethodLogin, &loginpb.LoginRequest{Username: user, Password: "password1"}, &rep)
	return rep.SessionToken
}

// waitRoomEvent waits for a @room.Event push of room with type typ.
func waitRoomEvent(t *testing.T, pushes <-chan edgeclient.Push, roomID, typ string) *roompb.Event {
	t.Helper()
	timeout := time.After(waitLong)
	for {
		select {
		case p, ok := <-pushes:
			if !ok {
				t.Fatalf("the connection ended waiting for a %s event", typ)
			}
			if p.Type != room.EventType {
				continue
			}
			var ev roompb.Event
			if err := thriftx.Unmarshal(p.Payload, &ev); err != nil {
				t.Fatalf("@room.Event: %v", err)
			}
			if ev.RoomID == roomID && ev.Type == typ {
				return &ev
			}
		case <-timeout:
			t.Fatalf("no %s event of room %s within %v", typ, roomID, waitLong)
		}
	}
}

// TestResumeAfterBrokerDeath: a player in a room on broker 1 whose broker
// dies resumes the session on broker 2 with the token alone, and is in
// the room again: room.* calls without a room id reach it, and the room's
// pushes arrive, with no join.
func TestResumeAfterBrokerDeath(t *testing.T) {
	reg := metrics.NewRegistry("noon")
	p, b2 := startResumePlatform(t, reg)
	b1 := &testBroker{Broker: p.Broker, reg: reg}
	suffix := testenv.UniqueID(t)[:8]

	alice := dialPlayer(t, b1.Broker, "")
	tok := alice.signup("alice" + suffix)
	bob := dialPlayer(t, b2, "")
	bob.signup("bob" + suffix)

	var st roompb.RoomState
	alice.must(roomrpc.MethodCreate, &roompb.CreateRequest{Name: "resume"}, &st)
	bob.must(roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: st.ID}, &roompb.RoomState{})
	waitRoomEvent(t, alice.Pushes(), st.ID, room.EventJoined)

	// The binding's save is marked before room.Create's reply; wait until
	// it is stored.
	testenv.CheckFor(t, waitLong, "broker 1 saved alice's state", func() bool {
		return broker.PendingStates(b1.Broker) == 0 && b1.counter(t, "broker_session_state_saves_total") > 0
	})
	if n := b1.counterWith(t, "broker_session_state_saves_total", "result", "saved"); n < 1 {
		t.Fatalf("saved %v states, want at least 1", n)
	}

	// Broker 1 dies: no drain, no flush.
	b1.Exit()
	select {
	case <-alice.Done():
	case <-time.After(waitLong):
		t.Fatal("alice's connection outlived its broker")
	}

	// Alice resumes on broker 2: in the room again, with no join.
	again := dialPlayer(t, b2, tok)
	var got roompb.RoomState
	again.must(roomrpc.MethodGet, &roompb.GetRequest{}, &got)
	if got.ID != st.ID {
		t.Fatalf("room.Get without a room id after the resume: room %q, want %q", got.ID, st.ID)
	}
	bindings, topics, ok := broker.SessionState(b2, again.HelloReply().GetSessionID())
	if !ok || bindings[room.BindingKey] != st.ID {
		t.Fatalf("the resumed session's bindings: %v (%v), want room = %s", bindings, ok, st.ID)
	}
	t.Logf("resumed session: bindings %v, topics %v", bindings, topics)

	// And the room's pushes reach her: bob gets ready.
	bob.must(roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, &roompb.RoomState{})
	ev := waitRoomEvent(t, again.Pushes(), st.ID, room.EventReady)
	if ev.Seq <= got.Seq {
		t.Fatalf("event seq %d after state seq %d", ev.Seq, got.Seq)
	}
	// Her own room.* calls without a room id act in the room.
	again.must(roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, &roompb.RoomState{})
	waitRoomEvent(t, bob.Pushes(), st.ID, room.EventReady)
}
