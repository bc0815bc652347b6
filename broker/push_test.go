package broker_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	edgeclient "github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/edge/frame"
	echopb "github.com/noonhq/noon/idl/gen/echo"
	edgepb "github.com/noonhq/noon/idl/gen/edge"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// publishUntil publishes an event on srv until c gets it as a push (the
// subscription reaches the publisher asynchronously) and returns it.
func publishUntil(t *testing.T, srv *testServer, c *client, topic, typ, payload string) msg {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for time.Now().Before(deadline) {
		if err := srv.Publish(topic, typ, []byte(payload)); err != nil {
			t.Fatalf("publish %s: %v", topic, err)
		}
		if m, ok := c.waitPush(50 * time.Millisecond); ok {
			if m.first != "@"+typ || string(m.payload) != payload {
				t.Fatalf("push %q %q, want %q %q", m.first, m.payload, "@"+typ, payload)
			}
			// Drain the copies published while the subscription settled.
			for {
				if _, more := c.waitPush(100 * time.Millisecond); !more {
					return m
				}
			}
		}
	}
	t.Fatalf("no push of %s on %s within %v", typ, topic, waitLong)
	return msg{}
}

// TestPush delivers events published by services to the connections that
// opted in, for the user's topic, a binding's topic and a topic a reply
// subscribed; connections without push opt-in never get one.
func TestPush(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			_, rdb := newMiniredis(t)
			y := mustStartYellow(t)
			login := mustStartService(t, "login", loginHandlers(), y, nil)
			game := mustStartService(t, "game", gameHandlers(), y, nil)
			kv := mustStartKV(t, rdb, y)
			b := mustStartBroker(t, y, nil)
			waitRoutable(t, b, "kv.Who", nil)

			on := dial(t, b, tr)  // asked for pushes
			off := dial(t, b, tr) // said hello without pushes
			raw := dial(t, b, tr) // a plain pandaparty client: no hello
			on.hello(true, "")
			off.hello(false, "")
			for _, c := range []*client{on, off, raw} {
				c.callOK("login.Login", loginPayload(t, "u1", "pw"))
				c.callOK("game.Sub", []byte("chat/lobby"))
				c.callOK("kv.Open", []byte("room1"))
			}

			publishUntil(t, login, on, "user/u1", "test.Hello", "hi u1")
			publishUntil(t, game, on, "chat/lobby", "chat.Msg", "yo")
			publishUntil(t, kv.testServer, on, "kv/room1", "kv.Changed", "room1 changed")

			// Unsubscribed: chat/lobby no longer comes; a later event on the
			// same publisher does.
			on.callOK("game.Unsub", []byte("chat/lobby"))
			for range 5 {
				if err := game.Publish("chat/lobby", "chat.Msg", []byte("gone")); err != nil {
					t.Fatal(err)
				}
			}
			if err := game.Publish("user/u1", "test.Marker", []byte("after")); err != nil {
				t.Fatal(err)
			}
			m, ok := on.waitPush(waitLong)
			if !ok || m.first != "@test.Marker" {
				t.Fatalf("after unsubscribing: push %q (ok %v), want @test.Marker", m.first, ok)
			}

			for name, c := range map[string]*client{"without opt-in": off, "without hello": raw} {
				if n := len(c.pushes); n > 0 {
					t.Errorf("the client %s got %d pushes", name, n)
				}
				c.callOK("kv.Who", nil) // and is still served
			}
			// The counter is added to once a push is queued, which the
			// writer may already have sent: it can trail what arrived.
			testenv.CheckFor(t, waitLong, "broker_pushes_total >= 4", func() bool {
				return b.counter(t, "broker_pushes_total") >= 4
			})
			_, topics, found := broker.SessionState(b.Broker, sessionID(t, on))
			if !found || !slices.Equal(topics, []string{"kv/room1", "user/u1"}) {
				t.Errorf("session topics %v (found %v)", topics, found)
			}
		})
	}
}

// sessionID returns the session id of c, from game.Whoami.
func sessionID(t *testing.T, c *client) string {
	t.Helper()
	parts := strings.Split(string(c.callOK("game.Whoami", nil)), "|")
	return parts[len(parts)-1]
}

