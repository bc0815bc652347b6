package friends

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// befriend makes a and b friends in the store.
func befriend(t testing.TB, st Store, a, b string) {
	t.Helper()
	err := st.Update(context.Background(), a, b, func(tx Tx) error {
		if err := tx.Put(context.Background(), Edge{User: a, Other: b, State: StateFriend, Updated: time.Now()}); err != nil {
			return err
		}
		return tx.Put(context.Background(), Edge{User: b, Other: a, State: StateFriend, Updated: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// presenceEnv is two friends instances sharing a store, Redis and a fake
// clock, and users: a and c are b's friends, a is online.
type presenceEnv struct {
	*env
	s1, s2  *Service
	a, b, c string
	names   *strings.Replacer
	seq     uint64
}

func newPresenceEnv(t *testing.T) *presenceEnv {
	return presenceEnvOf(t, newEnv(t, NewMemoryStore()))
}

// newMiniPresenceEnv is newPresenceEnv on miniredis (what `noon dev` runs).
func newMiniPresenceEnv(t *testing.T) *presenceEnv {
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return presenceEnvOf(t, newEnvOn(t, NewMemoryStore(), rdb))
}

func presenceEnvOf(t *testing.T, e *env) *presenceEnv {
	p := &presenceEnv{env: e, s1: e.service(), s2: e.service()}
	u := e.users(3)
	p.a, p.b, p.c = u[0], u[1], u[2]
	p.names = strings.NewReplacer(p.a, "a", p.b, "b", p.c, "c")
	befriend(t, e.store, p.a, p.b)
	befriend(t, e.store, p.b, p.c)
	p.event(p.s1, "b1", p.a, "sa", true, 0)
	p.event(p.s2, "b1", p.a, "sa", true, 0)
	p.pushes() // a's own Online: a has no online friend yet
	return p
}

// event applies a presence event on the given instances in turn (each
// hears every broker), with the broker's next sequence number.
func (p *presenceEnv) event(s *Service, broker, user, session string, online bool, grace time.Duration, more ...*Service) {
	p.seq++
	for _, x := range append([]*Service{s}, more...) {
		presence(p.t, x, broker, p.seq, user, session, online, p.clock.Now(), grace)
	}
}

// both applies an event on both instances.
func (p *presenceEnv) both(broker, user, session string, online bool, grace time.Duration) {
	p.event(p.s1, broker, user, session, online, grace, p.s2)
}

// tick ticks both instances.
func (p *presenceEnv) tick() {
	p.t.Helper()
	for _, s := range []*Service{p.s1, p.s2} {
		if err := s.Tick(context.Background()); err != nil {
			p.t.Fatalf("Tick: %v", err)
		}
	}
}

// pushes returns the pushes since the last call, named a, b, c.
func (p *presenceEnv) pushes() []string {
	var out []string
	for _, x := range p.pub.strings() {
		out = append(out, p.names.Replace(x))
	}
	return out
}

// want checks the pushes since the last call, in any order.
func (p *presenceEnv) want(what string, want ...string) {
	p.t.Helper()
	got := p.pushes()
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		p.t.Fatalf("%s: pushes %q, want %q", what, got, want)
	}
}

// TestPresenceTransitions: with two instances hearing every event, a
// user's first connection is one Online push to each online friend (not
// to an offline one); a connection that ends and resumes elsewhere within
// the grace pushes nothing; the last one ending pushes Offline once after
// the grace; List shows presence.
func TestPresenceTransitions(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testPresenceTransitions(t, newPresenceEnv(t)) })
	t.Run("miniredis", func(t *testing.T) { testPresenceTransitions(t, newMiniPresenceEnv(t)) })
}

func testPresenceTransitions(t *testing.T, p *presenceEnv) {
	grace := 30 * time.Second

	p.both("b1", p.b, "s1", true, 0)
	p.want("b's first connection", "friends.Online to a") // c is offline: nothing to c
	if got := list(t, p.s1, p.a, nil); !slices.Equal(got, []string{p.b + ":friend:online"}) {
		t.Fatalf("a's list = %v", got)
	}
	if got := list(t, p.s2, p.b, nil); len(got) != 2 || !slices.Contains(got, p.a+":friend:online") || !slices.Contains(got, p.c+":friend") {
		t.Fatalf("b's list = %v", got)
	}

	// A second connection, then the first ends: nothing.
	p.both("b2", p.b, "s2", true, 0)
	p.both("b1", p.b, "s1", false, grace)
	p.clock.Advance(2 * grace)
	p.tick()
	p.want("a second connection, then the first ends")

	// The last ends; b resumes on another broker within the grace.
	p.both("b2", p.b, "s2", false, grace)
	p.clock.Advance(grace - time.Second)
	p.tick()
	p.both("b1", p.b, "s3", true, 0)
	p.clock.Advance(2 * grace)
	p.tick()
	p.want("a resume within the grace")

	// The last ends for good: Offline once, after the grace.
	p.both("b1", p.b, "s3", false, grace)
	p.clock.Advance(grace - time.Millisecond)
	p.tick()
	p.want("within the grace")
	p.clock.Advance(time.Millisecond)
	p.tick()
	p.tick()
	p.want("the grace over", "friends.Offline to a")
	if got := list(t, p.s1, p.a, nil); !slices.Equal(got, []string{p.b + ":friend"}) {
		t.Fatalf("a's list = %v", got)
	}

	// Back: Online again.
	p.both("b2", p.b, "s4", true, 0)
	p.want("back after the grace", "friends.Online to a")
}

// TestPresenceLateEvents: an instance that hears a connection's events
// late (the other applied its leave already) does not bring it back.
func TestPresenceLateEvents(t *testing.T) {
	p := newPresenceEnv(t)
	grace := 10 * time.Second
	p.event(p.s1, "b1", p.b, "s1", true, 0)
	on := p.seq
	p.event(p.s1, "b1", p.b, "s1", false, grace)
	p.want("s1 online on instance 1", "friends.Online to a")
	// Instance 2 hears the online only now, and the offline after it.
	presence(t, p.s2, "b1", on, p.b, "s1", true, p.clock.Now(), 0)
	presence(t, p.s2, "b1", on+1, p.b, "s1", false, p.clock.Now(), grace)
	presence(t, p.s2, "b1", on, p.b, "s1", true, p.clock.Now(), 0) // and once more
	p.clock.Advance(grace)
	p.tick()
	p.want("late events", "friends.Offline to a")
	if got := list(t, p.s2, p.a, nil); !slices.Equal(got, []string{p.b + ":friend"}) {
		t.Fatalf("a's list = %v: a late online brought b back", got)
	}
}

// TestPresenceBrokerGone: a broker that leaves yellow ends its
// connections after the broker grace, unless it comes back within it (a
// blip): its users with no other connection go offline then; a user with a
// connection on another broker stays. A broker never seen in yellow is
// ended after unknownBrokerAfter (at least). A late event of an ended
// broker changes nothing.
func TestPresenceBrokerGone(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testPresenceBrokerGone(t, newPresenceEnv(t)) })
	t.Run("miniredis", func(t *testing.T) { testPresenceBrokerGone(t, newMiniPresenceEnv(t)) })
}

