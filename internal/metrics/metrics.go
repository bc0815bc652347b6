// Package metrics puts noon's metrics behind a small interface, Sink, with a
// Prometheus implementation (Registry: one per daemon, its own
// prometheus.Registry, every name prefixed "noon_" and labelled with the
// daemon) and a no-op one (Nop), and serves them with the admin HTTP endpoint
// (Admin: /metrics and /healthz) that every daemon runs.
//
// Typical use in a daemon:
//
//	reg := metrics.NewRegistry("broker")
//	frames := reg.Counter("frames_total", "Client frames received, by result.", "result")
//	okFrames := frames.With("ok") // keep the child for hot paths
//	okFrames.Inc()
//
// Metric and label names follow Prometheus conventions (snake_case, counters
// end in _total, units in the name: _seconds, _bytes). Registering the same
// name again returns the metric registered first, so two components may ask
// for the same metric; asking for it as another kind or with other label
// names is a programming error and panics.
package metrics

// Sink creates metrics. Its methods are safe for concurrent use.
type Sink interface {
	// Counter returns the counter family name with the given label names.
	Counter(name, help string, labels ...string) CounterVec
	// Gauge returns the gauge family name with the given label names.
	Gauge(name, help string, labels ...string) GaugeVec
	// Histogram returns the histogram family name with the given bucket
	// upper bounds (nil: Prometheus's default buckets, 5ms to 10s, meant for
	// request latencies in seconds) and label names.
	Histogram(name, help string, buckets []float64, labels ...string) HistogramVec
	// CounterFunc registers a counter read from f at scrape time (e.g. a
	// total kept in an atomic). f must be fast and safe for concurrent use.
	// Registering the name again replaces f.
	CounterFunc(name, help string, f func() float64)
	// GaugeFunc registers a gauge read from f at scrape time (e.g. the
	// number of open connections). f must be fast and safe for concurrent
	// use. Registering the name again replaces f.
	GaugeFunc(name, help string, f func() float64)
}

// CounterVec is a family of counters partitioned by label values.
type CounterVec interface {
	// With returns the counter for the label values, given in the order the
	// label names were registered. The wrong number of values returns a
	// counter that drops its updates (and counts the mistake in
	// noon_metrics_label_errors_total) rather than crashing the daemon.
	With(labelValues ...string) Counter
}

// Counter is a value that only goes up.
type Counter interface {
	// Inc adds 1.
	Inc()
	// Add adds v, which must not be negative.
	Add(v float64)
}

// GaugeVec is a family of gauges partitioned by label values.
type GaugeVec interface {
	// With returns the gauge for the label values; see CounterVec.With.
	With(labelValues ...string) Gauge
}

// Gauge is a value that goes up and down.
type Gauge interface {
	// Set sets the value.
	Set(v float64)
	// Inc adds 1.
	Inc()
	// Dec subtracts 1.
	Dec()
	// Add adds v (which may be negative).
	Add(v float64)
	// Sub subtracts v.
	Sub(v float64)
}

// HistogramVec is a family of histograms partitioned by label values.
type HistogramVec interface {
	// With returns the histogram for the label values; see CounterVec.With.
	With(labelValues ...string) Histogram
}

// Histogram samples observations (e.g. request durations in seconds) into
// buckets.
type Histogram interface {
	// Observe adds one observation.
	Observe(v float64)
}

// Nop returns a Sink whose metrics do nothing, for tests and tools that
// export no metrics.
func Nop() Sink { return nopSink{} }

var _ Sink = nopSink{}

// nopSink is the Sink Nop returns.
type nopSink struct{}

// Counter returns a counter family that does nothing.
func (nopSink) Counter(string, string, ...string) CounterVec { return nopCounterVec{} }

// Gauge returns a gauge family that does nothing.
func (nopSink) Gauge(string, string, ...string) GaugeVec { return nopGaugeVec{} }

// Histogram returns a histogram family that does nothing.
func (nopSink) Histogram(string, string, []float64, ...string) HistogramVec {
	return nopHistogramVec{}
}

// CounterFunc does nothing.
func (nopSink) CounterFunc(string, string, func() float64) {}

// GaugeFunc does nothing.
func (nopSink) GaugeFunc(string, string, func() float64) {}

// nopCounterVec, nopGaugeVec and nopHistogramVec are the families of nopSink.
type (
	nopCounterVec   struct{}
	nopGaugeVec     struct{}
	nopHistogramVec struct{}
)

// With returns a counter that does nothing.
func (nopCounterVec) With(...string) Counter { return nopMetric{} }

// With returns a gauge that does nothing.
func (nopGaugeVec) With(...string) Gauge { return nopMetric{} }

// With returns a histogram that does nothing.
func (nopHistogramVec) With(...string) Histogram { return nopMetric{} }

// nopMetric is every metric of nopSink, and what a Registry's With returns
// for the wrong number of label values.
type nopMetric struct{}

var (
	_ Counter   = nopMetric{}
	_ Gauge     = nopMetric{}
	_ Histogram = nopMetric{}
)

// Inc does nothing.
func (nopMetric) Inc() {}

// Dec does nothing.
func (nopMetric) Dec() {}

// Add does nothing.
func (nopMetric) Add(float64) {}

// Sub does nothing.
func (nopMetric) Sub(float64) {}

// Set does nothing.
func (nopMetric) Set(float64) {}

// Observe does nothing.
func (nopMetric) Observe(float64) {}
