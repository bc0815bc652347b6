package match_test

// The matchmaker on the whole platform: real broker, login, room and match
// instances in this process with mutual TLS, the real Redis, players as
// client connections through the broker. The unit tests (package match)
// cover the model's rules with the platform faked; these check that a
// match ends as a route on the connections the players already have.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/match"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/yellow"
)

// waitLong bounds a wait for what takes milliseconds to seconds.
const waitLong = 60 * time.Second

// platformOptions returns the platform options of these tests: login with
// cheap hashes and no throttles, room, match (queues qs, a random Redis
// prefix) on the real Redis.
func platformOptions(t *testing.T, modules []services.Module, qs ...match.QueueOptions) platform.Options {
	t.Helper()
	rdb := testenv.Redis(t)
	opts := platformtest.Options(t, modules...)
	opts.Env.Redis = rdb
	// Players wait for others without a request; on a busy machine (-race,
	// 1,000 logins first) that can outlast the default idle timeout.
	opts.Broker.Edge.IdleTimeout = 10 * time.Minute
	prefix := "test:" + testenv.UniqueID(t) + ":"
	if sec, ok := opts.Sections[login.Name]; ok {
		lo := &sec.(*services.Config[login.Options]).Service
		lo.HTTPAddr = "127.0.0.1:0"
		lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
		lo.Throttle.PerAccount.Max, lo.Throttle.PerAddress.Max = 0, 0
		lo.Throttle.PerAccountAddress.Max, lo.Throttle.ShedQueue, lo.Throttle.MaxQueue = 0, 0, login.MaxShedQueue
		lo.RedisPrefix = prefix + "login:"
	}
	if sec, ok := opts.Sections[room.Name]; ok {
		sec.(*services.Config[room.Options]).Service.RedisPrefix = prefix + "room:"
	}
	mo := &opts.Sections[match.Name].(*services.Config[match.Options]).Service
	mo.RedisPrefix = prefix + "match:"
	mo.Queues = qs
	mo.TickInterval = 50 * time.Millisecond
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var cursor uint64
		for {
			keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
			if err != nil {
				return
			}
			if len(keys) > 0 {
				rdb.Unlink(ctx, keys...)
			}
			if cursor = next; cursor == 0 {
				return
			}
		}
	})
	return opts
}

// player is a game client logged in through the broker, with pushes.
type player struct {
	c  *client.Client
	id string
}

// newPlayers registers and logs in n players, 16 at a time.
func newPlayers(t *testing.T, p *platform.Platform, n int) []*player {
	t.Helper()
	out := make([]*player, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pl, err := newPlayer(p, fmt.Sprintf("p%d_%s", i, testenv.UniqueID(t)[:6]))
			if err != nil {
				errs <- err
				return
			}
			out[i] = pl
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, pl := range out {
			if pl != nil {
				pl.c.Close()
			}
		}
	})
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	return out
}

func newPlayer(p *platform.Platform, name string) (*player, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	opts := client.DefaultOptions()
	opts.Push = true
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), opts)
	if err != nil {
		return nil, err
	}
	lc := loginrpc.NewClient(c.CallThrift)
	if _, err := lc.Register(ctx, &loginpb.RegisterRequest{Username: name, Password: "password1"}); err != nil {
		c.Close()
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	rep, err := lc.Login(ctx, &loginpb.LoginRequest{Username: name, Password: "password1"})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("login %s: %w", name, err)
	}
	return &player{c: c, id: rep.UserID}, nil
}

func (pl *player) call(method string, req, resp thrift.TStruct) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return pl.c.CallThrift(ctx, method, req, resp)
}

// start queues the player and returns the ticket.
func (pl *player) start(queue string, strs map[string]string) (*matchpb.Ticket, error) {
	var rep matchpb.StartReply
	err := pl.call(matchrpc.MethodStart, &matchpb.StartRequest{Queue: queue, Strings: strs}, &rep)
	return rep.Ticket, err
}

// waitPush returns the first push of type typ about ticket, skipping the
// others (room events, Searching).
func (pl *player) waitPush(typ, ticket string) (*matchpb.Ticket, error) {
	timeout := time.After(waitLong)
	for {
		select {
		case push := <-pl.c.Pushes():
			if push.Type != typ {
				continue
			}
			var m matchpb.Matched // Matched, Cancelled, TimedOut and Searching are alike: {1: Ticket}
			if err := thriftx.Unmarshal(push.Payload, &m); err != nil {
				return nil, err
			}
			if m.Ticket.GetID() == ticket {
				return m.Ticket, nil
			}
		case <-pl.c.Done():
			return nil, pl.c.Err()
		case <-timeout:
			return nil, fmt.Errorf("no @%s for ticket %s in %v", typ, ticket, waitLong)
		}
	}
}

