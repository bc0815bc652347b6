package game

import "github.com/noonhq/noon/internal/metrics"

// serviceMetrics are the game service's metrics (prefixed game_).
type serviceMetrics struct {
	changes     metrics.CounterVec
	replays     metrics.CounterVec
	rejections  metrics.CounterVec
	submits     metrics.CounterVec
	rebuilds    metrics.CounterVec
	storeErrors metrics.CounterVec
}

// newMetrics registers the metrics on m.
func newMetrics(m metrics.Sink) *serviceMetrics {
	return &serviceMetrics{
		changes:     m.Counter("game_changes_total", "Changes applied to players (log entries), by kind (grant, spend, consume, gm_grant, gm_take, set_stat).", "kind"),
		replays:     m.Counter("game_idempotent_replays_total", "Changes answered with the first result of their idempotency key, by kind.", "kind"),
		rejections:  m.Counter("game_rejections_total", "Requests refused, by method and wire code.", "method", "code"),
		submits:     m.Counter("game_score_submits_total", "Leaderboard scores submitted, by board.", "board"),
		rebuilds:    m.Counter("game_board_rebuilds_total", "Leaderboards rebuilt into Redis from the store, by board.", "board"),
		storeErrors: m.Counter("game_store_errors_total", "Store or Redis calls that failed, by method.", "method"),
	}
}
