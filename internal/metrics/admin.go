package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/noonhq/noon/internal/daemon"
)

// Timeouts and limits of the admin HTTP server. Its clients are Prometheus,
// load balancers' health checks and operators' curl: small requests, answered
// from memory.
const (
	// AdminReadHeaderTimeout bounds reading a request's headers, so a client
	// that trickles them (slowloris) cannot hold a connection.
	AdminReadHeaderTimeout = 5 * time.Second
	// AdminReadTimeout bounds reading a whole request; admin requests have no
	// body.
	AdminReadTimeout = 10 * time.Second
	// AdminWriteTimeout bounds gathering and writing a response; it is above
	// AdminScrapeTimeout so a slow gather gets its 503 rather than a cut
	// connection.
	AdminWriteTimeout = 30 * time.Second
	// AdminScrapeTimeout bounds gathering the metrics of one scrape
	// (promhttp answers 503 past it). Gathering is in-memory work; this is
	// twice Prometheus's default scrape timeout and below AdminWriteTimeout.
	AdminScrapeTimeout = 20 * time.Second
	// AdminIdleTimeout closes keep-alive connections idle this long; a
	// Prometheus scraping every 15s or 30s keeps its connection.
	AdminIdleTimeout = 2 * time.Minute
	// AdminMaxHeaderBytes caps request headers; admin requests carry few.
	AdminMaxHeaderBytes = 16 << 10
	// AdminMaxScrapes bounds concurrent /metrics requests: a couple of
	// Prometheus servers and a curl; more means something is looping, and
	// each gather walks every metric.
	AdminMaxScrapes = 4
)

var _ daemon.Daemon = (*Admin)(nil)

// Admin is the admin HTTP server of a daemon (or of `noon dev`, for all the
// daemons in the process):
//
//   - GET /metrics serves the Prometheus text format of every added
//     Registry plus the Go runtime and process metrics (once);
//   - GET /healthz (liveness) answers 200 "ok" when every health check
//     passes and 503 with the failures otherwise;
//   - GET /readyz (readiness) answers 200 "ok" when every ready check
//     passes, 503 with the failures otherwise, and 503 "draining" once
//     SetDraining was called;
//   - POST /drain (only from a loopback address: 403 otherwise) starts the
//     process's graceful drain (OnDrain) and answers 202 at once, or with
//     ?wait=1 waits until the drain is done and answers 200 "drained";
//     GET /drain waits the same way without starting one.
//
// NewAdmin binds the listener; Main serves until Drain or Exit (the
// daemon.Daemon of an http.Server).
type Admin struct {
	*daemon.HTTPServer
	srv     *http.Server // what HTTPServer serves
	log     *slog.Logger
	runtime *prometheus.Registry

	mu     sync.RWMutex // guards regs, checks, ready and the drain hooks
	regs   []*Registry
	checks []healthCheck
	ready  []healthCheck

	drainStart func()          // OnDrain's start; nil: /drain is not served
	drained    <-chan struct{} // OnDrain's done
	draining   atomic.Bool     // SetDraining

	// allowDrain decides whether the remote IP of a POST /drain may drain
	// the process: loopback only (isLoopback); tests replace it.
	allowDrain func(net.IP) bool

	mux *http.ServeMux // Handler's; Handle adds to it
}

// healthCheck is one named health function.
type healthCheck struct {
	name  string
	check func() error
}

// NewAdmin binds addr ("host:port"; port 0 picks a free port, see Addr) and
// returns the server, not yet serving. reg (if not nil) is added as by
// AddRegistry, and health (if not nil) as by AddHealth under reg's daemon
// name. log receives the server's own errors; nil discards them.
func NewAdmin(addr string, reg *Registry, health func() error, log *slog.Logger) (*Admin, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	a := &Admin{log: log, runtime: newRuntimeRegistry(), allowDrain: isLoopback}
	if reg != nil {
		a.AddRegistry(reg)
	}
	if health != nil {
		name := ""
		if reg != nil {
			name = reg.Daemon()
		}
		a.AddHealth(name, health)
	}
	a.srv = &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: AdminReadHeaderTimeout,
		ReadTimeout:       AdminReadTimeout,
		WriteTimeout:      AdminWriteTimeout,
		IdleTimeout:       AdminIdleTimeout,
		MaxHeaderBytes:    AdminMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	a.HTTPServer = daemon.NewHTTPServer("admin", ln, a.srv, log)
	return a, nil
}

