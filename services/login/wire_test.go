package login_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// call sends req to method over the real wire on behalf of a client at
// addr ("" = no client session), decodes the reply into resp, and returns
// the reply envelope (for its bindings) and the error.
func (p *platform) call(t testing.TB, method, addr string, req, resp thrift.TStruct) (*platformpb.Envelope, error) {
	t.Helper()
	payload, err := thriftx.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var sess *platformpb.Session
	if addr != "" {
		sess = &platformpb.Session{Id: "s1", RemoteAddr: addr}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	env, err := p.client.CallRaw(ctx, router.Target{}, method, sess, payload)
	if err != nil {
		return env, err
	}
	if resp != nil {
		if err := thriftx.Unmarshal(env.GetPayload(), resp); err != nil {
			t.Fatalf("%s reply: %v", method, err)
		}
	}
	return env, nil
}

func (p *platform) register(t testing.TB, user, pass string) *loginpb.RegisterReply {
	t.Helper()
	var rep loginpb.RegisterReply
	if _, err := p.call(t, loginrpc.MethodRegister, "", &loginpb.RegisterRequest{Username: user, Password: pass}, &rep); err != nil {
		t.Fatalf("Register(%s): %v", user, err)
	}
	return &rep
}

func (p *platform) login(t testing.TB, addr, user, pass string) (*loginpb.LoginReply, *platformpb.Envelope, error) {
	t.Helper()
	var rep loginpb.LoginReply
	env, err := p.call(t, loginrpc.MethodLogin, addr, &loginpb.LoginRequest{Username: user, Password: pass}, &rep)
	return &rep, env, err
}

func (p *platform) validate(t testing.TB, token string) *loginpb.ValidateReply {
	t.Helper()
	var rep loginpb.ValidateReply
	if _, err := p.call(t, loginrpc.MethodValidate, "", &loginpb.ValidateRequest{SessionToken: token}, &rep); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return &rep
}

// wantErr checks that err is exactly the wire error want.
func wantErr(t testing.TB, what string, err error, want string) {
	t.Helper()
	if err == nil || err.Error() != want {
		t.Fatalf("%s: got error %v, want %q", what, err, want)
	}
}

// TestWire runs every method over the real wire (yellow, a login
// instance, services.Client), on the memory store with real Redis and with
// miniredis, and on Postgres with real Redis.
func TestWire(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) login.Store
		redis redisKind
	}{
		{"memory+redis", func(*testing.T) login.Store { return login.NewMemoryStore() }, realRedis},
		{"memory+miniredis", func(*testing.T) login.Store { return login.NewMemoryStore() }, miniRedis},
		{"postgres+redis", func(t *testing.T) login.Store { return pgStore(t) }, realRedis},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rdb, _ := newRedis(t, tc.redis)
			store := tc.store(t)
			p := startPlatform(t, newService(t, testOptions(t), store, rdb))
			testWire(t, p, store)
		})
	}
}

