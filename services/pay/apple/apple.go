// Package apple is the App Store (StoreKit 2) provider of the pay service:
// it verifies signed transactions a client sends (ValidatePurchase) and App
// Store Server Notifications v2 (ParseNotification), offline, with the
// standard library only.
//
// # How it verifies
//
// Both are JWS in compact serialization (header.payload.signature, each
// base64url without padding), signed by Apple with ES256. For each one the
// provider, in order:
//
//  1. refuses an input over Options.MaxPayload before parsing anything
//     (provider.ErrTooLarge);
//  2. splits the three parts and decodes the header, which must say
//     "alg":"ES256", carry no "crit" and carry an "x5c" chain of 1 to
//     MaxChain certificates (leaf first; Apple sends leaf, intermediate,
//     root), each standard base64 DER;
//  3. verifies the chain with x509.Verify against Options.RootCerts only
//     (the root inside x5c is never trusted by itself) at the current time
//     (Options.Now), and requires Apple's marker extensions: the leaf's
//     1.2.840.113635.100.6.11.1 (App Store receipt signing) and, when the
//     chain has an intermediate, its 1.2.840.113635.100.6.2.1 (Apple WWDR),
//     so that no other certificate Apple's root issued can sign a purchase;
//  4. verifies the ES256 signature (r||s, 64 bytes, not ASN.1) over
//     "header.payload" with the leaf's P-256 key;
//  5. decodes the payload and checks that bundleId is Options.BundleID and,
//     when Options.Environment is set, that environment is it.
//
// The chain is verified at the current time, not at the payload's
// signedDate: it is the simple and strict choice (a certificate that has
// expired, or that Apple let lapse, verifies nothing), and a client holding
// an old transaction asks StoreKit for a freshly signed one. A certificate
// of the chain outside its validity is provider.ErrExpired; any other chain
// or signature failure is provider.ErrBadSignature; a payload that does not
// parse or misses a required field is provider.ErrMalformed. Errors wrap
// these with details, so errors.Is picks the class.
//
// Revocation is not checked online (OCSP): a refund or revocation reaches
// the pay service as a REFUND or REVOKE notification, and ValidatePurchase
// refuses a transaction that carries a revocationDate (ErrRevoked).
//
// Tests sign transactions and notifications with a test CA from package
// appletest, and configure its root in Options.RootCerts; production loads
// Apple's root, AppleRootCA-G3.cer from
// https://www.apple.com/certificateauthority/, with LoadRoots.
//
// # A third provider
//
// Google Play, Steam or Stripe plug in the same way: a type that
// implements provider.Provider (Name, ValidatePurchase,
// ParseNotification), checks its input's size first, returns errors
// wrapping provider.ErrBadSignature, ErrExpired, ErrMalformed or
// ErrTooLarge, and is registered with the pay service under its Name,
// which gives it a webhook endpoint of its own. Stores that sign webhooks
// with a shared secret instead of a certificate chain use the HMAC scheme
// the pay service's "test" provider implements: a header
// "t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">" (compare it in
// constant time), with a 300 s tolerance on t (provider.ErrExpired outside
// it); Stripe's Stripe-Signature header is that scheme.
package apple

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/noonhq/noon/services/pay/provider"
)

// Name is the provider's name in requests, config and records.
const Name = "apple"

// Limits.
const (
	// DefaultMaxPayload is the default of Options.MaxPayload: a signed
	// transaction is about 3 KiB (two thirds of it the x5c chain), a
	// notification carrying a transaction and a renewal info about 10 KiB;
	// 64 KiB leaves room for Apple to add fields and bounds what one
	// request can make the provider decode.
	DefaultMaxPayload = 64 << 10
	// MaxChain is the most certificates an x5c header may carry: Apple
	// sends 3 (leaf, intermediate, root); one spare, and no more, bounds
	// the x509 parsing a request can cause.
	MaxChain = 4
	// MaxQuantity is the largest quantity a transaction may claim. StoreKit
	// caps a purchase's quantity far lower; the bound keeps
	// product × quantity far from overflowing a ledger amount.
	MaxQuantity = 1000
)

// Environments (Options.Environment, Purchase.Environment).
const (
	EnvProduction = "Production"
	EnvSandbox    = "Sandbox"
)

