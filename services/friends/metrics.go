package friends

import "github.com/noonhq/noon/internal/metrics"

// serviceMetrics are the friends service's metrics (prefixed friends_).
type serviceMetrics struct {
	requests     metrics.CounterVec // by method and result (ok or the wire code)
	presence     metrics.CounterVec // presence events by result
	transitions  metrics.CounterVec // users declared online / offline by this instance
	pushes       metrics.CounterVec // pushes published, by type
	pushErrors   metrics.Counter
	scriptErrors metrics.CounterVec // failed Redis script runs, by script
	brokersGone  metrics.Counter
	purged       metrics.Counter
}

// newMetrics registers the metrics on m.
func newMetrics(m metrics.Sink) *serviceMetrics {
	return &serviceMetrics{
		requests:     m.Counter("friends_requests_total", "Friends service calls, by method and result (ok or the wire error code).", "method", "result"),
		presence:     m.Counter("friends_presence_events_total", "Brokers' presence events applied, by result (applied, online: the user's first connection, stale: older than what was applied).", "result"),
		transitions:  m.Counter("friends_transitions_total", "Users this instance declared online or offline (each transition is declared by one instance).", "to"),
		pushes:       m.Counter("friends_pushes_total", "Pushes published to users' topics, by type.", "type"),
		pushErrors:   m.Counter("friends_push_errors_total", "Pushes that could not be published.").With(),
		scriptErrors: m.Counter("friends_redis_errors_total", "Failed Redis script runs, by script.", "script"),
		brokersGone:  m.Counter("friends_brokers_gone_total", "Brokers that left yellow whose connections this instance ended.").With(),
		purged:       m.Counter("friends_requests_expired_total", "Expired friend requests deleted (both sides counted).").With(),
	}
}
