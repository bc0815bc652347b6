package services_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/wire"
)

// The tests of session directives and presence run the in-process
// platform (mutual TLS on every link) with login, room and "mm", a tiny
// test-only stand-in for the matchmaker: its route may bind room, it
// publishes session directives, and it follows the brokers' presence
// through Env.Follow.

// waitPlatform bounds the waits on the platform: far more than anything
// here takes.
const waitPlatform = 15 * time.Second

// testGrace is the brokers' resume grace in these tests: not the default,
// so the presence events are seen to carry the option.
const testGrace = 7 * time.Second

// mm is the test module's state, shared with the test.
type mm struct {
	srv      atomic.Pointer[services.Server]
	follower atomic.Pointer[services.Follower]
	presence chan *platformpb.Presence // every presence event heard
}

// module returns the mm module: mm.Who answers
// "<user>|<session id>|<broker>|<room binding>"; its instance follows
// wire.TopicPresence on every broker.
func (m *mm) module() services.Module {
	return services.NewModule(services.Def[services.NoOptions]{
		Name:    "mm",
		Kind:    services.KindStateless,
		Summary: "test stand-in for the matchmaker",
		Needs:   services.Needs{Pub: true},
		Build: func(_ context.Context, env *services.Env, _ services.NoOptions) (*services.Impl, error) {
			f, err := env.Follow(broker.ServiceName, []string{wire.TopicPresence}, func(from *platformpb.Instance, topic string, ev *platformpb.Event) {
				if topic != wire.TopicPresence || ev.GetType() != wire.EventPresence || from.GetService() != broker.ServiceName {
					return
				}
				var pr platformpb.Presence
				if proto.Unmarshal(ev.GetPayload(), &pr) == nil {
					select {
					case m.presence <- &pr:
					default: // the test stopped reading
					}
				}
			})
			if err != nil {
				return nil, err
			}
			m.follower.Store(f)
			return &services.Impl{
				Handlers: map[string]services.HandlerFunc{
					"mm.Who": func(_ context.Context, s *services.Session, _ []byte) ([]byte, error) {
						return fmt.Appendf(nil, "%s|%s|%s|%s", s.UserID(), s.ID(), s.Broker(), s.Binding(room.BindingKey)), nil
					},
				},
				Attach: func(srv *services.Server) { m.srv.Store(srv) },
				// No Close: the follower stops with the instance (Env.Follow).
			}, nil
		},
	})
}

// startMM starts the platform with login (cheap hashes), room and mm, mm
// routed with the right to bind room, the brokers' resume grace testGrace.
func startMM(t *testing.T) (*platform.Platform, *mm) {
	t.Helper()
	m := &mm{presence: make(chan *platformpb.Presence, 1024)}
	opts := platformtest.Options(t, login.Module, room.Module, m.module())
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	opts.Broker.Routes = append(opts.Broker.Routes,
		broker.Route{Prefix: "mm.", Service: "mm", Kind: broker.KindStateless, Binds: []string{room.BindingKey}})
	opts.Broker.ResumeGrace = testGrace
	p := platformtest.Start(t, opts)
	return p, m
}

// player is a game client of the test.
type player struct {
	t *testing.T
	*client.Client
	user string // the name it logs in with
	id   string // its user id, once logged in
	tok  string // its session token, once logged in
}

// dialPlayer connects to b with pushes on, resuming token if set.
func dialPlayer(t *testing.T, b *broker.Broker, user, token string) *player {
	t.Helper()
	o := client.DefaultOptions()
	o.Push, o.ResumeToken = true, token
	ctx, cancel := context.WithTimeout(context.Background(), waitPlatform)
	defer cancel()
	c, err := client.Dial(ctx, b.TCPAddr().String(), o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	p := &player{t: t, Client: c, user: user, tok: token}
	if token != "" {
		if p.id = c.HelloReply().GetUserID(); p.id == "" {
			t.Fatalf("resuming %s: token refused", user)
		}
	}
	return p
}

// call calls method with Thrift structs (resp may be nil), failing the
// test on an error.
func (p *player) call(method string, req, resp thrift.TStruct) {
	p.t.Helper()
	if err := p.callErr(method, req, resp); err != nil {
		p.t.Fatalf("%s as %s: %v", method, p.user, err)
	}
}

// callErr calls method with Thrift structs (resp may be nil).
func (p *player) callErr(method string, req, resp thrift.TStruct) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitPlatform)
	defer cancel()
	return p.CallThrift(ctx, method, req, resp)
}