func testWire(t *testing.T, p *platform, store login.Store) {
	user, pass := username(t), "correct horse battery"
	const addr = "198.51.100.7:40000"

	// Register.
	reg := p.register(t, user, pass)
	if len(reg.UserID) != 36 || reg.Nickname != user {
		t.Fatalf("Register = %+v, want a UUID and the username as nickname", reg)
	}
	var reg2 loginpb.RegisterReply
	nick := "Zoë the Great"
	if _, err := p.call(t, loginrpc.MethodRegister, addr, &loginpb.RegisterRequest{Username: user + "2", Password: pass, Nickname: &nick}, &reg2); err != nil || reg2.Nickname != nick {
		t.Fatalf("Register with nickname = %+v, %v", &reg2, err)
	}
	_, err := p.call(t, loginrpc.MethodRegister, addr, &loginpb.RegisterRequest{Username: strings.ToUpper(user), Password: pass}, nil)
	wantErr(t, "Register(taken, other case)", err, `conflict: username "`+strings.ToUpper(user)+`" is taken`)
	for _, tc := range []struct {
		req  *loginpb.RegisterRequest
		want string
	}{
		{&loginpb.RegisterRequest{Username: "ab", Password: pass}, "bad_request: username must be 3 to 32 characters, got 2"},
		{&loginpb.RegisterRequest{Username: strings.Repeat("a", 33), Password: pass}, "bad_request: username must be 3 to 32 characters, got 33"},
		{&loginpb.RegisterRequest{Username: "bad name", Password: pass}, "bad_request: username may contain only letters a-z and A-Z, digits, '_', '.' and '-'"},
		{&loginpb.RegisterRequest{Username: "ünï" + user, Password: pass}, "bad_request: username may contain only letters a-z and A-Z, digits, '_', '.' and '-'"},
		{&loginpb.RegisterRequest{Username: user + "x", Password: "short"}, "bad_request: password must be 8 to 128 bytes, got 5"},
		{&loginpb.RegisterRequest{Username: user + "x", Password: strings.Repeat("p", 129)}, "bad_request: password must be 8 to 128 bytes, got 129"},
		{&loginpb.RegisterRequest{Username: user + "x", Password: pass, Nickname: thrift.StringPtr(" padded")}, "bad_request: nickname may not start or end with a space"},
		{&loginpb.RegisterRequest{Username: user + "x", Password: pass, Nickname: thrift.StringPtr("tab\there")}, `bad_request: nickname may contain only printable characters, got '\t'`},
		{&loginpb.RegisterRequest{Username: user + "x", Password: pass, Nickname: thrift.StringPtr(strings.Repeat("名", 33))}, "bad_request: nickname must be 1 to 32 characters, got 33"},
		{&loginpb.RegisterRequest{Username: user + "x", Password: pass, Nickname: thrift.StringPtr("\xff")}, "bad_request: nickname must be UTF-8"},
	} {
		_, err := p.call(t, loginrpc.MethodRegister, addr, tc.req, nil)
		wantErr(t, "Register("+tc.req.String()+")", err, tc.want)
	}

	// Login: the reply binds user, and the username ignores case.
	rep, env, err := p.login(t, addr, strings.ToUpper(user), pass)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if rep.UserID != reg.UserID || rep.Nickname != user || len(rep.SessionToken) != login.TokenLen {
		t.Fatalf("Login = %+v", rep)
	}
	if exp := time.Unix(rep.ExpiresUnix, 0); exp.Before(time.Now().Add(24*time.Hour-time.Minute)) || exp.After(time.Now().Add(24*time.Hour+time.Minute)) {
		t.Fatalf("expires %v, want in 24h", exp)
	}
	if b := env.GetBindings(); len(b) != 1 || b[0].GetKey() != "user" || b[0].GetValue() != reg.UserID || b[0].GetUnset() {
		t.Fatalf("Login bindings = %v, want user = %s", b, reg.UserID)
	}

	// Bad password and unknown user: the same error, no binding, and no
	// account created.
	_, env, err = p.login(t, addr, user, pass+"!")
	wantErr(t, "Login(bad password)", err, "unauthenticated: wrong username or password")
	if len(env.GetBindings()) != 0 {
		t.Fatalf("a failed login bound %v", env.GetBindings())
	}
	ghost := username(t)
	_, _, err = p.login(t, addr, ghost, pass)
	wantErr(t, "Login(unknown user)", err, "unauthenticated: wrong username or password")
	if _, err := store.ByUsername(context.Background(), ghost); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("a failed login created an account: %v", err)
	}
	_, _, err = p.login(t, addr, "", pass)
	wantErr(t, "Login(no username)", err, "bad_request: username and password are required")
	_, _, err = p.login(t, addr, user, strings.Repeat("p", 129))
	wantErr(t, "Login(long password)", err, "bad_request: password is longer than 128 bytes")

	// Validate.
	if v := p.validate(t, rep.SessionToken); !v.Valid || v.UserID != reg.UserID || v.Nickname != user {
		t.Fatalf("Validate = %+v", v)
	}
	flipped := rep.SessionToken[:42] + map[bool]string{true: "B", false: "A"}[rep.SessionToken[42] == 'A']
	for _, tok := range []string{"nope", flipped, rep.SessionToken + "A", strings.Repeat("\x00", 43)} {
		if v := p.validate(t, tok); v.Valid || v.UserID != "" {
			t.Fatalf("Validate(%q) = %+v, want invalid", tok, v)
		}
	}
	_, err = p.call(t, loginrpc.MethodValidate, "", &loginpb.ValidateRequest{}, nil)
	wantErr(t, "Validate(empty)", err, "bad_request: session_token is required")

	// Logout, then the token is invalid; logging out again is fine.
	for i := 0; i < 2; i++ {
		if _, err := p.call(t, loginrpc.MethodLogout, addr, &loginpb.LogoutRequest{SessionToken: &rep.SessionToken}, &loginpb.LogoutReply{}); err != nil {
			t.Fatalf("Logout #%d: %v", i+1, err)
		}
	}
	if v := p.validate(t, rep.SessionToken); v.Valid {
		t.Fatalf("Validate after Logout = %+v", v)
	}
	_, err = p.call(t, loginrpc.MethodLogout, addr, &loginpb.LogoutRequest{}, nil)
	wantErr(t, "Logout(no token)", err, "bad_request: session_token is required")

	// A second login is a second session, independent of the first.
	rep2, _, err := p.login(t, addr, user, pass)
	if err != nil || rep2.SessionToken == rep.SessionToken {
		t.Fatalf("second Login = %+v, %v", rep2, err)
	}
	if v := p.validate(t, rep2.SessionToken); !v.Valid {
		t.Fatal("second session invalid")
	}

	// LookupUser, an internal method: by username ignoring case, by id;
	// nothing for an unknown user; refused to a client session.
	lookup := func(addr string, req *loginpb.LookupUserRequest) (*loginpb.LookupUserReply, error) {
		var lr loginpb.LookupUserReply
		_, err := p.call(t, loginrpc.MethodLookupUser, addr, req, &lr)
		return &lr, err
	}
	for _, req := range []*loginpb.LookupUserRequest{
		{Username: thrift.StringPtr(strings.ToUpper(user))},
		{UserID: thrift.StringPtr(reg.UserID)},
	} {
		if lr, err := lookup("", req); err != nil || !lr.Found || lr.UserID != reg.UserID || lr.Username != user || lr.Nickname != user {
			t.Fatalf("LookupUser(%v) = %+v, %v", req, lr, err)
		}
	}
	for _, req := range []*loginpb.LookupUserRequest{
		{Username: thrift.StringPtr(ghost)},
		{UserID: thrift.StringPtr(login.NewAccountID())},
		{UserID: thrift.StringPtr("not-a-uuid")},
	} {
		if lr, err := lookup("", req); err != nil || lr.Found || lr.UserID != "" {
			t.Fatalf("LookupUser(%v) = %+v, %v; want not found", req, lr, err)
		}
	}
	_, err = lookup("", &loginpb.LookupUserRequest{Username: thrift.StringPtr(user), UserID: thrift.StringPtr(reg.UserID)})
	wantErr(t, "LookupUser(both)", err, "bad_request: name the user by username or by user_id, not both or neither")
	_, err = lookup("", &loginpb.LookupUserRequest{})
	wantErr(t, "LookupUser(neither)", err, "bad_request: name the user by username or by user_id, not both or neither")
	_, err = lookup(addr, &loginpb.LookupUserRequest{Username: thrift.StringPtr(user)})
	wantErr(t, "LookupUser(from a client)", err, "unauthenticated: an internal method: clients may not call it")

	// Garbage payloads.
	for _, m := range []string{loginrpc.MethodRegister, loginrpc.MethodLogin, loginrpc.MethodValidate, loginrpc.MethodLogout} {
		_, err := p.client.CallRaw(context.Background(), router.Target{}, m, nil, []byte{0x15, 0xff, 0xff})
		if wire.CodeOf(err) != wire.CodeBadRequest {
			t.Errorf("%s(garbage) = %v, want bad_request", m, err)
		}
	}
}

