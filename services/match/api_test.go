package match

import (
	"context"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// TestBadInput: each bad request gets its code and changes nothing in
// Redis.
func TestBadInput(t *testing.T) {
	e := newEnv(t, quad, skill)
	s := e.service("m1")
	a, b := newPlayer("ua", "b1"), newPlayer("ub", "b1")
	ta := a.start(t, s, "quad", map[string]string{"region": "eu"}, nil)
	before := e.snapshot()
	many := func(n int) map[string]string {
		m := map[string]string{"region": "eu"}
		for i := len(m); i < n; i++ {
			m[strings.Repeat("k", i+1)] = "v"
		}
		return m
	}
	manyNums := map[string]float64{}
	for i := range 17 {
		manyNums[strings.Repeat("n", i+1)] = 1
	}
	start := func(p *player, q string, strs map[string]string, nums map[string]float64) error {
		return p.call(s, matchrpc.MethodStart, &matchpb.StartRequest{Queue: q, Strings: strs, Numbers: nums}, nil)
	}
	anon := &player{conn: "c-anon", broker: "b1"}
	for _, c := range []struct {
		what string
		err  error
		code string
	}{
		{"unknown queue", start(b, "nope", nil, nil), wire.CodeNotFound},
		{"not logged in", start(anon, "quad", map[string]string{"region": "eu"}, nil), wire.CodeUnauthenticated},
		{"17 strings", start(b, "quad", many(17), nil), wire.CodeBadRequest},
		{"17 numbers", start(b, "quad", map[string]string{"region": "eu"}, manyNums), wire.CodeBadRequest},
		{"long key", start(b, "quad", map[string]string{"region": "eu", strings.Repeat("k", 65): "v"}, nil), wire.CodeBadRequest},
		{"empty key", start(b, "quad", map[string]string{"region": "eu", "": "v"}, nil), wire.CodeBadRequest},
		{"long value", start(b, "quad", map[string]string{"region": strings.Repeat("v", 257)}, nil), wire.CodeBadRequest},
		{"NaN", start(b, "ranked", nil, map[string]float64{"skill": math.NaN()}), wire.CodeBadRequest},
		{"Inf", start(b, "ranked", nil, map[string]float64{"skill": math.Inf(1)}), wire.CodeBadRequest},
		{"no equality property", start(b, "quad", map[string]string{"mode": "x"}, nil), wire.CodeBadRequest},
		{"no range property", start(b, "ranked", nil, map[string]float64{"other": 1}), wire.CodeBadRequest},
		{"second ticket", start(a, "quad", map[string]string{"region": "us"}, nil), wire.CodeConflict},
		{"cancel of another's ticket", b.call(s, matchrpc.MethodCancel, &matchpb.CancelRequest{Ticket: ta.ID}, nil), wire.CodeNotFound},
		{"status of another's ticket", b.call(s, matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: ta.ID}, nil), wire.CodeNotFound},
		{"malformed ticket", a.call(s, matchrpc.MethodCancel, &matchpb.CancelRequest{Ticket: "quad.../../x"}, nil), wire.CodeNotFound},
		{"ticket of an unknown queue", a.call(s, matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: "nope.aaaaaaaaaaaaaaaa"}, nil), wire.CodeNotFound},
		{"unknown ticket", a.call(s, matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: "quad.aaaaaaaaaaaaaaaa"}, nil), wire.CodeNotFound},
		{"client calls Queues", a.call(s, matchrpc.MethodQueues, &matchpb.QueuesRequest{}, nil), wire.CodeUnauthenticated},
		{"client calls AdminCancel", a.call(s, matchrpc.MethodAdminCancel, &matchpb.AdminCancelRequest{Ticket: ta.ID}, nil), wire.CodeUnauthenticated},
		{"client registers a server", a.call(s, matchrpc.MethodRegisterServer, &matchpb.RegisterServerRequest{Queue: "quad", ServerID: "s1", Addr: "1.2.3.4:5"}, nil), wire.CodeUnauthenticated},
		{"server for a room queue", callAs(s, nil, matchrpc.MethodRegisterServer, &matchpb.RegisterServerRequest{Queue: "quad", ServerID: "s1", Addr: "1.2.3.4:5"}, nil, nil), wire.CodeBadRequest},
		{"tickets of an unknown queue", callAs(s, nil, matchrpc.MethodTickets, &matchpb.TicketsRequest{Queue: "nope"}, nil, nil), wire.CodeNotFound},
		{"negative limit", callAs(s, nil, matchrpc.MethodTickets, &matchpb.TicketsRequest{Queue: "quad", Limit: -1}, nil, nil), wire.CodeBadRequest},
	} {
		wantCode(t, c.what, c.err, c.code)
	}
	if after := e.snapshot(); !maps.Equal(before, after) {
		t.Fatalf("Redis changed: %d keys before, %d after", len(before), len(after))
	}
	// Cancel is idempotent for the owner, and a cancelled ticket frees the
	// queue for the player.
	var rep matchpb.CancelReply
	for range 2 {
		if err := a.call(s, matchrpc.MethodCancel, &matchpb.CancelRequest{Ticket: ta.ID}, &rep); err != nil || rep.Ticket.State != matchpb.STATE_CANCELLED {
			t.Fatalf("cancel: %v %+v", err, rep.Ticket)
		}
	}
	if n := len(e.pusher.pushed(t, PushCancelled, "ua")); n != 1 {
		t.Fatalf("%d Cancelled pushes", n)
	}
	a.start(t, s, "quad", map[string]string{"region": "us"}, nil)
}

