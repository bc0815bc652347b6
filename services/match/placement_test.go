package match

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/wire"
)

// skill is a two-player queue matched on skill within a widening window.
var skill = QueueOptions{Name: "ranked", MaxPlayers: 2, Range: &RangeOptions{Property: "skill", Initial: 50, WidenPerSecond: 25, Max: 500}}

// TestRangeWidening: two players 400 apart do not meet while the older
// session's window is narrower than that, and meet once it has widened
// past it (50 + 25/s: at 14 s); a player close by joins at once.
func TestRangeWidening(t *testing.T) {
	e := newEnv(t, skill)
	s := e.service("m1")
	a, b := newPlayer("ua", "b1"), newPlayer("ub", "b1")
	ta := a.start(t, s, "ranked", nil, map[string]float64{"skill": 1000})
	e.clock.Advance(time.Second)
	tb := b.start(t, s, "ranked", nil, map[string]float64{"skill": 1400})
	for range 12 { // up to 13 s: width 375
		e.clock.Advance(time.Second)
		tick(t, s)
	}
	if st := a.status(t, s, ta.ID); st.State != matchpb.STATE_SEARCHING {
		t.Fatalf("matched before the window widened: %+v", st)
	}
	if e.zcard("ranked", keySessionsCreated) != 2 {
		t.Fatal("want two open sessions")
	}
	for range 2 { // 15 s: width 425 covers 1400
		e.clock.Advance(time.Second)
		tick(t, s)
	}
	for _, x := range []struct {
		p *player
		t *matchpb.Ticket
	}{{a, ta}, {b, tb}} {
		if st := x.p.status(t, s, x.t.ID); st.State != matchpb.STATE_MATCHED || !slices.Equal(st.Match.Players, []string{"ua", "ub"}) {
			t.Fatalf("%s: %+v", x.p.user, st)
		}
	}
	// Oldest ticket first: members are ordered by start.
	if r := e.rooms.creations(); len(r) != 1 || !slices.Equal(r[0].members, []string{"ua", "ub"}) {
		t.Fatalf("rooms %+v", r)
	}

	// Within the initial window: the next two meet at Start.
	c, d := newPlayer("uc", "b1"), newPlayer("ud", "b1")
	c.start(t, s, "ranked", nil, map[string]float64{"skill": 2000})
	d.start(t, s, "ranked", nil, map[string]float64{"skill": 2040})
	testenv.CheckFor(t, 5*time.Second, "uc and ud matched", func() bool { return len(e.pusher.pushed(t, PushMatched, "ud")) == 1 })
}

// TestInstanceKilledMidPlacement: instance m1 claims a ready session and
// creates its room, then dies before recording it placed. Instance m2
// leaves the fresh claim alone, takes the session once the claim is stale,
// re-creates the same room (created false: idempotent) and places it
// exactly once.
func TestInstanceKilledMidPlacement(t *testing.T) {
	e := newEnv(t, duel)
	m1 := e.service("m1")
	died := make(chan struct{})
	e.rooms.after = func(ctx context.Context, _ *roompb.CreateMatchedRequest) error {
		if e.rooms.callCount() == 1 { // m1's call: the room exists, and m1 hangs until killed
			close(died)
			<-ctx.Done()
			return errKilled
		}
		return nil
	}
	a, b := newPlayer("ua", "b1"), newPlayer("ub", "b2")
	a.start(t, m1, "duel", nil, nil)
	tb := b.start(t, m1, "duel", nil, nil)
	<-died
	m1.Close() // killed: its context ends, its unclaim cannot reach Redis through it
	if e.zcard("duel", keySessionsPlacing) != 1 {
		t.Fatal("want m1's claim left in SessionsPlacing")
	}
	// A cancel cannot win against the claimed session.
	err := b.call(e.service("m3"), matchrpc.MethodCancel, &matchpb.CancelRequest{Ticket: b.mustTicket(t, tb)}, nil)
	wantCode(t, "cancel of a ticket being placed", err, wire.CodeConflict)

	m2 := e.service("m2")
	tick(t, m2)
	if n := len(e.pusher.pushed(t, PushMatched, "ua")); n != 0 {
		t.Fatal("m2 placed a session m1's fresh claim holds")
	}
	e.clock.Advance(DefaultClaimTTL + time.Second)
	tick(t, m2)
	made := e.rooms.creations()
	if len(made) != 1 || e.rooms.callCount() != 2 {
		t.Fatalf("rooms %+v after %d calls, want one room from two calls", made, e.rooms.callCount())
	}
	for _, u := range []string{"ua", "ub"} {
		m := e.pusher.pushed(t, PushMatched, u)
		if len(m) != 1 || m[0].ticket.Match.RoomID != made[0].id {
			t.Fatalf("%s: Matched %+v, room %s", u, m, made[0].id)
		}
	}
	tick(t, m2)
	if n := len(e.pusher.pushed(t, PushMatched, "ua")); n != 1 {
		t.Fatalf("%d Matched pushes after another tick", n)
	}
}