// TestDrain drains a broker: it leaves the BrokerList, clients that asked
// for pushes get @edge.Draining, the request in flight finishes, then every
// connection is closed and Main returns.
func TestDrain(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr, func(t *testing.T) {
			y := mustStartYellow(t)
			// echo.Sleep is held once it started, until the drain is
			// under way: the request is in flight by construction.
			started := make(chan struct{}, 1)
			held := make(chan struct{})
			release := sync.OnceFunc(func() { close(held) })
			t.Cleanup(release)
			h := echo.Handlers()
			sleep := h[echo.MethodSleep]
			h[echo.MethodSleep] = func(ctx context.Context, s *services.Session, p []byte) ([]byte, error) {
				started <- struct{}{}
				select {
				case <-held:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				return sleep(ctx, s, p)
			}
			mustStartService(t, echo.Name, h, y, nil)
			other := mustStartBroker(t, y, nil)
			b := mustStartBroker(t, y, nil)
			waitRoutable(t, b, "echo.Echo", nil)

			w := yellow.Watch(yellow.ClientOptions{Yellows: []string{y.RouterEndpoint()}, Heartbeat: hb})
			t.Cleanup(w.Close)
			list := func() map[string]float64 {
				rec := httptest.NewRecorder()
				brokerlist.Handler(w).ServeHTTP(rec, httptest.NewRequest("GET", "/brokerlist", nil))
				var l brokerlist.List
				if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
					t.Fatalf("brokerlist %q: %v", rec.Body.String(), err)
				}
				return l.Brokers
			}
			checkFor(t, waitLong, "both brokers listed", func() bool {
				l := list()
				_, ok1 := l[b.Advertise()]
				_, ok2 := l[other.Advertise()]
				return ok1 && ok2
			})

			c := dial(t, b, tr)
			c.hello(true, "")
			plain := dial(t, b, tr)
			plain.callOK("echo.Echo", nil)
			req, _ := encodeSleep(10)
			if err := c.write(req); err != nil {
				t.Fatal(err)
			}
			select {
			case <-started: // the request is in flight
			case <-time.After(waitLong):
				t.Fatal("echo.Sleep did not start")
			}

			drained := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), waitLong)
				defer cancel()
				drained <- b.Drain(ctx)
			}()
			m, ok := c.waitPush(waitLong)
			if !ok || m.first != "@"+wire.EventDraining {
				t.Fatalf("push %q (ok %v), want @edge.Draining", m.first, ok)
			}
			var d edgepb.Draining
			decode(t, m.payload, &d)
			if d.GraceMs != 300 {
				t.Fatalf("grace_ms = %d, want 300", d.GraceMs)
			}
			checkFor(t, waitLong, "draining broker left the BrokerList", func() bool {
				l := list()
				_, drainingListed := l[b.Advertise()]
				_, otherListed := l[other.Advertise()]
				return !drainingListed && otherListed
			})
			if inst := y.instance(broker.ServiceName, b.ID()); inst != nil && inst.GetState() != platformpb.InstanceState_INSTANCE_STATE_DRAINING {
				t.Fatalf("yellow record state %v while draining", inst.GetState())
			}
			select {
			case err := <-drained:
				t.Fatalf("Drain returned (%v) with a request in flight", err)
			default:
			}

			// The request in flight is answered, then the connection closes.
			release()
			r := c.recv()
			var sr echopb.SleepReply
			if r.first != "" {
				t.Fatalf("in-flight request: %q", r.first)
			}
			decode(t, r.payload, &sr)
			if sr.SleptMs != 10 {
				t.Fatalf("in-flight reply %+v", sr)
			}
			for name, cl := range map[string]*client{"push": c, "plain": plain} {
				if !cl.waitClosed(waitLong) {
					t.Fatalf("%s client not closed after drain", name)
				}
			}
			if len(plain.pushes) > 0 {
				t.Errorf("a client without push opt-in got a push")
			}
			if err := <-drained; err != nil {
				t.Fatalf("Drain: %v", err)
			}
			select {
			case err := <-b.done:
				if err != nil {
					t.Fatalf("Main: %v", err)
				}
			case <-time.After(waitLong):
				t.Fatal("Main did not return after Drain")
			}
			if nc, err := net.DialTimeout("tcp", b.TCPAddr().String(), time.Second); err == nil {
				_ = nc.SetReadDeadline(time.Now().Add(2 * time.Second))
				if _, err := nc.Read(make([]byte, 1)); !isClosed(err) {
					t.Errorf("a connection to the drained broker: read %v, want closed", err)
				}
				nc.Close()
			}
			checkFor(t, waitLong, "drained broker gone from yellow", func() bool { return y.instance(broker.ServiceName, b.ID()) == nil })
		})
	}
}