// TestAdmin: Tickets lists searching tickets oldest first; AdminCancel
// cancels anyone's ticket ("operator"); a matched ticket cannot be
// cancelled.
func TestAdmin(t *testing.T) {
	e := newEnv(t, quad)
	s := e.service("m1")
	var ids []string
	for _, u := range users("u", 3) {
		ids = append(ids, newPlayer(u, "b1").start(t, s, "quad", map[string]string{"region": "eu"}, nil).ID)
		e.clock.Advance(time.Millisecond)
	}
	var tr matchpb.TicketsReply
	if err := callAs(s, nil, matchrpc.MethodTickets, &matchpb.TicketsRequest{Queue: "quad", Limit: 2}, &tr, nil); err != nil {
		t.Fatal(err)
	}
	if len(tr.Tickets) != 2 || tr.Tickets[0].Ticket.ID != ids[0] || tr.Tickets[1].UserID != "u0001" ||
		tr.Tickets[0].Bucket != `region="eu"` || tr.Tickets[0].Session == "" || tr.Tickets[0].Ticket.State != matchpb.STATE_SEARCHING {
		t.Fatalf("tickets %+v", tr.Tickets)
	}
	var ac matchpb.AdminCancelReply
	if err := callAs(s, nil, matchrpc.MethodAdminCancel, &matchpb.AdminCancelRequest{Ticket: ids[1]}, &ac, nil); err != nil {
		t.Fatal(err)
	}
	if ac.Ticket.State != matchpb.STATE_CANCELLED || ac.Ticket.Reason != ReasonOperator {
		t.Fatalf("admin cancel %+v", ac.Ticket)
	}
	if c := e.pusher.pushed(t, PushCancelled, "u0001"); len(c) != 1 || c[0].ticket.Reason != ReasonOperator {
		t.Fatalf("pushes %+v", c)
	}
	// Match the other two with two more, then try to cancel a matched one.
	for _, u := range users("v", 2) {
		newPlayer(u, "b1").start(t, s, "quad", map[string]string{"region": "eu"}, nil)
	}
	testenv.CheckFor(t, 5*time.Second, "matched", func() bool { return len(e.pusher.pushed(t, PushMatched, "u0000")) == 1 })
	err := newPlayer("u0000", "b1").call(s, matchrpc.MethodCancel, &matchpb.CancelRequest{Ticket: ids[0]}, nil)
	wantCode(t, "cancel of a matched ticket", err, wire.CodeConflict)
}

