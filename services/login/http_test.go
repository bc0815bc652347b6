package login_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/services/login"
)

// startHTTP serves svc's HTTP API on a free port and returns its URL.
func startHTTP(t testing.TB, svc *login.Service) string {
	t.Helper()
	h, err := login.NewHTTPServer("127.0.0.1:0", svc, testLogger(t))
	if err != nil {
		t.Fatalf("NewHTTPServer: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Main() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Drain(ctx); err != nil {
			t.Errorf("Drain: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Main: %v", err)
		}
	})
	return h.URL()
}

// post sends body to url+path with method as JSON and returns the status,
// the response and the decoded JSON body.
func post(t testing.TB, method, url, body string) (int, http.Header, map[string]any) {
	t.Helper()
	return send(t, http.DefaultClient, method, url, body, http.Header{"Content-Type": {"application/json"}})
}

// send is post with client and the request headers h.
func send(t testing.TB, client *http.Client, method, url, body string, h http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if method != http.MethodHead {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s %s: reply %q is not JSON: %v", method, url, b, err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func wantStatus(t testing.TB, what string, status int, body map[string]any, wantStatus int, wantError string) {
	t.Helper()
	if status != wantStatus {
		t.Fatalf("%s: status %d (%v), want %d", what, status, body, wantStatus)
	}
	if wantError != "" && body["error"] != wantError {
		t.Fatalf("%s: error %q, want %q", what, body["error"], wantError)
	}
	// pandaparty's loginserver fields on every error reply.
	if wantError != "" && (body["success"] != false || !strings.HasSuffix(wantError, ": "+fmt.Sprint(body["error_message"]))) {
		t.Fatalf("%s: success %v, error_message %q; want false and the error's text", what, body["success"], body["error_message"])
	}
}

// TestHTTP runs the pandaparty API over real HTTP on a free port.
func TestHTTP(t *testing.T) {
	for _, kind := range []redisKind{realRedis, miniRedis} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			rdb, _ := newRedis(t, kind)
			store := login.NewMemoryStore()
			opts := testOptions(t)
			opts.Throttle.PerAccountAddress = login.Limit{Max: 3, Window: time.Minute, Backoff: time.Minute, MaxBackoff: time.Minute}
			url := startHTTP(t, newService(t, opts, store, rdb))
			testHTTP(t, url, store)
		})
	}
}

