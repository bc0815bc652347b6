package match

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/wire"
)

// duel is a two-player queue; quad one of four by region.
var (
	duel = QueueOptions{Name: "duel", MaxPlayers: 2, Game: "race31"}
	quad = QueueOptions{Name: "quad", MaxPlayers: 4, Equal: []string{"region"}, Game: "race31"}
)

// TestMatchTwo: two players meet; both are pushed Searching then Matched
// with room bound on their connection, the room is created once with both,
// Status answers matched (and binds the room on the same connection only),
// and no player record is left.
func TestMatchTwo(t *testing.T) {
	e := newEnv(t, duel)
	s := e.service("m1")
	a, b := newPlayer("ua", "b1"), newPlayer("ub", "b2")
	ta := a.start(t, s, "duel", nil, nil)
	if ta.State != matchpb.STATE_SEARCHING || ta.Queue != "duel" {
		t.Fatalf("ticket %+v", ta)
	}
	e.clock.Advance(1500 * time.Millisecond)
	tb := b.start(t, s, "duel", nil, nil)
	testenv.CheckFor(t, 5*time.Second, "both matched", func() bool {
		return len(e.pusher.pushed(t, PushMatched, "ua")) == 1 && len(e.pusher.pushed(t, PushMatched, "ub")) == 1
	})
	rooms := e.rooms.creations()
	if len(rooms) != 1 || !slices.Equal(rooms[0].members, []string{"ua", "ub"}) || rooms[0].game != "race31" {
		t.Fatalf("rooms %+v", rooms)
	}
	room := rooms[0].id
	for _, p := range []*player{a, b} {
		if n := len(e.pusher.pushed(t, PushSearching, p.user)); n != 1 {
			t.Errorf("%s: %d Searching pushes", p.user, n)
		}
		m := e.pusher.pushed(t, PushMatched, p.user)[0]
		if m.broker != p.broker || m.d.GetSession() != p.conn {
			t.Errorf("%s: Matched sent to %s/%s", p.user, m.broker, m.d.GetSession())
		}
		if bs := m.d.GetBindings(); len(bs) != 1 || bs[0].GetKey() != "room" || bs[0].GetValue() != room {
			t.Errorf("%s: bindings %v", p.user, bs)
		}
		mt := m.ticket
		if mt.State != matchpb.STATE_MATCHED || mt.Match.RoomID != room || !slices.Equal(mt.Match.Players, []string{"ua", "ub"}) || mt.Match.Placement != "room" {
			t.Errorf("%s: pushed %+v %+v", p.user, mt, mt.Match)
		}
	}
	if ms := e.pusher.pushed(t, PushMatched, "ub")[0].ticket; ms.StartedUnixMs != tb.StartedUnixMs {
		t.Errorf("started %d, want %d", ms.StartedUnixMs, tb.StartedUnixMs)
	}
	// Status: the poll fallback binds the room on the ticket's connection.
	st := a.status(t, s, ta.ID)
	if st.State != matchpb.STATE_MATCHED || st.Match == nil || st.Match.RoomID != room || st.Match.Session == "" {
		t.Fatalf("status %+v", st)
	}
	if a.bindings["room"] != room {
		t.Errorf("Status did not bind room: %v", a.bindings)
	}
	other := &player{user: "ua", conn: "c-other", broker: "b3", bindings: map[string]string{}}
	other.status(t, s, ta.ID)
	if len(other.bindings) != 0 {
		t.Errorf("Status bound room on another connection: %v", other.bindings)
	}
	if k := e.playerKeys("duel"); len(k) != 0 || e.zcard("duel", keyPlayersStarted) != 0 {
		t.Errorf("left behind: %v", k)
	}
}

