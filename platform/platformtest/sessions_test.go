package platformtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/client"
	edgepb "github.com/noonhq/noon/idl/gen/edge"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/wire"
)

// waitLong bounds every wait for something that takes milliseconds: far
// more than it takes on a busy 2-core machine running -race.
const waitLong = 15 * time.Second

// startSessions starts the platform (echo, login, room) with cheap argon2
// and, when clock is set, login's clock and the shortest session TTL; plus
// a second broker. It returns
// once both brokers hear the login instance's revocations.
func startSessions(t *testing.T, clock func() time.Time) (*platform.Platform, *broker.Broker) {
	t.Helper()
	opts := platformtest.Options(t, echo.Module, login.Module, room.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	if clock != nil {
		lo.Clock, lo.SessionTTL = clock, login.MinSessionTTL
	}
	p := platformtest.Start(t, opts)
	b2 := platformtest.StartBroker(t, p)
	for _, b := range []*broker.Broker{p.Broker, b2} {
		testenv.CheckFor(t, waitLong, "the broker follows login's revocations", func() bool {
			return b.Info().RevocationFeeds == 1
		})
	}
	return p, b2
}

// conn is a test client connection.
type conn struct {
	t *testing.T
	*client.Client
}

// dial connects to b, with pushes when push is set, resuming token if set.
func dial(t *testing.T, b *broker.Broker, push bool, token string) *conn {
	t.Helper()
	o := client.DefaultOptions()
	o.Push, o.ResumeToken = push, token
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := client.Dial(ctx, b.TCPAddr().String(), o)
	if err != nil {
		t.Fatalf("dial %s: %v", b.ID(), err)
	}
	t.Cleanup(func() { c.Close() })
	if token != "" && c.HelloReply().GetUserID() == "" {
		t.Fatalf("resume on %s: token refused", b.ID())
	}
	return &conn{t: t, Client: c}
}

// call calls method with req, decoding the reply into resp (may be nil).
func (c *conn) call(method string, req, resp thrift.TStruct) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return c.CallThrift(ctx, method, req, resp)
}

// register creates an account.
func (c *conn) register(user string) {
	c.t.Helper()
	if err := c.call(loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: user, Password: "password1"}, nil); err != nil {
		c.t.Fatalf("register %s: %v", user, err)
	}
}

// login logs the connection in and returns the reply.
func (c *conn) login(user string) *loginpb.LoginReply {
	c.t.Helper()
	var rep loginpb.LoginReply
	if err := c.call(loginrpc.MethodLogin, &loginpb.LoginRequest{Username: user, Password: "password1"}, &rep); err != nil {
		c.t.Fatalf("login %s: %v", user, err)
	}
	return &rep
}

// listErr is the error of room.List (any logged-in connection may call it).
func (c *conn) listErr() error {
	return c.call(roomrpc.MethodList, &roompb.ListRequest{}, &roompb.ListReply{})
}

// wantLoggedIn fails unless the connection may call room.List.
func (c *conn) wantLoggedIn(what string) {
	c.t.Helper()
	if err := c.listErr(); err != nil {
		c.t.Fatalf("%s: room.List: %v, want logged in", what, err)
	}
}

// unauthenticated is the error of room.List on a logged-out connection.
const unauthenticated = "unauthenticated: room.List requires login"

// wantLoggedOut waits until the connection is logged out: room.List
// answers unauthenticated.
func (c *conn) wantLoggedOut(what string) {
	c.t.Helper()
	var err error
	testenv.CheckFor(c.t, waitLong, what+": logged out", func() bool {
		err = c.listErr()
		return err != nil && err.Error() == unauthenticated
	})
}

// wantPushLoggedOut waits for "@edge.LoggedOut" with reason and returns
// how long it took.
func (c *conn) wantPushLoggedOut(what, reason string) time.Duration {
	c.t.Helper()
	start := time.Now()
	timeout := time.After(waitLong)
	for {
		select {
		case p, ok := <-c.Pushes():
			if !ok {
				c.t.Fatalf("%s: connection ended waiting for @%s: %v", what, wire.EventLoggedOut, c.Err())
			}
			if p.Type != wire.EventLoggedOut {
				continue
			}
			var lo edgepb.LoggedOut
			if err := thriftx.Unmarshal(p.Payload, &lo); err != nil || lo.Reason != reason {
				c.t.Fatalf("%s: @%s %+v, %v; want reason %q", what, wire.EventLoggedOut, &lo, err, reason)
			}
			return time.Since(start)
		case <-timeout:
			c.t.Fatalf("%s: no @%s within %v", what, wire.EventLoggedOut, waitLong)
		}
	}
}