func testHTTP(t *testing.T, url string, store *login.MemoryStore) {
	user := username(t)
	P := http.MethodPost

	// Register: 201, then 409 for the same name in another case.
	status, _, body := post(t, P, url+login.PathRegister, `{"username":"`+user+`","password":"hunter2hunter2","nickname":"Hunter"}`)
	wantStatus(t, "register", status, body, http.StatusCreated, "")
	uid, _ := body["user_id"].(string)
	if len(uid) != 36 || body["nickname"] != "Hunter" {
		t.Fatalf("register reply %v", body)
	}
	status, _, body = post(t, P, url+login.PathRegister, `{"username":"`+strings.ToUpper(user)+`","password":"hunter2hunter2"}`)
	wantStatus(t, "register again", status, body, http.StatusConflict, `conflict: username "`+strings.ToUpper(user)+`" is taken`)
	status, _, body = post(t, P, url+login.PathRegister, `{"username":"x","password":"hunter2hunter2"}`)
	wantStatus(t, "register short name", status, body, http.StatusBadRequest, "bad_request: username must be 3 to 32 characters, got 1")

	// Login: 200 with the pandaparty fields; 401 alike for a bad password
	// and an unknown user.
	status, h, body := post(t, P, url+login.PathLogin, `{"username":"`+user+`","password":"hunter2hunter2"}`)
	wantStatus(t, "login", status, body, http.StatusOK, "")
	tok, _ := body["session_token"].(string)
	exp, _ := body["expires_unix"].(float64)
	if body["success"] != true || body["user_id"] != uid || body["nickname"] != "Hunter" || len(tok) != login.TokenLen || int64(exp) < time.Now().Add(23*time.Hour).Unix() {
		t.Fatalf("login reply %v", body)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control %q, want no-store", h.Get("Cache-Control"))
	}
	status, _, body = post(t, P, url+login.PathLogin, `{"username":"`+user+`","password":"wrong-password"}`)
	wantStatus(t, "login bad password", status, body, http.StatusUnauthorized, "unauthenticated: wrong username or password")
	ghost := username(t)
	status, _, body = post(t, P, url+login.PathLogin, `{"username":"`+ghost+`","password":"hunter2hunter2"}`)
	wantStatus(t, "login unknown user", status, body, http.StatusUnauthorized, "unauthenticated: wrong username or password")
	if _, err := store.ByUsername(context.Background(), ghost); err == nil {
		t.Fatal("a failed login created an account")
	}

	// Validate: snake_case and camelCase; a user_id that is not the
	// session's is not valid.
	for _, in := range []string{
		`{"session_token":"` + tok + `"}`,
		`{"sessionToken":"` + tok + `"}`,
		`{"sessionToken":"` + tok + `","userId":"` + uid + `"}`,
		`{"session_token":"` + tok + `","user_id":null}`,
	} {
		status, _, body = post(t, P, url+login.PathValidateSession, in)
		wantStatus(t, "validate "+in, status, body, http.StatusOK, "")
		if body["valid"] != true || body["is_valid"] != true || body["user_id"] != uid || body["nickname"] != "Hunter" {
			t.Fatalf("validate %s = %v", in, body)
		}
	}
	for _, in := range []string{
		`{"session_token":"nope"}`,
		`{"sessionToken":"` + tok + `","userId":"someone-else"}`,
	} {
		status, _, body = post(t, P, url+login.PathValidateSession, in)
		wantStatus(t, "validate "+in, status, body, http.StatusUnauthorized, "")
		if body["valid"] != false || body["is_valid"] != false || len(body) != 2 {
			t.Fatalf("validate %s = %v, want just valid and is_valid false", in, body)
		}
	}

	// 400s: every way a body can be wrong.
	for _, tc := range []struct{ path, body, want string }{
		{login.PathLogin, ``, "bad_request: empty body: send a JSON object"},
		{login.PathLogin, `{"username":`, "bad_request: body is not JSON: unexpected end"},
		{login.PathLogin, `{"username" "x"}`, "bad_request: body is not JSON: invalid character '\"' after object key at offset 13"},
		{login.PathLogin, `[1,2]`, "bad_request: body must be a JSON object"},
		{login.PathLogin, `null`, "bad_request: body must be a JSON object"},
		{login.PathLogin, `{} {}`, "bad_request: body has data after the JSON object"},
		{login.PathLogin, `{"username":"a","password":"b","extra":1}`, `bad_request: unknown field "extra"`},
		{login.PathLogin, `{"username":1,"password":"b"}`, "bad_request: username must be a string"},
		{login.PathLogin, `{"username":"` + user + `"}`, "bad_request: username and password are required"},
		{login.PathValidateSession, `{"session_token":"a","sessionToken":"b"}`, `bad_request: both "session_token" and "sessionToken" given`},
		{login.PathValidateSession, `{"user_id":"a","userId":null}`, `bad_request: both "user_id" and "userId" given`},
		{login.PathValidateSession, `{}`, "bad_request: session_token is required"},
		{login.PathLogout, `{"token":"x"}`, `bad_request: unknown field "token"`},
		{login.PathRegister, `{"username":"` + username(t) + `","password":"short"}`, "bad_request: password must be 8 to 128 bytes, got 5"},
	} {
		status, _, body := post(t, P, url+tc.path, tc.body)
		wantStatus(t, tc.path+" "+tc.body, status, body, http.StatusBadRequest, tc.want)
	}
	status, _, body = post(t, P, url+login.PathLogin, `{"username":"`+strings.Repeat("a", login.MaxHTTPBody)+`"}`)
	wantStatus(t, "huge body", status, body, http.StatusRequestEntityTooLarge, "bad_request: body over 16384 bytes")

	// 405 with Allow, and 404.
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodOptions} {
		status, h, body := post(t, m, url+login.PathLogin, "")
		wantStatus(t, m+" login", status, body, http.StatusMethodNotAllowed, "bad_request: method "+m+" not allowed; use POST")
		if h.Get("Allow") != "POST" {
			t.Fatalf("%s: Allow %q", m, h.Get("Allow"))
		}
	}
	status, _, body = post(t, P, url+"/api/nope", `{}`)
	wantStatus(t, "unknown path", status, body, http.StatusNotFound, "not_found: no such endpoint")

	// Logout (camelCase), then the token is invalid.
	status, _, body = post(t, P, url+login.PathLogout, `{"sessionToken":"`+tok+`"}`)
	wantStatus(t, "logout", status, body, http.StatusOK, "")
	status, _, body = post(t, P, url+login.PathValidateSession, `{"session_token":"`+tok+`"}`)
	if status != http.StatusUnauthorized || body["valid"] != false || body["is_valid"] != false {
		t.Fatalf("validate after logout: %d %v", status, body)
	}

	// 429 with Retry-After once the account has failed 3 times from this
	// address (one failure above, the ghost's does not count).
	for i := 0; i < 2; i++ {
		status, _, body = post(t, P, url+login.PathLogin, `{"username":"`+user+`","password":"wrong-password"}`)
		wantStatus(t, "login bad password", status, body, http.StatusUnauthorized, "")
	}
	status, h, body = post(t, P, url+login.PathLogin, `{"username":"`+user+`","password":"hunter2hunter2"}`)
	wantStatus(t, "login throttled", status, body, http.StatusTooManyRequests, "rate_limited: too many failed logins for this account from your address; retry in 60s")
	if ra := h.Get("Retry-After"); ra != "60" {
		t.Fatalf("Retry-After %q, want 60", ra)
	}
}

// TestHTTPServerClose: Close before Serve, and twice, is fine.
func TestHTTPServerClose(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	h, err := login.NewHTTPServer("127.0.0.1:0", newService(t, testOptions(t), login.NewMemoryStore(), rdb), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL %q", h.URL())
	}
	for i := 0; i < 2; i++ {
		if err := h.Drain(context.Background()); err != nil {
			t.Fatalf("Drain #%d: %v", i+1, err)
		}
	}
	h.Exit()
	if err := h.Main(); err != nil {
		t.Fatalf("Main after Drain = %v, want nil", err)
	}
	if _, err := login.NewHTTPServer("127.0.0.1:bad", nil, nil); err == nil {
		t.Fatal("NewHTTPServer(bad addr) succeeded")
	}
}