// TestThousandPlayers: 1,000 players over 3 buckets, started concurrently
// on two instances sharing Redis, are each matched exactly once, in full
// sessions of one bucket, each room created once with its members, and
// the model is empty afterwards.
func TestThousandPlayers(t *testing.T) {
	e := newEnv(t, quad)
	insts := []*Service{e.service("m1"), e.service("m2")}
	regions := []string{"eu", "eu", "eu", "eu", "us", "us", "us", "asia", "asia", "asia"} // 400, 300, 300
	names := users("p", 1000)
	region := map[string]string{}
	tickets := map[string]string{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, u := range names {
		r := regions[i%len(regions)]
		region[u] = r
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			p := newPlayer(u, []string{"b1", "b2", "b3"}[i%3])
			tk := p.start(t, insts[i%2], "quad", map[string]string{"region": r, "extra": "x"}, map[string]float64{"level": float64(i)})
			mu.Lock()
			tickets[u] = tk.ID
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Start placed the full sessions as they filled; ticks sweep any the
	// workers missed.
	testenv.CheckFor(t, 20*time.Second, "every player matched", func() bool {
		tick(t, insts[0])
		tick(t, insts[1])
		n := 0
		for _, s := range e.pusher.all() {
			if s.d.GetPushType() == PushMatched {
				n++
			}
		}
		return n >= len(names)
	})

	matched := map[string]*matchpb.Ticket{}
	for _, s := range e.pusher.all() {
		if s.d.GetPushType() != PushMatched {
			continue
		}
		u := s.d.GetUserId()
		if matched[u] != nil {
			t.Fatalf("%s matched twice", u)
		}
		tk := decodePush(t, PushMatched, s.d.GetPushPayload())
		if tk.ID != tickets[u] || s.d.GetSession() != "c-"+u {
			t.Fatalf("%s: Matched for ticket %s on %s", u, tk.ID, s.d.GetSession())
		}
		if bs := s.d.GetBindings(); len(bs) != 1 || bs[0].GetValue() != tk.Match.RoomID {
			t.Fatalf("%s: bound %v, room %s", u, bs, tk.Match.RoomID)
		}
		matched[u] = tk
	}
	if len(matched) != len(names) {
		t.Fatalf("%d of %d matched", len(matched), len(names))
	}
	rooms := e.rooms.creations()
	if len(rooms) != 250 {
		t.Fatalf("%d rooms, want 250", len(rooms))
	}
	inRoom := map[string]string{}
	perInstance := map[string]int{}
	for _, r := range rooms {
		perInstance[placement.Owner(r.id, []string{"room-1", "room-2"})]++
		if len(r.members) != 4 {
			t.Fatalf("room %s has %d members", r.id, len(r.members))
		}
		for _, u := range r.members {
			if prev, ok := inRoom[u]; ok {
				t.Fatalf("%s in rooms %s and %s", u, prev, r.id)
			}
			inRoom[u] = r.id
			if region[u] != region[r.members[0]] {
				t.Fatalf("room %s mixes regions: %v", r.id, r.members)
			}
			if m := matched[u].Match; m.RoomID != r.id || !slices.Equal(m.Players, r.members) {
				t.Fatalf("%s: pushed match %+v, room %s %v", u, m, r.id, r.members)
			}
		}
	}
	if perInstance["room-1"] == 0 || perInstance["room-2"] == 0 {
		t.Errorf("rooms per room instance %v: want both used", perInstance)
	}
	for _, name := range []string{keyPlayersStarted, keySessionsReady, keySessionsPlacing, keySessionsCreated, keySessionsAtMin, keySessionsMergeAt} {
		if n := e.zcard("quad", name); n != 0 {
			t.Errorf("%s holds %d", name, n)
		}
	}
	if k := e.playerKeys("quad"); len(k) != 0 {
		t.Errorf("%d player records left", len(k))
	}
	// A sample of Status polls agree with the pushes.
	p := newPlayer(names[7], "b2")
	if st := p.status(t, insts[1], tickets[names[7]]); st.State != matchpb.STATE_MATCHED || st.Match.RoomID != inRoom[names[7]] {
		t.Errorf("status %+v", st)
	}
}

// TestCancelRacingMatch: a player cancels while the player who fills the
// session starts (whose Start hands the session to placement at once), 500
// times: each ticket ends cancelled or matched, never both, and a
// cancelled player is in no room.
func TestCancelRacingMatch(t *testing.T) {
	e := newEnv(t, QueueOptions{Name: "race", MaxPlayers: 2, Equal: []string{"round"}})
	s := e.service("m1")
	e.rooms.hook = func(context.Context, *roompb.CreateMatchedRequest) error {
		time.Sleep(time.Duration(time.Now().UnixNano()%200) * time.Microsecond) // a room takes a moment
		return nil
	}
	var won struct{ cancel, match int }
	for i := range 500 {
		round := map[string]string{"round": string(rune('a'+i%26)) + time.Duration(i).String()}
		a, b := newPlayer(users("a", 500)[i], "b1"), newPlayer(users("b", 500)[i], "b2")
		ta := a.start(t, s, "race", round, nil)
		var cancelErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); b.start(t, s, "race", round, nil) }()
		go func() {
			defer wg.Done()
			// A player who cancels a moment later or sooner: the race
			// lands before, during and after placement.
			time.Sleep(time.Duration(rand.IntN(600)) * time.Microsecond)
			cancelErr = a.call(s, matchrpc.MethodCancel, &matchpb.CancelRequest{Ticket: ta.ID}, &matchpb.CancelReply{})
		}()
		wg.Wait()
		switch {
		case cancelErr == nil:
			won.cancel++
			if st := a.status(t, s, ta.ID); st.State != matchpb.STATE_CANCELLED || st.Reason != ReasonCancelled {
				t.Fatalf("round %d: cancelled, then status %+v", i, st)
			}
		case wire.CodeOf(cancelErr) == wire.CodeConflict:
			won.match++
			testenv.CheckFor(t, 5*time.Second, "the winning match placed", func() bool {
				return a.status(t, s, ta.ID).State == matchpb.STATE_MATCHED
			})
		default:
			t.Fatalf("round %d: cancel: %v", i, cancelErr)
		}
	}
	// Let the last placements finish, then check every player's pushes.
	tick(t, s)
	for i := range 500 {
		a := users("a", 500)[i]
		m, c := len(e.pusher.pushed(t, PushMatched, a)), len(e.pusher.pushed(t, PushCancelled, a))
		if m+c != 1 {
			t.Fatalf("%s: %d Matched and %d Cancelled pushes", a, m, c)
		}
	}
	inRoom := map[string]bool{}
	for _, r := range e.rooms.creations() {
		for _, u := range r.members {
			inRoom[u] = true
		}
	}
	for i := range 500 {
		a := users("a", 500)[i]
		if inRoom[a] != (len(e.pusher.pushed(t, PushMatched, a)) == 1) {
			t.Fatalf("%s: in a room %v, but pushes say otherwise", a, inRoom[a])
		}
	}
	t.Logf("cancel won %d times, match %d times", won.cancel, won.match)
}