// AddRegistry adds a daemon's metrics to /metrics; adding the same Registry
// twice has no effect. Registries of different daemons may hold metrics of
// the same name: their daemon labels keep the series apart, and the help
// text of the first one is served. A name must have the same type in all of
// them; a family of another type is left out and logged at each scrape.
func (a *Admin) AddRegistry(reg *Registry) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !slices.Contains(a.regs, reg) {
		a.regs = append(a.regs, reg)
	}
}

// AddHealth adds a check to /healthz, reported under name when it fails. A
// check runs on every request, so it must be quick and not block (report
// state kept by the daemon, e.g. "draining" or "no yellow reachable for 30s",
// rather than dialling something).
func (a *Admin) AddHealth(name string, check func() error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = append(a.checks, healthCheck{name: name, check: check})
}

// AddReady adds a check to /readyz, reported under name when it fails: the
// daemon can take work now (it is registered in yellow, its routes are
// synced). Like a health check it runs on every request, so it must be
// quick and report state the daemon keeps.
func (a *Admin) AddReady(name string, check func() error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ready = append(a.ready, healthCheck{name: name, check: check})
}

// SetDraining makes /readyz answer 503 "draining" from now on: the process
// is shutting down and must get no new work.
func (a *Admin) SetDraining() { a.draining.Store(true) }

// Draining reports whether SetDraining was called.
func (a *Admin) Draining() bool { return a.draining.Load() }

// OnDrain makes /drain serve: POST /drain calls start (which must return at
// once and may be called more than once) and GET /drain, or POST
// /drain?wait=1, waits until done is closed. Without OnDrain, /drain
// answers 404.
func (a *Admin) OnDrain(start func(), done <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.drainStart, a.drained = start, done
}

// Handle adds a handler to the admin endpoint (the console of noon dev
// under /console/), with http.ServeMux's patterns. Call it before Main; a
// pattern that conflicts with another panics, as ServeMux does.
func (a *Admin) Handle(pattern string, h http.Handler) {
	a.mux.Handle(pattern, h)
}

// Handler returns the admin handler: GET /metrics, GET /healthz, GET
// /readyz, POST and GET /drain, and what Handle added.
func (a *Admin) Handler() http.Handler {
	if a.mux != nil {
		return a.mux
	}
	mux := http.NewServeMux()
	a.mux = mux
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.GathererFunc(a.gather), promhttp.HandlerOpts{
		ErrorLog:            promLogger{a.log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: AdminMaxScrapes,
		Timeout:             AdminScrapeTimeout,
	}))
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("POST /drain", a.postDrain)
	mux.HandleFunc("GET /drain", a.getDrain)
	return mux
}

// gather merges the runtime metrics and those of every Registry.
func (a *Admin) gather() ([]*dto.MetricFamily, error) {
	a.mu.RLock()
	gs := make([]prometheus.Gatherer, 0, len(a.regs)+1)
	gs = append(gs, a.runtime)
	for _, r := range a.regs {
		gs = append(gs, r.reg)
	}
	a.mu.RUnlock()
	return merge(gs)
}

// merge gathers each of gs and merges families of the same name. It is
// prometheus.Gatherers made lenient where daemons written apart may differ
// harmlessly: a family's help text is taken from the first gatherer that has
// it instead of dropping the family. A family whose type differs from the
// first one's, and a series whose labels repeat one already gathered, are
// left out and reported in the error (promhttp logs it and serves the rest).
func merge(gs []prometheus.Gatherer) ([]*dto.MetricFamily, error) {
	var errs []error
	byName := map[string]*dto.MetricFamily{}
	seen := map[string]bool{} // family name + label pairs
	for _, g := range gs {
		mfs, err := g.Gather()
		if err != nil {
			errs = append(errs, err) // mfs holds what could be gathered
		}
		for _, mf := range mfs {
			name := mf.GetName()
			out, ok := byName[name]
			if !ok {
				out = &dto.MetricFamily{Name: mf.Name, Help: mf.Help, Type: mf.Type, Unit: mf.Unit}
				byName[name] = out
			} else if out.GetType() != mf.GetType() {
				errs = append(errs, fmt.Errorf("metric %s is a %s in one daemon and a %s in another; left out the second",
					name, out.GetType(), mf.GetType()))
				continue
			}
			for _, m := range mf.Metric {
				key := seriesKey(name, m)
				if seen[key] {
					errs = append(errs, fmt.Errorf("metric %s with labels %s gathered twice; left out the second (two daemons with the same labels?)",
						name, labelString(m)))
					continue
				}
				seen[key] = true
				out.Metric = append(out.Metric, m)
			}
		}
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		if len(mf.Metric) == 0 {
			continue
		}
		slices.SortFunc(mf.Metric, func(x, y *dto.Metric) int { return strings.Compare(labelString(x), labelString(y)) })
		out = append(out, mf)
	}
	slices.SortFunc(out, func(x, y *dto.MetricFamily) int { return strings.Compare(x.GetName(), y.GetName()) })
	return out, errors.Join(errs...)
}

