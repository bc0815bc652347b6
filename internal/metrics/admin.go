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
// daemons in the process): GET /metrics serves the Prometheus text format of
// every added Registry plus the Go runtime and process metrics (once), and GET
// /healthz answers 200 "ok" when every health check passes and 503 with the
// failures otherwise.
//
// NewAdmin binds the listener; Main serves until Drain or Exit (the
// daemon.Daemon of an http.Server).
type Admin struct {
	*daemon.HTTPServer
	srv     *http.Server // what HTTPServer serves
	log     *slog.Logger
	runtime *prometheus.Registry

	mu     sync.RWMutex // guards regs and checks
	regs   []*Registry
	checks []healthCheck

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
	a := &Admin{log: log, runtime: newRuntimeRegistry()}
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

// Handle adds a handler to the admin endpoint (the console of noon dev
// under /console/), with http.ServeMux's patterns. Call it before Main; a
// pattern that conflicts with another panics, as ServeMux does.
func (a *Admin) Handle(pattern string, h http.Handler) {
	a.mux.Handle(pattern, h)
}

// Handler returns the admin handler: GET /metrics and GET /healthz, and
// what Handle added.
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
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ok")
}

// promLogger passes promhttp's errors to slog.
type promLogger struct{ log *slog.Logger }

// Println implements promhttp.Logger.
func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics: gather", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}
