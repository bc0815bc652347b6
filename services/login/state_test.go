package login_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// encodeState encodes a session state.
func encodeState(t testing.TB, user string, bindings map[string]string, topics ...string) []byte {
	t.Helper()
	b, err := thriftx.Marshal(&loginpb.SessionState{UserID: user, Bindings: bindings, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSessionState: a broker's saves of a session's state are stored with
// the session, fenced by holder and seq; a resume returns the last one
// and moves the holder; the state expires and ends with the session; a
// save over the bounds is bad_request. On real Redis and miniredis.
func TestSessionState(t *testing.T) {
	for _, kind := range []redisKind{realRedis, miniRedis} {
		t.Run(string(kind), func(t *testing.T) {
			rdb, mr := newRedis(t, kind)
			opts := testOptions(t)
			opts.SessionTTL = time.Hour
			svc := newService(t, opts, login.NewMemoryStore(), rdb)
			ctx := context.Background()
			user := username(t)
			acct, err := svc.Register(ctx, user, "password1", "", "")
			if err != nil {
				t.Fatal(err)
			}
			sess, err := svc.Login(ctx, user, "password1", "")
			if err != nil {
				t.Fatal(err)
			}
			uid, id := acct.ID, sess.ID()
			save := func(holder string, seq int64, state []byte) string {
				t.Helper()
				res, err := svc.SaveSessionState(ctx, &loginpb.SaveSessionStateRequest{SessionID: id, UserID: uid, Holder: holder, Seq: seq, State: state})
				if err != nil {
					t.Fatalf("save from %s seq %d: %v", holder, seq, err)
				}
				return res
			}
			resume := func(holder string) []byte {
				t.Helper()
				got, state, ok, err := svc.Resume(ctx, sess.Token, holder)
				if err != nil || !ok || got.UserID != uid || !got.Expires.Equal(sess.Expires) {
					t.Fatalf("resume on %s: %+v %v %v", holder, got, ok, err)
				}
				return state
			}
			if st := resume("b1"); st != nil {
				t.Fatalf("state before any save: %x", st)
			}
			s1 := encodeState(t, uid, map[string]string{"room": "r1"})
			s2 := encodeState(t, uid, map[string]string{"room": "r2"}, "news/all")
			for _, tc := range []struct {
				holder string
				seq    int64
				state  []byte
				want   string
			}{
				{"b1", 10, s1, loginpb.SAVE_STATE_SAVED},
				{"b1", 10, s2, loginpb.SAVE_STATE_STALE}, // not above the last seq
				{"b2", 11, s2, loginpb.SAVE_STATE_STALE}, // b1 holds it
				{"b1", 12, s2, loginpb.SAVE_STATE_SAVED},
			} {
				if got := save(tc.holder, tc.seq, tc.state); got != tc.want {
					t.Fatalf("save from %s seq %d: %s, want %s", tc.holder, tc.seq, got, tc.want)
				}
			}
			// b2 resumes it: it gets the last state and holds it; b1's
			// later saves are stale, b2's seq starts over.
			if st := resume("b2"); string(st) != string(s2) {
				t.Fatalf("resumed state %x, want %x", st, s2)
			}
			if got := save("b1", 13, s1); got != loginpb.SAVE_STATE_STALE {
				t.Fatalf("the old holder's save after the resume: %s", got)
			}
			if got := save("b2", 1, s1); got != loginpb.SAVE_STATE_SAVED {
				t.Fatalf("the new holder's first save: %s", got)
			}
			if st := resume("b2"); string(st) != string(s1) {
				t.Fatalf("state %x, want %x", st, s1)
			}
			// Another user's session, or none: gone.
			res, err := svc.SaveSessionState(ctx, &loginpb.SaveSessionStateRequest{SessionID: id, UserID: "someone", Holder: "b2", Seq: 5,
				State: encodeState(t, "someone", nil)})
			if err != nil || res != loginpb.SAVE_STATE_GONE {
				t.Fatalf("another user's save: %s %v", res, err)
			}
			// The state expires with the session: its TTL is untouched.
			key := opts.RedisPrefix + "login:session:" + id
			if ttl := rdb.TTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
				t.Fatalf("session TTL %v after saves, want about 1h", ttl)
			}
			if mr != nil {
				mr.FastForward(time.Hour)
				if res := save("b2", 2, s2); res != loginpb.SAVE_STATE_GONE {
					t.Fatalf("a save after expiry: %s", res)
				}
				if exists := rdb.Exists(ctx, key).Val(); exists != 0 {
					t.Fatal("a save after expiry made the session hash again")
				}
			}
			// Logged out: gone.
			if err := svc.Logout(ctx, sess.Token); err != nil {
				t.Fatal(err)
			}
			if res := save("b2", 3, s2); res != loginpb.SAVE_STATE_GONE {
				t.Fatalf("a save after logout: %s", res)
			}
			if _, _, ok, err := svc.Resume(ctx, sess.Token, "b3"); ok || err != nil {
				t.Fatalf("resume after logout: %v %v", ok, err)
			}
		})
	}
}

// TestSessionStateBounds: a save over the bounds, or malformed, is
// bad_request.
func TestSessionStateBounds(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	svc := newService(t, testOptions(t), login.NewMemoryStore(), rdb)
	id := wire.SessionID("tok")
	many := map[string]string{}
	for i := range loginpb.MAX_SESSION_STATE_BINDINGS + 1 {
		many["k"+strings.Repeat("x", i)] = "v"
	}
	topics := make([]string, loginpb.MAX_SESSION_STATE_TOPICS+1)
	for i := range topics {
		topics[i] = "t"
	}
	ok := func(r *loginpb.SaveSessionStateRequest) *loginpb.SaveSessionStateRequest {
		if r.SessionID == "" {
			r.SessionID = id
		}
		if r.UserID == "" {
			r.UserID = "u1"
		}
		if r.Holder == "" {
			r.Holder = "b1"
		}
		if r.Seq == 0 {
			r.Seq = 1
		}
		if r.State == nil {
			r.State = encodeState(t, r.UserID, nil)
		}
		return r
	}
	const m = "bad_request: " + loginrpc.MethodSaveSessionState + ": "
	for _, tc := range []struct {
		req  *loginpb.SaveSessionStateRequest
		want string
	}{
		{ok(&loginpb.SaveSessionStateRequest{SessionID: "short"}), m + "session_id is not a session id"},
		{ok(&loginpb.SaveSessionStateRequest{UserID: strings.Repeat("u", 129)}), m + "user_id must be 1..128 bytes"},
		{ok(&loginpb.SaveSessionStateRequest{Holder: strings.Repeat("b", 129)}), m + "holder must be 1..128 bytes"},
		{ok(&loginpb.SaveSessionStateRequest{Seq: -1}), m + "seq must be positive"},
		{ok(&loginpb.SaveSessionStateRequest{State: make([]byte, loginpb.MAX_SESSION_STATE_BYTES+1)}), m + "state of 16385 bytes exceeds 16384"},
		{ok(&loginpb.SaveSessionStateRequest{State: []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0x0f}}), ""},
		{ok(&loginpb.SaveSessionStateRequest{State: encodeState(t, "u2", nil)}), m + "state is another user's"},
		{ok(&loginpb.SaveSessionStateRequest{State: encodeState(t, "u1", many)}), m + "state has 33 bindings, limit 32"},
		{ok(&loginpb.SaveSessionStateRequest{State: encodeState(t, "u1", nil, topics...)}), m + "state has 65 topics, limit 64"},
	} {
		_, err := svc.SaveSessionState(context.Background(), tc.req)
		if tc.want == "" {
			if err == nil || !strings.HasPrefix(err.Error(), m+"state does not decode") {
				t.Errorf("%+v: %v, want a decoding error", tc.req, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%+v: %v, want %q", tc.req, err, tc.want)
		}
	}
	// The session is not there: a well-formed save is simply gone.
	if res, err := svc.SaveSessionState(context.Background(), ok(&loginpb.SaveSessionStateRequest{})); err != nil || res != loginpb.SAVE_STATE_GONE {
		t.Fatalf("a save of no session: %s %v", res, err)
	}
}

// TestSessionStateOnlyBrokers: SaveSessionState, and Validate with a
// resume_holder, are the brokers' own: over TLS a broker with no client
// session may make them; a service, an admin, and a client through a
// broker (a client session) may not. On a plain link a client session is
// refused too.
func TestSessionStateOnlyBrokers(t *testing.T) {
	opts := platformtest.Options(t, login.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	p := platformtest.Start(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	user := username(t)
	logins := loginrpc.NewClient(c.CallThrift)
	if _, err := logins.Register(ctx, &loginpb.RegisterRequest{Username: user, Password: "password1"}); err != nil {
		t.Fatal(err)
	}
	lr, err := logins.Login(ctx, &loginpb.LoginRequest{Username: user, Password: "password1"})
	if err != nil {
		t.Fatal(err)
	}
	acct := struct{ ID string }{lr.UserID}
	sess := login.Session{Token: lr.SessionToken, UserID: lr.UserID}
	save, err := thriftx.Marshal(&loginpb.SaveSessionStateRequest{SessionID: sess.ID(), UserID: acct.ID, Holder: "b1", Seq: 1,
		State: encodeState(t, acct.ID, map[string]string{"room": "r1"})})
	if err != nil {
		t.Fatal(err)
	}
	holder := "b1"
	resume, err := thriftx.Marshal(&loginpb.ValidateRequest{SessionToken: sess.Token, ResumeHolder: &holder})
	if err != nil {
		t.Fatal(err)
	}
	clientSession := &platformpb.Session{Id: "c1", UserId: acct.ID}
	const refused = "an internal request: clients may not make it"
	for _, tc := range []struct {
		id   pki.Identity
		sess *platformpb.Session
		want string // "" = allowed, else the error message
	}{
		{pki.Identity{Role: pki.RoleService, Name: "friends"}, nil, "an internal request: service:friends may not make it (brokers may)"},
		{pki.Identity{Role: pki.RoleAdmin}, nil, "an internal request: admin may not make it (brokers may)"},
		{pki.Identity{Role: pki.RoleBroker}, clientSession, refused},
		{pki.Identity{Role: pki.RoleBroker}, nil, ""},
	} {
		peer := link.Dial(p.Instances[0].Server().Endpoint(), link.PeerOptions{TLS: testenv.Credentials(t, tc.id), Logger: testenv.Logger(t)})
		select {
		case <-peer.Up():
		case <-ctx.Done():
			t.Fatalf("%s: the link never came up", tc.id)
		}
		for _, call := range []struct {
			method  string
			payload []byte
		}{{loginrpc.MethodSaveSessionState, save}, {loginrpc.MethodValidate, resume}} {
			rep, err := peer.Call(ctx, &platformpb.Envelope{Method: call.method, Session: tc.sess, Payload: call.payload})
			if err != nil {
				t.Fatalf("%s as %s: %v", call.method, tc.id, err)
			}
			if tc.want == "" {
				if rep.GetErrorCode() != "" {
					t.Errorf("%s as %s: %s: %s", call.method, tc.id, rep.GetErrorCode(), rep.GetErrorMessage())
				}
				continue
			}
			if rep.GetErrorCode() != wire.CodeUnauthenticated || rep.GetErrorMessage() != tc.want {
				t.Errorf("%s as %s: %s: %s, want unauthenticated: %s", call.method, tc.id, rep.GetErrorCode(), rep.GetErrorMessage(), tc.want)
			}
		}
		_ = peer.Close()
	}
	// The broker's save was stored, and its resume got it back.
	peer := link.Dial(p.Instances[0].Server().Endpoint(), link.PeerOptions{TLS: testenv.Credentials(t, pki.Identity{Role: pki.RoleBroker}), Logger: testenv.Logger(t)})
	defer peer.Close()
	select {
	case <-peer.Up():
	case <-ctx.Done():
		t.Fatal("the link never came up")
	}
	rep, err := peer.Call(ctx, &platformpb.Envelope{Method: loginrpc.MethodValidate, Payload: resume})
	var vr loginpb.ValidateReply
	var st loginpb.SessionState
	if err != nil || rep.GetErrorCode() != "" || thriftx.Unmarshal(rep.GetPayload(), &vr) != nil || !vr.Valid ||
		thriftx.Unmarshal(vr.GetState(), &st) != nil || st.GetBindings()["room"] != "r1" {
		t.Fatalf("state after the broker's save: %v %s %+v %+v", err, rep.GetErrorCode(), &vr, &st)
	}
	// A Validate without resume_holder stays open to anyone (the broker
	// relays clients' calls with their session).
	plain, _ := thriftx.Marshal(&loginpb.ValidateRequest{SessionToken: sess.Token})
	rep, err = peer.Call(ctx, &platformpb.Envelope{Method: loginrpc.MethodValidate, Session: clientSession, Payload: plain})
	vr = loginpb.ValidateReply{}
	if err != nil || rep.GetErrorCode() != "" || thriftx.Unmarshal(rep.GetPayload(), &vr) != nil || !vr.Valid || vr.IsSetState() {
		t.Fatalf("a client's Validate: %v %s %+v", err, rep.GetErrorCode(), &vr)
	}
}