// TestThrottleParallel fires many wrong guesses at once: no more than the
// limit get checked, since an attempt counts before its check.
func TestThrottleParallel(t *testing.T) {
	rdb, _ := newRedis(t, realRedis)
	opts := testOptions(t)
	opts.Throttle.PerAccountAddress = login.Limit{Max: 5, Window: time.Minute, Backoff: time.Minute, MaxBackoff: time.Minute}
	opts.Throttle.PerAddress.Max = 0
	svc := newService(t, opts, login.NewMemoryStore(), rdb)
	ctx := context.Background()
	user := username(t)
	if _, err := svc.Register(ctx, user, "password1", "", ""); err != nil {
		t.Fatal(err)
	}
	const n = 40
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := svc.Login(ctx, user, "wrong-guess", "")
			errs <- err
		}()
	}
	checked := 0
	for i := 0; i < n; i++ {
		switch err := <-errs; {
		case errors.Is(err, login.ErrBadCredentials):
			checked++
		case wire.CodeOf(err) != wire.CodeRateLimited:
			t.Fatalf("Login: %v", err)
		}
	}
	if checked != 5 {
		t.Fatalf("%d guesses checked, want 5", checked)
	}
}

// TestSessionExpiry checks the TTL on miniredis's clock: Validate does not
// extend a session.
func TestSessionExpiry(t *testing.T) {
	rdb, mr := newRedis(t, miniRedis)
	opts := testOptions(t)
	opts.SessionTTL = time.Hour
	svc := newService(t, opts, login.NewMemoryStore(), rdb)
	ctx := context.Background()
	user := username(t)
	if _, err := svc.Register(ctx, user, "password1", "Nick", ""); err != nil {
		t.Fatal(err)
	}
	s, err := svc.Login(ctx, user, "password1", "")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(s.Expires); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expires in %v, want 1h", d)
	}
	mr.FastForward(59 * time.Minute)
	got, ok, err := svc.Validate(ctx, s.Token)
	if err != nil || !ok || got.UserID != s.UserID || got.Nickname != "Nick" || !got.Expires.Equal(s.Expires) {
		t.Fatalf("Validate = %+v %v %v", got, ok, err)
	}
	mr.FastForward(time.Minute)
	if _, ok, err := svc.Validate(ctx, s.Token); ok || err != nil {
		t.Fatalf("Validate after the TTL = %v, %v; want invalid", ok, err)
	}
	// Redis holds the token's hash, never the token.
	for _, k := range mr.Keys() {
		if strings.Contains(k, s.Token) {
			t.Fatalf("key %q holds the token", k)
		}
	}
}