// Object identifiers of Apple's marker extensions, checked on the chain.
var (
	// oidLeafMarker marks App Store receipt-signing leaf certificates.
	oidLeafMarker = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 11, 1}
	// oidIntermediateMarker marks the Apple WWDR intermediate.
	oidIntermediateMarker = asn1.ObjectIdentifier{1, 2, 840, 113635, 100, 6, 2, 1}
)

// Errors specific to Apple, each wrapping a provider error so that the pay
// service classifies them.
var (
	// ErrWrongBundle: the payload was signed by Apple for another app
	// (its bundleId is not Options.BundleID). Wraps
	// provider.ErrBadSignature: it is not a valid purchase of this app.
	ErrWrongBundle = fmt.Errorf("%w: bundle id mismatch", provider.ErrBadSignature)
	// ErrWrongEnvironment: the payload's environment is not
	// Options.Environment (a Sandbox purchase sent to production). Wraps
	// provider.ErrBadSignature.
	ErrWrongEnvironment = fmt.Errorf("%w: environment mismatch", provider.ErrBadSignature)
	// ErrRevoked: ValidatePurchase got a transaction Apple has already
	// refunded or revoked (it carries a revocationDate). Wraps
	// provider.ErrExpired: the purchase is no longer valid.
	ErrRevoked = fmt.Errorf("%w: transaction revoked", provider.ErrExpired)
)

// Options configures a Provider.
type Options struct {
	// RootCerts are the trusted roots the x5c chain must verify against
	// (Apple Root CA - G3 in production, see LoadRoots; a test CA in
	// tests). Required.
	RootCerts []*x509.Certificate
	// BundleID is the app's bundle id; payloads of other apps are refused
	// (ErrWrongBundle). Required.
	BundleID string
	// Environment, when set ("Production" or "Sandbox"), is the only
	// environment accepted (ErrWrongEnvironment); "" accepts any.
	Environment string
	// MaxPayload is the largest signed transaction or notification body
	// accepted, in bytes (provider.ErrTooLarge); 0 means
	// DefaultMaxPayload.
	MaxPayload int
	// Now is the clock the chain is verified at; nil means time.Now.
	Now func() time.Time
}

// Provider is the App Store provider. It is safe for concurrent use.
type Provider struct {
	roots       *x509.CertPool
	bundleID    string
	environment string
	maxPayload  int
	now         func() time.Time
}

var _ provider.Provider = (*Provider)(nil)

// New checks opts and returns a Provider.
func New(opts Options) (*Provider, error) {
	if len(opts.RootCerts) == 0 {
		return nil, errors.New("apple: Options.RootCerts is empty")
	}
	roots := x509.NewCertPool()
	for i, c := range opts.RootCerts {
		if c == nil {
			return nil, fmt.Errorf("apple: Options.RootCerts[%d] is nil", i)
		}
		roots.AddCert(c)
	}
	if opts.BundleID == "" {
		return nil, errors.New("apple: Options.BundleID is empty")
	}
	switch opts.Environment {
	case "", EnvProduction, EnvSandbox:
	default:
		return nil, fmt.Errorf("apple: Options.Environment %q is not %q, %q or empty", opts.Environment, EnvProduction, EnvSandbox)
	}
	if opts.MaxPayload < 0 {
		return nil, fmt.Errorf("apple: Options.MaxPayload %d is negative", opts.MaxPayload)
	}
	if opts.MaxPayload == 0 {
		opts.MaxPayload = DefaultMaxPayload
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Provider{
		roots:       roots,
		bundleID:    opts.BundleID,
		environment: opts.Environment,
		maxPayload:  opts.MaxPayload,
		now:         opts.Now,
	}, nil
}

// LoadRoots reads root certificates from files, each either PEM (any
// number of CERTIFICATE blocks) or a single DER certificate (Apple
// publishes AppleRootCA-G3.cer as DER).
func LoadRoots(pemFiles ...string) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for _, name := range pemFiles {
		data, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("apple: roots: %w", err)
		}
		if !strings.Contains(string(data), "-----BEGIN") {
			c, err := x509.ParseCertificate(data)
			if err != nil {
				return nil, fmt.Errorf("apple: roots: %s: %w", name, err)
			}
			certs = append(certs, c)
			continue
		}
		n := 0
		for {
			var block *pem.Block
			block, data = pem.Decode(data)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("apple: roots: %s: %w", name, err)
			}
			certs = append(certs, c)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("apple: roots: %s: no CERTIFICATE block", name)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("apple: roots: no certificate")
	}
	return certs, nil
}