// TestServerPlacement: a server queue takes a server from
// ServersAvailable (players get its address, no room binding), waits when
// none is free, and places as soon as one registers or is available
// again.
func TestServerPlacement(t *testing.T) {
	e := newEnv(t, QueueOptions{Name: "ded", Placement: matchpb.PLACEMENT_SERVER, MaxPlayers: 2})
	s := e.service("m1")
	reg := func(id, addr string, avail bool) {
		t.Helper()
		if err := callAs(s, nil, matchrpc.MethodRegisterServer, &matchpb.RegisterServerRequest{Queue: "ded", ServerID: id, Addr: addr, Available: avail}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg("srv-1", "10.0.0.1:7777", true)
	for _, u := range users("u", 4) {
		newPlayer(u, "b1").start(t, s, "ded", nil, nil)
	}
	matched := func() (n int, first string) {
		for _, u := range users("u", 4) {
			if m := e.pusher.pushed(t, PushMatched, u); len(m) > 0 {
				n++
				first = u
			}
		}
		return n, first
	}
	testenv.CheckFor(t, 5*time.Second, "one session placed", func() bool {
		tick(t, s)
		n, _ := matched()
		return n == 2
	})
	_, u := matched()
	m := e.pusher.pushed(t, PushMatched, u)
	if len(m) != 1 || m[0].ticket.Match.ServerAddr != "10.0.0.1:7777" || m[0].ticket.Match.Placement != "server" || len(m[0].d.GetBindings()) != 0 {
		t.Fatalf("Matched %+v", m)
	}
	if e.zcard("ded", keySessionsReady) != 1 {
		t.Fatal("the second session should wait for a server")
	}
	if err := callAs(s, nil, matchrpc.MethodServerAvailable, &matchpb.ServerAvailableRequest{Queue: "ded", ServerID: "nope"}, nil, nil); wire.CodeOf(err) != wire.CodeNotFound {
		t.Fatalf("unknown server available: %v", err)
	}
	if err := callAs(s, nil, matchrpc.MethodServerAvailable, &matchpb.ServerAvailableRequest{Queue: "ded", ServerID: "srv-1"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, "the second session placed on the server back", func() bool {
		tick(t, s)
		n, _ := matched()
		return n == 4
	})
	var qs matchpb.QueuesReply
	if err := callAs(s, nil, matchrpc.MethodQueues, &matchpb.QueuesRequest{}, &qs, nil); err != nil {
		t.Fatal(err)
	}
	if q := qs.Queues[0]; q.Servers != 1 || q.ServersAvailable != 0 || q.Placement != "server" {
		t.Fatalf("queue %+v", q)
	}
	if err := callAs(s, nil, matchrpc.MethodLeaveServer, &matchpb.LeaveServerRequest{Queue: "ded", ServerID: "srv-1"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*matchpb.RegisterServerRequest{
		{Queue: "ded", ServerID: "s", Addr: "nohost"},
		{Queue: "ded", ServerID: "s", Addr: "h:0"},
		{Queue: "ded", ServerID: "bad id", Addr: "h:1"},
	} {
		wantCode(t, "register "+bad.Addr, callAs(s, nil, matchrpc.MethodRegisterServer, bad, nil, nil), wire.CodeBadRequest)
	}
}

// TestRedisDown: with Redis unreachable, handlers answer unavailable.
func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond, DialerRetries: 1})
	t.Cleanup(func() { rdb.Close() })
	e := newEnvOn(t, rdb, duel)
	s := e.service("m1")
	a := newPlayer("ua", "b1")
	err := a.call(s, matchrpc.MethodStart, &matchpb.StartRequest{Queue: "duel"}, nil)
	wantCode(t, "start", err, wire.CodeUnavailable)
	err = a.call(s, matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: "duel.aaaaaaaaaaaaaaaa"}, nil)
	wantCode(t, "status", err, wire.CodeUnavailable)
	if err := s.Tick(context.Background()); err == nil {
		t.Fatal("tick without Redis succeeded")
	}
}

// TestMiniredis: the scripts run on the in-process Redis of `noon dev`
// (gopher-lua, cjson included).
func TestMiniredis(t *testing.T) {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	e := newEnvOn(t, rdb, skill, QueueOptions{Name: "ffa", MinPlayers: 2, MaxPlayers: 3, AcceptMinAfter: time.Second})
	s := e.service("m1")
	a, b := newPlayer("ua", "b1"), newPlayer("ub", "b2")
	ta := a.start(t, s, "ranked", nil, map[string]float64{"skill": 100})
	e.clock.Advance(time.Second)
	b.start(t, s, "ranked", nil, map[string]float64{"skill": 300})
	c, d := newPlayer("uc", "b1"), newPlayer("ud", "b1")
	c.start(t, s, "ffa", nil, nil)
	d.start(t, s, "ffa", nil, nil)
	s.HandlePresence(&platformpb.Presence{UserId: "uc", Session: c.conn, Broker: c.broker, GraceMs: 60_000, AtUnixMs: ms(e.clock.Now())})
	s.HandlePresence(&platformpb.Presence{UserId: "uc", Session: "c-new", Broker: "b2", Online: true, AtUnixMs: ms(e.clock.Now())})
	for range 10 {
		e.clock.Advance(time.Second)
		tick(t, s)
	}
	if st := a.status(t, s, ta.ID); st.State != matchpb.STATE_MATCHED || len(st.Match.Players) != 2 {
		t.Fatalf("ranked: %+v", st)
	}
	if m := e.pusher.pushed(t, PushMatched, "uc"); len(m) != 1 || m[0].d.GetSession() != "c-new" || len(m[0].ticket.Match.Players) != 2 {
		t.Fatalf("ffa: %+v", m)
	}
}

// TestOptions: the defaults validate; bad values are named by their path.
func TestOptions(t *testing.T) {
	if err := NewOptions().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		change func(o *Options)
		want   string
	}{
		{func(o *Options) { o.RedisPrefix = "a{b" }, "redis_prefix"},
		{func(o *Options) { o.Queues[0].Name = "Bad" }, "queues[0].name"},
		{func(o *Options) { o.Queues = append(o.Queues, o.Queues[0]) }, "queues[1].name"},
		{func(o *Options) { o.Queues[0].Placement = "moon" }, "queues[0].placement"},
		{func(o *Options) { o.Queues[0].MaxPlayers = 0 }, "queues[0].max_players"},
		{func(o *Options) { o.Queues[0].MaxPlayers = 1000 }, "queues[0].max_players"},
		{func(o *Options) { o.Queues[0].MinPlayers = 5 }, "queues[0].min_players"},
		{func(o *Options) { o.Queues[0].Equal = []string{"a", "a"} }, "queues[0].equal[1]"},
		{func(o *Options) { o.Queues[0].Range = &RangeOptions{Property: "s", Initial: 10, Max: 5} }, "queues[0].range.max"},
		{func(o *Options) { o.Queues[0].Range = &RangeOptions{Property: "s", WidenPerSecond: math.Inf(1)} }, "queues[0].range.widen_per_second"},
		{func(o *Options) { o.Queues[0].Range = &RangeOptions{} }, "queues[0].range.property"},
		{func(o *Options) { o.Queues[0].TimeLimit = time.Millisecond }, "queues[0].time_limit"},
		{func(o *Options) { o.Queues[0].AcceptMinAfter = time.Hour }, "queues[0].accept_min_after"},
		{func(o *Options) { o.ServerIdentities = []string{"Game Server"} }, "server_identities[0]"},
		{func(o *Options) { o.TickInterval = 0 }, "tick_interval"},
		{func(o *Options) { o.PlaceTimeout = o.ClaimTTL }, "place_timeout"},
		{func(o *Options) { o.PlaceWorkers = 0 }, "place_workers"},
	} {
		o := NewOptions()
		o.Queues = append([]QueueOptions(nil), o.Queues...)
		c.change(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want+":") {
			t.Errorf("want an error naming %s, got %v", c.want, err)
		}
	}
}

