package yellow

import (
	"github.com/noonhq/noon/internal/metrics"
)

// RegisterMetrics exports yellow's counters to s (read at scrape time from
// Stats), under names prefixed "yellow_".
func (y *Yellow) RegisterMetrics(s metrics.Sink) {
	gauge := func(name, help string, f func(Stats) float64) {
		s.GaugeFunc(name, help, func() float64 { return f(y.Stats()) })
	}
	counter := func(name, help string, f func(Stats) uint64) {
		s.CounterFunc(name, help, func() float64 { return float64(f(y.Stats())) })
	}
	gauge("yellow_instances", "Instance records held.", func(st Stats) float64 { return float64(st.Instances) })
	gauge("yellow_seq", "Number of the last delta.", func(st Stats) float64 { return float64(st.Seq) })
	counter("yellow_requests_total", "Requests received.", func(st Stats) uint64 { return st.Requests })
	counter("yellow_bad_requests_total", "Requests rejected as undecodable, unknown or invalid.", func(st Stats) uint64 { return st.BadRequests })
	counter("yellow_registers_total", "Successful registrations.", func(st Stats) uint64 { return st.Registers })
	counter("yellow_heartbeats_total", "Heartbeats of known instances.", func(st Stats) uint64 { return st.Heartbeats })
	counter("yellow_unknown_heartbeats_total", "Heartbeats of unknown instances (told to re-register).", func(st Stats) uint64 { return st.UnknownHeartbeats })
	counter("yellow_deregisters_total", "Deregistrations.", func(st Stats) uint64 { return st.Deregisters })
	counter("yellow_queries_total", "Queries answered.", func(st Stats) uint64 { return st.Queries })
	counter("yellow_snapshots_total", "Snapshots answered.", func(st Stats) uint64 { return st.Snapshots })
	counter("yellow_not_owner_total", "Requests refused because the record belongs to another identity, or the caller may not use that service name.", func(st Stats) uint64 { return st.NotOwner })
	counter("yellow_rejected_total", "Registrations refused because yellow was full.", func(st Stats) uint64 { return st.Rejected })
	counter("yellow_expired_total", "Records expired after missed heartbeats.", func(st Stats) uint64 { return st.Expired })
	counter("yellow_deltas_published_total", "Deltas and ticks published.", func(st Stats) uint64 { return st.Published })
	counter("yellow_deltas_dropped_total", "Deltas lost to a full queue or a failed publish.", func(st Stats) uint64 { return st.Dropped })
}

// RegisterMetrics exports the watcher's counters to s, under names
// prefixed "yellow_watch_".
func (w *Watcher) RegisterMetrics(s metrics.Sink) {
	s.GaugeFunc("yellow_watch_up", "Yellows the watcher is synced with.", func() float64 { return float64(w.Stats().Up) })
	s.GaugeFunc("yellow_watch_instances", "Instances in the watcher's merged view.", func() float64 { return float64(w.Stats().Instances) })
	s.CounterFunc("yellow_watch_syncs_total", "Snapshots installed.", func() float64 { return float64(w.Stats().Syncs) })
	s.CounterFunc("yellow_watch_resyncs_total", "Re-syncs forced by a gap, a new epoch, an overflow or silence.", func() float64 { return float64(w.Stats().Resyncs) })
	s.CounterFunc("yellow_watch_deltas_total", "Deltas received.", func() float64 { return float64(w.Stats().Deltas) })
	s.CounterFunc("yellow_watch_bad_deltas_total", "Deltas that did not decode.", func() float64 { return float64(w.Stats().BadDeltas) })
}