// labelString renders m's labels ({a="1",b="2"}), in the order gathered
// (sorted by name).
func labelString(m *dto.Metric) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, lp := range m.GetLabel() {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", lp.GetName(), lp.GetValue())
	}
	b.WriteByte('}')
	return b.String()
}

// seriesKey identifies one series of family name.
func seriesKey(name string, m *dto.Metric) string {
	return name + labelString(m)
}

// healthz runs the health checks.
func (a *Admin) healthz(w http.ResponseWriter, _ *http.Request) {
	a.mu.RLock()
	checks := slices.Clone(a.checks)
	a.mu.RUnlock()
	answerChecks(w, runChecks(checks))
}

// readyz runs the ready checks; a draining process is not ready.
func (a *Admin) readyz(w http.ResponseWriter, _ *http.Request) {
	if a.draining.Load() {
		answerChecks(w, []string{"draining"})
		return
	}
	a.mu.RLock()
	checks := slices.Clone(a.ready)
	a.mu.RUnlock()
	answerChecks(w, runChecks(checks))
}

// runChecks runs checks and returns their failures, "<name>: <error>".
func runChecks(checks []healthCheck) []string {
	var failed []string
	for _, c := range checks {
		if err := c.check(); err != nil {
			msg := err.Error()
			if c.name != "" {
				msg = c.name + ": " + msg
			}
			failed = append(failed, msg)
		}
	}
	return failed
}

// answerChecks answers 200 "ok" without failures, else 503 with them, one
// a line.
func answerChecks(w http.ResponseWriter, failed []string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

// isLoopback reports whether ip is a loopback address (127.0.0.0/8, ::1):
// a caller inside the host, or inside the pod (Kubernetes runs a preStop
// exec hook there).
func isLoopback(ip net.IP) bool { return ip != nil && ip.IsLoopback() }

// remoteIP returns the IP of r's remote address, nil if it has none.
func remoteIP(r *http.Request) net.IP {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return net.ParseIP(host)
}

// drainHooks returns OnDrain's start and done, or nils.
func (a *Admin) drainHooks() (func(), <-chan struct{}) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.drainStart, a.drained
}

// postDrain starts the drain (loopback callers only) and answers 202, or
// with ?wait=1 waits for it like getDrain.
func (a *Admin) postDrain(w http.ResponseWriter, r *http.Request) {
	start, done := a.drainHooks()
	if start == nil {
		http.Error(w, "this process does not drain through its admin endpoint", http.StatusNotFound)
		return
	}
	if ip := remoteIP(r); !a.allowDrain(ip) {
		a.log.Warn("admin: drain refused: not from a loopback address", "remote", r.RemoteAddr)
		http.Error(w, "forbidden: POST /drain is accepted from a loopback address only (noon drain, a preStop hook); operators drain remotely with noonctl drain", http.StatusForbidden)
		return
	}
	a.log.Info("admin: drain requested", "remote", r.RemoteAddr)
	a.SetDraining()
	start()
	if wait := r.URL.Query().Get("wait"); wait != "" && wait != "0" && wait != "false" {
		a.waitDrained(w, r, done)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(w, "draining")
}

// getDrain waits until the process has drained.
func (a *Admin) getDrain(w http.ResponseWriter, r *http.Request) {
	_, done := a.drainHooks()
	if done == nil {
		http.Error(w, "this process does not drain through its admin endpoint", http.StatusNotFound)
		return
	}
	a.waitDrained(w, r, done)
}

// waitDrained answers 200 "drained" once done is closed, or nothing if the
// client goes first. The wait may outlast AdminReadTimeout and
// AdminWriteTimeout (a drain takes up to its grace), so the request's
// deadlines are lifted; the client bounds it (noon drain -timeout).
func (a *Admin) waitDrained(w http.ResponseWriter, r *http.Request, done <-chan struct{}) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	select {
	case <-done:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintln(w, "drained")
}

// promLogger passes promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics: gather", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}