// TestTimeout: a ticket past its queue's time limit times out (pushed,
// Status says so), and the player may start again.
func TestTimeout(t *testing.T) {
	q := duel
	q.TimeLimit = 10 * time.Second
	e := newEnv(t, q)
	s := e.service("m1")
	a := newPlayer("ua", "b1")
	ta := a.start(t, s, "duel", nil, nil)
	e.clock.Advance(9 * time.Second)
	tick(t, s)
	if st := a.status(t, s, ta.ID); st.State != matchpb.STATE_SEARCHING {
		t.Fatalf("at 9s: %+v", st)
	}
	e.clock.Advance(2 * time.Second)
	tick(t, s)
	if st := a.status(t, s, ta.ID); st.State != matchpb.STATE_TIMED_OUT {
		t.Fatalf("at 11s: %+v", st)
	}
	if p := e.pusher.pushed(t, PushTimedOut, "ua"); len(p) != 1 || p[0].ticket.ID != ta.ID || p[0].ticket.State != matchpb.STATE_TIMED_OUT {
		t.Fatalf("TimedOut pushes %+v", p)
	}
	if e.zcard("duel", keySessionsCreated) != 0 || len(e.playerKeys("duel")) != 0 {
		t.Fatal("the timed-out ticket's session or record is left")
	}
	if ta2 := a.start(t, s, "duel", nil, nil); ta2.ID == ta.ID {
		t.Fatal("same ticket id again")
	}
}

// TestMinPlayersAfterWait: a session with min_players is ready only once
// it is accept_min_after old.
func TestMinPlayersAfterWait(t *testing.T) {
	e := newEnv(t, QueueOptions{Name: "ffa", MinPlayers: 2, MaxPlayers: 4, AcceptMinAfter: 5 * time.Second})
	s := e.service("m1")
	a, b := newPlayer("ua", "b1"), newPlayer("ub", "b1")
	a.start(t, s, "ffa", nil, nil)
	b.start(t, s, "ffa", nil, nil)
	e.clock.Advance(4 * time.Second)
	tick(t, s)
	if len(e.rooms.creations()) != 0 {
		t.Fatal("placed before accept_min_after")
	}
	e.clock.Advance(time.Second)
	tick(t, s)
	rooms := e.rooms.creations()
	if len(rooms) != 1 || len(rooms[0].members) != 2 {
		t.Fatalf("rooms %+v", rooms)
	}
}
