package broker_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/frame"
	echopb "github.com/noonhq/noon/idl/gen/echo"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// TestPipelinedOrder sends 1,000 pipelined echo.Sleep requests of different
// lengths on one connection: the replies come back in request order,
// through the whole client -> broker -> echo -> broker -> client path.
func TestPipelinedOrder(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			y := mustStartYellow(t)
			mustStartEcho(t, y)
			mustStartEcho(t, y)
			b := mustStartBroker(t, y, nil)
			waitRoutable(t, b, "echo.Echo", nil)

			c := dial(t, b, tr)
			const n = 1000
			ms := func(i int) int32 { return int32((i * 7919) % 23) } // 0..22 ms, shuffled
			sent := make(chan error, 1)
			go func() {
				for i := range n {
					req, _ := encodeSleep(ms(i))
					if err := c.write(req); err != nil {
						sent <- fmt.Errorf("request %d: %w", i, err)
						return
					}
				}
				sent <- nil
			}()
			for i := range n {
				m := c.recv()
				if m.first != "" {
					t.Fatalf("reply %d: %q", i, m.first)
				}
				var rep echopb.SleepReply
				decode(t, m.payload, &rep)
				if rep.SleptMs != ms(i) {
					t.Fatalf("reply %d is for a %d ms sleep, want %d ms: out of order", i, rep.SleptMs, ms(i))
				}
			}
			if err := <-sent; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// encodeSleep returns the request frame of echo.Sleep{ms}.
func encodeSleep(ms int32) ([]byte, error) {
	p, err := thriftx.Marshal(&echopb.SleepRequest{Ms: ms})
	if err != nil {
		return nil, err
	}
	return frame.AppendRequest(nil, "echo.Sleep", p), nil
}

// TestErrors checks the errors the broker answers with, exactly.
func TestErrors(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			y := mustStartYellow(t)
			mustStartEcho(t, y)
			mustStartService(t, "login", loginHandlers(), y, nil)
			b := mustStartBroker(t, y, nil)
			waitRoutable(t, b, "echo.Echo", nil)
			c := dial(t, b, tr)

			c.callErr("nosuch.Method", nil, "unknown_method: nosuch.Method")
			c.callErr("echo.", nil, "unknown_method: echo.")
			c.callErr("NoSuchAlias", nil, "unknown_method: NoSuchAlias")
			c.callErr("edge.Nope", nil, "unknown_method: edge.Nope")
			c.callErr("game.Whoami", nil, "unauthenticated: game.Whoami requires login")
			c.callErr("login.Logout", nil, "unauthenticated: login.Logout requires login")
			c.callErr("echo.Fail", encode(t, &echopb.FailRequest{Code: "not_found", Message: "no such thing"}), "not_found: no such thing")
			c.callErr("echo.Sleep", []byte{0xff}, "bad_request: thriftx: decode *echo.SleepRequest: *echo.SleepRequest field 15 read error: don't know what type: 15")
			start := time.Now()
			c.callErr("echo.Stall", nil, "timeout: echo.Stall got no reply within 300ms")
			if d := time.Since(start); d > stallTimeout+time.Second {
				t.Errorf("timeout answered after %v, want about %v", d, stallTimeout)
			}
			if got := c.callOK("echo.Echo", []byte("still fine")); string(got) != "still fine" {
				t.Fatalf("echo after errors: %q", got)
			}
			c.callErr("login.Login", loginPayload(t, "u1", "nope"), "unauthenticated: wrong username or password")
			c.callOK("Login", loginPayload(t, "u1", "pw")) // an alias
			c.callErr("match.Find", nil, "unavailable: no live instance of match")

			// Every instance of a service gone: unavailable within the
			// deadline.
			fr := mustStartService(t, "friends", map[string]services.HandlerFunc{
				"friends.Ping": func(context.Context, *services.Session, []byte) ([]byte, error) { return []byte("pong"), nil },
			}, y, nil)
			checkFor(t, waitLong, "friends routable", func() bool { return c.call("friends.Ping", nil).first == "" })
			fr.Exit()
			start = time.Now()
			if m := c.call("friends.Ping", nil); !strings.HasPrefix(m.first, "unavailable: ") {
				t.Fatalf("friends.Ping after its only instance exited: %q, want unavailable", m.first)
			}
			if d := time.Since(start); d >= broker.DefaultTimeout {
				t.Fatalf("unavailable took %v, not within the %v deadline", d, broker.DefaultTimeout)
			}
			checkFor(t, waitLong, "friends unavailable", func() bool {
				return c.call("friends.Ping", nil).first == "unavailable: no live instance of friends"
			})
			if n := b.counter(t, "broker_requests_total"); n < 10 {
				t.Errorf("broker_requests_total = %v, want >= 10", n)
			}
		})
	}
}

