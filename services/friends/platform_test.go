package friends

// The friends service on the whole platform: yellow, two brokers, login,
// room and friends in this process with mutual TLS on every link, the real
// Postgres and Redis, players as client connections through the brokers.
// The unit tests cover the rules with the platform faked; these check that
// presence crosses brokers, survives a broker's death with a resume, and
// that an invite ends in a room.Join on the connection the friend has.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/jackc/pgx/v5"

	"github.com/noonhq/noon/edge/client"
	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/yellow"
)

// waitLong bounds a wait for what takes milliseconds to seconds.
const waitLong = 30 * time.Second

// testGrace is the brokers' resume grace and the friends service's broker
// grace in these tests: short, so that an offline is declared within the
// test, and long enough for a client to resume on another broker (a dial
// and a hello on loopback: milliseconds).
const testGrace = 3 * time.Second

// stack is the platform of these tests.
type stack struct {
	p      *platform.Platform
	store  Store
	prefix string
}

// startStack starts yellow, a broker, login, room and friends on the real
// Postgres (schemas of the test's own) and Redis (a key prefix of its own),
// with the brokers' resume grace set to testGrace.
func startStack(t *testing.T) *stack {
	t.Helper()
	rdb := testenv.Redis(t)
	pool := testenv.Postgres(t)
	id := testenv.UniqueID(t)
	prefix := "test:" + id + ":"
	opts := platformtest.Options(t, login.Module, room.Module, Module)
	opts.Env.Redis, opts.Env.Postgres = rdb, pool
	opts.Broker.ResumeGrace = testGrace
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	lo.Throttle.PerAccount.Max, lo.Throttle.PerAddress.Max = 0, 0
	lo.Throttle.PerAccountAddress.Max, lo.Throttle.ShedQueue, lo.Throttle.MaxQueue = 0, 0, login.MaxShedQueue
	lo.RedisPrefix, lo.PostgresSchema = prefix+"login:", "login_"+id
	ro := &opts.Sections[room.Name].(*services.Config[room.Options]).Service
	ro.RedisPrefix, ro.PostgresSchema = prefix+"room:", "room_"+id
	fo := &opts.Sections[Name].(*services.Config[Options]).Service
	fo.RedisPrefix, fo.PostgresSchema = prefix+"friends:", "friends_"+id
	fo.TickInterval, fo.BrokerGrace = 20*time.Millisecond, testGrace
	t.Cleanup(func() {
		deleteKeys(rdb, prefix)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, schema := range []string{lo.PostgresSchema, ro.PostgresSchema, fo.PostgresSchema} {
			if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
		}
	})
	p := platformtest.Start(t, opts)
	st, err := NewPostgresStore(pool, fo.PostgresSchema)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{p: p, store: st, prefix: fo.RedisPrefix}
}

// waitPresenceFeeds waits until the friends instance hears the presence of
// n brokers (its yellow record says so).
func (s *stack) waitPresenceFeeds(t *testing.T, n int) {
	t.Helper()
	w := yellow.Watch(yellow.ClientOptions{
		Yellows: []string{s.p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		TLS: testenv.Credentials(t, pki.Identity{Role: pki.RoleAdmin}), Logger: testenv.Logger(t),
	})
	defer w.Close()
	testenv.CheckFor(t, waitLong, "the friends instance hearing "+strconv.Itoa(n)+" brokers", func() bool {
		insts := w.Instances(Name)
		return len(insts) == 1 && insts[0].GetMeta()[MetaPresenceFeeds] == strconv.Itoa(n)
	})
}

// waitHeard waits until the friends instance applies presence events of
// each broker at addrs: a probe user (no friends) logs in on it and shows
// online in Redis. A follower's link being up (waitPresenceFeeds) does not
// mean its subscription reached the broker yet: an event published before
// that is lost.
func (s *stack) waitHeard(t *testing.T, addrs ...string) {
	t.Helper()
	pres := &presenceStore{rdb: testenv.Redis(t), prefix: s.prefix}
	for i, addr := range addrs {
		name := fmt.Sprintf("probe%d_%s", i, testenv.UniqueID(t)[10:])
		s.register(t, name)
		probe := loginAs(t, addr, name)
		testenv.CheckFor(t, waitLong, "the presence of a probe on "+addr, func() bool {
			on, err := pres.online(context.Background(), []string{probe.id})
			return err == nil && on[0]
		})
	}
}

// player is a game client logged in through a broker, with pushes.
type player struct {
	t     *testing.T
	c     *client.Client
	id    string
	name  string
	token string
}

// register registers a user through the platform's broker.
func (s *stack) register(t *testing.T, name string) string {
	t.Helper()
	c := dial(t, s.p.Broker.TCPAddr().String(), "")
	defer c.Close()
	var rep loginpb.RegisterReply
	if err := c.CallThrift(ctxLong(t), loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: name, Password: "password1"}, &rep); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return rep.UserID
}

