package room_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// waitLong bounds every wait for something that takes milliseconds.
const waitLong = 15 * time.Second

// player is a game client logged in through the platform's broker.
type player struct {
	t  *testing.T
	c  *client.Client
	id string // the user id login gave it
}

func newPlayer(t *testing.T, p *platform.Platform, name string) *player {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	pl := &player{t: t, c: c}
	pl.must(loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: name, Password: "password1"}, nil)
	var rep loginpb.LoginReply
	pl.must(loginrpc.MethodLogin, &loginpb.LoginRequest{Username: name, Password: "password1"}, &rep)
	pl.id = rep.UserID
	return pl
}

func (pl *player) call(method string, req, resp thrift.TStruct) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return pl.c.CallThrift(ctx, method, req, resp)
}

func (pl *player) must(method string, req, resp thrift.TStruct) {
	pl.t.Helper()
	if err := pl.call(method, req, resp); err != nil {
		pl.t.Fatalf("%s: %v", method, err)
	}
}

// serviceRoomClient returns room's client stubs for a process holding
// id's certificate, calling each request's room's owner as a matchmaker
// does (routed by room_id).
func serviceRoomClient(t *testing.T, p *platform.Platform, id pki.Identity) func(*roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error) {
	c := services.NewClient(services.ClientOptions{
		Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		Peer: link.PeerOptions{TLS: testenv.Credentials(t, id)}, Logger: testenv.Logger(t),
	})
	t.Cleanup(c.Close)
	return func(req *roompb.CreateMatchedRequest) (*roompb.CreateMatchedReply, error) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		target := router.Target{Service: room.Name, Stateful: true, Key: room.BindingKey, Value: req.RoomID}
		return roomrpc.NewClient(func(ctx context.Context, method string, req, resp thrift.TStruct) error {
			return c.CallTo(ctx, target, method, req, resp)
		}).CreateMatched(ctx, req)
	}
}

