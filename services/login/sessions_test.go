package login_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	edgepb "github.com/noonhq/noon/idl/gen/edge"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// published records the events a Service publishes.
type published struct {
	mu  sync.Mutex
	evs []*loginpb.Revoked
}

// publisher returns a login.Publisher recording into p; it checks the topic
// and type of each event.
func (p *published) publisher(t testing.TB) login.Publisher {
	return func(topic, typ string, payload []byte) error {
		if topic != wire.TopicRevoked || typ != wire.EventRevoked {
			t.Errorf("published %q on %q, want %q on %q", typ, topic, wire.EventRevoked, wire.TopicRevoked)
		}
		var ev loginpb.Revoked
		if err := thriftx.Unmarshal(payload, &ev); err != nil {
			t.Errorf("published payload: %v", err)
		}
		p.mu.Lock()
		p.evs = append(p.evs, &ev)
		p.mu.Unlock()
		return nil
	}
}

// take returns the events published since the last take.
func (p *published) take() []*loginpb.Revoked {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.evs
	p.evs = nil
	return out
}

// TestRevocations: Logout and LogoutAll end sessions in Redis and publish
// which (by id, never the token) for the brokers; LogoutAll ends only the
// user's own sessions and keeps the user's index in step.
func TestRevocations(t *testing.T) {
	for _, kind := range []redisKind{realRedis, miniRedis} {
		t.Run(string(kind), func(t *testing.T) {
			rdb, _ := newRedis(t, kind)
			opts := testOptions(t)
			svc := newService(t, opts, login.NewMemoryStore(), rdb)
			var pub published
			svc.SetPublisher(pub.publisher(t))
			ctx := context.Background()
			alice, bob := username(t), username(t)
			for _, u := range []string{alice, bob} {
				if _, err := svc.Register(ctx, u, "password1", "", ""); err != nil {
					t.Fatal(err)
				}
			}
			var toks []string
			var uid string
			for i := 0; i < 3; i++ {
				s, err := svc.Login(ctx, alice, "password1", "")
				if err != nil {
					t.Fatal(err)
				}
				toks, uid = append(toks, s.Token), s.UserID
			}
			bs, err := svc.Login(ctx, bob, "password1", "")
			if err != nil {
				t.Fatal(err)
			}
			index := opts.RedisPrefix + "login:user_sessions:" + uid
			if n, err := rdb.ZCard(ctx, index).Result(); err != nil || n != 3 {
				t.Fatalf("index of %s holds %d, %v; want 3", alice, n, err)
			}
			if ttl, err := rdb.PTTL(ctx, index).Result(); err != nil || ttl <= 0 || ttl > opts.SessionTTL {
				t.Fatalf("index TTL %v, %v; want in (0, %v]", ttl, err, opts.SessionTTL)
			}
			if len(pub.take()) != 0 {
				t.Fatal("a login published a revocation")
			}

			// Logout: one session, published with its id and reason.
			if err := svc.Logout(ctx, toks[0]); err != nil {
				t.Fatal(err)
			}
			want := []*loginpb.Revoked{{UserID: uid, Sessions: []string{wire.SessionID(toks[0])}, Reason: edgepb.LOGGED_OUT_LOGOUT}}
			if got := pub.take(); !revokedEqual(got, want) {
				t.Fatalf("Logout published %v, want %v", got, want)
			}
			if n, _ := rdb.ZCard(ctx, index).Result(); n != 2 {
				t.Fatalf("index holds %d after Logout, want 2", n)
			}
			// An ended or unknown token publishes nothing.
			if err := svc.Logout(ctx, toks[0]); err != nil {
				t.Fatal(err)
			}
			if got := pub.take(); len(got) != 0 {
				t.Fatalf("Logout of an ended token published %v", got)
			}

			// LogoutAll: alice's two live sessions, not bob's.
			n, err := svc.LogoutAll(ctx, uid)
			if err != nil || n != 2 {
				t.Fatalf("LogoutAll = %d, %v; want 2", n, err)
			}
			got := pub.take()
			if len(got) != 1 || got[0].UserID != uid || got[0].Reason != edgepb.LOGGED_OUT_LOGOUT_ALL {
				t.Fatalf("LogoutAll published %v", got)
			}
			ids := slices.Sorted(slices.Values(got[0].Sessions))
			if wantIDs := slices.Sorted(slices.Values([]string{wire.SessionID(toks[1]), wire.SessionID(toks[2])})); !slices.Equal(ids, wantIDs) {
				t.Fatalf("LogoutAll revoked %v, want %v", ids, wantIDs)
			}
			for _, tok := range toks {
				if _, ok, err := svc.Validate(ctx, tok); ok || err != nil {
					t.Fatalf("Validate after LogoutAll = %v, %v", ok, err)
				}
			}
			if _, ok, _ := svc.Validate(ctx, bs.Token); !ok {
				t.Fatal("LogoutAll of alice ended bob's session")
			}
			if n, _ := rdb.Exists(ctx, index).Result(); n != 0 {
				t.Fatalf("alice's index survived LogoutAll")
			}
			if n, err := svc.LogoutAll(ctx, uid); err != nil || n != 0 || len(pub.take()) != 0 {
				t.Fatalf("LogoutAll again = %d, %v, or it published", n, err)
			}
			// A login after it is a new session.
			if _, err := svc.Login(ctx, alice, "password1", ""); err != nil {
				t.Fatal(err)
			}
			if n, _ := rdb.ZCard(ctx, index).Result(); n != 1 {
				t.Fatalf("index holds %d after a new login, want 1", n)
			}
		})
	}
}

