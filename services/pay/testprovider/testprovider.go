// Package testprovider is the pay service's deterministic "test" store:
// a purchase is a small JSON object signed with HMAC-SHA256 under a
// configured secret, and its webhooks carry the header
// `Noon-Signature: t=<unix>,v1=<hex HMAC of "<t>.<body>">` (Stripe's
// scheme), accepted within a tolerance (300 s). It is for `noon dev`,
// tests and the sample game: whoever holds the secret mints purchases.
package testprovider

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/noonhq/noon/services/pay/provider"
)

// Name is the provider's name.
const Name = "test"

// SignatureHeader carries a webhook's timestamp and signature.
const SignatureHeader = "Noon-Signature"

// Limits of the decoders.
const (
	// MaxPayload bounds a signed purchase and a webhook body.
	MaxPayload = 16 << 10
	// maxField bounds each string field.
	maxField = 256
	// maxQuantity bounds a purchase's quantity.
	maxQuantity = 100
	// maxHeader bounds the signature header.
	maxHeader = 512
)

// Purchase is the signed JSON of a test purchase.
type Purchase struct {
	TransactionID   string `json:"transaction_id"`
	ProductID       string `json:"product_id"`
	Quantity        int    `json:"quantity,omitempty"`
	PurchasedAtUnix int64  `json:"purchased_at_unix,omitempty"`
	AppAccountToken string `json:"app_account_token,omitempty"`
}

// Notification is a test webhook's JSON body.
type Notification struct {
	ID       string   `json:"id"`
	Type     string   `json:"type"`
	Purchase Purchase `json:"purchase"`
}

// Provider is the test provider.
type Provider struct {
	secret    []byte
	tolerance time.Duration
	now       func() time.Time
}

var _ provider.Provider = (*Provider)(nil)