// TestMatchEndsAsARoute: 1,000 players over 3 buckets, two match instances
// placing on two room instances. Every player is matched exactly once,
// into a room of exactly 4 players of its own bucket that the pushed
// players are the members of; no player is in two rooms; both room
// instances host rooms; and every player's next room.Get, with no room id,
// on the connection it already had, reaches its room.
func TestMatchEndsAsARoute(t *testing.T) {
	players := 1000
	if testing.Short() {
		players = 200
	}
	opts := platformOptions(t, []services.Module{login.Module, room.Module, match.Module},
		match.QueueOptions{Name: "q", MinPlayers: 4, MaxPlayers: 4, Equal: []string{"region"}})
	opts.Instances = map[string]int{match.Name: 2, room.Name: 2}
	for _, name := range []string{match.Name, room.Name} {
		opts.Sections[name].Runtime().Concurrency = 2 * players // every player's Start at once
	}
	// 1,000 players at once under -race on two busy cores: the harness's
	// 100 ms heartbeat (a link is dead after 3 silent beats) would call
	// live instances dead.
	const beat = time.Second
	opts.Yellow.Heartbeat, opts.Yellow.TickInterval = beat, beat
	opts.Broker.Heartbeat, opts.BrokerList.Heartbeat = beat, beat
	for _, sec := range opts.Sections {
		sec.Runtime().Heartbeat = beat
	}
	p := platformtest.Start(t, opts)
	waitFeeds(t, p, 2)

	pls := newPlayers(t, p, players)
	// Three buckets of a multiple of 4 players each (1000: 336 + 332 + 332).
	per := players / 3 / 4 * 4
	region := func(i int) string {
		switch {
		case i < players-2*per:
			return "eu"
		case i < players-per:
			return "us"
		}
		return "asia"
	}

	type result struct {
		ticket *matchpb.Ticket
		room   *roompb.RoomState
		err    error
	}
	results := make([]result, len(pls))
	var wg sync.WaitGroup
	for i, pl := range pls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			tk, err := pl.start("q", map[string]string{"region": region(i)})
			if err != nil {
				r.err = fmt.Errorf("start: %w", err)
				return
			}
			if r.ticket, r.err = pl.waitPush(match.PushMatched, tk.ID); r.err != nil {
				return
			}
			var st roompb.RoomState
			if err := pl.call(roomrpc.MethodGet, &roompb.GetRequest{}, &st); err != nil {
				r.err = fmt.Errorf("room.Get on the matched connection: %w", err)
				return
			}
			r.room = &st
		}()
	}
	wg.Wait()

	rooms := map[string][]int{} // room id -> players (indexes)
	seen := map[string]string{}
	for i, r := range results {
		if r.err != nil {
			t.Fatalf("player %d: %v", i, r.err)
		}
		tk, m := r.ticket, r.ticket.GetMatch()
		if tk.State != matchpb.STATE_MATCHED || m.GetRoomID() == "" {
			t.Fatalf("player %d: pushed ticket %+v", i, tk)
		}
		if r.room.ID != m.GetRoomID() {
			t.Fatalf("player %d: room.Get reached room %s, matched into %s", i, r.room.ID, m.GetRoomID())
		}
		if prev, ok := seen[pls[i].id]; ok {
			t.Fatalf("player %d in rooms %s and %s", i, prev, m.GetRoomID())
		}
		seen[pls[i].id] = m.GetRoomID()
		rooms[m.GetRoomID()] = append(rooms[m.GetRoomID()], i)
		members := make([]string, 0, len(r.room.Players))
		for _, pp := range r.room.Players {
			members = append(members, pp.ID)
		}
		if !slices.Equal(members, m.GetPlayers()) {
			t.Fatalf("player %d: room %s members %v, pushed players %v", i, r.room.ID, members, m.GetPlayers())
		}
	}
	var roomIDs []string
	for _, inst := range p.Instances {
		if srv := inst.Server(); srv.Instance().GetService() == room.Name {
			roomIDs = append(roomIDs, srv.InstanceID())
		}
	}
	owners := map[string]int{}
	for id, idx := range rooms {
		if len(idx) != 4 {
			t.Fatalf("room %s has %d matched players, want 4", id, len(idx))
		}
		for _, i := range idx[1:] {
			if region(i) != region(idx[0]) {
				t.Fatalf("room %s mixes buckets %s and %s", id, region(idx[0]), region(i))
			}
		}
		owners[placement.Owner(id, roomIDs)]++ // the room's owner: rendezvous over the room instances
	}
	if len(rooms) != players/4 {
		t.Fatalf("%d rooms for %d players", len(rooms), players)
	}
	if len(owners) != 2 {
		t.Fatalf("rooms per room instance %v: both instances should host some", owners)
	}
	t.Logf("%d players in %d rooms; rooms per room instance %v", players, len(rooms), owners)
}

