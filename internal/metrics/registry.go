package metrics

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace is the prefix of every metric a Registry creates:
// Counter("frames_total", ...) is exported as noon_frames_total.
const Namespace = "noon"

// DaemonLabel is the constant label a Registry puts on each of its metrics,
// so that the same metric from several daemons (all of them in one `noon dev`
// process) stays apart: noon_frames_total{daemon="broker"}.
const DaemonLabel = "daemon"

var _ Sink = (*Registry)(nil)

// Registry is the Prometheus Sink of one daemon. It owns a
// prometheus.Registry (not the global default one, so many daemons can run in
// one process, in tests and in `noon dev`); every metric it creates is named
// noon_<name> and carries the constant label daemon=<daemon>. Beside it, a
// second registry holds the Go runtime and process collectors (go_*,
// process_*), which describe the whole process and so carry no daemon label;
// Gatherer returns both, and an Admin serving several Registries serves the
// runtime metrics once.
type Registry struct {
	daemon  string
	labels  prometheus.Labels
	reg     *prometheus.Registry // the daemon's metrics
	runtime *prometheus.Registry // go_* and process_*

	mu      sync.Mutex // guards metrics
	metrics map[string]*entry

	labelErrors prometheus.Counter
}

// kind is the type of a registered metric.
type kind string

const (
	kindCounter     kind = "counter"
	kindGauge       kind = "gauge"
	kindHistogram   kind = "histogram"
	kindCounterFunc kind = "counter func"
	kindGaugeFunc   kind = "gauge func"
)

// entry is one registered metric family.
type entry struct {
	kind   kind
	labels []string
	vec    any // *counterVec, *gaugeVec, *histogramVec or *funcCollector
}

// NewRegistry returns the Registry of the daemon named daemon ("broker",
// "yellow", "login", ...). constLabels are extra name/value pairs put on every
// metric beside daemon, for when one process runs two daemons of the same
// kind (e.g. "instance", "broker-2"); an odd count panics.
func NewRegistry(daemon string, constLabels ...string) *Registry {
	if len(constLabels)%2 != 0 {
		panic(fmt.Sprintf("metrics: NewRegistry(%q): odd number of constant label names and values", daemon))
	}
	labels := prometheus.Labels{DaemonLabel: daemon}
	for i := 0; i < len(constLabels); i += 2 {
		labels[constLabels[i]] = constLabels[i+1]
	}
	r := &Registry{
		daemon:  daemon,
		labels:  labels,
		reg:     prometheus.NewRegistry(),
		runtime: newRuntimeRegistry(),
		metrics: map[string]*entry{},
	}
	r.labelErrors = r.Counter("metrics_label_errors_total",
		"Metric updates dropped because the code passed the wrong number of label values; a bug.").With().(prometheus.Counter)
	return r
}

// newRuntimeRegistry returns a registry with the Go runtime and process
// collectors. The runtime's scheduler metrics come too: among them
// go_sched_latencies_seconds, how long runnable goroutines wait for a CPU,
// which tells a process short of CPU from one waiting on others when its
// requests' p99 rises (the dashboard's "Scheduler latency").
func newRuntimeRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Daemon returns the daemon name the Registry labels its metrics with.
func (r *Registry) Daemon() string { return r.daemon }

// Gatherer returns what a scrape of this daemon alone returns: its metrics
// and the Go runtime and process metrics.
func (r *Registry) Gatherer() prometheus.Gatherer {
	return prometheus.Gatherers{r.reg, r.runtime}
}

// Registerer returns a Registerer for collectors written against the
// Prometheus API (e.g. a connection pool's stats collector). They are added
// to the daemon's registry with its constant labels but keep their own names
// (no noon_ prefix).
func (r *Registry) Registerer() prometheus.Registerer {
	return prometheus.WrapRegistererWith(r.labels, r.reg)
}

// Counter implements Sink.
func (r *Registry) Counter(name, help string, labels ...string) CounterVec {
	e := r.get(name, kindCounter, labels, func() (prometheus.Collector, any) {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: name, Help: help, ConstLabels: r.labels,
		}, labels)
		return v, &counterVec{v: v, r: r}
	})
	return e.vec.(*counterVec)
}

// Gauge implements Sink.
func (r *Registry) Gauge(name, help string, labels ...string) GaugeVec {
	e := r.get(name, kindGauge, labels, func() (prometheus.Collector, any) {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: name, Help: help, ConstLabels: r.labels,
		}, labels)
		return v, &gaugeVec{v: v, r: r}
	})
	return e.vec.(*gaugeVec)
}

