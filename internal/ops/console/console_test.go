package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/ops"
	"github.com/noonhq/noon/internal/ops/console"
	"github.com/noonhq/noon/wire"
)

type staticDir []*platformpb.Instance

func (d staticDir) All() []*platformpb.Instance { return d }

const token = "0123456789abcdef0123"

// start returns a console over one echo instance whose metrics a fake
// admin endpoint serves, with drainer, once its first snapshot is taken.
func start(t *testing.T, drainer console.Drainer) (*console.Console, *httptest.Server) {
	t.Helper()
	adm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `noon_service_requests_total{daemon="service_echo"} 7`)
	}))
	t.Cleanup(adm.Close)
	dir := staticDir{{Service: "echo", Id: "echo-1", State: platformpb.InstanceState_INSTANCE_STATE_READY,
		Meta: map[string]string{wire.MetaAdmin: strings.TrimPrefix(adm.URL, "http://")}}}
	col, err := ops.New(ops.Options{Directory: dir})
	if err != nil {
		t.Fatal(err)
	}
	c, err := console.New(console.Options{Collector: col, Token: token, Drainer: drainer, Interval: 50 * time.Millisecond, History: 3})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Main() }()
	t.Cleanup(func() {
		c.Exit()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-c.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no first snapshot")
	}
	srv := httptest.NewServer(c.Handler())
	t.Cleanup(srv.Close)
	return c, srv
}

func do(t *testing.T, method, url, auth, ctype, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPI(t *testing.T) {
	var mu sync.Mutex
	var drained []string
	_, srv := start(t, func(_ context.Context, id string) error {
		mu.Lock()
		drained = append(drained, id)
		mu.Unlock()
		return nil
	})
	api := srv.URL + console.Path + "api/"
	bearer := "Bearer " + token

	// The page needs no token; the API does.
	if code, body := do(t, "GET", srv.URL+console.Path, "", "", ""); code != 200 || !strings.Contains(body, "noon console") {
		t.Fatalf("page: %d %.80q", code, body)
	}
	for _, auth := range []string{"", "Bearer", "Bearer wrong-token-wrong-token", token, "Bearer " + token + "x", "Bearer " + strings.Repeat("a", 4096)} {
		if code, body := do(t, "GET", api+"snapshot", auth, "", ""); code != 401 || !strings.Contains(body, "unauthenticated") {
			t.Errorf("auth %.30q: %d %s", auth, code, body)
		}
	}
	code, body := do(t, "GET", api+"snapshot", bearer, "", "")
	var rep struct {
		Snapshot ops.Snapshot    `json:"snapshot"`
		History  []console.Point `json:"history"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &rep) != nil {
		t.Fatalf("snapshot: %d %s", code, body)
	}
	if len(rep.Snapshot.Services) != 1 || rep.Snapshot.Services[0].Instances[0].Requests != 7 || len(rep.History) == 0 || len(rep.History) > 3 {
		t.Fatalf("snapshot: %s", body)
	}

	for _, tc := range []struct {
		ctype, body string
		code        int
		want        string
	}{
		{"application/json", `{"instance":"echo-1","x":1}`, 400, "unknown field"},
		{"application/json", `{"instance":"echo-1"} {}`, 400, "one JSON object"},
		{"application/json", `{"instance":"` + strings.Repeat("a", 2000) + `"}`, 400, "too large"},
		{"application/json", `{"instance":"a b"}`, 400, "instance must be"},
		{"application/json", `{"instance":""}`, 400, "instance must be"},
		{"text/plain", `{"instance":"echo-1"}`, 415, "application/json"},
		{"application/json", `{"instance":"echo-2"}`, 404, "not_found"},
		{"application/json", `{"instance":"echo-1"}`, 200, "draining"},
	} {
		if code, body := do(t, "POST", api+"drain", bearer, tc.ctype, tc.body); code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("drain %.40q: %d %s, want %d %q", tc.body, code, body, tc.code, tc.want)
		}
	}
	if code, _ := do(t, "POST", api+"drain", "", "application/json", `{"instance":"echo-1"}`); code != 401 {
		t.Errorf("drain without token: %d", code)
	}
	if code, _ := do(t, "GET", api+"drain", bearer, "", ""); code == 200 {
		t.Errorf("GET drain: %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(drained) != 1 || drained[0] != "echo-1" {
		t.Errorf("drained %q", drained)
	}
}

func TestDrainUnavailable(t *testing.T) {
	_, srv := start(t, nil)
	code, body := do(t, "POST", srv.URL+console.Path+"api/drain", "Bearer "+token, "application/json", `{"instance":"echo-1"}`)
	if code != 501 || !strings.Contains(body, "not available") {
		t.Fatalf("drain: %d %s", code, body)
	}
}

func TestToken(t *testing.T) {
	col, _ := ops.New(ops.Options{Directory: staticDir{}})
	c, err := console.New(console.Options{Collector: col})
	if err != nil || len(c.Token()) != 32 {
		t.Fatalf("generated token %q, %v", c.Token(), err)
	}
	if _, err := console.New(console.Options{Collector: col, Token: "short"}); err == nil {
		t.Fatal("a short token was taken")
	}
}