// New returns the test provider with secret and a webhook tolerance
// (0: 300 s); now is its clock (nil: time.Now).
func New(secret string, tolerance time.Duration, now func() time.Time) *Provider {
	if tolerance <= 0 {
		tolerance = 300 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &Provider{secret: []byte(secret), tolerance: tolerance, now: now}
}

// Name implements provider.Provider.
func (p *Provider) Name() string { return Name }

func (p *Provider) mac(parts ...[]byte) []byte {
	h := hmac.New(sha256.New, p.secret)
	for _, b := range parts {
		h.Write(b)
	}
	return h.Sum(nil)
}

// Sign returns the signed form of pu: base64url(JSON) "." hex(HMAC).
func (p *Provider) Sign(pu Purchase) []byte {
	js, _ := json.Marshal(pu)
	b64 := base64.RawURLEncoding.EncodeToString(js)
	return []byte(b64 + "." + hex.EncodeToString(p.mac([]byte(b64))))
}

// SignWebhook returns a webhook body for n and its signature header at t.
func (p *Provider) SignWebhook(n Notification, t time.Time) (body []byte, header string) {
	body, _ = json.Marshal(n)
	ts := strconv.FormatInt(t.Unix(), 10)
	return body, "t=" + ts + ",v1=" + hex.EncodeToString(p.mac([]byte(ts), []byte("."), body))
}

// ValidatePurchase implements provider.Provider.
func (p *Provider) ValidatePurchase(_ context.Context, signed []byte) (provider.Purchase, error) {
	if len(signed) > MaxPayload {
		return provider.Purchase{}, fmt.Errorf("test purchase of %d bytes, at most %d: %w", len(signed), MaxPayload, provider.ErrTooLarge)
	}
	b64, sig, ok := bytes.Cut(signed, []byte("."))
	if !ok {
		return provider.Purchase{}, fmt.Errorf("test purchase: want <base64url json>.<hex hmac>: %w", provider.ErrMalformed)
	}
	want, err := hex.DecodeString(string(sig))
	if err != nil || !hmac.Equal(want, p.mac(b64)) {
		return provider.Purchase{}, fmt.Errorf("test purchase: %w", provider.ErrBadSignature)
	}
	js, err := base64.RawURLEncoding.DecodeString(string(b64))
	if err != nil {
		return provider.Purchase{}, fmt.Errorf("test purchase: %w", provider.ErrMalformed)
	}
	var pu Purchase
	if err := decodeStrict(js, &pu); err != nil {
		return provider.Purchase{}, err
	}
	return pu.verified()
}

// verified checks pu's fields and converts it.
func (pu Purchase) verified() (provider.Purchase, error) {
	for _, f := range []string{pu.TransactionID, pu.ProductID, pu.AppAccountToken} {
		if len(f) > maxField {
			return provider.Purchase{}, fmt.Errorf("test purchase: a field over %d bytes: %w", maxField, provider.ErrMalformed)
		}
	}
	if pu.TransactionID == "" || pu.ProductID == "" {
		return provider.Purchase{}, fmt.Errorf("test purchase: transaction_id and product_id are required: %w", provider.ErrMalformed)
	}
	q := pu.Quantity
	if q == 0 {
		q = 1
	}
	if q < 1 || q > maxQuantity {
		return provider.Purchase{}, fmt.Errorf("test purchase: quantity must be 1 to %d: %w", maxQuantity, provider.ErrMalformed)
	}
	return provider.Purchase{
		TransactionID: pu.TransactionID, ProductID: pu.ProductID, Quantity: q,
		PurchasedAt: time.Unix(pu.PurchasedAtUnix, 0).UTC(), AppAccountToken: pu.AppAccountToken, Environment: "test",
	}, nil
}

// ParseNotification implements provider.Provider.
func (p *Provider) ParseNotification(_ context.Context, header http.Header, body []byte) (provider.Notification, error) {
	if len(body) > MaxPayload {
		return provider.Notification{}, fmt.Errorf("test webhook of %d bytes, at most %d: %w", len(body), MaxPayload, provider.ErrTooLarge)
	}
	t, sigs, err := parseSignature(header.Get(SignatureHeader))
	if err != nil {
		return provider.Notification{}, err
	}
	want := p.mac([]byte(strconv.FormatInt(t, 10)), []byte("."), body)
	ok := false
	for _, s := range sigs {
		ok = ok || hmac.Equal(s, want)
	}
	if !ok {
		return provider.Notification{}, fmt.Errorf("test webhook: %w", provider.ErrBadSignature)
	}
	at := time.Unix(t, 0)
	if d := p.now().Sub(at); d > p.tolerance || d < -p.tolerance {
		return provider.Notification{}, fmt.Errorf("test webhook: timestamp %ds away, tolerance %v: %w", int64(d.Seconds()), p.tolerance, provider.ErrExpired)
	}
	n, err := ParseBody(body)
	if err != nil {
		return provider.Notification{}, err
	}
	n.SignedAt = at.UTC()
	return n, nil
}

// ParseBody decodes a webhook body (not its signature).
func ParseBody(body []byte) (provider.Notification, error) {
	if len(body) > MaxPayload {
		return provider.Notification{}, fmt.Errorf("test webhook: %w", provider.ErrTooLarge)
	}
	var n Notification
	if err := decodeStrict(body, &n); err != nil {
		return provider.Notification{}, err
	}
	if n.ID == "" || len(n.ID) > maxField || len(n.Type) > maxField {
		return provider.Notification{}, fmt.Errorf("test webhook: id is required, at most %d bytes: %w", maxField, provider.ErrMalformed)
	}
	pu, err := n.Purchase.verified()
	if err != nil {
		return provider.Notification{}, err
	}
	typ := provider.TypeOther
	switch n.Type {
	case provider.TypePurchase, provider.TypeRefund, provider.TypeRevoke:
		typ = n.Type
	}
	return provider.Notification{ID: n.ID, Type: typ, Subtype: n.Type, Purchase: pu}, nil
}

// parseSignature parses "t=<unix>,v1=<hex>[,v1=<hex>...]".
func parseSignature(h string) (int64, [][]byte, error) {
	if h == "" || len(h) > maxHeader {
		return 0, nil, fmt.Errorf("test webhook: %s header missing or over %d bytes: %w", SignatureHeader, maxHeader, provider.ErrBadSignature)
	}
	var t int64
	var sigs [][]byte
	for part := range strings.SplitSeq(h, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return 0, nil, fmt.Errorf("test webhook: bad timestamp: %w", provider.ErrMalformed)
			}
			t = n
		case "v1":
			if b, err := hex.DecodeString(v); err == nil && len(sigs) < 4 {
				sigs = append(sigs, b)
			}
		}
	}
	if t == 0 || len(sigs) == 0 {
		return 0, nil, fmt.Errorf("test webhook: want t=<unix>,v1=<hex>: %w", provider.ErrBadSignature)
	}
	return t, sigs, nil
}

// decodeStrict decodes one JSON object into v, refusing unknown fields
// and trailing data.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("test payload: %w", provider.ErrMalformed)
	}
	if d.More() {
		return fmt.Errorf("test payload: trailing data: %w", provider.ErrMalformed)
	}
	return nil
}
