package pay

import "github.com/noonhq/noon/internal/metrics"

// serviceMetrics are the pay service's metrics (prefixed pay_).
type serviceMetrics struct {
	purchases      metrics.CounterVec
	seenBefore     metrics.Counter
	keyReplays     metrics.Counter
	rejections     metrics.CounterVec
	deliveries     metrics.CounterVec
	deliveryErrors metrics.CounterVec
	debts          metrics.Counter
	webhooks       metrics.CounterVec
	storeErrors    metrics.Counter
}

// newMetrics registers the metrics on m.
func newMetrics(m metrics.Sink) *serviceMetrics {
	return &serviceMetrics{
		purchases:      m.Counter("pay_purchases_total", "Purchases recorded, by provider.", "provider"),
		seenBefore:     m.Counter("pay_seen_before_total", "Validations of a purchase recorded already.").With(),
		keyReplays:     m.Counter("pay_idempotent_replays_total", "Validations answered with their idempotency key's first reply.").With(),
		rejections:     m.Counter("pay_rejections_total", "Validations and webhooks refused, by reason (unknown_provider, unknown_product, bad_signature, expired, too_large, malformed, key_reused, other_user).", "reason"),
		deliveries:     m.Counter("pay_outbox_delivered_total", "Outbox rows delivered to game, by kind (grant, take).", "kind"),
		deliveryErrors: m.Counter("pay_outbox_errors_total", "Outbox deliveries that failed (retried), by kind.", "kind"),
		debts:          m.Counter("pay_debts_total", "Refunds whose goods could not be taken back (recorded as debt).").With(),
		webhooks:       m.Counter("pay_webhooks_total", "Webhook deliveries accepted, by provider and result (new, duplicate).", "provider", "result"),
		storeErrors:    m.Counter("pay_store_errors_total", "Store calls that failed.").With(),
	}
}
