package broker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/broker"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// mmRoute routes "mm.", a stateless test service whose replies (and so
// session directives) may bind kv: a stand-in for the matchmaker, which
// may bind room.
var mmRoute = broker.Route{Prefix: "mm.", Service: "mm", Kind: broker.KindStateless, Public: true, Binds: []string{"kv"}}

// mmHandlers are the mm test service's: mm.Who answers
// "<user>|<session id>|<broker>".
func mmHandlers() map[string]services.HandlerFunc {
	return map[string]services.HandlerFunc{
		"mm.Who": func(_ context.Context, s *services.Session, _ []byte) ([]byte, error) {
			return fmt.Appendf(nil, "%s|%s|%s", s.UserID(), s.ID(), s.Broker()), nil
		},
	}
}

// directive returns a directive for the connection sid of user: bindings
// (key=value, or key= to unset) and, with push set, the push "mm.Matched"
// carrying push.
func directive(sid, user, push string, bindings ...string) *platformpb.SessionDirective {
	d := &platformpb.SessionDirective{Session: sid, UserId: user}
	for _, kv := range bindings {
		k, v, _ := strings.Cut(kv, "=")
		d.Bindings = append(d.Bindings, &platformpb.Binding{Key: k, Value: v, Unset: v == ""})
	}
	if push != "" {
		d.PushType, d.PushPayload = "mm.Matched", []byte(push)
	}
	return d
}

// waitPushOf waits for the push "@mm.Matched" carrying want, skipping
// copies of the earlier ones (skip), and fails on any other push.
func waitPushOf(t *testing.T, c *client, want string, skip ...string) {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case m := <-c.pushes:
			switch {
			case m.first == "@mm.Matched" && string(m.payload) == want:
				return
			case m.first == "@mm.Matched" && slices.Contains(skip, string(m.payload)):
			default:
				t.Fatalf("push %q %q while waiting for %q", m.first, m.payload, want)
			}
		case <-deadline:
			t.Fatalf("no push %q within %v", want, waitLong)
		}
	}
}