// mustTicket returns the id of ticket tk (a helper for readability).
func (p *player) mustTicket(t testing.TB, tk *matchpb.Ticket) string {
	t.Helper()
	if tk == nil || tk.ID == "" {
		t.Fatalf("%s: no ticket", p.user)
	}
	return tk.ID
}

// TestNoCapacity: with no room instance free, ready sessions wait; the
// signal rises once they waited scale_out_after (meta, Queues), and falls
// when capacity appears and they are placed.
func TestNoCapacity(t *testing.T) {
	e := newEnv(t, duel)
	e.cluster.rooms = []RoomInstance{{ID: "room-1", Free: 0, Known: true}}
	s := e.service("m1")
	for _, u := range users("u", 4) {
		newPlayer(u, "b1").start(t, s, "duel", nil, nil)
	}
	tick(t, s)
	if m := s.Meta(); m["scale_out"] != "0" || m["ready_sessions"] != "2" {
		t.Fatalf("meta at once %v", m)
	}
	e.clock.Advance(2 * time.Second)
	tick(t, s)
	if m := s.Meta(); m["scale_out"] != "1" || m["ready_sessions"] != "2" || m["oldest_ready_ms"] != "2000" {
		t.Fatalf("meta after 2s %v", m)
	}
	var qs matchpb.QueuesReply
	if err := callAs(s, nil, matchrpc.MethodQueues, &matchpb.QueuesRequest{}, &qs, nil); err != nil {
		t.Fatal(err)
	}
	if !qs.ScaleOut || qs.Queues[0].ReadySessions != 2 || qs.Queues[0].OldestReadyMs != 2000 || qs.Queues[0].Tickets != 4 {
		t.Fatalf("queues %+v %+v", qs, qs.Queues[0])
	}
	if len(e.rooms.creations()) != 0 {
		t.Fatal("placed with no capacity")
	}
	e.cluster.set(func(c *fakeCluster) { c.rooms = append(c.rooms, RoomInstance{ID: "room-2", Free: 10, Known: true}) })
	tick(t, s)
	made := e.rooms.creations()
	if len(made) != 2 {
		t.Fatalf("rooms %+v", made)
	}
	if m := s.Meta(); m["scale_out"] != "0" || m["ready_sessions"] != "0" {
		t.Fatalf("meta after placement %v", m)
	}
	// Placed on the free instance: its room ids hash to it.
	for _, r := range made {
		if o := ownerOf(r.id, "room-1", "room-2"); o != "room-2" {
			t.Fatalf("room %s is owned by %s", r.id, o)
		}
	}
}

// TestCapacityWakes: a running instance waiting for capacity places as
// soon as the view changes, not at its next tick.
func TestCapacityWakes(t *testing.T) {
	e := newEnv(t, duel)
	e.opts.TickInterval = 10 * time.Second
	e.cluster.rooms = []RoomInstance{{ID: "room-1", Free: 0, Known: true}}
	s := e.service("m1")
	s.Run()
	newPlayer("ua", "b1").start(t, s, "duel", nil, nil)
	newPlayer("ub", "b1").start(t, s, "duel", nil, nil)
	testenv.CheckFor(t, 5*time.Second, "the worker found no capacity", s.waitingForCapacity)
	e.cluster.set(func(c *fakeCluster) { c.rooms[0].Free = 1 })
	testenv.CheckFor(t, 5*time.Second, "placed on the view's change", func() bool { return len(e.rooms.creations()) == 1 })
}