// loginAs logs name in on a new connection to the broker at addr.
func loginAs(t *testing.T, addr, name string) *player {
	t.Helper()
	c := dial(t, addr, "")
	var rep loginpb.LoginReply
	if err := c.CallThrift(ctxLong(t), loginrpc.MethodLogin, &loginpb.LoginRequest{Username: name, Password: "password1"}, &rep); err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	return &player{t: t, c: c, id: rep.UserID, name: name, token: rep.SessionToken}
}

// dial connects to the broker at addr with pushes on, resuming token if
// set.
func dial(t *testing.T, addr, token string) *client.Client {
	t.Helper()
	opts := client.DefaultOptions()
	opts.Push = true
	opts.ResumeToken = token
	c, err := client.Dial(ctxLong(t), addr, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxLong(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

func (pl *player) call(method string, req, rep thrift.TStruct) error {
	return pl.c.CallThrift(ctxLong(pl.t), method, req, rep)
}

// nextFriendsPush returns the player's next friends push (skipping room
// events), described as "<type> <user>" ("friends.Online <id>").
func (pl *player) nextFriendsPush() (string, []byte) {
	pl.t.Helper()
	got, payload, ok := pl.pushWithin(waitLong)
	if !ok {
		pl.t.Fatalf("%s got no friends push in %v", pl.name, waitLong)
	}
	return got, payload
}

// pushWithin is nextFriendsPush waiting at most d; ok is false when none
// came.
func (pl *player) pushWithin(d time.Duration) (string, []byte, bool) {
	pl.t.Helper()
	timeout := time.After(d)
	for {
		select {
		case p := <-pl.c.Pushes():
			if !strings.HasPrefix(p.Type, Name+".") {
				continue
			}
			var who string
			switch p.Type {
			case PushOnline, PushOffline, PushRequest, PushAccepted: // all {1: string user_id}
				var m friendspb.Online
				if err := thriftx.Unmarshal(p.Payload, &m); err != nil {
					pl.t.Fatalf("%s payload: %v", p.Type, err)
				}
				who = m.UserID
			case PushInvited:
				var m friendspb.Invited
				if err := thriftx.Unmarshal(p.Payload, &m); err != nil {
					pl.t.Fatalf("%s payload: %v", p.Type, err)
				}
				who = m.FromUserID
			}
			return p.Type + " " + who, p.Payload, true
		case <-pl.c.Done():
			pl.t.Fatalf("%s's connection ended: %v", pl.name, pl.c.Err())
		case <-timeout:
			return "", nil, false
		}
	}
}

// reachable makes sure pushes to pl's topic reach it: its broker
// subscribes the topic at login, and a push published before the
// subscription reaches the friends instance is lost. A probe user on the
// broker at addr asks pl to be friends, until pl gets the request, and
// then withdraws it.
func (s *stack) reachable(t *testing.T, pl *player, addr string) {
	t.Helper()
	name := "reach_" + testenv.UniqueID(t)[10:]
	s.register(t, name)
	probe := loginAs(t, addr, name)
	defer probe.c.Close()
	for range 10 {
		if err := probe.call(friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &pl.id}, &friendspb.RequestReply{}); err != nil {
			t.Fatal(err)
		}
		got, _, ok := pl.pushWithin(2 * time.Second)
		if ok && got != PushRequest+" "+probe.id {
			t.Fatalf("%s's first friends push is %q, want a probe's request", pl.name, got)
		}
		if err := probe.call(friendsrpc.MethodRemove, &friendspb.RemoveRequest{UserID: pl.id}, &friendspb.RemoveReply{}); err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
	}
	t.Fatalf("no push reaches %s", pl.name)
}

// wantPush checks that the player's next friends push is typ about who.
func (pl *player) wantPush(typ, who string) []byte {
	pl.t.Helper()
	got, payload := pl.nextFriendsPush()
	if want := typ + " " + who; got != want {
		pl.t.Fatalf("%s's next friends push is %q, want %q", pl.name, got, want)
	}
	return payload
}

// listed returns how the player's List shows other: "friend online",
// "friend", ... or "" when not at all.
func (pl *player) listed(other string) string {
	pl.t.Helper()
	var rep friendspb.ListReply
	if err := pl.call(friendsrpc.MethodList, &friendspb.ListRequest{}, &rep); err != nil {
		pl.t.Fatalf("List: %v", err)
	}
	for _, f := range rep.Friends {
		if f.UserID == other {
			s := State(f.State).String()
			if f.Online {
				s += " online"
			}
			return s
		}
	}
	return ""
}

// TestPresenceAcrossBrokers: friend A on broker 1, B on broker 2. B
// connects: A gets @friends.Online once. B's broker is killed and B
// resumes on broker 1 within the grace: A gets nothing (the next push A
// gets is a later request from someone else). B logs out: A gets
// @friends.Offline after the grace. A's List shows B online or not, across
// brokers, throughout.
func TestPresenceAcrossBrokers(t *testing.T) {
	s := startStack(t)
	b1 := s.p.Broker
	b2 := platformtest.StartBroker(t, s.p)
	s.waitPresenceFeeds(t, 2)
	s.waitHeard(t, b1.TCPAddr().String(), b2.TCPAddr().String())

	sfx := testenv.UniqueID(t)[10:]
	names := map[string]string{}
	for _, who := range []string{"a", "b", "c", "d"} {
		names[who] = who + "_" + sfx
		names[who+"_id"] = s.register(t, names[who])
	}
	aID, bID, cID, dID := names["a_id"], names["b_id"], names["c_id"], names["d_id"]
	befriend(t, s.store, aID, bID)

	a := loginAs(t, b1.TCPAddr().String(), names["a"])
	s.reachable(t, a, b1.TCPAddr().String())
	c := loginAs(t, b1.TCPAddr().String(), names["c"])
	if err := c.call(friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &aID}, &friendspb.RequestReply{}); err != nil {
		t.Fatal(err)
	}
	a.wantPush(PushRequest, cID)

	// B connects on broker 2: A hears it once.
	b := loginAs(t, b2.TCPAddr().String(), names["b"])
	a.wantPush(PushOnline, bID)
	if got := a.listed(bID); got != "friend online" {
		t.Fatalf("A lists B as %q, want online (B is on the other broker)", got)
	}

	// B's broker dies; B resumes on broker 1 within the grace.
	b2.Exit()
	select {
	case <-b.c.Done():
	case <-time.After(waitLong):
		t.Fatal("B's connection outlived its broker")
	}
	resumed := dial(t, b1.TCPAddr().String(), b.token)
	if resumed.HelloReply().GetUserID() != bID {
		t.Fatalf("resumed as %q, want %s", resumed.HelloReply().GetUserID(), bID)
	}
	b = &player{t: t, c: resumed, id: bID, name: b.name, token: b.token}
	// Once friends holds B's connection on broker 1 (its presence hash has
	// a live field of broker 1), no later event can take B offline but
	// the end of that connection: then the next push A gets, a request of
	// d's, shows that nothing came between.
	pres := &presenceStore{rdb: testenv.Redis(t), prefix: s.prefix}
	testenv.CheckFor(t, waitLong, "B's resumed connection in Redis", func() bool {
		all, err := pres.rdb.HGetAll(context.Background(), pres.userKey(bID)).Result()
		if err != nil {
			t.Fatal(err)
		}
		for f, v := range all {
			if strings.HasPrefix(f, b1.ID()+"|") && strings.Contains(v, ":1:") {
				return true
			}
		}
		return false
	})
	d := loginAs(t, b1.TCPAddr().String(), names["d"])
	if err := d.call(friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &aID}, &friendspb.RequestReply{}); err != nil {
		t.Fatal(err)
	}
	a.wantPush(PushRequest, dID) // no Offline, no second Online before it
	if got := a.listed(bID); got != "friend online" {
		t.Fatalf("A lists B as %q after B's resume, want online", got)
	}

	// B logs out: A hears it, after the grace.
	if err := b.call(loginrpc.MethodLogout, &loginpb.LogoutRequest{SessionToken: &b.token}, &loginpb.LogoutReply{}); err != nil {
		t.Fatal(err)
	}
	a.wantPush(PushOffline, bID)
	if got := a.listed(bID); got != "friend" {
		t.Fatalf("A lists B as %q after B's logout, want offline", got)
	}
}