// TestLogoutEndsTheTokenOnEveryBroker: a token logged in on broker A and
// resumed on broker B; logging it out on A logs out B's connections too
// (pushed @edge.LoggedOut, then unauthenticated), and only those of that
// token.
func TestLogoutEndsTheTokenOnEveryBroker(t *testing.T) {
	p, b2 := startSessions(t, nil)
	a := dial(t, p.Broker, true, "")
	a.register("alice")
	tok := a.login("alice").SessionToken
	other := a.login("alice").SessionToken // a second session of alice's; a is now on it
	onB := dial(t, b2, true, tok)
	plainB := dial(t, b2, false, tok) // no pushes: learns it from the next call
	otherB := dial(t, b2, true, other)
	onB.wantLoggedIn("resumed on B")

	if err := a.call(loginrpc.MethodLogout, &loginpb.LogoutRequest{SessionToken: &tok}, nil); err != nil {
		t.Fatalf("logout: %v", err)
	}
	took := onB.wantPushLoggedOut("B's connection", edgepb.LOGGED_OUT_LOGOUT)
	t.Logf("B's connection was told %v after the logout returned", took)
	if err := onB.listErr(); err == nil || err.Error() != unauthenticated {
		t.Fatalf("B's connection after @edge.LoggedOut: room.List %v, want %q", err, unauthenticated)
	}
	plainB.wantLoggedOut("B's connection without pushes")
	// The other session of alice's lives on, on both brokers: a, logged in
	// with it, logged out another token of its user's and stays logged in.
	otherB.wantLoggedIn("the other session on B")
	a.wantLoggedIn("the caller, on another session")
	if n := b2.Info().LoginSessions; n != 1 {
		t.Fatalf("B holds %d login sessions, want 1 (the other one)", n)
	}
	// The logged-out connection logs in again on the same connection; a
	// logout of its own token logs it out at once (the reply does).
	own := onB.login("alice").SessionToken
	onB.wantLoggedIn("logged in again")
	if err := onB.call(loginrpc.MethodLogout, &loginpb.LogoutRequest{SessionToken: &own}, nil); err != nil {
		t.Fatalf("logout: %v", err)
	}
	if err := onB.listErr(); err == nil || err.Error() != unauthenticated {
		t.Fatalf("after logging out its own token: room.List %v, want %q", err, unauthenticated)
	}
	// And a resume with the dead token is refused.
	o := client.DefaultOptions()
	o.ResumeToken = tok
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := client.Dial(ctx, b2.TCPAddr().String(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if uid := c.HelloReply().GetUserID(); uid != "" {
		t.Fatalf("resume with a logged-out token: user %q", uid)
	}
}

// TestExpiredTokenEndsItsConnections: a session whose TTL passes logs its
// live connections out, on both brokers, with no logout at all. Login's
// clock runs behind, so that its one-minute minimum TTL ends within
// seconds of real time.
func TestExpiredTokenEndsItsConnections(t *testing.T) {
	const left = 3 * time.Second // of real time before the sessions expire
	p, b2 := startSessions(t, func() time.Time { return time.Now().Add(left - login.MinSessionTTL) })
	a := dial(t, p.Broker, true, "")
	a.register("bob")
	rep := a.login("bob")
	if d := time.Until(time.Unix(rep.ExpiresUnix, 0)); d > left {
		t.Fatalf("the session expires in %v, want within %v", d, left)
	}
	onB := dial(t, b2, false, rep.SessionToken)
	a.wantLoggedIn("before expiry")

	a.wantPushLoggedOut("A's connection", edgepb.LOGGED_OUT_EXPIRED)
	if !time.Now().After(time.Unix(rep.ExpiresUnix, 0)) {
		t.Fatal("logged out before the session's expiry")
	}
	if err := a.listErr(); err == nil || err.Error() != unauthenticated {
		t.Fatalf("after expiry: room.List %v, want %q", err, unauthenticated)
	}
	onB.wantLoggedOut("B's resumed connection")
}

// TestLogoutAllEndsEverySession: login.LogoutAll ends every session of the
// caller's user (every token, every connection on every broker, the
// caller's own), not another user's.
func TestLogoutAllEndsEverySession(t *testing.T) {
	p, b2 := startSessions(t, nil)
	a := dial(t, p.Broker, true, "")
	a.register("carol")
	a.register("dave")
	var conns []*conn
	for i := 0; i < 3; i++ {
		tok := a.login("carol").SessionToken
		conns = append(conns, dial(t, b2, true, tok), dial(t, p.Broker, true, tok))
	}
	dave := dial(t, b2, true, a.login("dave").SessionToken)
	a.login("carol") // a fourth session, the caller's

	var rep loginpb.LogoutAllReply
	if err := a.call(loginrpc.MethodLogoutAll, &loginpb.LogoutAllRequest{}, &rep); err != nil {
		t.Fatalf("LogoutAll: %v", err)
	}
	if rep.Sessions != 4 {
		t.Fatalf("LogoutAll ended %d sessions, want 4", rep.Sessions)
	}
	for _, c := range conns {
		c.wantPushLoggedOut("carol's connection", edgepb.LOGGED_OUT_LOGOUT_ALL)
		c.wantLoggedOut("carol's connection")
	}
	if err := a.listErr(); err == nil || err.Error() != unauthenticated {
		t.Fatalf("the caller after LogoutAll: room.List %v, want %q", err, unauthenticated)
	}
	dave.wantLoggedIn("dave")
	// LogoutAll needs a login.
	err := a.call(loginrpc.MethodLogoutAll, &loginpb.LogoutAllRequest{}, nil)
	if err == nil || err.Error() != "unauthenticated: login.LogoutAll requires login" {
		t.Fatalf("LogoutAll logged out: %v", err)
	}
}

// TestUserChangeClearsBindings: when a connection's user changes (a login
// as someone else, or a logout), its room binding is gone: the new user
// cannot act in the old user's room.
func TestUserChangeClearsBindings(t *testing.T) {
	p, _ := startSessions(t, nil)
	c := dial(t, p.Broker, true, "")
	c.register("erin")
	c.register("frank")
	const notInRoom = "bad_request: not in a room: join one or name room_id"
	get := func() error { return c.call(roomrpc.MethodGet, &roompb.GetRequest{}, &roompb.RoomState{}) }

	c.login("erin")
	var st roompb.RoomState
	if err := c.call(roomrpc.MethodCreate, &roompb.CreateRequest{Name: "erin's"}, &st); err != nil {
		t.Fatalf("room.Create: %v", err)
	}
	if err := get(); err != nil {
		t.Fatalf("room.Get in erin's room: %v", err)
	}
	if n := p.Broker.Info().Topics; n != 2 {
		t.Fatalf("the broker follows %d topics, want 2 (user/<erin>, room/%s)", n, st.ID)
	}
	// Another user on the same connection: not in erin's room, and no
	// longer subscribed to it (only to frank's user topic).
	c.login("frank")
	if err := get(); err == nil || err.Error() != notInRoom {
		t.Fatalf("frank after erin: room.Get %v, want %q", err, notInRoom)
	}
	if n := p.Broker.Info().Topics; n != 1 {
		t.Fatalf("the broker follows %d topics after the user changed, want 1 (user/<frank>)", n)
	}

	// A logout drops the binding too: erin logs in, joins, logs out, logs
	// in again: not in the room any more.
	tok := c.login("erin").SessionToken
	if err := c.call(roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: st.ID}, &roompb.RoomState{}); err != nil && !errors.Is(err, &client.Error{Code: wire.CodeConflict}) {
		t.Fatalf("room.Join: %v", err)
	}
	if err := get(); err != nil {
		t.Fatalf("room.Get after join: %v", err)
	}
	if err := c.call(loginrpc.MethodLogout, &loginpb.LogoutRequest{SessionToken: &tok}, nil); err != nil {
		t.Fatal(err)
	}
	c.login("erin")
	if err := get(); err == nil || err.Error() != notInRoom {
		t.Fatalf("erin after logout and login: room.Get %v, want %q", err, notInRoom)
	}
}

// TestSessionForgetsRevokedToken: a client.Session whose token is logged
// out on another broker forgets it on @edge.LoggedOut, so its next
// connection is a fresh one rather than a resume bound to fail.
func TestSessionForgetsRevokedToken(t *testing.T) {
	p, b2 := startSessions(t, nil)
	a := dial(t, p.Broker, false, "")
	user := "forget" + testenv.UniqueID(t)[:8]
	a.register(user)
	a.login(user)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	o := client.DefaultOptions()
	o.Push = true
	s, err := client.Connect(ctx, client.SessionOptions{Brokers: []string{b2.TCPAddr().String()}, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Login(ctx, user, "password1"); err != nil {
		t.Fatal(err)
	}
	tok := s.Token()
	if err := a.call(loginrpc.MethodLogout, &loginpb.LogoutRequest{SessionToken: &tok}, nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, waitLong, "the session forgets its revoked token", func() bool { return s.Token() == "" && s.UserID() == "" })
}
