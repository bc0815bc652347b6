package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// gatherText renders g's metrics in the text format.
func gatherText(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	return buf.String()
}

func mustContain(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, l) {
			t.Errorf("missing %q in:\n%s", l, text)
		}
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry("broker")
	frames := r.Counter("frames_total", "Client frames received, by result.", "result")
	frames.With("ok").Inc()
	frames.With("ok").Add(2)
	frames.With("bad_frame").Inc()
	conns := r.Gauge("connections", "Open client connections.")
	conns.With().Set(5)
	conns.With().Dec()
	lat := r.Histogram("request_seconds", "Request latency.", []float64{0.01, 0.1}, "method")
	lat.With("login.Login").Observe(0.05)
	var queued atomic.Int64
	queued.Store(7)
	r.GaugeFunc("queued", "Queued messages.", func() float64 { return float64(queued.Load()) })
	r.CounterFunc("dropped_total", "Dropped messages.", func() float64 { return 3 })

	text := gatherText(t, r.Gatherer())
	mustContain(t, text,
		"# HELP noon_frames_total Client frames received, by result.\n# TYPE noon_frames_total counter\n",
		`noon_frames_total{daemon="broker",result="ok"} 3`,
		`noon_frames_total{daemon="broker",result="bad_frame"} 1`,
		`noon_connections{daemon="broker"} 4`,
		`noon_request_seconds_bucket{daemon="broker",method="login.Login",le="0.1"} 1`,
		`noon_request_seconds_count{daemon="broker",method="login.Login"} 1`,
		"# TYPE noon_queued gauge\n",
		`noon_queued{daemon="broker"} 7`,
		"# TYPE noon_dropped_total counter\n",
		`noon_dropped_total{daemon="broker"} 3`,
		"go_goroutines ",
		"go_sched_latencies_seconds_bucket{le=",
	)

	// The same name again returns the same family, without panicking.
	again := r.Counter("frames_total", "other help", "result")
	again.With("ok").Inc()
	mustContain(t, gatherText(t, r.Gatherer()), `noon_frames_total{daemon="broker",result="ok"} 4`)
	// A func metric registered again reads the new function.
	r.GaugeFunc("queued", "Queued messages.", func() float64 { return 9 })
	mustContain(t, gatherText(t, r.Gatherer()), `noon_queued{daemon="broker"} 9`)

	// The wrong number of label values is counted, not a crash.
	frames.With("a", "b").Inc()
	lat.With().Observe(1)
	conns.With("x").Set(1)
	mustContain(t, gatherText(t, r.Gatherer()), `noon_metrics_label_errors_total{daemon="broker"} 3`)
}