func revokedEqual(a, b []*loginpb.Revoked) bool {
	return slices.EqualFunc(a, b, func(x, y *loginpb.Revoked) bool {
		return x.UserID == y.UserID && x.Reason == y.Reason && slices.Equal(x.Sessions, y.Sessions)
	})
}

// TestSessionIndexPruned: expired sessions leave their user's index at the
// user's next login, and the index lives as long as its latest session.
func TestSessionIndexPruned(t *testing.T) {
	rdb, mr := newRedis(t, miniRedis)
	opts := testOptions(t)
	opts.SessionTTL = time.Hour
	// miniredis's clock moves only when told; the service's follows it.
	clock := time.Now()
	mr.SetTime(clock)
	opts.Clock = func() time.Time { return clock }
	svc := newService(t, opts, login.NewMemoryStore(), rdb)
	ctx := context.Background()
	user := username(t)
	if _, err := svc.Register(ctx, user, "password1", "", ""); err != nil {
		t.Fatal(err)
	}
	first, err := svc.Login(ctx, user, "password1", "")
	if err != nil {
		t.Fatal(err)
	}
	index := opts.RedisPrefix + "login:user_sessions:" + first.UserID
	clock = clock.Add(50 * time.Minute)
	mr.SetTime(clock)
	mr.FastForward(50 * time.Minute)
	if _, err := svc.Login(ctx, user, "password1", ""); err != nil {
		t.Fatal(err)
	}
	if ttl := mr.TTL(index); ttl <= 50*time.Minute {
		t.Fatalf("index TTL %v after the second login, want the second session's hour", ttl)
	}
	clock = clock.Add(20 * time.Minute) // the first session has expired
	mr.SetTime(clock)
	mr.FastForward(20 * time.Minute)
	if _, err := svc.Login(ctx, user, "password1", ""); err != nil {
		t.Fatal(err)
	}
	members, err := rdb.ZRange(ctx, index, 0, -1).Result()
	if err != nil || len(members) != 2 || slices.Contains(members, first.ID()) {
		t.Fatalf("index %v, %v: want the two live sessions", members, err)
	}
}

// TestWireSessions: Login binds the user with its session's id and expiry,
// Validate tells the expiry, LogoutAll needs a logged-in caller and logs
// its connection out.
func TestWireSessions(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	svc := newService(t, testOptions(t), login.NewMemoryStore(), rdb)
	p := startPlatform(t, svc)
	user, pass := username(t), "password1"
	p.register(t, user, pass)
	rep, env, err := p.login(t, "", user, pass)
	if err != nil {
		t.Fatal(err)
	}
	b := env.GetBindings()
	if len(b) != 1 || b[0].GetKey() != wire.KeyUser || b[0].GetValue() != rep.UserID ||
		b[0].GetSession() != wire.SessionID(rep.SessionToken) || b[0].GetExpiresUnix() != rep.ExpiresUnix {
		t.Fatalf("Login bindings %v, want user = %s with its session and expiry", b, rep.UserID)
	}
	if v := p.validate(t, rep.SessionToken); !v.Valid || v.GetExpiresUnix() != rep.ExpiresUnix {
		t.Fatalf("Validate = %+v, want expires_unix %d", v, rep.ExpiresUnix)
	}

	// LogoutAll without a user: unauthenticated (the broker's route asks
	// for login first; the service checks too).
	_, err = p.call(t, loginrpc.MethodLogoutAll, "", &loginpb.LogoutAllRequest{}, nil)
	wantErr(t, "LogoutAll(no user)", err, "unauthenticated: login.LogoutAll requires login")
	// As the user: every session ends, the caller's user is unbound.
	if _, _, err := p.login(t, "", user, pass); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload, _ := thriftx.Marshal(&loginpb.LogoutAllRequest{})
	env, err = p.client.CallRaw(ctx, router.Target{}, loginrpc.MethodLogoutAll,
		&platformpb.Session{Id: "s1", UserId: rep.UserID}, payload)
	if err != nil {
		t.Fatal(err)
	}
	var lr loginpb.LogoutAllReply
	if err := thriftx.Unmarshal(env.GetPayload(), &lr); err != nil || lr.Sessions != 2 {
		t.Fatalf("LogoutAll = %+v, %v; want 2 sessions", &lr, err)
	}
	if b := env.GetBindings(); len(b) != 1 || b[0].GetKey() != wire.KeyUser || !b[0].GetUnset() {
		t.Fatalf("LogoutAll bindings %v, want user unset", b)
	}
	if v := p.validate(t, rep.SessionToken); v.Valid {
		t.Fatal("a session survived LogoutAll")
	}
}