// TestRedisDown: a Redis that does not answer is unavailable on the wire
// (its text logged, not sent), never a login.
func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { rdb.Close() })
	p := startPlatform(t, newService(t, testOptions(t), login.NewMemoryStore(), rdb))
	user := username(t)
	_, err := p.call(t, loginrpc.MethodRegister, "", &loginpb.RegisterRequest{Username: user, Password: "password1"}, nil)
	if err != nil {
		t.Fatalf("Register without an address needs no Redis: %v", err)
	}
	_, _, err = p.login(t, "192.0.2.9:1", user, "password1")
	wantErr(t, "Login(Redis down)", err, "unavailable: login store unavailable")
}

// TestDefaultArgon2 hashes with the default (OWASP) parameters once.
func TestDefaultArgon2(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	opts := login.NewOptions()
	store := login.NewMemoryStore()
	svc := newService(t, opts, store, rdb)
	ctx := context.Background()
	user := username(t)
	if _, err := svc.Register(ctx, user, "password1", "", ""); err != nil {
		t.Fatal(err)
	}
	a, err := store.ByUsername(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q, want argon2id m=19456,t=2,p=1", a.PasswordHash)
	}
	// A hash made under other parameters still verifies.
	cheap := newService(t, testOptions(t), store, rdb)
	if _, err := cheap.Login(ctx, user, "password1", ""); err != nil {
		t.Fatalf("Login with other parameters: %v", err)
	}
}
