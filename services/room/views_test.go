package room

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// topicCollector keeps the room events published on some topics, by topic.
type topicCollector struct {
	mu     sync.Mutex
	events map[string][]*roompb.Event
	probes map[string]int
}

func collectTopics(t testing.TB, pub string, topics ...string) *topicCollector {
	c := &topicCollector{events: map[string][]*roompb.Event{}, probes: map[string]int{}}
	s := link.NewSubscriber(pub, link.SubOptions{DeadAfter: expiry, BackoffMax: hb, Logger: testLogger(t)}, func(topic string, ev *platformpb.Event) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if ev.GetType() != EventType {
			c.probes[topic]++
			return
		}
		var e roompb.Event
		if err := thriftx.Unmarshal(ev.GetPayload(), &e); err != nil {
			panic(err)
		}
		c.events[topic] = append(c.events[topic], &e)
	})
	t.Cleanup(func() { _ = s.Close() })
	for _, tp := range topics {
		if err := s.Subscribe(tp); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *topicCollector) of(topic string) []*roompb.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*roompb.Event(nil), c.events[topic]...)
}

// find returns the event of type typ on topic, nil for none.
func (c *topicCollector) find(topic, typ string) *roompb.Event {
	for _, e := range c.of(topic) {
		if e.Type == typ {
			return e
		}
	}
	return nil
}

// TestStateMembersOnly: a room's whole state is its members'; anyone else
// gets the public summary (public_view, no game_state). Before, any
// logged-in user read any room's whole state.
func TestStateMembersOnly(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	c.start(nil, false)
	r := newRouter(c)
	cs, id := startTally(t, r, 2, "alice", "bob")
	cs[0].mustCall(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("x")}, nil)
	carol := r.client("carol")
	st := getState(t, carol, id)
	if !st.PublicView || len(st.GameState) != 0 || st.Status != StatusPlaying || len(st.Players) != 2 {
		t.Fatalf("a non-member's state: %+v, want the public summary", st)
	}
	since := int64(0)
	carol.mustCall(t, roomrpc.MethodGet, &roompb.GetRequest{RoomID: &id, SinceSeq: &since}, st)
	if len(st.Events) != 0 || !st.PublicView {
		t.Fatalf("a non-member got events: %+v", st)
	}
	st = getState(t, cs[1], id)
	if st.PublicView || len(st.GameState) == 0 {
		t.Fatalf("a member's state: %+v, want the whole state", st)
	}
}