// TestLoginPublishesOnItsPUB: a login instance's revocations go out on its
// PUB socket (NewServer makes it the publisher), on wire.TopicRevoked.
func TestLoginPublishesOnItsPUB(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	svc := newService(t, testOptions(t), login.NewMemoryStore(), rdb)
	p := startPlatform(t, svc)
	got := make(chan *platformpb.Event, 16)
	sub := link.NewSubscriber(p.srv.PubEndpoint(), link.SubOptions{Logger: testLogger(t)}, func(topic string, ev *platformpb.Event) {
		select {
		case got <- ev:
		default:
		}
	})
	t.Cleanup(func() { _ = sub.Close() })
	if err := sub.Subscribe(wire.TopicRevoked); err != nil {
		t.Fatal(err)
	}
	user, pass := username(t), "password1"
	p.register(t, user, pass)
	// A subscription takes a moment to reach the publisher, and events
	// before it are lost: log in and out until one arrives.
	deadline := time.After(10 * time.Second)
	for {
		rep, _, err := p.login(t, "", user, pass)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.call(t, loginrpc.MethodLogout, "", &loginpb.LogoutRequest{SessionToken: &rep.SessionToken}, nil); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-got:
			var r loginpb.Revoked
			if ev.GetType() != wire.EventRevoked || thriftx.Unmarshal(ev.GetPayload(), &r) != nil ||
				r.UserID != rep.UserID || r.Reason != edgepb.LOGGED_OUT_LOGOUT || len(r.Sessions) != 1 {
				t.Fatalf("event %v (%+v), want a login.Revoked of one session of %s", ev, &r, rep.UserID)
			}
			return
		case <-deadline:
			t.Fatal("no revocation received on the PUB socket")
		case <-time.After(100 * time.Millisecond): // log in and out again
		}
	}
}

// TestHTTPLogoutAll: POST /api/logout_all with a live token ends every
// session of its user; a dead token is a 401.
func TestHTTPLogoutAll(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	svc := newService(t, testOptions(t), login.NewMemoryStore(), rdb)
	url := startHTTP(t, svc)
	ctx := context.Background()
	user := username(t)
	if _, err := svc.Register(ctx, user, "password1", "", ""); err != nil {
		t.Fatal(err)
	}
	var toks []string
	for i := 0; i < 2; i++ {
		s, err := svc.Login(ctx, user, "password1", "")
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, s.Token)
	}
	status, _, body := post(t, http.MethodPost, url+login.PathLogoutAll, `{"sessionToken":"`+toks[0]+`"}`)
	wantStatus(t, "logout_all", status, body, http.StatusOK, "")
	if body["sessions"] != float64(2) {
		t.Fatalf("logout_all = %v, want 2 sessions", body)
	}
	for _, tok := range toks {
		if _, ok, _ := svc.Validate(ctx, tok); ok {
			t.Fatal("a session survived /api/logout_all")
		}
	}
	status, _, body = post(t, http.MethodPost, url+login.PathLogoutAll, `{"session_token":"`+toks[1]+`"}`)
	wantStatus(t, "logout_all(dead token)", status, body, http.StatusUnauthorized, "unauthenticated: session_token is not a live session")
	status, _, body = post(t, http.MethodPost, url+login.PathLogoutAll, `{}`)
	wantStatus(t, "logout_all(no token)", status, body, http.StatusBadRequest, "bad_request: session_token is required")
}
