package match

import "github.com/noonhq/noon/internal/metrics"

// timeToMatchBuckets are the time-to-match histogram's bounds, in seconds:
// from a tick to the ten-minute default time limit.
var timeToMatchBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// serviceMetrics are the matchmaker's metrics (prefixed match_). The
// per-queue gauges are the cluster's figures as this instance's last tick
// read them from Redis: every instance reports the same values.
type serviceMetrics struct {
	ticketsActive   metrics.GaugeVec
	oldestTicket    metrics.GaugeVec
	readySessions   metrics.GaugeVec
	readyWait       metrics.GaugeVec
	timeToMatch     metrics.HistogramVec
	timeouts        metrics.CounterVec
	cancels         metrics.CounterVec
	placements      metrics.CounterVec
	placementErrors metrics.CounterVec
	scriptErrors    metrics.CounterVec
}

// newMetrics registers the metrics on m; scaleOut reads the signal.
func newMetrics(m metrics.Sink, scaleOut func() float64) *serviceMetrics {
	m.GaugeFunc("match_scale_out", "1 while ready sessions have waited scale_out_after or longer for capacity.", scaleOut)
	return &serviceMetrics{
		ticketsActive:   m.Gauge("match_tickets_active", "Searching tickets of a queue.", "queue"),
		oldestTicket:    m.Gauge("match_oldest_ticket_seconds", "Age of a queue's oldest searching ticket.", "queue"),
		readySessions:   m.Gauge("match_ready_sessions", "Sessions of a queue ready and waiting for placement.", "queue"),
		readyWait:       m.Gauge("match_ready_wait_seconds", "How long a queue's oldest ready session has waited for placement.", "queue"),
		timeToMatch:     m.Histogram("match_time_to_match_seconds", "From match.Start to the ticket's placement.", timeToMatchBuckets, "queue"),
		timeouts:        m.Counter("match_timeouts_total", "Tickets that reached their queue's time limit.", "queue"),
		cancels:         m.Counter("match_cancels_total", "Tickets cancelled, by reason (cancelled, disconnected, operator).", "queue", "reason"),
		placements:      m.Counter("match_placements_total", "Sessions placed (a room created, or a server given).", "queue"),
		placementErrors: m.Counter("match_placement_errors_total", "Placements that failed and will be retried.", "queue"),
		scriptErrors:    m.Counter("match_redis_errors_total", "Failed Redis script runs, by script.", "script"),
	}
}