// TestHiddenInformation: a game.Viewer (secret) shows each member only
// their own view, in room.Get and in the room.started they are pushed;
// a private output (Output.To) reaches its player only, the others get
// the event with an empty body; nothing private is published on the
// room's topic.
func TestHiddenInformation(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	in := c.start(nil, false)
	r := newRouter(c)
	alice, bob := r.client("alice"), r.client("bob")
	var st roompb.RoomState
	alice.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "s", Game: secretName}, &st)
	id := st.ID
	bob.mustCall(t, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: id}, nil)
	col := collectTopics(t, in.srv.PubEndpoint(), Topic(id), UserTopic("alice"), UserTopic("bob"))
	checkFor(t, 10*time.Second, "subscriber sees probes", func() bool {
		for _, tp := range []string{Topic(id), UserTopic("alice"), UserTopic("bob")} {
			_ = in.srv.Publish(tp, "probe", nil)
		}
		col.mu.Lock()
		defer col.mu.Unlock()
		return col.probes[Topic(id)] > 0 && col.probes[UserTopic("alice")] > 0 && col.probes[UserTopic("bob")] > 0
	})
	alice.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	bob.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	alice.mustCall(t, roomrpc.MethodStart, &roompb.StartRequest{}, nil)

	view := func(b []byte) *secretState {
		t.Helper()
		var s secretState
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("view %q: %v", b, err)
		}
		return &s
	}
	a := view(getState(t, alice, id).GameState)
	bv := view(getState(t, bob, id).GameState)
	if a.Secrets["alice"] == "?" || a.Secrets["bob"] != "?" || bv.Secrets["bob"] == "?" || bv.Secrets["alice"] != "?" {
		t.Fatalf("views: alice sees %v, bob sees %v", a.Secrets, bv.Secrets)
	}
	alice.mustCall(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("peek")}, nil)
	alice.mustCall(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("poke")}, nil)
	checkFor(t, 10*time.Second, "the pushes", func() bool {
		return col.find(Topic(id), "game.poke") != nil && col.find(UserTopic("bob"), "game.peek") != nil && col.find(UserTopic("alice"), "game.peek") != nil
	})
	if e := col.find(UserTopic("alice"), EventStarted); e == nil || view(e.Body).Secrets["bob"] != "?" || view(e.Body).Secrets["alice"] != a.Secrets["alice"] {
		t.Fatalf("alice's room.started: %+v", e)
	}
	if e := col.find(UserTopic("bob"), EventStarted); e == nil || view(e.Body).Secrets["alice"] != "?" {
		t.Fatalf("bob's room.started: %+v", e)
	}
	if e := col.find(UserTopic("alice"), "game.peek"); string(e.Body) != a.Secrets["alice"] {
		t.Fatalf("alice's peek: %q, want %q", e.Body, a.Secrets["alice"])
	}
	if e := col.find(UserTopic("bob"), "game.peek"); len(e.Body) != 0 {
		t.Fatalf("bob got alice's peek body %q", e.Body)
	}
	for _, e := range col.of(Topic(id)) {
		if e.Type == EventStarted || e.Type == "game.peek" {
			t.Fatalf("private event %s on the room's topic", e.Type)
		}
	}
	// The replay of the peek is private too.
	since := int64(0)
	var rs roompb.RoomState
	bob.mustCall(t, roomrpc.MethodGet, &roompb.GetRequest{SinceSeq: &since}, &rs)
	for _, e := range rs.Events {
		if e.Type == "game.peek" && len(e.Body) != 0 || e.Type == EventStarted && view(e.Body).Secrets["alice"] != "?" {
			t.Fatalf("bob's replay shows %s %q", e.Type, e.Body)
		}
	}
}

// TestReplaySinceSeq: room.Get since_seq returns the events after it, as
// pushed; past the kept window, or ahead of the room, resync.
func TestReplaySinceSeq(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	c.start(func(o *Options) { o.Replay.MaxEvents = 50 }, false)
	r := newRouter(c)
	cs, id := startTally(t, r, 1, "alice")
	alice := cs[0]
	s0 := getState(t, alice, id).Seq
	for i := 0; i < 5; i++ {
		alice.mustCall(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte{'a' + byte(i)}}, nil)
	}
	get := func(since int64) *roompb.RoomState {
		var st roompb.RoomState
		alice.mustCall(t, roomrpc.MethodGet, &roompb.GetRequest{SinceSeq: &since}, &st)
		return &st
	}
	st := get(s0)
	if st.Resync || len(st.Events) != 5 || st.Seq != s0+5 {
		t.Fatalf("since %d: resync %v, %d events, seq %d", s0, st.Resync, len(st.Events), st.Seq)
	}
	for i, e := range st.Events {
		if e.Seq != s0+1+int64(i) || e.Type != "game.tallied" || string(e.Body) != string([]byte{'a' + byte(i)}) {
			t.Fatalf("event %d: %+v", i, e)
		}
	}
	if st := get(st.Seq); st.Resync || len(st.Events) != 0 {
		t.Fatalf("since seq: %+v", st)
	}
	if st := get(st.Seq + 3); !st.Resync || len(st.Events) != 0 {
		t.Fatalf("since a future seq: %+v", st)
	}
	for i := 0; i < 60; i++ {
		alice.mustCall(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: []byte("x")}, nil)
	}
	if st := get(s0); !st.Resync || len(st.Events) != 0 {
		t.Fatalf("since a seq out of the window: resync %v, %d events", st.Resync, len(st.Events))
	}
	st = get(0)
	last := st.Seq
	if st := get(last - 50); st.Resync || len(st.Events) != 50 {
		t.Fatalf("since the window's start: resync %v, %d events", st.Resync, len(st.Events))
	}
	// Without since_seq, no events.
	if st := getState(t, alice, id); len(st.Events) != 0 || st.Resync {
		t.Fatalf("plain get: %+v", st)
	}
}