// Name returns "apple".
func (p *Provider) Name() string { return Name }

// transaction is the payload of a JWSTransaction (signedTransactionInfo);
// only the fields the provider uses.
type transaction struct {
	TransactionID         string `json:"transactionId"`
	OriginalTransactionID string `json:"originalTransactionId"`
	ProductID             string `json:"productId"`
	Quantity              int    `json:"quantity"`
	PurchaseDate          int64  `json:"purchaseDate"`
	AppAccountToken       string `json:"appAccountToken"`
	Environment           string `json:"environment"`
	BundleID              string `json:"bundleId"`
	SignedDate            int64  `json:"signedDate"`
	RevocationDate        int64  `json:"revocationDate"`
}

// notification is the payload of an App Store Server Notification v2
// (responseBodyV2DecodedPayload); only the fields the provider uses.
type notification struct {
	NotificationType string `json:"notificationType"`
	Subtype          string `json:"subtype"`
	NotificationUUID string `json:"notificationUUID"`
	SignedDate       int64  `json:"signedDate"`
	Data             *struct {
		BundleID              string `json:"bundleId"`
		Environment           string `json:"environment"`
		SignedTransactionInfo string `json:"signedTransactionInfo"`
	} `json:"data"`
}

// ValidatePurchase verifies a StoreKit 2 signed transaction (a JWS, the
// client's Transaction.jwsRepresentation) and returns its purchase. A
// transaction Apple has revoked is refused (ErrRevoked).
func (p *Provider) ValidatePurchase(ctx context.Context, signed []byte) (provider.Purchase, error) {
	if len(signed) > p.maxPayload {
		return provider.Purchase{}, fmt.Errorf("apple: transaction of %d bytes over %d: %w", len(signed), p.maxPayload, provider.ErrTooLarge)
	}
	pur, revoked, err := p.transaction(string(signed))
	if err != nil {
		return provider.Purchase{}, err
	}
	if revoked {
		return provider.Purchase{}, fmt.Errorf("apple: transaction %q: %w", pur.TransactionID, ErrRevoked)
	}
	return pur, nil
}

// transaction verifies and decodes a JWSTransaction; revoked says whether
// it carries a revocationDate.
func (p *Provider) transaction(jws string) (pur provider.Purchase, revoked bool, err error) {
	payload, err := p.verify(jws)
	if err != nil {
		return provider.Purchase{}, false, fmt.Errorf("apple: transaction: %w", err)
	}
	var tx transaction
	if err := json.Unmarshal(payload, &tx); err != nil {
		return provider.Purchase{}, false, fmt.Errorf("apple: transaction payload: %w: %v", provider.ErrMalformed, err)
	}
	switch {
	case tx.TransactionID == "":
		return provider.Purchase{}, false, fmt.Errorf("apple: transaction payload: %w: no transactionId", provider.ErrMalformed)
	case tx.ProductID == "":
		return provider.Purchase{}, false, fmt.Errorf("apple: transaction payload: %w: no productId", provider.ErrMalformed)
	case tx.Quantity < 0 || tx.Quantity > MaxQuantity:
		return provider.Purchase{}, false, fmt.Errorf("apple: transaction payload: %w: quantity %d outside 0..%d", provider.ErrMalformed, tx.Quantity, MaxQuantity)
	case tx.PurchaseDate <= 0:
		return provider.Purchase{}, false, fmt.Errorf("apple: transaction payload: %w: no purchaseDate", provider.ErrMalformed)
	}
	if err := p.checkApp(tx.BundleID, tx.Environment); err != nil {
		return provider.Purchase{}, false, fmt.Errorf("apple: transaction %q: %w", tx.TransactionID, err)
	}
	if tx.Quantity == 0 {
		tx.Quantity = 1
	}
	return provider.Purchase{
		TransactionID:         tx.TransactionID,
		OriginalTransactionID: tx.OriginalTransactionID,
		ProductID:             tx.ProductID,
		Quantity:              tx.Quantity,
		PurchasedAt:           time.UnixMilli(tx.PurchaseDate).UTC(),
		AppAccountToken:       tx.AppAccountToken,
		Environment:           tx.Environment,
	}, tx.RevocationDate > 0, nil
}