// waitFeeds waits until the broker follows the session topic of n match
// instances (before it does, a directive may be published to no one) and
// each of them hears the broker's presence events (as its yellow record
// says).
func waitFeeds(t *testing.T, p *platform.Platform, n int) {
	t.Helper()
	testenv.CheckFor(t, waitLong, "the broker following "+strconv.Itoa(n)+" matchmakers", func() bool {
		return p.Broker.SessionFeeds(match.Name) >= n
	})
	w := yellow.Watch(yellow.ClientOptions{
		Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		TLS: testenv.Credentials(t, pki.Identity{Role: pki.RoleAdmin}), Logger: testenv.Logger(t),
	})
	defer w.Close()
	testenv.CheckFor(t, waitLong, strconv.Itoa(n)+" matchmakers hearing the broker's presence", func() bool {
		insts := w.Instances(match.Name)
		heard := 0
		for _, inst := range insts {
			if inst.GetMeta()[match.MetaPresenceFeeds] == "1" {
				heard++
			}
		}
		return heard >= n
	})
}

// TestMatchWaitsForCapacity: with no room instance, a full session waits
// and the scale-out signal rises in the match instance's yellow record;
// once a room instance starts, the session is placed (the players get
// their room on their connections) and the signal falls.
func TestMatchWaitsForCapacity(t *testing.T) {
	opts := platformOptions(t, []services.Module{login.Module, match.Module},
		match.QueueOptions{Name: "duel", MinPlayers: 2, MaxPlayers: 2})
	mo := &opts.Sections[match.Name].(*services.Config[match.Options]).Service
	mo.ScaleOutAfter = 100 * time.Millisecond
	p := platformtest.Start(t, opts)
	waitFeeds(t, p, 1)

	w := yellow.Watch(yellow.ClientOptions{
		Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		TLS: testenv.Credentials(t, pki.Identity{Role: pki.RoleAdmin}), Logger: testenv.Logger(t),
	})
	t.Cleanup(w.Close)
	signal := func(want string) func() bool {
		return func() bool {
			insts := w.Instances(match.Name)
			return len(insts) == 1 && insts[0].GetMeta()["scale_out"] == want
		}
	}

	pls := newPlayers(t, p, 2)
	tickets := make([]*matchpb.Ticket, 2)
	for i, pl := range pls {
		tk, err := pl.start("duel", nil)
		if err != nil {
			t.Fatal(err)
		}
		tickets[i] = tk
	}
	testenv.CheckFor(t, waitLong, "the scale-out signal in yellow", signal("1"))
	var st matchpb.StatusReply
	if err := pls[0].call(matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: tickets[0].ID}, &st); err != nil || st.Ticket.State != matchpb.STATE_SEARCHING {
		t.Fatalf("status while waiting for capacity: %+v, %v", st.Ticket, err)
	}

	// A room instance joins the platform.
	sec := room.Module.NewSection().(*services.Config[room.Options])
	sec.Options.Yellows = []string{p.Yellow.RouterEndpoint()}
	sec.Options.Heartbeat = platformtest.Heartbeat
	sec.Service.RedisPrefix = opts.Sections[match.Name].(*services.Config[match.Options]).Service.RedisPrefix + "room:"
	env := services.Env{
		Log: testenv.Logger(t), Redis: opts.Env.Redis, Yellows: sec.Options.Yellows,
		TLS: testenv.Credentials(t, pki.Identity{Role: pki.RoleService, Name: room.Name}),
	}
	inst, err := room.Module.Start(context.Background(), env, sec)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- inst.Main() }()
	t.Cleanup(func() { inst.Exit(); <-done })

	var roomID string
	for i, pl := range pls {
		tk, err := pl.waitPush(match.PushMatched, tickets[i].ID)
		if err != nil {
			t.Fatal(err)
		}
		if roomID == "" {
			roomID = tk.GetMatch().GetRoomID()
		}
		var rs roompb.RoomState
		if err := pl.call(roomrpc.MethodGet, &roompb.GetRequest{}, &rs); err != nil || rs.ID != roomID {
			t.Fatalf("player %d: room.Get = %s, %v; matched into %s", i, rs.ID, err, roomID)
		}
	}
	testenv.CheckFor(t, waitLong, "the scale-out signal to fall", signal("0"))
}