// TestAuth checks the auth gate, login through an Authenticates route,
// bindings a route may not make, and edge.Hello with a resume token.
func TestAuth(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			y := mustStartYellow(t)
			mustStartService(t, "login", loginHandlers(), y, nil)
			mustStartService(t, "game", gameHandlers(), y, nil)
			b := mustStartBroker(t, y, nil)
			waitRoutable(t, b, "login.Validate", encode(t, &loginpb.ValidateRequest{}))

			c := dial(t, b, tr)
			hr := c.hello(false, "")
			if hr.ProtocolVersion != wire.ProtocolVersion || hr.BrokerID != b.ID() || hr.SessionID == "" ||
				hr.MaxFrame != 1<<20 || hr.MaxInFlight != 64 || hr.UserID != nil {
				t.Fatalf("hello reply %+v", hr)
			}
			c.callErr("game.Whoami", nil, "unauthenticated: game.Whoami requires login")

			// login.Register may not authenticate: its binding is ignored.
			ignored := b.counter(t, "broker_ignored_bindings_total")
			c.callOK("login.Register", encode(t, &loginpb.RegisterRequest{Username: "u1", Password: "pw"}))
			c.callErr("game.Whoami", nil, "unauthenticated: game.Whoami requires login")
			if got := b.counter(t, "broker_ignored_bindings_total"); got != ignored+1 {
				t.Fatalf("ignored bindings %v -> %v, want +1", ignored, got)
			}

			var lr loginpb.LoginReply
			decode(t, c.callOK("login.Login", loginPayload(t, "u1", "pw")), &lr)
			if lr.UserID != "u1" {
				t.Fatalf("login reply %+v", lr)
			}
			want := "u1||" + b.ID() + "|" + hr.SessionID
			if got := string(c.callOK("game.Whoami", nil)); got != want {
				t.Fatalf("game.Whoami = %q, want %q", got, want)
			}

			// A stateless route binding "user" or another route's key is
			// ignored.
			c.callOK("game.Evil", nil)
			if got := string(c.callOK("game.Whoami", nil)); got != want {
				t.Fatalf("after game.Evil, game.Whoami = %q, want %q", got, want)
			}
			if got := b.counter(t, "broker_ignored_bindings_total"); got != ignored+3 {
				t.Fatalf("ignored bindings %v -> %v, want +3", ignored, got)
			}

			// Resume with a valid token: logged in at hello.
			c2 := dial(t, b, tr)
			hr2 := c2.hello(false, lr.SessionToken)
			if hr2.UserID == nil || *hr2.UserID != "u1" {
				t.Fatalf("hello with a valid token: user %v, want u1", hr2.UserID)
			}
			if got := string(c2.callOK("game.Whoami", nil)); !strings.HasPrefix(got, "u1|") {
				t.Fatalf("resumed game.Whoami = %q", got)
			}
			// An invalid one: not logged in, not an error.
			c3 := dial(t, b, tr)
			if hr3 := c3.hello(false, "bogus"); hr3.UserID != nil {
				t.Fatalf("hello with a bad token: user %q", *hr3.UserID)
			}
			c3.callErr("game.Whoami", nil, "unauthenticated: game.Whoami requires login")
			if m := c3.call(wire.MethodHello, []byte{0xff, 0xff}); !strings.HasPrefix(m.first, "bad_request: edge.Hello: ") {
				t.Fatalf("garbage hello: %q", m.first)
			}
		})
	}
}