// directives returns broker_session_directives_total{result}.
func (b *testBroker) directives(t *testing.T, result string) float64 {
	t.Helper()
	mfs, err := b.reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "noon_broker_session_directives_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestSessionDirectives: a service whose routes may bind kv changes a
// connection with no request from it: the binding is in place when the
// push arrives, and the next stateful call routes by it. Directives that
// bind a key the service may not, bind user, carry bad values or push
// types, name another user or an unknown connection change nothing and
// are counted; the same directive from a service that may not bind is not
// even heard; an event that does not decode is counted malformed.
func TestSessionDirectives(t *testing.T) {
	_, rdb := newMiniredis(t)
	y := mustStartYellow(t)
	mustStartService(t, "login", loginHandlers(), y, nil)
	game := mustStartService(t, "game", gameHandlers(), y, nil)
	mm := mustStartService(t, "mm", mmHandlers(), y, nil)
	kv := mustStartKV(t, rdb, y)
	b := mustStartBroker(t, y, func(o *broker.Options) {
		o.Routes = append(o.Routes, mmRoute)
		o.Edge.MaxFrame = 64 << 10 // a push over it fits in one event
	})
	waitRoutable(t, b, "mm.Who", nil)
	waitRoutable(t, b, "kv.Who", nil)
	checkFor(t, waitLong, "the broker follows mm's session directives", func() bool { return b.SessionFeeds("mm") == 1 })
	if n := b.SessionFeeds("game"); n != 0 {
		t.Fatalf("SessionFeeds(game) = %d: game's routes bind nothing", n)
	}

	c := dial(t, b, transportTCP)
	c.hello(true, "")
	c.callOK("login.Login", loginPayload(t, "u1", "pw"))
	who := strings.Split(string(c.callOK("mm.Who", nil)), "|")
	sid, bid := who[1], who[2]
	if who[0] != "u1" || bid != b.ID() {
		t.Fatalf("mm.Who = %q", who)
	}
	c.callErr("kv.Incr", nil, "bad_request: no kv bound")

	// Applied: the binding, then the push. The subscription reaches mm's
	// socket asynchronously, so publish until the push comes.
	deadline := time.Now().Add(waitLong)
	for seen := false; !seen; {
		if time.Now().After(deadline) {
			t.Fatal("the directive was never applied")
		}
		if err := mm.PublishSession(bid, directive(sid, "u1", "m1", "kv=k1")); err != nil {
			t.Fatal(err)
		}
		m, ok := c.waitPush(50 * time.Millisecond)
		if !ok {
			continue
		}
		if m.first != "@mm.Matched" || string(m.payload) != "m1" {
			t.Fatalf("push %q %q", m.first, m.payload)
		}
		// The binding was in place before the push was queued.
		if bs, _, _ := broker.SessionState(b.Broker, sid); bs["kv"] != "k1" {
			t.Fatalf("bindings %v when the push arrived, want kv=k1", bs)
		}
		seen = true
	}
	if n, inst := parseIncr(t, c.callOK("kv.Incr", nil)); n != 1 || inst != kv.InstanceID() {
		t.Fatalf("kv.Incr after the directive: %d from %s, want 1 from %s", n, inst, kv.InstanceID())
	}

	// Refused, in one event and in order, then a marker: nothing but the
	// marker is pushed and the bindings stay.
	before := map[string]float64{}
	for _, r := range []string{"refused", "user_mismatch", "no_connection", "malformed"} {
		before[r] = b.directives(t, r)
	}
	badType := directive(sid, "u1", "", "kv=k2")
	badType.PushType, badType.PushPayload = "_noon.Session", []byte("x")
	noDot := directive(sid, "u1", "", "kv=k2")
	noDot.PushType = "Matched"
	payloadNoType := directive(sid, "u1", "", "kv=k2")
	payloadNoType.PushPayload = []byte("x")
	tooLarge := directive(sid, "u1", "large", "kv=k2")
	tooLarge.PushPayload = make([]byte, 64<<10)
	if err := mm.PublishSession(bid,
		directive(sid, "u1", "bad-key", "kv=k2", "room=r1"), // mm may not bind room: the whole directive is refused
		directive(sid, "u1", "user", "user=evil"),
		directive(sid, "u1", "long", "kv="+strings.Repeat("x", 300)),
		badType, noDot, payloadNoType, tooLarge,
		directive(sid, "", "no-user", "kv=k2"),
		directive(sid, "u2", "mismatch", "kv=k2"),
		directive("conn-nope", "u1", "unknown", "kv=k2"),
		directive(sid, "u1", "m2"),
	); err != nil {
		t.Fatal(err)
	}
	waitPushOf(t, c, "m2", "m1")
	for r, want := range map[string]float64{"refused": 8, "user_mismatch": 1, "no_connection": 1, "malformed": 0} {
		if got := b.directives(t, r) - before[r]; got != want {
			t.Errorf("directives %s: +%v, want +%v", r, got, want)
		}
	}
	if bs, _, _ := broker.SessionState(b.Broker, sid); len(bs) != 1 || bs["kv"] != "k1" {
		t.Fatalf("bindings %v after refused directives, want only kv=k1", bs)
	}

	// Malformed events: counted, nothing else.
	if err := mm.Publish(wire.SessionTopic(bid), wire.EventSession, []byte{0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	if err := mm.Publish(wire.SessionTopic(bid), "mm.Other", nil); err != nil {
		t.Fatal(err)
	}
	if err := mm.PublishSession(bid, directive(sid, "u1", "m3")); err != nil {
		t.Fatal(err)
	}
	waitPushOf(t, c, "m3", "m1")
	if got := b.directives(t, "malformed") - before["malformed"]; got != 2 {
		t.Errorf("malformed events +%v, want +2", got)
	}

	// From game, whose routes bind nothing: not heard at all (the marker
	// after it on the same socket comes first).
	applied := b.directives(t, "applied")
	if err := game.PublishSession(bid, directive(sid, "u1", "from-game", "kv=k9")); err != nil {
		t.Fatal(err)
	}
	publishUntil(t, game, c, "user/u1", "test.Marker", "after game")
	if bs, _, _ := broker.SessionState(b.Broker, sid); bs["kv"] != "k1" {
		t.Fatalf("bindings %v after game's directive", bs)
	}

	// An unset clears the binding.
	if err := mm.PublishSession(bid, directive(sid, "u1", "m4", "kv=")); err != nil {
		t.Fatal(err)
	}
	waitPushOf(t, c, "m4", "m1")
	if bs, topics, _ := broker.SessionState(b.Broker, sid); len(bs) != 0 || slices.Contains(topics, "kv/k1") {
		t.Fatalf("bindings %v, topics %v after the unset", bs, topics)
	}
	c.callErr("kv.Incr", nil, "bad_request: no kv bound")
	// The push is sent before the directive is counted: wait for the count.
	checkFor(t, waitLong, "applied +1 after game's and the unset", func() bool {
		return b.directives(t, "applied")-applied == 1
	})

	// Logged out: a directive for the user it had is a mismatch.
	before["user_mismatch"] = b.directives(t, "user_mismatch")
	c.callOK("login.Logout", encode(t, &loginpb.LogoutRequest{SessionToken: ptr("tok-u1")}))
	if err := mm.PublishSession(bid, directive(sid, "u1", "late", "kv=k5")); err != nil {
		t.Fatal(err)
	}
	checkFor(t, waitLong, "the directive for the logged-out user counted", func() bool {
		return b.directives(t, "user_mismatch") == before["user_mismatch"]+1
	})
	if bs, _, _ := broker.SessionState(b.Broker, sid); len(bs) != 0 {
		t.Fatalf("bindings %v after a directive for the logged-out user", bs)
	}
}