// TestPlacementErrors: a room instance refusing (overloaded) makes the
// next claim pick another room id; a timeout keeps it (the room may
// exist); either way the session is placed later, once.
func TestPlacementErrors(t *testing.T) {
	e := newEnv(t, duel)
	s := e.service("m1")
	var mu sync.Mutex
	var tried []string
	triedNow := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(tried) }
	e.rooms.hook = func(_ context.Context, req *roompb.CreateMatchedRequest) error {
		mu.Lock()
		defer mu.Unlock()
		tried = append(tried, req.RoomID)
		switch len(tried) {
		case 1:
			return wire.Errorf(wire.CodeOverloaded, "full")
		case 2:
			return wire.Errorf(wire.CodeTimeout, "slow")
		}
		return nil
	}
	e.rooms.after = nil
	a, b := newPlayer("ua", "b1"), newPlayer("ub", "b1")
	a.start(t, s, "duel", nil, nil)
	b.start(t, s, "duel", nil, nil)
	testenv.CheckFor(t, 5*time.Second, "first try", func() bool { return e.zcard("duel", keySessionsReady) == 1 && len(triedNow()) >= 1 })
	e.clock.Advance(retryMin)
	tick(t, s) // second try: timeout
	tick(t, s) // backing off: no try
	if n := len(triedNow()); n != 2 {
		t.Fatalf("%d tries: want no third before the backoff", n)
	}
	e.clock.Advance(2 * retryMin)
	tick(t, s) // third: placed
	tried = triedNow()
	if len(tried) != 3 || tried[1] == tried[0] || tried[2] != tried[1] {
		t.Fatalf("room ids tried %v: want a new id after overloaded, the same after timeout", tried)
	}
	if m := e.pusher.pushed(t, PushMatched, "ua"); len(m) != 1 || m[0].ticket.Match.RoomID != tried[2] {
		t.Fatalf("Matched %+v", m)
	}
}

// ownerOf returns the owner of room among ids (rendezvous hashing, as the
// router places it).
func ownerOf(room string, ids ...string) string { return placement.Owner(room, ids) }

// TestPresence: a ticket whose connection left is cancelled after the
// grace unless the player comes back; one that resumed on another
// connection is kept and matched there; a broker gone from yellow counts
// as its players leaving, unless it comes back.
func TestPresence(t *testing.T) {
	q := duel
	q.Equal = []string{"k"} // one bucket per player: nobody is matched
	e := newEnv(t, q)
	s := e.service("m1")
	props := func(p *player) map[string]string { return map[string]string{"k": p.user} }
	gone, back, onB3 := newPlayer("ugone", "b1"), newPlayer("uback", "b1"), newPlayer("ub3", "b3")
	tg := gone.start(t, s, "duel", props(gone), nil)
	tbk := back.start(t, s, "duel", props(back), nil)
	t3 := onB3.start(t, s, "duel", props(onB3), nil)
	now := ms(e.clock.Now())
	off := func(p *player) *platformpb.Presence {
		return &platformpb.Presence{UserId: p.user, Session: p.conn, Broker: p.broker, GraceMs: 5000, AtUnixMs: now}
	}
	s.HandlePresence(off(gone))
	s.HandlePresence(off(back))
	s.HandlePresence(&platformpb.Presence{UserId: "ugone", Session: "c-unrelated", Broker: "b2", GraceMs: 1, AtUnixMs: now}) // another connection: no effect
	e.clock.Advance(2 * time.Second)
	resumed := &player{user: "uback", conn: "c-uback-2", broker: "b2", bindings: map[string]string{}}
	s.HandlePresence(&platformpb.Presence{UserId: "uback", Session: resumed.conn, Broker: resumed.broker, Online: true, AtUnixMs: ms(e.clock.Now())})
	e.cluster.set(func(c *fakeCluster) { c.brokers = []string{"b1", "b2"} }) // b3 died
	tick(t, s)
	e.clock.Advance(4 * time.Second) // 6 s: past ugone's grace
	tick(t, s)
	if st := gone.status(t, s, tg.ID); st.State != matchpb.STATE_CANCELLED || st.Reason != ReasonDisconnected {
		t.Fatalf("gone: %+v", st)
	}
	if c := e.pusher.pushed(t, PushCancelled, "ugone"); len(c) != 1 || c[0].ticket.Reason != ReasonDisconnected {
		t.Fatalf("gone: Cancelled %+v", c)
	}
	if st := back.status(t, s, tbk.ID); st.State != matchpb.STATE_SEARCHING {
		t.Fatalf("resumed: %+v", st)
	}
	if st := onB3.status(t, s, t3.ID); st.State != matchpb.STATE_SEARCHING {
		t.Fatalf("b3's player cancelled before broker_grace: %+v", st)
	}
	e.clock.Advance(DefaultBrokerGrace)
	tick(t, s)
	if st := onB3.status(t, s, t3.ID); st.State != matchpb.STATE_CANCELLED || st.Reason != ReasonDisconnected {
		t.Fatalf("b3's player after broker_grace: %+v", st)
	}
	if st := back.status(t, s, tbk.ID); st.State != matchpb.STATE_SEARCHING {
		t.Fatalf("resumed, later: %+v", st)
	}
	// The resumed ticket is matched on its new connection.
	mate := newPlayer("umate", "b1")
	mate.start(t, s, "duel", map[string]string{"k": "uback"}, nil)
	testenv.CheckFor(t, 5*time.Second, "uback matched", func() bool { return len(e.pusher.pushed(t, PushMatched, "uback")) == 1 })
	if m := e.pusher.pushed(t, PushMatched, "uback")[0]; m.broker != "b2" || m.d.GetSession() != resumed.conn {
		t.Fatalf("Matched sent to %s/%s, want b2/%s", m.broker, m.d.GetSession(), resumed.conn)
	}
	resumed.status(t, s, tbk.ID)
	if resumed.bindings["room"] == "" {
		t.Fatal("Status on the resumed connection did not bind the room")
	}
}