// TestStateful routes a stateful key to its owner: bound requests go to the
// owner, other sessions opening the key are re-routed by "moved", and a
// wrong placement guess is corrected by "moved".
func TestStateful(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			_, rdb := newMiniredis(t)
			y := mustStartYellow(t)
			kvs := []*kvServer{mustStartKV(t, rdb, y), mustStartKV(t, rdb, y)}
			b := mustStartBroker(t, y, nil)
			waitRoutable(t, b, "kv.Who", nil)

			c := dial(t, b, tr)
			c.callErr("kv.Incr", nil, "bad_request: no kv bound")
			owner := string(c.callOK("kv.Open", []byte("k1")))
			for i := 1; i <= 3; i++ {
				n, id := parseIncr(t, c.callOK("kv.Incr", nil))
				if n != i || id != owner {
					t.Fatalf("kv.Incr #%d = %d on %s, want %d on the owner %s", i, n, id, i, owner)
				}
			}
			// Other sessions opening k1 reach the owner wherever they land.
			for i := range 8 {
				ci := dial(t, b, tr)
				if got := string(ci.callOK("kv.Open", []byte("k1"))); got != owner {
					t.Fatalf("client %d: kv.Open(k1) served by %s, want the owner %s", i, got, owner)
				}
				if _, id := parseIncr(t, ci.callOK("kv.Incr", nil)); id != owner {
					t.Fatalf("client %d: kv.Incr on %s, want the owner %s", i, id, owner)
				}
				ci.close()
			}

			// A key held by the instance placement does not pick: the
			// broker's guess is wrong and "moved" corrects it.
			ids := []string{kvs[0].InstanceID(), kvs[1].InstanceID()}
			key := "k3"
			placed := placement.Owner(key, ids)
			holder := ids[0]
			if holder == placed {
				holder = ids[1]
			}
			l := placement.NewLeases(rdb, kvPrefix, "kv", holder, kvLeaseTTL)
			if _, err := l.Acquire(context.Background(), key); err != nil {
				t.Fatal(err)
			}
			c2 := dial(t, b, tr)
			if got := string(c2.callOK("kv.Open", []byte(key))); got != holder {
				t.Fatalf("kv.Open(%s) served by %s, want the holder %s", key, got, holder)
			}
			broker.ForgetOwners(b.Broker)
			moved := b.counter(t, "broker_moved_total")
			if n, id := parseIncr(t, c2.callOK("kv.Incr", nil)); n != 1 || id != holder {
				t.Fatalf("kv.Incr = %d on %s, want 1 on %s", n, id, holder)
			}
			if got := b.counter(t, "broker_moved_total"); got < moved+1 {
				t.Fatalf("broker_moved_total %v -> %v, want a re-route", moved, got)
			}
		})
	}
}

// TestOwnerDies kills the owner of a key (Exit, no drain): the next request
// for the key waits for the dead owner's lease to expire, then moves to the
// new owner, and the key's state carries on.
func TestOwnerDies(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			mr, rdb := newMiniredis(t)
			y := mustStartYellow(t)
			kvs := []*kvServer{mustStartKV(t, rdb, y), mustStartKV(t, rdb, y)}
			b := mustStartBroker(t, y, nil)
			waitRoutable(t, b, "kv.Who", nil)

			c := dial(t, b, tr)
			owner := string(c.callOK("kv.Open", []byte("k1")))
			if n, _ := parseIncr(t, c.callOK("kv.Incr", nil)); n != 1 {
				t.Fatalf("first kv.Incr = %d", n)
			}
			dead, heir := kvs[0], kvs[1]
			if heir.InstanceID() == owner {
				dead, heir = heir, dead
			}
			dead.Exit()
			checkFor(t, waitLong, "broker sees the owner gone", func() bool { return !broker.IsLive(b.Broker, "kv", owner) })

			// The lease of the dead owner still holds: the request waits.
			c.send("kv.Incr", nil)
			select {
			case m := <-c.replies:
				t.Fatalf("answered %q while the dead owner's lease held", m.first)
			case <-time.After(300 * time.Millisecond):
			}
			mr.FastForward(kvLeaseTTL) // the lease expires
			m := c.recv()
			if m.first != "" {
				t.Fatalf("kv.Incr after the owner died: %q", m.first)
			}
			if n, id := parseIncr(t, m.payload); n != 2 || id != heir.InstanceID() {
				t.Fatalf("kv.Incr = %d on %s, want 2 on the heir %s", n, id, heir.InstanceID())
			}
			start := time.Now()
			if n, id := parseIncr(t, c.callOK("kv.Incr", nil)); n != 3 || id != heir.InstanceID() {
				t.Fatalf("kv.Incr = %d on %s, want 3 on the heir", n, id)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("kv.Incr on the new owner took %v", d)
			}
		})
	}
}

// TestUnboundWaitsForLease sends an unbound kv.Open for a key whose dead
// owner's lease has not expired: the broker keeps asking until it does,
// and gives up with timeout at the deadline.
func TestUnboundWaitsForLease(t *testing.T) {
	mr, rdb := newMiniredis(t)
	y := mustStartYellow(t)
	mustStartKV(t, rdb, y)
	b := mustStartBroker(t, y, func(o *broker.Options) {
		for i := range o.Routes {
			if o.Routes[i].Prefix == "kv." {
				o.Routes[i].Timeout = 400 * time.Millisecond
			}
		}
	})
	waitRoutable(t, b, "kv.Who", nil)
	l := placement.NewLeases(rdb, kvPrefix, "kv", "kv-ghost", kvLeaseTTL)
	if _, err := l.Acquire(context.Background(), "k9"); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b, transportTCP)
	c.callErr("kv.Open", []byte("k9"), "timeout: kv.Open: no owner reachable within 400ms")
	mr.FastForward(kvLeaseTTL)
	c.callOK("kv.Open", []byte("k9"))
}