// login registers the player's user (once) and logs the connection in.
func (p *player) login(register bool) {
	p.t.Helper()
	if register {
		p.call(loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: p.user, Password: "password1"}, nil)
	}
	var rep loginpb.LoginReply
	p.call(loginrpc.MethodLogin, &loginpb.LoginRequest{Username: p.user, Password: "password1"}, &rep)
	p.id, p.tok = rep.UserID, rep.SessionToken
}

// who returns the connection's session id, its broker and its room
// binding, from mm.Who.
func (p *player) who() (user, sid, brokerID, roomID string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitPlatform)
	defer cancel()
	out, err := p.Call(ctx, "mm.Who", nil)
	if err != nil {
		p.t.Fatalf("mm.Who: %v", err)
	}
	f := strings.Split(string(out), "|")
	return f[0], f[1], f[2], f[3]
}

// TestSessionDirectiveRoutes is a match ending in a route: a room exists;
// mm binds room = <id> on a player's existing connection and pushes
// "@mm.Matched", with no request from the player; when the push arrives
// the binding is in place, and the player's next room.Get, which names no
// room, reaches the room.
func TestSessionDirectiveRoutes(t *testing.T) {
	p, m := startMM(t)
	testenv.CheckFor(t, waitPlatform, "the broker follows mm's and room's session directives", func() bool {
		return p.Broker.SessionFeeds("mm") == 1 && p.Broker.SessionFeeds(room.Name) == 1
	})
	if n := p.Broker.SessionFeeds(login.Name); n != 0 {
		t.Fatalf("SessionFeeds(login) = %d: login's routes bind no key", n)
	}

	host := dialPlayer(t, p.Broker, "host", "")
	host.login(true)
	var st roompb.RoomState
	host.call(roomrpc.MethodCreate, &roompb.CreateRequest{Name: "matched"}, &st)

	pl := dialPlayer(t, p.Broker, "player", "")
	pl.login(true)
	if err := pl.callErr(roomrpc.MethodGet, &roompb.GetRequest{}, &roompb.RoomState{}); err == nil || !strings.HasPrefix(err.Error(), "bad_request: not in a room") {
		t.Fatalf("room.Get before the directive: %v", err)
	}
	user, sid, bid, _ := pl.who()
	if user != pl.id || bid != p.Broker.ID() {
		t.Fatalf("mm.Who: user %q broker %q", user, bid)
	}

	d := &platformpb.SessionDirective{
		Session:     sid,
		UserId:      pl.id,
		Bindings:    []*platformpb.Binding{{Key: room.BindingKey, Value: st.ID}},
		PushType:    "mm.Matched",
		PushPayload: []byte(st.ID),
	}
	// The broker's subscription reaches mm's socket asynchronously: publish
	// until the push comes.
	deadline := time.Now().Add(waitPlatform)
	for got := false; !got; {
		if time.Now().After(deadline) {
			t.Fatal("no @mm.Matched push")
		}
		if err := m.srv.Load().PublishSession(bid, d); err != nil {
			t.Fatal(err)
		}
		select {
		case push := <-pl.Pushes():
			if push.Type != "mm.Matched" || string(push.Payload) != st.ID {
				t.Fatalf("push %q %q", push.Type, push.Payload)
			}
			got = true
		case <-time.After(50 * time.Millisecond):
		}
	}
	if _, _, _, bound := pl.who(); bound != st.ID {
		t.Fatalf("room binding %q after the push, want %q", bound, st.ID)
	}
	var got roompb.RoomState
	pl.call(roomrpc.MethodGet, &roompb.GetRequest{}, &got)
	if got.ID != st.ID {
		t.Fatalf("room.Get on the bound connection: room %q, want %q", got.ID, st.ID)
	}
	pl.call(roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: st.ID}, &got)
	if len(got.Players) != 2 {
		t.Fatalf("room after the player joined: %+v", got.Players)
	}
}