// TestKeysShareSlot: every key of a queue carries the queue's hash tag.
func TestKeysShareSlot(t *testing.T) {
	q := newQueue(DefaultRedisPrefix, quad)
	bucket, label := q.bucket(map[string]string{"region": "eu}{x"})
	if label != `region="eu}{x"` || strings.ContainsAny(bucket, "{}") {
		t.Fatalf("bucket %q label %q", bucket, label)
	}
	for _, k := range []string{q.key(keyServers), q.playerKey("u{1}"), q.sessionKey("s1"), q.key(keySessionsBucket + bucket), q.ticketKey("quad.x")} {
		if !strings.HasPrefix(k, "noon:match:{quad}:") {
			t.Errorf("key %q", k)
		}
	}
	if b1, _ := q.bucket(map[string]string{"region": "a"}); b1 == bucket {
		t.Error("different values, same bucket")
	}
}

// TestDecodePresence: the brokers' presence events decode; others are
// ignored.
func TestDecodePresence(t *testing.T) {
	p := &platformpb.Presence{UserId: "u1", Session: "c1", Broker: "b1", Online: true, GraceMs: 5000, AtUnixMs: 42}
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got := services.DecodePresence(&platformpb.Event{Type: wire.EventPresence, Payload: b})
	if got == nil || !proto.Equal(got, p) {
		t.Fatalf("got %v", got)
	}
	for _, ev := range []*platformpb.Event{
		{Type: "room.Event", Payload: b},
		{Type: wire.EventPresence, Payload: []byte{0xff}},
		{Type: wire.EventPresence},
	} {
		if got := services.DecodePresence(ev); got != nil {
			t.Errorf("%v decoded to %v", ev, got)
		}
	}
}