// TestCreateMatchedOnPlatform: on the whole platform with mutual TLS, a
// logged-in client calling room.CreateMatched through the broker is
// refused and creates nothing, and so is another service; a service:match
// identity creates the room with its members (idempotently; other members
// conflict); the members then get and play it through the broker; past
// max_rooms the instance refuses overloaded; and the instance's rooms_free
// in yellow falls with each room created.
func TestCreateMatchedOnPlatform(t *testing.T) {
	opts := platformtest.Options(t, login.Module, room.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	opts.Sections[room.Name].(*services.Config[room.Options]).Service.MaxRooms = 2
	p := platformtest.Start(t, opts)

	// The matchmaker's view of room capacity: yellow's, followed by deltas.
	match := pki.Identity{Role: pki.RoleService, Name: "match"}
	w := yellow.Watch(yellow.ClientOptions{
		Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		TLS: testenv.Credentials(t, match), Logger: testenv.Logger(t),
	})
	t.Cleanup(w.Close)
	freeIs := func(want int) func() bool {
		return func() bool {
			insts := w.Instances(room.Name)
			if len(insts) != 1 {
				return false
			}
			n, ok := room.RoomsFree(insts[0])
			return ok && n == want
		}
	}
	testenv.CheckFor(t, waitLong, "rooms_free 2 in yellow", freeIs(2))

	alice, bob := newPlayer(t, p, "alice"), newPlayer(t, p, "bob")
	id := "m" + testenv.UniqueID(t)
	req := &roompb.CreateMatchedRequest{RoomID: id, Members: []string{alice.id, bob.id}}
	const clients = "unauthenticated: an internal method: clients may not call it"
	if err := alice.call(roomrpc.MethodCreateMatched, req, nil); err == nil || err.Error() != clients {
		t.Fatalf("a client's room.CreateMatched = %v, want %s", err, clients)
	}
	other := serviceRoomClient(t, p, pki.Identity{Role: pki.RoleService, Name: "login"})
	if _, err := other(req); err == nil || err.Error() != "unauthenticated: an internal method: service:login may not call it (services match and admins may)" {
		t.Fatalf("service:login's room.CreateMatched = %v", err)
	}

	mm := serviceRoomClient(t, p, match)
	rep, err := mm(req)
	if err != nil || !rep.Created {
		t.Fatalf("service:match's room.CreateMatched = %+v, %v (created false: the refused calls created it)", rep, err)
	}
	if st := rep.State; st.ID != id || st.Host != alice.id || len(st.Players) != 2 || st.Players[1].ID != bob.id || st.Game != "race31" {
		t.Fatalf("created %+v", st)
	}
	testenv.CheckFor(t, waitLong, "rooms_free 1 in yellow", freeIs(1))
	if rep, err := mm(&roompb.CreateMatchedRequest{RoomID: id, Members: []string{bob.id, alice.id}}); err != nil || rep.Created || rep.State.Seq != 2 {
		t.Fatalf("a retry = %+v, %v; want the room, created false", rep, err)
	}
	if _, err := mm(&roompb.CreateMatchedRequest{RoomID: id, Members: []string{alice.id}}); wire.CodeOf(err) != wire.CodeConflict {
		t.Fatalf("other members = %v, want conflict", err)
	}

	// The members play it through the broker.
	var st roompb.RoomState
	bob.must(roomrpc.MethodGet, &roompb.GetRequest{RoomID: &id}, &st)
	if !slices.EqualFunc(st.Players, []string{alice.id, bob.id}, func(p *roompb.Player, id string) bool { return p.ID == id && !p.Ready }) {
		t.Fatalf("bob's room.Get: %+v", &st)
	}
	for _, pl := range []*player{alice, bob} {
		pl.must(roomrpc.MethodReady, &roompb.ReadyRequest{RoomID: &id, Ready: true}, nil)
	}
	alice.must(roomrpc.MethodStart, &roompb.StartRequest{RoomID: &id}, &st)
	if st.Status != room.StatusPlaying {
		t.Fatalf("after start: %+v", &st)
	}

	// Capacity: a second room fits, a third does not.
	if rep, err := mm(&roompb.CreateMatchedRequest{RoomID: id + "-2", Members: []string{bob.id}}); err != nil || !rep.Created {
		t.Fatalf("a second room: %+v, %v", rep, err)
	}
	testenv.CheckFor(t, waitLong, "rooms_free 0 in yellow", freeIs(0))
	if _, err := mm(&roompb.CreateMatchedRequest{RoomID: id + "-3", Members: []string{alice.id}}); wire.CodeOf(err) != wire.CodeOverloaded {
		t.Fatalf("a third room = %v, want overloaded", err)
	}
}

// TestPruneOnPlatform: on the whole platform with mutual TLS, room.Prune
// (noonctl rooms prune) is an admin's: a client through the broker and a
// service identity are refused; an admin prunes rooms closed long enough.
func TestPruneOnPlatform(t *testing.T) {
	opts := platformtest.Options(t, login.Module, room.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	p := platformtest.Start(t, opts)

	alice := newPlayer(t, p, "alice")
	var st roompb.RoomState
	alice.must(roomrpc.MethodCreate, &roompb.CreateRequest{Name: "short"}, &st)
	alice.must(roomrpc.MethodLeave, &roompb.LeaveRequest{}, nil)
	req := &roompb.PruneRequest{OlderThanMs: 1}
	if err := alice.call(roomrpc.MethodPrune, req, nil); err == nil || err.Error() != "unauthenticated: an internal method: clients may not call it" {
		t.Fatalf("a client's room.Prune = %v", err)
	}
	prune := func(id pki.Identity) (*roompb.PruneReply, error) {
		c := services.NewClient(services.ClientOptions{
			Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
			Peer: link.PeerOptions{TLS: testenv.Credentials(t, id)}, Logger: testenv.Logger(t),
		})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		return roomrpc.NewClient(c.Call).Prune(ctx, req)
	}
	if _, err := prune(pki.Identity{Role: pki.RoleService, Name: "match"}); err == nil || err.Error() != "unauthenticated: an admin method: service:match may not call it" {
		t.Fatalf("a service's room.Prune = %v", err)
	}
	var rep *roompb.PruneReply
	testenv.CheckFor(t, waitLong, "the admin prunes the closed room", func() bool {
		var err error
		rep, err = prune(pki.Identity{Role: pki.RoleAdmin, Name: "ops"})
		return err == nil && rep.Rooms == 1
	})
	if len(rep.RoomIds) != 1 || rep.RoomIds[0] != st.ID || rep.Mode != room.RetentionDelete {
		t.Fatalf("prune: %+v, want room %s deleted", rep, st.ID)
	}
}