// wantPresence waits for the next presence event of user and checks it.
func wantPresence(t *testing.T, m *mm, user, sid, brokerID string, online bool) {
	t.Helper()
	timeout := time.After(waitPlatform)
	for {
		select {
		case pr := <-m.presence:
			if pr.GetUserId() != user {
				continue
			}
			wantGrace := testGrace.Milliseconds()
			if online {
				wantGrace = 0
			}
			if pr.GetOnline() != online || pr.GetSession() != sid || pr.GetBroker() != brokerID ||
				pr.GetGraceMs() != wantGrace || pr.GetAtUnixMs() <= 0 {
				t.Fatalf("presence %v, want user %s session %s broker %s online %v grace %d ms", pr, user, sid, brokerID, online, wantGrace)
			}
			return
		case <-timeout:
			t.Fatalf("no presence event of %s (online %v) within %v", user, online, waitPlatform)
		}
	}
}

// warmUp resumes warm's session on fresh connections to b until mm hears
// one go online: the subscription to b's presence reaches b's socket
// asynchronously, and from then on no event of b is missed.
func warmUp(t *testing.T, m *mm, b *broker.Broker, warm *player) {
	t.Helper()
	deadline := time.After(waitPlatform)
	for {
		w := dialPlayer(t, b, warm.user, warm.tok)
		timeout := time.After(100 * time.Millisecond)
		for waiting := true; waiting; {
			select {
			case pr := <-m.presence:
				if pr.GetUserId() == warm.id && pr.GetOnline() && pr.GetBroker() == b.ID() {
					_ = w.Close()
					return
				}
			case <-timeout:
				waiting = false
			case <-deadline:
				t.Fatalf("no presence event heard from %s", b.ID())
			}
		}
		_ = w.Close()
	}
}

// TestPresence: a service following the brokers (Env.Follow, over TLS)
// hears a player's connection go online at login, offline with the
// broker's resume grace at logout, online again at the next login and
// offline when the connection closes.
func TestPresence(t *testing.T) {
	p, m := startMM(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitPlatform)
	defer cancel()
	if err := m.follower.Load().WaitFeeds(ctx, 1); err != nil {
		t.Fatalf("mm's follower never followed the broker: %v", err)
	}
	if pub := p.Broker.PubEndpoint(); pub == "" || p.Broker.Info().Pub != pub {
		t.Fatalf("broker pub %q, Info %q", pub, p.Broker.Info().Pub)
	}

	// The subscription reaches the broker's socket asynchronously: resume
	// a warm-up user's session on fresh connections until one is heard.
	warm := dialPlayer(t, p.Broker, "warmup", "")
	warm.login(true)
	warmUp(t, m, p.Broker, warm)

	pl := dialPlayer(t, p.Broker, "player1", "")
	pl.login(true)
	_, sid, bid, _ := pl.who()
	wantPresence(t, m, pl.id, sid, bid, true)
	pl.call(loginrpc.MethodLogout, &loginpb.LogoutRequest{SessionToken: &pl.tok}, nil)
	wantPresence(t, m, pl.id, sid, bid, false)
	pl.login(false)
	wantPresence(t, m, pl.id, sid, bid, true)
	_ = pl.Close()
	wantPresence(t, m, pl.id, sid, bid, false)

	// A resume (edge.Hello with the token, here on a second broker) is
	// online too, and its close offline.
	b2 := platformtest.StartBroker(t, p)
	if err := m.follower.Load().WaitFeeds(ctx, 2); err != nil {
		t.Fatal(err)
	}
	warmUp(t, m, b2, warm) // b2's socket, too, learns the subscription asynchronously
	r := dialPlayer(t, b2, "player1", pl.tok)
	_, sid2, bid2, _ := r.who()
	if bid2 != b2.ID() {
		t.Fatalf("resumed on %s, want %s", bid2, b2.ID())
	}
	wantPresence(t, m, pl.id, sid2, bid2, true)
	_ = r.Close()
	wantPresence(t, m, pl.id, sid2, bid2, false)
}