// TestInviteIntoRoom: A, in a room, invites B, a friend on another broker:
// B gets @friends.Invited with the room id and joins it with room.Join on
// the connection it has; A's room shows B. Inviting a non-friend is
// refused.
func TestInviteIntoRoom(t *testing.T) {
	s := startStack(t)
	b2 := platformtest.StartBroker(t, s.p)
	s.waitPresenceFeeds(t, 2)
	s.waitHeard(t, s.p.Broker.TCPAddr().String(), b2.TCPAddr().String())
	sfx := testenv.UniqueID(t)[10:]
	for _, who := range []string{"a", "b", "c"} {
		s.register(t, who+"_"+sfx)
	}
	a := loginAs(t, s.p.Broker.TCPAddr().String(), "a_"+sfx)
	b := loginAs(t, b2.TCPAddr().String(), "b_"+sfx)
	c := loginAs(t, s.p.Broker.TCPAddr().String(), "c_"+sfx)
	s.reachable(t, a, s.p.Broker.TCPAddr().String())
	s.reachable(t, b, s.p.Broker.TCPAddr().String())

	// Friends through the API, by username: B's and A's pushes arrive.
	var rr friendspb.RequestReply
	if err := a.call(friendsrpc.MethodRequest, &friendspb.RequestRequest{Username: thrift.StringPtr(strings.ToUpper(b.name))}, &rr); err != nil || rr.Friend.UserID != b.id {
		t.Fatalf("request by username: %+v, %v", rr.Friend, err)
	}
	b.wantPush(PushRequest, a.id)
	if err := b.call(friendsrpc.MethodAccept, &friendspb.AcceptRequest{UserID: a.id}, &friendspb.AcceptReply{}); err != nil {
		t.Fatal(err)
	}
	a.wantPush(PushAccepted, b.id)

	var inv friendspb.InviteReply
	err := a.call(friendsrpc.MethodInvite, &friendspb.InviteRequest{UserID: b.id}, &inv)
	if err == nil || err.Error() != "bad_request: you are in no room: create or join one first" {
		t.Fatalf("invite out of a room: %v", err)
	}
	var rs roompb.RoomState
	if err := a.call(roomrpc.MethodCreate, &roompb.CreateRequest{Name: "party", MaxPlayers: 4}, &rs); err != nil {
		t.Fatal(err)
	}
	if err := a.call(friendsrpc.MethodInvite, &friendspb.InviteRequest{UserID: c.id}, &inv); err == nil || err.Error() != fmt.Sprintf("not_found: %s is not your friend", c.id) {
		t.Fatalf("invite of a non-friend: %v", err)
	}
	if err := a.call(friendsrpc.MethodInvite, &friendspb.InviteRequest{UserID: b.id}, &inv); err != nil || inv.RoomID != rs.ID || !inv.Online {
		t.Fatalf("invite = %+v, %v; want room %s, B online", &inv, err, rs.ID)
	}
	var invited friendspb.Invited
	if err := thriftx.Unmarshal(b.wantPush(PushInvited, a.id), &invited); err != nil || invited.RoomID != rs.ID {
		t.Fatalf("@friends.Invited = %+v, %v; want room %s", &invited, err, rs.ID)
	}
	var joined roompb.RoomState
	if err := b.call(roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: invited.RoomID}, &joined); err != nil || joined.ID != rs.ID || len(joined.Players) != 2 {
		t.Fatalf("room.Join of the invite = %+v, %v", &joined, err)
	}
	var got roompb.RoomState
	if err := a.call(roomrpc.MethodGet, &roompb.GetRequest{}, &got); err != nil || len(got.Players) != 2 || got.Players[1].ID != b.id {
		t.Fatalf("A's room after B joined: %+v, %v", &got, err)
	}
	// B's later room calls reach the room on the same connection.
	if err := b.call(roomrpc.MethodGet, &roompb.GetRequest{}, &got); err != nil || got.ID != rs.ID {
		t.Fatalf("B's room.Get: %+v, %v", &got, err)
	}
}
