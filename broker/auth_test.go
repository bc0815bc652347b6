package broker_test

import (
	"slices"
	"testing"
	"time"

	"github.com/noonhq/noon/broker"
	edgepb "github.com/noonhq/noon/idl/gen/edge"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// revokedPayload encodes a login.Revoked of the sessions of tokens.
func revokedPayload(t *testing.T, user string, tokens ...string) []byte {
	t.Helper()
	ev := &loginpb.Revoked{UserID: user, Reason: edgepb.LOGGED_OUT_LOGOUT}
	for _, tok := range tokens {
		ev.Sessions = append(ev.Sessions, wire.SessionID(tok))
	}
	b, err := thriftx.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRevocation: a login.Revoked event from a login instance logs out
// every connection of the session it names (logged in or resumed), and
// only those; the same event from another service is ignored, and no
// client may subscribe to the revocation topic.
func TestRevocation(t *testing.T) {
	y := mustStartYellow(t)
	login := mustStartService(t, "login", loginHandlers(), y, nil)
	game := mustStartService(t, "game", gameHandlers(), y, nil)
	b := mustStartBroker(t, y, nil)
	waitRoutable(t, b, "login.Validate", encode(t, &loginpb.ValidateRequest{}))
	checkFor(t, waitLong, "the broker follows login's revocations", func() bool { return b.Info().RevocationFeeds == 1 })

	c1 := dial(t, b, transportTCP)
	c1.hello(true, "")
	c1.callOK("login.Login", loginPayload(t, "u1", "pw"))
	c2 := dial(t, b, transportTCP)
	c2.hello(false, "tok-u1") // resumed, no pushes
	c3 := dial(t, b, transportTCP)
	c3.hello(true, "")
	c3.callOK("login.Login", loginPayload(t, "u3", "pw"))
	if n := b.Info().LoginSessions; n != 2 {
		t.Fatalf("login sessions %d, want 2", n)
	}

	// A client cannot subscribe to the platform's topics.
	ignored := b.counter(t, "broker_ignored_subscriptions_total")
	c3.callOK("game.Sub", []byte(wire.TopicRevoked))
	if got := b.counter(t, "broker_ignored_subscriptions_total"); got != ignored+1 {
		t.Fatalf("ignored subscriptions %v -> %v, want +1", ignored, got)
	}

	// The event from game (not the auth service): ignored. Events on one
	// socket arrive in order, so once the marker after it is pushed, the
	// forgery had its chance.
	forged := revokedPayload(t, "u1", "tok-u1")
	if err := game.Publish(wire.TopicRevoked, wire.EventRevoked, forged); err != nil {
		t.Fatal(err)
	}
	publishUntil(t, game, c1, "user/u1", "test.Marker", "after the forgery")
	c1.callOK("game.Whoami", nil)
	c2.callOK("game.Whoami", nil)

	// From login: both connections of tok-u1 are logged out, u3 is not.
	deadline := time.Now().Add(waitLong)
	var m msg
	for {
		if err := login.Publish(wire.TopicRevoked, wire.EventRevoked, forged); err != nil {
			t.Fatal(err)
		}
		var ok bool
		if m, ok = c1.waitPush(50 * time.Millisecond); ok || time.Now().After(deadline) {
			break
		}
	}
	var lo edgepb.LoggedOut
	decode(t, m.payload, &lo)
	if m.first != "@"+wire.EventLoggedOut || lo.Reason != edgepb.LOGGED_OUT_LOGOUT {
		t.Fatalf("push %q %+v, want @%s logout", m.first, &lo, wire.EventLoggedOut)
	}
	c1.callErr("game.Whoami", nil, "unauthenticated: game.Whoami requires login")
	// c2, without pushes, is logged out by the same event, maybe a moment
	// after c1.
	checkFor(t, waitLong, "the resumed connection logged out", func() bool {
		return c2.call("game.Whoami", nil).first == "unauthenticated: game.Whoami requires login"
	})
	c3.callOK("game.Whoami", nil)
	if n := b.counter(t, "broker_logouts_total"); n != 2 {
		t.Fatalf("broker_logouts_total = %v, want 2 (c1 and c2)", n)
	}
	if n := b.Info().LoginSessions; n != 1 {
		t.Fatalf("login sessions %d after the revocation, want 1", n)
	}

	// A login completing after its session's revocation arrived (a reply in
	// flight) is ended at once: tok-u1 was revoked moments ago.
	c4 := dial(t, b, transportTCP)
	c4.hello(false, "")
	c4.callOK("login.Login", loginPayload(t, "u1", "pw"))
	c4.callErr("game.Whoami", nil, "unauthenticated: game.Whoami requires login")
}

// TestUserChangeDropsBindings: a login as another user drops the bindings
// and topics of the previous one; a login as the same user keeps them; a
// logout of the connection's own token drops them, of another token does
// not log it out.
func TestUserChangeDropsBindings(t *testing.T) {
	_, rdb := newMiniredis(t)
	y := mustStartYellow(t)
	mustStartService(t, "login", loginHandlers(), y, nil)
	mustStartService(t, "game", gameHandlers(), y, nil)
	mustStartKV(t, rdb, y)
	b := mustStartBroker(t, y, nil)
	waitRoutable(t, b, "kv.Who", nil)
	c := dial(t, b, transportTCP)
	c.hello(true, "")
	state := func(wantBindings map[string]string, wantTopics ...string) {
		t.Helper()
		bindings, topics, ok := broker.SessionState(b.Broker, sessionID(t, c))
		if !ok || len(bindings) != len(wantBindings) || !slices.Equal(topics, wantTopics) {
			t.Fatalf("session: bindings %v topics %v, want %v %v", bindings, topics, wantBindings, wantTopics)
		}
		for k, v := range wantBindings {
			if bindings[k] != v {
				t.Fatalf("session: bindings %v, want %v", bindings, wantBindings)
			}
		}
	}

	c.callOK("login.Login", loginPayload(t, "u1", "pw"))
	c.callOK("kv.Open", []byte("k1"))
	c.callOK("game.Sub", []byte("chat/u1"))
	state(map[string]string{"kv": "k1"}, "chat/u1", "kv/k1", "user/u1")
	c.callOK("login.Login", loginPayload(t, "u1", "pw")) // the same user again
	state(map[string]string{"kv": "k1"}, "chat/u1", "kv/k1", "user/u1")

	c.callOK("login.Login", loginPayload(t, "u2", "pw"))
	state(nil, "user/u2")
	c.callErr("kv.Incr", nil, "bad_request: no kv bound")

	// A logout of another token of someone's: still logged in.
	c.callOK("kv.Open", []byte("k2"))
	c.callOK("login.Logout", encode(t, &loginpb.LogoutRequest{SessionToken: ptr("tok-u1")}))
	c.callOK("game.Whoami", nil)
	state(map[string]string{"kv": "k2"}, "kv/k2", "user/u2")
	// Of its own: logged out, nothing left.
	c.callOK("login.Logout", encode(t, &loginpb.LogoutRequest{SessionToken: ptr("tok-u2")}))
	c.callErr("game.Whoami", nil, "unauthenticated: game.Whoami requires login")
	c.callOK("login.Login", loginPayload(t, "u2", "pw"))
	state(nil, "user/u2")
}

func ptr[T any](v T) *T { return &v }
