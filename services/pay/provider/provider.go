// Package provider is the seam between the pay service and the stores
// that sell: a Provider validates a purchase a client sends and parses
// and verifies the notifications (webhooks) the store sends. The pay
// service ships two, the deterministic "test" provider (noon dev, tests,
// the sample game) and Apple's App Store (StoreKit 2, package
// services/pay/apple); a third (Google Play, Steam, Stripe) implements the
// same interface and is registered with the service.
package provider

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Notification types (Notification.Type).
const (
	// TypePurchase: a purchase (or renewal) completed.
	TypePurchase = "purchase"
	// TypeRefund: the store refunded the purchase; its goods are taken
	// back.
	TypeRefund = "refund"
	// TypeRevoke: the store revoked the purchase (family sharing ended,
	// chargeback); its goods are taken back.
	TypeRevoke = "revoke"
	// TypeOther: anything else, recorded and acknowledged.
	TypeOther = "other"
)

// Errors a Provider returns (wrapped, with details); the pay service maps
// them to wire codes and metrics.
var (
	// ErrBadSignature: the payload's signature or certificate chain does
	// not verify.
	ErrBadSignature = errors.New("bad signature")
	// ErrExpired: a certificate of the chain or the payload is outside
	// its validity, or a webhook's timestamp is outside the tolerance.
	ErrExpired = errors.New("expired")
	// ErrMalformed: the payload does not parse.
	ErrMalformed = errors.New("malformed payload")
	// ErrTooLarge: the payload is over the provider's limit.
	ErrTooLarge = errors.New("payload too large")
)

// Purchase is a verified purchase.
type Purchase struct {
	// TransactionID is the store's id of this transaction: a purchase is
	// unique by (provider, TransactionID).
	TransactionID string
	// OriginalTransactionID links renewals and refunds to the first
	// transaction; "" when the store has none.
	OriginalTransactionID string
	// ProductID is the store's product id, mapped to goods in config.
	ProductID string
	// Quantity is how many of the product were bought (at least 1).
	Quantity int
	// PurchasedAt is when the store says the purchase happened.
	PurchasedAt time.Time
	// AppAccountToken is what the client set to tie the purchase to its
	// account (StoreKit's appAccountToken), "" if none.
	AppAccountToken string
	// Environment is the store's environment ("Production", "Sandbox",
	// "test").
	Environment string
}

// Notification is a verified store notification.
type Notification struct {
	// ID is the store's notification id: notifications are deduplicated
	// by (provider, ID).
	ID string
	// Type is one of the Type constants.
	Type string
	// Subtype is the store's own type and subtype, for the record
	// ("REFUND", "CONSUMPTION_REQUEST/...").
	Subtype string
	// Purchase is the transaction the notification is about.
	Purchase Purchase
	// SignedAt is when the store signed or sent it.
	SignedAt time.Time
}

// Provider validates purchases and notifications of one store. Its
// methods are safe for concurrent use and check their input's size
// before parsing it.
type Provider interface {
	// Name is the provider's name in requests, config and records
	// ("test", "apple").
	Name() string
	// ValidatePurchase verifies a purchase a client sends (for Apple, a
	// StoreKit 2 signed transaction, a JWS) and returns it.
	ValidatePurchase(ctx context.Context, signed []byte) (Purchase, error)
	// ParseNotification verifies and parses a webhook delivery.
	ParseNotification(ctx context.Context, header http.Header, body []byte) (Notification, error)
}