// Histogram implements Sink. When the name is already registered, the
// buckets of the first registration stay.
func (r *Registry) Histogram(name, help string, buckets []float64, labels ...string) HistogramVec {
	e := r.get(name, kindHistogram, labels, func() (prometheus.Collector, any) {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: name, Help: help, ConstLabels: r.labels,
			Buckets: buckets,
		}, labels)
		return v, &histogramVec{v: v, r: r}
	})
	return e.vec.(*histogramVec)
}

// CounterFunc implements Sink.
func (r *Registry) CounterFunc(name, help string, f func() float64) {
	r.funcMetric(name, help, kindCounterFunc, prometheus.CounterValue, f)
}

// GaugeFunc implements Sink.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	r.funcMetric(name, help, kindGaugeFunc, prometheus.GaugeValue, f)
}

// funcMetric registers, or swaps the function of, a metric read at scrape time.
func (r *Registry) funcMetric(name, help string, k kind, vt prometheus.ValueType, f func() float64) {
	e := r.get(name, k, nil, func() (prometheus.Collector, any) {
		c := &funcCollector{
			desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, nil, r.labels),
			typ:  vt,
		}
		c.f.Store(&f)
		return c, c
	})
	e.vec.(*funcCollector).f.Store(&f)
}

// get returns the entry registered under name, registering the collector
// that mk makes if there is none. It panics on a mismatch of kind or label
// names, on an invalid metric or label name, and when Prometheus rejects the
// metric: programming errors, found by the first test that creates the
// daemon.
func (r *Registry) get(name string, k kind, labels []string, mk func() (prometheus.Collector, any)) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.metrics[name]; ok {
		if e.kind != k || !slices.Equal(e.labels, labels) {
			panic(fmt.Sprintf("metrics: %s_%s is registered as a %s with labels %q; asked for as a %s with labels %q",
				Namespace, name, e.kind, e.labels, k, labels))
		}
		return e
	}
	if !validName(name, true) {
		panic(fmt.Sprintf("metrics: invalid metric name %q: want snake_case ASCII letters, digits and _", name))
	}
	for _, l := range labels {
		if !validName(l, false) || l == DaemonLabel || r.labels[l] != "" {
			panic(fmt.Sprintf("metrics: %s_%s: invalid or reserved label name %q", Namespace, name, l))
		}
	}
	c, vec := mk()
	if err := r.reg.Register(c); err != nil {
		panic(fmt.Sprintf("metrics: registering %s_%s for %s: %v", Namespace, name, r.daemon, err))
	}
	e := &entry{kind: k, labels: slices.Clone(labels), vec: vec}
	r.metrics[name] = e
	return e
}

// validName reports whether s is a classic Prometheus metric name (colons
// allowed) or label name. client_golang also accepts any UTF-8, but then
// names need quoting in PromQL; noon keeps to the classic form.
func validName(s string, metric bool) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		case c == ':' && metric:
		default:
			return false
		}
	}
	return true
}

// labelError counts a With call with the wrong number of label values.
func (r *Registry) labelError() {
	if r.labelErrors != nil {
		r.labelErrors.Inc()
	}
}

// counterVec is a Registry's CounterVec.
type counterVec struct {
	v *prometheus.CounterVec
	r *Registry
}

// With implements CounterVec.
func (c *counterVec) With(labelValues ...string) Counter {
	m, err := c.v.GetMetricWithLabelValues(labelValues...)
	if err != nil {
		c.r.labelError()
		return nopMetric{}
	}
	return m
}

// gaugeVec is a Registry's GaugeVec.
type gaugeVec struct {
	v *prometheus.GaugeVec
	r *Registry
}

// With implements GaugeVec.
func (g *gaugeVec) With(labelValues ...string) Gauge {
	m, err := g.v.GetMetricWithLabelValues(labelValues...)
	if err != nil {
		g.r.labelError()
		return nopMetric{}
	}
	return m
}

// histogramVec is a Registry's HistogramVec.
type histogramVec struct {
	v *prometheus.HistogramVec
	r *Registry
}

// With implements HistogramVec.
func (h *histogramVec) With(labelValues ...string) Histogram {
	m, err := h.v.GetMetricWithLabelValues(labelValues...)
	if err != nil {
		h.r.labelError()
		return nopMetric{}
	}
	return m
}

// funcCollector is a metric without labels whose value is read from a
// function at scrape time.
type funcCollector struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	f    atomic.Pointer[func() float64]
}

// Describe implements prometheus.Collector.
func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	f := *c.f.Load()
	ch <- prometheus.MustNewConstMetric(c.desc, c.typ, f())
}