// TestControl asks the control endpoint registered in yellow for
// broker.Info.
func TestControl(t *testing.T) {
	y := mustStartYellow(t)
	b := mustStartBroker(t, y, nil)
	inst := y.instance(broker.ServiceName, b.ID())
	if inst.GetRouter() != b.ControlEndpoint() || inst.GetClientAddr() != b.Advertise() ||
		inst.GetKind() != platformpb.ServiceKind_SERVICE_KIND_BROKER || inst.GetMeta()["ws"] != "ws://"+b.WSAddr().String()+"/ws" {
		t.Fatalf("yellow record %v", inst)
	}
	if b.Advertise() != b.TCPAddr().String() {
		t.Fatalf("advertise %q, want the TCP listener %q", b.Advertise(), b.TCPAddr())
	}
	c := dial(t, b, transportTCP)
	c.hello(false, "")

	p := link.Dial(inst.GetRouter(), link.PeerOptions{HeartbeatInterval: hb, Logger: testLogger(t)})
	t.Cleanup(func() { _ = p.Close() })
	checkFor(t, waitLong, "control link up", p.Alive)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	rep, err := p.Call(ctx, &platformpb.Envelope{Method: broker.MethodInfo})
	if err != nil || rep.GetErrorCode() != "" {
		t.Fatalf("broker.Info: %v %v", err, wire.FromEnvelope(rep))
	}
	var info broker.Info
	if err := json.Unmarshal(rep.GetPayload(), &info); err != nil {
		t.Fatal(err)
	}
	if info.ID != b.ID() || info.Connections != 1 || info.ClientAddr != b.Advertise() || len(info.Routes) != len(b.Options().Routes) {
		t.Fatalf("info %+v", info)
	}
	rep, err = p.Call(ctx, &platformpb.Envelope{Method: "broker.Nope"})
	if err != nil || rep.GetErrorCode() != wire.CodeUnknownMethod {
		t.Fatalf("broker.Nope: %v %v", err, rep)
	}
	if err := b.Health(); err != nil {
		t.Fatalf("Health: %v", err)
	}
}