// TestMemberRate: a member toggling ready as fast as it can is refused
// rate_limited past member_rate's burst; a toggle to the same state is a
// no-op, neither stored nor pushed. Before, every toggle was stored and
// pushed (200/s per member).
func TestMemberRate(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	in := c.start(func(o *Options) { o.MemberRate = MemberRateOptions{Events: 10, Burst: 20, Bytes: DefaultMemberBytes} }, false)
	r := newRouter(c)
	alice := r.client("alice")
	var st roompb.RoomState
	alice.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "rate", Game: tallyName}, &st)
	s0 := st.Seq
	limited, ok := 0, 0
	start := time.Now()
	for i := 0; i < 200; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := alice.call(ctx, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: i%2 == 0}, nil)
		cancel()
		switch {
		case err == nil:
			ok++
		case errors.Is(err, &wire.Error{Code: wire.CodeRateLimited}):
			limited++
		default:
			t.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	if limited == 0 {
		t.Fatal("200 toggles, none rate_limited")
	}
	// At most the burst plus what the rate refilled meanwhile was stored.
	st = *getState(t, alice, alice.room())
	t.Logf("200 toggles in %v: %d accepted, %d rate_limited, %d events stored", elapsed, ok, limited, st.Seq-s0)
	if max := s0 + 20 + int64(elapsed.Seconds()*10) + 1; st.Seq > max {
		t.Fatalf("seq went from %d to %d in %v: more than member_rate allows", s0, st.Seq, elapsed)
	}
	if in.svc.Stats().RateLimited == 0 {
		t.Fatal("rate_limited not counted")
	}
}

// TestNoopNotStored: a ready toggle to the state the member is in changes
// nothing: no entry, no event.
func TestNoopNotStored(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	in := c.start(nil, false)
	r := newRouter(c)
	alice := r.client("alice")
	var st roompb.RoomState
	alice.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "noop", Game: tallyName}, &st)
	alice.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, &st)
	seq, entries, pubs := st.Seq, in.svc.Stats().Entries, in.svc.Stats().Published
	for i := 0; i < 10; i++ {
		alice.mustCall(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, &st)
	}
	if s := in.svc.Stats(); st.Seq != seq || s.Entries != entries || s.Published != pubs {
		t.Fatalf("no-op toggles: seq %d -> %d, entries %d -> %d, published %d -> %d", seq, st.Seq, entries, s.Entries, pubs, s.Published)
	}
}

// TestClosedRoomEvicted: a room everyone left leaves memory at once (it
// held a slot of max_rooms until idle eviction before).
func TestClosedRoomEvicted(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	in := c.start(nil, false)
	r := newRouter(c)
	alice := r.client("alice")
	for i := 0; i < 5; i++ {
		alice.mustCall(t, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "gone", Game: tallyName}, nil)
		alice.mustCall(t, roomrpc.MethodLeave, &roompb.LeaveRequest{}, nil)
	}
	checkFor(t, 10*time.Second, "closed rooms evicted", func() bool { return in.svc.Stats().Rooms == 0 })
	if n := in.svc.Stats().ClosedEvicted; n != 5 {
		t.Fatalf("closed evicted = %d, want 5", n)
	}
}

// TestMemberByteRate: the byte bucket of member_rate refuses an action
// that does not fit what is left of its burst (twice the byte rate).
func TestMemberByteRate(t *testing.T) {
	o := NewOptions()
	o.MemberRate = MemberRateOptions{Events: 1000, Burst: 1000, Bytes: 10_000}
	c := &controller{s: &Service{opts: o}}
	if !c.allow("p", 15_000) {
		t.Fatal("the first 15,000 bytes (burst 20,000) refused")
	}
	if c.allow("p", 15_000) {
		t.Fatal("30,000 bytes at once allowed with a burst of 20,000")
	}
	if !c.allow("q", 15_000) {
		t.Fatal("another member's bytes refused")
	}
	o.MemberRate = MemberRateOptions{}
	c = &controller{s: &Service{opts: o}}
	for i := 0; i < 1000; i++ {
		if !c.allow("p", maxActionLen) {
			t.Fatal("refused with member_rate off")
		}
	}
}
