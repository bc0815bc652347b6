package brokerlist_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/yellow"
)

// hb is the heartbeat of the test yellow and registrations.
const hb = 100 * time.Millisecond

// waitLong bounds every wait for something that should happen at once.
const waitLong = 10 * time.Second

var checkFor = testenv.CheckFor

// mustStartYellow starts a yellow on 127.0.0.1, port 0.
func mustStartYellow(t testing.TB) *yellow.Yellow {
	t.Helper()
	opts := yellow.NewOptions()
	opts.RouterAddr, opts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	opts.Heartbeat, opts.TickInterval = hb, hb
	y, err := yellow.New(opts, nil)
	if err != nil {
		t.Fatalf("yellow.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- y.Main() }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { y.Exit(); <-done }) })
	return y
}

// fakeBroker registers a broker record with y.
func fakeBroker(t testing.TB, y *yellow.Yellow, id, clientAddr string, load float64) *yellow.Registration {
	t.Helper()
	r := yellow.Register(yellow.ClientOptions{Yellows: []string{y.RouterEndpoint()}, Heartbeat: hb}, &platformpb.Instance{
		Service:    brokerlist.BrokerService,
		Id:         id,
		Router:     "tcp://127.0.0.1:1",
		Kind:       platformpb.ServiceKind_SERVICE_KIND_BROKER,
		Load:       load,
		ClientAddr: clientAddr,
	}, nil)
	t.Cleanup(func() { closeReg(r) })
	return r
}

// closeReg deregisters r, briefly: yellow may be gone already.
func closeReg(r *yellow.Registration) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_ = r.Close(ctx)
}

// get fetches url and returns the status and body.
func get(t testing.TB, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestBrokerList(t *testing.T) {
	y := mustStartYellow(t)
	opts := brokerlist.NewOptions()
	opts.Addr = "127.0.0.1:0"
	opts.Yellows = []string{y.RouterEndpoint()}
	opts.Heartbeat = hb
	s, err := brokerlist.New(opts, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Main() }()
	t.Cleanup(s.Exit)
	base := "http://" + s.Addr().String()

	checkFor(t, waitLong, "healthz ok", func() bool {
		code, _, _ := get(t, "GET", base+brokerlist.HealthPath)
		return code == http.StatusOK
	})
	if err := s.Health(); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if _, _, body := get(t, "GET", base+brokerlist.Path); body != `{"version":"0.1.0","brokerList":{}}` {
		t.Fatalf("empty list: %s", body)
	}

	fakeBroker(t, y, "broker-a", "127.0.0.1:1055", 0.067)
	fakeBroker(t, y, "broker-b", "10.0.0.2:1055", 0.0418)
	draining := fakeBroker(t, y, "broker-c", "10.0.0.3:1055", 0.01)
	// A service instance is not a broker.
	svc := yellow.Register(yellow.ClientOptions{Yellows: []string{y.RouterEndpoint()}, Heartbeat: hb}, &platformpb.Instance{
		Service: "echo", Id: "echo-1", Router: "tcp://127.0.0.1:2", Kind: platformpb.ServiceKind_SERVICE_KIND_STATELESS,
	}, nil)
	t.Cleanup(func() { closeReg(svc) })

	want := `{"version":"0.1.0","brokerList":{"10.0.0.2:1055":0.0418,"10.0.0.3:1055":0.01,"127.0.0.1:1055":0.067}}`
	checkFor(t, waitLong, "three brokers listed", func() bool {
		_, _, body := get(t, "GET", base+brokerlist.Path)
		return body == want
	})
	code, h, _ := get(t, "GET", base+brokerlist.Path)
	if code != http.StatusOK || h.Get("Content-Type") != "application/json" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET: %d %v", code, h)
	}

	draining.SetState(platformpb.InstanceState_INSTANCE_STATE_DRAINING)
	want = `{"version":"0.1.0","brokerList":{"10.0.0.2:1055":0.0418,"127.0.0.1:1055":0.067}}`
	checkFor(t, waitLong, "draining broker left out", func() bool {
		_, _, body := get(t, "GET", base+brokerlist.Path)
		return body == want
	})

	if code, _, body := get(t, "HEAD", base+brokerlist.Path); code != http.StatusOK || body != "" {
		t.Fatalf("HEAD: %d %q", code, body)
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		code, h, _ := get(t, m, base+brokerlist.Path)
		if code != http.StatusMethodNotAllowed || h.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, code, h.Get("Allow"))
		}
	}
	if code, _, _ := get(t, "GET", base+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope: %d", code)
	}
	// Handle serves more beside the list (noon dev's browser game), even
	// while serving.
	s.Handle("/extra/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "extra "+r.URL.Path) }))
	if code, _, body := get(t, "GET", base+"/extra/x"); code != http.StatusOK || body != "extra /extra/x" {
		t.Errorf("GET /extra/x: %d %q", code, body)
	}
	if _, _, body := get(t, "GET", base+brokerlist.Path); body != want {
		t.Errorf("with /extra/ mounted: %s", body)
	}
	if code, _, _ := get(t, "GET", base+"/nope"); code != http.StatusNotFound {
		t.Errorf("GET /nope with /extra/ mounted: %d", code)
	}

	// Yellow gone: the last view is served, health says so.
	y.Exit()
	checkFor(t, waitLong, "health reports yellow down", func() bool { return s.Health() != nil })
	if _, _, body := get(t, "GET", base+brokerlist.Path); body != want {
		t.Fatalf("with yellow down: %s, want the last view", body)
	}
	if code, _, body := get(t, "GET", base+brokerlist.HealthPath); code != http.StatusOK || !strings.HasPrefix(body, "ok (stale") {
		t.Fatalf("healthz with yellow down: %d %q", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Main: %v", err)
	}
}

// TestHandler mounts the handler on a watcher the caller owns, as `noon
// dev` does, and checks health before any view.
func TestHandler(t *testing.T) {
	w := yellow.Watch(yellow.ClientOptions{Yellows: []string{"tcp://127.0.0.1:1"}, Heartbeat: hb})
	t.Cleanup(w.Close)
	rec := httptest.NewRecorder()
	brokerlist.Handler(w).ServeHTTP(rec, httptest.NewRequest("GET", brokerlist.HealthPath, nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("healthz before a view: %d", rec.Code)
	}
	rec = httptest.NewRecorder()
	brokerlist.Handler(w).ServeHTTP(rec, httptest.NewRequest("GET", brokerlist.Path, nil))
	if rec.Code != http.StatusOK || rec.Body.String() != `{"version":"0.1.0","brokerList":{}}` {
		t.Fatalf("list before a view: %d %q", rec.Code, rec.Body.String())
	}
}

func TestOptionsValidate(t *testing.T) {
	o := brokerlist.NewOptions()
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "yellows: at least one") {
		t.Fatalf("no yellows: %v", err)
	}
	o.Yellows = []string{"tcp://127.0.0.1:1060"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	o.Addr = "nope"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "addr: ") {
		t.Fatalf("bad addr: %v", err)
	}
}