// TestSlowConsumer floods pushes to a client that stops reading: it is
// disconnected and counted, while another client on the same topic keeps
// getting every push.
func TestSlowConsumer(t *testing.T) {
	y := mustStartYellow(t)
	mustStartService(t, "login", loginHandlers(), y, nil)
	game := mustStartService(t, "game", gameHandlers(), y, nil)
	b := mustStartBroker(t, y, func(o *broker.Options) {
		o.Edge.OutQueue = 64
		o.Edge.WriteTimeout = 500 * time.Millisecond
	})
	waitRoutable(t, b, "login.Validate", encode(t, &loginpb.ValidateRequest{}))

	fast := dial(t, b, transportTCP)
	fast.hello(true, "")
	fast.callOK("login.Login", loginPayload(t, "u1", "pw"))
	fast.callOK("game.Sub", []byte("flood"))

	slow, err := rawDial(b, transportTCP)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.close()
	hello := encode(t, &edgepb.HelloRequest{ProtocolVersion: wire.ProtocolVersion, Push: true})
	for _, req := range [][]byte{
		frame.AppendRequest(nil, wire.MethodHello, hello),
		frame.AppendRequest(nil, "login.Login", loginPayload(t, "u2", "pw")),
		frame.AppendRequest(nil, "game.Sub", []byte("flood")),
	} {
		if err := slow.write(req); err != nil {
			t.Fatal(err)
		}
		if first, _, err := slow.read(waitLong); err != nil || first != "" {
			t.Fatalf("slow client setup: %q %v", first, err)
		}
	}
	publishUntil(t, game, fast, "flood", "flood.Data", "warm-up")

	// The slow client reads nothing more. 300 pushes of 64 KiB are far more
	// than its socket buffers and push queue hold.
	big := strings.Repeat("x", 64<<10)
	for burst := range 30 {
		for range 10 {
			if err := game.Publish("flood", "flood.Data", []byte(big)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 10 {
			m, ok := fast.waitPush(waitLong)
			if !ok || m.first != "@flood.Data" || len(m.payload) != len(big) {
				t.Fatalf("burst %d push %d to the fast client: %q, %d bytes (ok %v)", burst, i, m.first, len(m.payload), ok)
			}
		}
	}
	checkFor(t, waitLong, "slow consumer disconnected and counted", func() bool {
		return b.counter(t, "broker_slow_consumers_total") >= 1
	})
	fast.callOK("game.Whoami", nil)
}

// TestGoClient is the whole client journey through the Go client library:
// fetch the BrokerList, pick the broker, connect with a resume token and
// pushes on (TCP, and WebSocket from the URL in the broker's yellow record),
// call, get an error, get a push.
func TestGoClient(t *testing.T) {
	y := mustStartYellow(t)
	mustStartService(t, "login", loginHandlers(), y, nil)
	game := mustStartService(t, "game", gameHandlers(), y, nil)
	mustStartEcho(t, y)
	b := mustStartBroker(t, y, nil)
	waitRoutable(t, b, "login.Validate", encode(t, &loginpb.ValidateRequest{}))
	waitRoutable(t, b, "echo.Echo", nil)

	w := yellow.Watch(yellow.ClientOptions{Yellows: []string{y.RouterEndpoint()}, Heartbeat: hb})
	t.Cleanup(w.Close)
	hs := httptest.NewServer(brokerlist.Handler(w))
	t.Cleanup(hs.Close)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	var addr string
	checkFor(t, waitLong, "broker in the BrokerList", func() bool {
		list, err := edgeclient.FetchBrokerList(ctx, hs.URL+brokerlist.Path)
		if err != nil {
			t.Fatalf("FetchBrokerList: %v", err)
		}
		addr, err = edgeclient.PickBroker(list)
		return err == nil
	})
	if addr != b.Advertise() {
		t.Fatalf("picked %q, want %q", addr, b.Advertise())
	}
	wsURL := y.instance(broker.ServiceName, b.ID()).GetMeta()["ws"]
	for _, target := range []string{addr, wsURL} {
		opts := edgeclient.DefaultOptions()
		opts.Push = true
		opts.ResumeToken = "tok-u5"
		c, err := edgeclient.Dial(ctx, target, opts)
		if err != nil {
			t.Fatalf("Dial %s: %v", target, err)
		}
		if hr := c.HelloReply(); hr.GetUserID() != "u5" || hr.GetBrokerID() != b.ID() {
			t.Fatalf("%s: hello reply %+v", target, hr)
		}
		var sr echopb.SleepReply
		if err := c.CallThrift(ctx, "echo.Sleep", &echopb.SleepRequest{Ms: 5}, &sr); err != nil || sr.SleptMs != 5 {
			t.Fatalf("%s: echo.Sleep: %+v %v", target, sr, err)
		}
		_, err = c.Call(ctx, "nosuch.Method", nil)
		if ce, ok := err.(*edgeclient.Error); !ok || ce.Code != "unknown_method" || err.Error() != "unknown_method: nosuch.Method" {
			t.Fatalf("%s: nosuch.Method: %#v", target, err)
		}
		who, err := c.Call(ctx, "game.Whoami", nil)
		if err != nil || !strings.HasPrefix(string(who), "u5|") {
			t.Fatalf("%s: game.Whoami %q %v", target, who, err)
		}
		got := false
		for deadline := time.Now().Add(waitLong); !got && time.Now().Before(deadline); {
			if err := game.Publish("user/u5", "test.Hi", []byte("hi")); err != nil {
				t.Fatal(err)
			}
			select {
			case p := <-c.Pushes():
				if p.Type != "test.Hi" || string(p.Payload) != "hi" {
					t.Fatalf("%s: push %+v", target, p)
				}
				got = true
			case <-time.After(50 * time.Millisecond):
			}
		}
		if !got {
			t.Fatalf("%s: no push", target)
		}
		_ = c.Close()
	}
}
