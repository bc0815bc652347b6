// Package pay is the pay service (`noon service pay`): store purchases
// verified by a provider (package provider: the deterministic "test"
// provider of package testprovider; Apple's App Store in package
// services/pay/apple), recorded once per (provider, transaction id) for
// the player who first validates them, and granted exactly once through
// the game service.
//
// Client methods (idl/pay.thrift): pay.Validate(provider, signed,
// idempotency_key) -> the purchase, seen_before; pay.Status(id)
// (pandaparty's GetPaymentStatus); pay.List(cursor). A client idempotency
// key follows Stripe's rule: the same key with the same request answers
// the stored first reply, with another request a conflict; keys are kept
// key_ttl (at least 24 h). Operators: pay.AdminList and pay.Replay
// (noonctl pay).
//
// Exactly once: the purchase and an outbox row are written in one
// Postgres transaction; the row is delivered to game.Grant with the key
// "pay:<provider>:<transaction id>" until it is marked done (inline, then
// by each instance's worker, after any restart). Pay and game have
// separate databases, so one transaction cannot hold both; game applies
// each key once, which turns at-least-once delivery into exactly once.
//
// Webhooks: POST /webhooks/<provider> on http_addr; the provider verifies
// the body (for "test": the header Noon-Signature: t=<unix>,v1=<hex HMAC
// of "<t>.<body>">, 300 s tolerance); each notification id counts once. A
// refund or revoke marks the purchase refunded and writes a take to the
// outbox: game.Spend with the key "pay:<provider>:<transaction id>:take",
// after the grant; game's Spend takes all or nothing, so when the player
// no longer holds the goods the whole take is recorded as debt
// (outbox.debt, pay_debts_total). The player gets @pay.Refunded (a
// Purchase) on their topic. A refund that arrives before any validation
// records the purchase refunded: a later Validate grants nothing.
//
// A third provider (Google Play, Steam, Stripe) implements
// provider.Provider and is registered in build (module.go) from its
// options.
package pay