// TestMatchCancelsWhenTheConnectionIsGone: a player whose connection
// closes and who does not come back within the broker's resume grace has
// its ticket cancelled ("disconnected"), told by match.Status on a new
// connection; a player who resumes within the grace keeps the ticket,
// moved to the new connection, and is matched there.
func TestMatchCancelsWhenTheConnectionIsGone(t *testing.T) {
	opts := platformOptions(t, []services.Module{login.Module, room.Module, match.Module},
		match.QueueOptions{Name: "trio", MinPlayers: 3, MaxPlayers: 3})
	opts.Broker.ResumeGrace = 300 * time.Millisecond
	p := platformtest.Start(t, opts)
	waitFeeds(t, p, 1)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()

	// gone leaves for good; back resumes with its token on a new
	// connection within the grace.
	gone, back := loginWithToken(t, p, "gone"), loginWithToken(t, p, "back")
	goneTicket, err := gone.pl.start("trio", nil)
	if err != nil {
		t.Fatal(err)
	}
	backTicket, err := back.pl.start("trio", nil)
	if err != nil {
		t.Fatal(err)
	}
	gone.pl.c.Close()
	back.pl.c.Close()
	resumed := dialResume(t, p, back.token)

	// The ticket of gone ends: seen by an operator (a login of gone
	// within the grace would be a resume), then by gone logging in again.
	admin := services.NewClient(services.ClientOptions{
		Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		Peer: link.PeerOptions{TLS: testenv.Credentials(t, pki.Identity{Role: pki.RoleAdmin})}, Logger: testenv.Logger(t),
	})
	t.Cleanup(admin.Close)
	searching := func() map[string]bool {
		rep, err := matchrpc.NewClient(admin.Call).Tickets(ctx, &matchpb.TicketsRequest{Queue: "trio"})
		if err != nil {
			t.Fatalf("match.Tickets: %v", err)
		}
		out := map[string]bool{}
		for _, ti := range rep.Tickets {
			out[ti.Ticket.ID] = true
		}
		return out
	}
	testenv.CheckFor(t, waitLong, "the gone player's ticket to end", func() bool {
		s := searching()
		return !s[goneTicket.ID] && s[backTicket.ID]
	})
	again, err := newPlayerLogin(p, gone.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { again.c.Close() })
	var gst matchpb.StatusReply
	if err := again.call(matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: goneTicket.ID}, &gst); err != nil ||
		gst.Ticket.State != matchpb.STATE_CANCELLED || gst.Ticket.Reason != match.ReasonDisconnected {
		t.Fatalf("the gone player's ticket: %+v, %v; want cancelled, %s", gst.Ticket, err, match.ReasonDisconnected)
	}
	// The one who came back is still searching, and is matched on its new
	// connection with two others.
	var st matchpb.StatusReply
	if err := resumed.call(matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: backTicket.ID}, &st); err != nil || st.Ticket.State != matchpb.STATE_SEARCHING {
		t.Fatalf("the resumed player's ticket: %+v, %v", st.Ticket, err)
	}
	others := newPlayers(t, p, 2)
	for _, o := range others {
		if _, err := o.start("trio", nil); err != nil {
			t.Fatal(err)
		}
	}
	tk, err := resumed.waitPush(match.PushMatched, backTicket.ID)
	if err != nil {
		t.Fatal(err)
	}
	var rs roompb.RoomState
	if err := resumed.c.CallThrift(ctx, roomrpc.MethodGet, &roompb.GetRequest{}, &rs); err != nil || rs.ID != tk.GetMatch().GetRoomID() {
		t.Fatalf("room.Get on the resumed connection = %s, %v; matched into %s", rs.ID, err, tk.GetMatch().GetRoomID())
	}
}

// tokenPlayer is a player with its username and session token.
type tokenPlayer struct {
	pl    *player
	name  string
	token string
}

func loginWithToken(t *testing.T, p *platform.Platform, name string) tokenPlayer {
	t.Helper()
	name = name + "_" + testenv.UniqueID(t)[:6]
	pl, err := newPlayer(p, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pl.c.Close() })
	// A second login gives the token (newPlayer drops the reply's).
	var rep loginpb.LoginReply
	if err := pl.call(loginrpc.MethodLogin, &loginpb.LoginRequest{Username: name, Password: "password1"}, &rep); err != nil {
		t.Fatal(err)
	}
	return tokenPlayer{pl: pl, name: name, token: rep.SessionToken}
}

func newPlayerLogin(p *platform.Platform, name string) (*player, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	opts := client.DefaultOptions()
	opts.Push = true
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), opts)
	if err != nil {
		return nil, err
	}
	var rep loginpb.LoginReply
	if err := c.CallThrift(ctx, loginrpc.MethodLogin, &loginpb.LoginRequest{Username: name, Password: "password1"}, &rep); err != nil {
		c.Close()
		return nil, err
	}
	return &player{c: c, id: rep.UserID}, nil
}

// dialResume connects a new connection resuming token (edge.Hello).
func dialResume(t *testing.T, p *platform.Platform, token string) *player {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	opts := client.DefaultOptions()
	opts.Push = true
	opts.ResumeToken = token
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &player{c: c, id: c.HelloReply().GetUserID()}
}