func TestRegistryMismatchPanics(t *testing.T) {
	tests := []struct {
		name string
		f    func(r *Registry)
		want string
	}{
		{"kind", func(r *Registry) { r.Gauge("x_total", "h") }, "noon_x_total is registered as a counter with labels []; asked for as a gauge with labels []"},
		{"labels", func(r *Registry) { r.Counter("x_total", "h", "a") }, `noon_x_total is registered as a counter with labels []; asked for as a counter with labels ["a"]`},
		{"invalid name", func(r *Registry) { r.Counter("bad-name", "h") }, `metrics: invalid metric name "bad-name"`},
		{"invalid label", func(r *Registry) { r.Counter("y_total", "h", "a-b") }, `metrics: noon_y_total: invalid or reserved label name "a-b"`},
		{"reserved label", func(r *Registry) { r.Counter("y_total", "h", "daemon") }, `metrics: noon_y_total: invalid or reserved label name "daemon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry("broker")
			r.Counter("x_total", "h")
			defer func() {
				p := recover()
				if p == nil || !strings.Contains(p.(string), tt.want) {
					t.Errorf("panic %v, want %q", p, tt.want)
				}
			}()
			tt.f(r)
		})
	}
}

func TestConstLabels(t *testing.T) {
	r := NewRegistry("broker", "instance", "b2")
	r.Counter("x_total", "h").With().Inc()
	mustContain(t, gatherText(t, r.Gatherer()), `noon_x_total{daemon="broker",instance="b2"} 1`)
	defer func() {
		if recover() == nil {
			t.Error("odd constant labels accepted")
		}
	}()
	//lint:ignore SA5012 the odd count is the point of the test
	NewRegistry("broker", "instance")
}

func TestNop(t *testing.T) {
	var s Sink = Nop()
	s.Counter("a", "h", "x").With("1", "extra").Inc()
	s.Gauge("b", "h").With().Set(1)
	s.Histogram("c", "h", nil).With().Observe(1)
	s.CounterFunc("d", "h", func() float64 { return 1 })
	s.GaugeFunc("e", "h", func() float64 { return 1 })
}

// startAdmin starts an admin server on a free port and closes it at the end
// of the test.
func startAdmin(t *testing.T, reg *Registry, health func() error, log *slog.Logger) *Admin {
	t.Helper()
	a, err := NewAdmin("127.0.0.1:0", reg, health, log)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- a.Main() }()
	t.Cleanup(func() {
		// The client's transport may hold a connection it dialled and
		// never used (a dial that lost the race to an idle one): the
		// server's Shutdown waits up to 5 s for such a new connection.
		http.DefaultClient.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Drain(ctx); err != nil {
			t.Errorf("Drain: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Main: %v", err)
		}
	})
	return a
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestAdmin(t *testing.T) {
	reg := NewRegistry("broker")
	reg.Counter("frames_total", "Client frames received, by result.", "result").With("ok").Add(42)
	var healthErr atomic.Pointer[error]
	health := func() error {
		if p := healthErr.Load(); p != nil {
			return *p
		}
		return nil
	}
	a := startAdmin(t, reg, health, slog.New(slog.DiscardHandler))
	if strings.HasSuffix(a.Addr(), ":0") {
		t.Fatalf("Addr() = %s, want the real port", a.Addr())
	}
	base := "http://" + a.Addr()

	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	mustContain(t, body,
		`noon_frames_total{daemon="broker",result="ok"} 42`,
		"# TYPE go_goroutines gauge",
		"process_",
	)

	code, body = get(t, base+"/healthz")
	if code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz healthy: %d %q", code, body)
	}
	down := errors.New("draining")
	healthErr.Store(&down)
	code, body = get(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || body != "broker: draining\n" {
		t.Errorf("/healthz unhealthy: %d %q", code, body)
	}
	a.AddHealth("yellow", func() error { return errors.New("no peers") })
	code, body = get(t, base+"/healthz")
	if code != http.StatusServiceUnavailable || body != "broker: draining\nyellow: no peers\n" {
		t.Errorf("/healthz two failures: %d %q", code, body)
	}

	resp, err := http.Post(base+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", resp.StatusCode)
	}
	if code, _ := get(t, base+"/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}
}

// TestAdminManyDaemons is `noon dev`: several daemons' registries on one
// admin server, with metrics of the same name.
func TestAdminManyDaemons(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	broker := NewRegistry("broker")
	yellow := NewRegistry("yellow")
	a := startAdmin(t, broker, nil, log)
	a.AddRegistry(yellow)
	a.AddRegistry(yellow) // no duplicate
	const help = "Requests handled, by method."
	broker.Counter("requests_total", help, "method").With("room.Join").Add(2)
	yellow.Counter("requests_total", help, "method").With("room.Join").Add(5)
	broker.GaugeFunc("up_seconds", "Uptime.", func() float64 { return 1 })
	yellow.GaugeFunc("up_seconds", "Uptime.", func() float64 { return 2 })

	mfs, err := a.gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(mfs) == 0 {
		t.Fatal("nothing gathered")
	}
	_, body := get(t, "http://"+a.Addr()+"/metrics")
	mustContain(t, body,
		`noon_requests_total{daemon="broker",method="room.Join"} 2`,
		`noon_requests_total{daemon="yellow",method="room.Join"} 5`,
		`noon_up_seconds{daemon="broker"} 1`,
		`noon_up_seconds{daemon="yellow"} 2`,
	)
	if n := strings.Count(body, "# TYPE noon_requests_total counter\n"); n != 1 {
		t.Errorf("noon_requests_total TYPE lines: %d", n)
	}
	if n := strings.Count(body, "\ngo_goroutines "); n != 1 {
		t.Errorf("go_goroutines lines: %d, want the runtime metrics once", n)
	}
	if strings.Contains(logs.String(), "gather") {
		t.Errorf("gather errors logged: %s", logs.String())
	}
}

// TestMerge checks what prometheus.Gatherers would drop or refuse.
func TestMerge(t *testing.T) {
	broker, yellow, login := NewRegistry("broker"), NewRegistry("yellow"), NewRegistry("login")
	broker.Counter("x_total", "Help one.").With().Inc()
	yellow.Counter("x_total", "Help two.").With().Add(2) // other help: kept, first help served
	broker.Gauge("y", "h").With().Set(1)
	yellow.Counter("y", "h").With().Inc() // other type: left out
	dup := NewRegistry("broker")
	dup.Gauge("z", "h").With().Set(1)
	broker.Gauge("z", "h").With().Set(2) // same labels twice: second left out

	mfs, err := merge([]prometheus.Gatherer{broker.reg, yellow.reg, login.reg, dup.reg})
	want := "metric noon_y is a GAUGE in one daemon and a COUNTER in another; left out the second\n" +
		`metric noon_metrics_label_errors_total with labels {daemon="broker"} gathered twice; left out the second (two daemons with the same labels?)` + "\n" +
		`metric noon_z with labels {daemon="broker"} gathered twice; left out the second (two daemons with the same labels?)`
	if err == nil || err.Error() != want {
		t.Errorf("merge error:\n got %v\nwant %s", err, want)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			t.Fatal(err)
		}
	}
	text := buf.String()
	mustContain(t, text,
		"# HELP noon_x_total Help one.\n",
		`noon_x_total{daemon="broker"} 1`,
		`noon_x_total{daemon="yellow"} 2`,
		`noon_y{daemon="broker"} 1`,
		`noon_z{daemon="broker"} 2`,
	)
	if strings.Contains(text, `noon_y{daemon="yellow"}`) {
		t.Errorf("counter noon_y merged into a gauge:\n%s", text)
	}
}

func TestAdminLifecycle(t *testing.T) {
	// Drain before Main: Main returns nil at once and the port is free.
	a, err := NewAdmin("127.0.0.1:0", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := a.Addr()
	if err := a.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := a.Drain(context.Background()); err != nil {
		t.Fatalf("second Drain: %v", err)
	}
	a.Exit()
	if err := a.Main(); err != nil {
		t.Fatalf("Main after Drain: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("listener still open after Drain")
	}
	// The port is taken: NewAdmin fails at once.
	b, err := NewAdmin("127.0.0.1:0", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Exit()
	if _, err := NewAdmin(b.Addr(), nil, nil, nil); err == nil || !strings.HasPrefix(err.Error(), "admin: listen tcp "+b.Addr()) {
		t.Errorf("second bind: %v", err)
	}
	if b.srv.ReadHeaderTimeout == 0 || b.srv.ReadTimeout == 0 || b.srv.WriteTimeout == 0 || b.srv.IdleTimeout == 0 {
		t.Error("server timeouts not set")
	}
	// No health checks: healthy.
	c := startAdmin(t, nil, nil, nil)
	if code, body := get(t, "http://"+c.Addr()+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
}