func testPresenceBrokerGone(t *testing.T, p *presenceEnv) {
	grace := 2 * time.Second // < unknownBrokerAfter
	for _, s := range []*Service{p.s1, p.s2} {
		s.opts.BrokerGrace = grace
	}
	known := func(b string) bool {
		t.Helper()
		k, err := p.s1.pres.brokers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return k[b]
	}
	p.brokers.set("b1", "b2", "b3")
	p.tick() // both instances see b3 in yellow
	p.both("b3", p.b, "s1", true, 0)
	p.both("b3", p.c, "s2", true, 0)
	p.both("b1", p.c, "s3", true, 0)
	p.want("b and c online", "friends.Online to a", "friends.Online to b")

	// A blip: b3 leaves yellow and is back within the grace.
	p.brokers.set("b1", "b2")
	p.tick()
	p.clock.Advance(grace - time.Millisecond)
	p.tick()
	p.brokers.set("b1", "b2", "b3")
	p.tick()
	p.clock.Advance(2 * grace)
	p.tick()
	p.want("a blip of b3 in yellow")
	if !known("b3") {
		t.Fatal("b3's connections ended by a blip")
	}

	// b3 dies without a word.
	p.brokers.set("b1", "b2")
	p.tick()
	p.clock.Advance(grace - time.Millisecond)
	p.tick()
	p.want("within the broker grace")
	p.clock.Advance(time.Millisecond)
	p.tick()
	p.want("the broker grace over", "friends.Offline to a", "friends.Offline to c") // c: still on b1
	if known("b3") {
		t.Fatal("b3 still has connections")
	}

	// A broker this instance never saw: its connections end only after
	// unknownBrokerAfter (it may be too new for the view).
	p.both("b9", p.b, "s4", true, 0)
	p.want("b on b9", "friends.Online to a", "friends.Online to c")
	p.tick()
	p.clock.Advance(unknownBrokerAfter - time.Millisecond)
	p.tick()
	if !known("b9") {
		t.Fatal("b9 judged gone before unknownBrokerAfter")
	}
	p.want("b9 not judged yet")
	p.clock.Advance(time.Millisecond)
	p.tick()
	if known("b9") {
		t.Fatal("b9 not judged gone after unknownBrokerAfter")
	}
	p.want("b9 judged gone", "friends.Offline to a", "friends.Offline to c")

	// A late event of a gone broker changes nothing.
	p.both("b3", p.b, "s1", true, 0)
	p.want("a gone broker's late online")
	if got := list(t, p.s1, p.a, nil); !slices.Equal(got, []string{p.b + ":friend"}) {
		t.Fatalf("a's list = %v", got)
	}
	if got := list(t, p.s1, p.b, nil); len(got) != 2 || !slices.Contains(got, p.c+":friend:online") {
		t.Fatalf("b's list = %v: c is online on b1", got)
	}
}

// TestPresenceMalformed: events that cannot name a connection are dropped.
func TestPresenceMalformed(t *testing.T) {
	p := newPresenceEnv(t)
	for _, ev := range []struct{ broker, user, session string }{
		{"", p.b, "s"}, {"b|1", p.b, "s"}, {"b1", p.b, ""}, {"b1", "bad user", "s"}, {"b1", p.b, strings.Repeat("s", 129)},
	} {
		if _, ok := p.s1.presenceEvent(ev.broker, 1, &platformpb.Presence{UserId: ev.user, Session: ev.session, Online: true}); ok {
			t.Errorf("event %+v taken", ev)
		}
	}
}