// checkApp checks a payload's bundle id and environment against the
// options.
func (p *Provider) checkApp(bundleID, environment string) error {
	if bundleID != p.bundleID {
		return fmt.Errorf("%w: %q, want %q", ErrWrongBundle, snippet(bundleID), p.bundleID)
	}
	if p.environment != "" && environment != p.environment {
		return fmt.Errorf("%w: %q, want %q", ErrWrongEnvironment, snippet(environment), p.environment)
	}
	return nil
}

// ParseNotification verifies an App Store Server Notification v2: body is
// {"signedPayload":"<JWS>"}, and the transaction inside
// (data.signedTransactionInfo) is a JWS verified the same way. header is
// not used: the JWS carries its own proof.
func (p *Provider) ParseNotification(ctx context.Context, header http.Header, body []byte) (provider.Notification, error) {
	if len(body) > p.maxPayload {
		return provider.Notification{}, fmt.Errorf("apple: notification of %d bytes over %d: %w", len(body), p.maxPayload, provider.ErrTooLarge)
	}
	var env struct {
		SignedPayload string `json:"signedPayload"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return provider.Notification{}, fmt.Errorf("apple: notification body: %w: %v", provider.ErrMalformed, err)
	}
	if env.SignedPayload == "" {
		return provider.Notification{}, fmt.Errorf("apple: notification body: %w: no signedPayload", provider.ErrMalformed)
	}
	payload, err := p.verify(env.SignedPayload)
	if err != nil {
		return provider.Notification{}, fmt.Errorf("apple: notification: %w", err)
	}
	var n notification
	if err := json.Unmarshal(payload, &n); err != nil {
		return provider.Notification{}, fmt.Errorf("apple: notification payload: %w: %v", provider.ErrMalformed, err)
	}
	switch {
	case n.NotificationUUID == "":
		return provider.Notification{}, fmt.Errorf("apple: notification payload: %w: no notificationUUID", provider.ErrMalformed)
	case n.NotificationType == "":
		return provider.Notification{}, fmt.Errorf("apple: notification payload: %w: no notificationType", provider.ErrMalformed)
	case n.Data == nil:
		return provider.Notification{}, fmt.Errorf("apple: notification payload: %w: no data", provider.ErrMalformed)
	}
	if err := p.checkApp(n.Data.BundleID, n.Data.Environment); err != nil {
		return provider.Notification{}, fmt.Errorf("apple: notification %q: %w", snippet(n.NotificationUUID), err)
	}
	out := provider.Notification{
		ID:      n.NotificationUUID,
		Type:    notificationType(n.NotificationType),
		Subtype: n.NotificationType,
	}
	if n.Subtype != "" {
		out.Subtype += "/" + n.Subtype
	}
	if n.SignedDate > 0 {
		out.SignedAt = time.UnixMilli(n.SignedDate).UTC()
	}
	if n.Data.SignedTransactionInfo == "" {
		if out.Type != provider.TypeOther {
			return provider.Notification{}, fmt.Errorf("apple: notification %q: %w: %s without signedTransactionInfo", snippet(n.NotificationUUID), provider.ErrMalformed, snippet(out.Subtype))
		}
		return out, nil
	}
	// The outer signature already covers the nested JWS's bytes; it is
	// verified on its own too, as Apple's library does, so that every
	// transaction goes through the same checks as ValidatePurchase.
	out.Purchase, _, err = p.transaction(n.Data.SignedTransactionInfo)
	if err != nil {
		return provider.Notification{}, fmt.Errorf("apple: notification %q: %w", snippet(n.NotificationUUID), err)
	}
	return out, nil
}

// notificationType maps Apple's notificationType to a provider type.
func notificationType(t string) string {
	switch t {
	case "REFUND":
		return provider.TypeRefund
	case "REVOKE":
		return provider.TypeRevoke
	case "ONE_TIME_CHARGE", "DID_RENEW", "SUBSCRIBED":
		return provider.TypePurchase
	default:
		return provider.TypeOther
	}
}

// header is a JWS protected header; only the fields the provider reads.
type header struct {
	Alg  string          `json:"alg"`
	X5c  []string        `json:"x5c"`
	Crit json.RawMessage `json:"crit"`
}

// verify verifies a compact ES256 JWS with an x5c chain and returns its
// decoded payload. The caller has checked its size.
func (p *Provider) verify(jws string) ([]byte, error) {
	h64, rest, ok := strings.Cut(jws, ".")
	if !ok {
		return nil, fmt.Errorf("%w: JWS has no '.'", provider.ErrMalformed)
	}
	p64, s64, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(s64, ".") {
		return nil, fmt.Errorf("%w: JWS is not 3 parts", provider.ErrMalformed)
	}
	hb, err := base64.RawURLEncoding.DecodeString(h64)
	if err != nil {
		return nil, fmt.Errorf("%w: JWS header: %v", provider.ErrMalformed, err)
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, fmt.Errorf("%w: JWS header: %v", provider.ErrMalformed, err)
	}
	if h.Alg != "ES256" {
		return nil, fmt.Errorf("%w: JWS alg %q, want ES256", provider.ErrBadSignature, snippet(h.Alg))
	}
	if len(h.Crit) > 0 {
		return nil, fmt.Errorf("%w: JWS header has crit", provider.ErrBadSignature)
	}
	if len(h.X5c) == 0 || len(h.X5c) > MaxChain {
		return nil, fmt.Errorf("%w: JWS x5c has %d certificates, want 1..%d", provider.ErrBadSignature, len(h.X5c), MaxChain)
	}
	sig, err := base64.RawURLEncoding.DecodeString(s64)
	if err != nil {
		return nil, fmt.Errorf("%w: JWS signature: %v", provider.ErrMalformed, err)
	}
	if len(sig) != 64 {
		return nil, fmt.Errorf("%w: ES256 signature of %d bytes, want 64", provider.ErrBadSignature, len(sig))
	}
	leaf, err := p.verifyChain(h.X5c)
	if err != nil {
		return nil, err
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: leaf key is not ECDSA P-256", provider.ErrBadSignature)
	}
	digest := sha256.Sum256([]byte(jws[:len(h64)+1+len(p64)]))
	r := new(big.Int).SetBytes(sig[:32])
	s := new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(pub, digest[:], r, s) {
		return nil, fmt.Errorf("%w: ES256 signature does not verify", provider.ErrBadSignature)
	}
	payload, err := base64.RawURLEncoding.DecodeString(p64)
	if err != nil {
		return nil, fmt.Errorf("%w: JWS payload: %v", provider.ErrMalformed, err)
	}
	return payload, nil
}

// verifyChain parses an x5c chain, verifies it against the roots at the
// current time and checks Apple's marker extensions; it returns the leaf.
func (p *Provider) verifyChain(x5c []string) (*x509.Certificate, error) {
	certs := make([]*x509.Certificate, len(x5c))
	for i, s := range x5c {
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: x5c[%d]: %v", provider.ErrBadSignature, i, err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: x5c[%d]: %v", provider.ErrBadSignature, i, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	// Every other certificate may serve as an intermediate; a root inside
	// x5c cannot end a chain, only Options.RootCerts can.
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         p.roots,
		Intermediates: inter,
		CurrentTime:   p.now(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return nil, fmt.Errorf("%w: x5c chain: %v", provider.ErrExpired, err)
		}
		return nil, fmt.Errorf("%w: x5c chain: %v", provider.ErrBadSignature, err)
	}
	if !hasExtension(leaf, oidLeafMarker) {
		return nil, fmt.Errorf("%w: x5c leaf lacks Apple's extension %v", provider.ErrBadSignature, oidLeafMarker)
	}
	// Each chain is leaf, intermediates..., root; one must have Apple's
	// intermediate right above the leaf, or the leaf signed by the root.
	for _, chain := range chains {
		if len(chain) <= 2 || hasExtension(chain[1], oidIntermediateMarker) {
			return leaf, nil
		}
	}
	return nil, fmt.Errorf("%w: x5c intermediate lacks Apple's extension %v", provider.ErrBadSignature, oidIntermediateMarker)
}

// hasExtension says whether c carries the extension id.
func hasExtension(c *x509.Certificate, id asn1.ObjectIdentifier) bool {
	for _, e := range c.Extensions {
		if e.Id.Equal(id) {
			return true
		}
	}
	return false
}

// snippet shortens untrusted text for an error message.
func snippet(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