// TestFollower: a Follower of the brokers follows a broker that appears
// and drops one that leaves (and says so: OnLeave); brokers do not follow each other's presence;
// a follower made by Env.Follow stops with its instance.
func TestFollower(t *testing.T) {
	p, m := startMM(t)
	var events atomic.Int64
	left := make(chan string, 16)
	f, err := services.NewFollower(services.FollowOptions{
		Yellows:   []string{p.Yellow.RouterEndpoint()},
		Heartbeat: platformtest.Heartbeat,
		TLS:       testenv.Credentials(t, pki.Identity{Role: pki.RoleService, Name: "watcher"}),
		Log:       testLogger(t),
		Service:   broker.ServiceName,
		Topics:    []string{wire.TopicPresence},
		OnLeave:   func(inst *platformpb.Instance) { left <- inst.GetId() },
	}, func(*platformpb.Instance, string, *platformpb.Event) { events.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitPlatform)
	defer cancel()
	if err := f.WaitFeeds(ctx, 1); err != nil {
		t.Fatal(err)
	}

	b2 := platformtest.StartBroker(t, p)
	if err := f.WaitFeeds(ctx, 2); err != nil {
		t.Fatalf("the second broker was not followed: %v", err)
	}
	if n := services.FollowedInstances(f); n != 2 {
		t.Fatalf("following %d brokers, want 2", n)
	}
	// A broker follows the services' PUB sockets, not the other broker's.
	for _, b := range []*broker.Broker{p.Broker, b2} {
		if n := b.Info().Publishers; n != len(p.Instances) {
			t.Errorf("%s follows %d PUB sockets, want the %d services'", b.ID(), n, len(p.Instances))
		}
	}

	b2.Exit()
	for {
		changed := f.Changed()
		if services.FollowedInstances(f) == 1 && f.Feeds() == 1 {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("the broker that left is still followed (%d instances, %d live)", services.FollowedInstances(f), f.Feeds())
		}
	}
	select {
	case id := <-left:
		if id != b2.ID() {
			t.Fatalf("OnLeave(%s), want %s", id, b2.ID())
		}
	case <-ctx.Done():
		t.Fatal("OnLeave was not called for the broker that left")
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitFeeds(ctx, 1); err != services.ErrClosed {
		t.Fatalf("WaitFeeds after Close: %v, want ErrClosed", err)
	}

	// mm's follower (Env.Follow) follows the first broker, and stops when
	// mm's instance does.
	mf := m.follower.Load()
	if err := mf.WaitFeeds(ctx, 1); err != nil {
		t.Fatal(err)
	}
	p.Instances[2].Exit() // mm
	if err := mf.WaitFeeds(ctx, 2); err != services.ErrClosed {
		t.Fatalf("mm's follower after its instance stopped: %v, want ErrClosed", err)
	}
	if n := mf.Feeds(); n != 0 {
		t.Fatalf("mm's follower still has %d live feeds", n)
	}
}

// TestFollowOptions: bad options are refused, each named.
func TestFollowOptions(t *testing.T) {
	fn := func(*platformpb.Instance, string, *platformpb.Event) {}
	for _, tc := range []struct {
		opts services.FollowOptions
		want string
	}{
		{services.FollowOptions{Service: "broker", Topics: []string{"t"}}, "yellows: at least one"},
		{services.FollowOptions{Yellows: []string{"tcp://127.0.0.1:1"}, Service: "Bad Name", Topics: []string{"t"}}, "service: "},
		{services.FollowOptions{Yellows: []string{"tcp://127.0.0.1:1"}, Service: "broker"}, "topics: 1 to 64 topics, got 0"},
		{services.FollowOptions{Yellows: []string{"tcp://127.0.0.1:1"}, Service: "broker", Topics: []string{"a\x00b"}}, "topics[0]: "},
		{services.FollowOptions{Yellows: []string{"tcp://127.0.0.1:1"}, Service: "broker", Topics: []string{"t"}, Heartbeat: time.Hour}, "heartbeat: "},
	} {
		if _, err := services.NewFollower(tc.opts, fn); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewFollower(%+v) = %v, want %q", tc.opts, err, tc.want)
		}
	}
}