// TestBrokerFlap: a broker missing from one view and back in the next
// does not cost its players their tickets.
func TestBrokerFlap(t *testing.T) {
	e := newEnv(t, duel)
	s := e.service("m1")
	a := newPlayer("ua", "b1")
	ta := a.start(t, s, "duel", nil, nil)
	e.cluster.set(func(c *fakeCluster) { c.brokers = []string{"b2"} })
	tick(t, s)
	e.cluster.set(func(c *fakeCluster) { c.brokers = []string{"b1", "b2"} })
	e.clock.Advance(time.Second)
	tick(t, s)
	e.clock.Advance(DefaultBrokerGrace)
	tick(t, s)
	if st := a.status(t, s, ta.ID); st.State != matchpb.STATE_SEARCHING {
		t.Fatalf("%+v", st)
	}
	// No view yet: nobody is judged gone.
	e.cluster.set(func(c *fakeCluster) { c.brokers, c.synced = nil, false })
	tick(t, s)
	e.clock.Advance(DefaultBrokerGrace + time.Second)
	tick(t, s)
	if st := a.status(t, s, ta.ID); st.State != matchpb.STATE_SEARCHING {
		t.Fatalf("unsynced view: %+v", st)
	}
}

// TestReopenAndMerge: a ready session that loses a player (cancel) before
// placement opens again and, being the oldest, absorbs the younger open
// session of its bucket once due for a merge check.
func TestReopenAndMerge(t *testing.T) {
	e := newEnv(t, quad)
	e.cluster.rooms = []RoomInstance{{ID: "room-1", Free: 0, Known: true}} // nothing is placed yet
	s := e.service("m1")
	eu := map[string]string{"region": "eu"}
	ps := []*player{newPlayer("u1", "b1"), newPlayer("u2", "b1"), newPlayer("u3", "b1"), newPlayer("u4", "b1"), newPlayer("u5", "b1")}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.start(t, s, "quad", eu, nil).ID)
		e.clock.Advance(time.Millisecond)
	}
	if e.zcard("quad", keySessionsReady) != 1 || e.zcard("quad", keySessionsCreated) != 1 {
		t.Fatal("want u1..u4 ready and u5 open")
	}
	if err := ps[3].call(s, matchrpc.MethodCancel, &matchpb.CancelRequest{Ticket: ids[3]}, nil); err != nil {
		t.Fatal(err)
	}
	if e.zcard("quad", keySessionsReady) != 0 || e.zcard("quad", keySessionsCreated) != 2 {
		t.Fatal("want two open sessions after the cancel")
	}
	e.cluster.set(func(c *fakeCluster) { c.rooms[0].Free = 10 })
	e.clock.Advance(mergeEvery)
	tick(t, s)
	made := e.rooms.creations()
	if len(made) != 1 || !slices.Equal(made[0].members, []string{"u1", "u2", "u3", "u5"}) {
		t.Fatalf("rooms %+v", made)
	}
}
