package testprovider_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/noonhq/noon/services/pay/provider"
	"github.com/noonhq/noon/services/pay/testprovider"
)

// TestWebhookTolerance: a webhook signed within 300 s of now (either
// side) verifies; past it, ErrExpired; another body, ErrBadSignature.
func TestWebhookTolerance(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	p := testprovider.New("secret-0123456789abcdef", 0, func() time.Time { return now })
	n := testprovider.Notification{ID: "n1", Type: "refund", Purchase: testprovider.Purchase{TransactionID: "t1", ProductID: "p1"}}
	for _, tc := range []struct {
		at   time.Time
		want error
	}{
		{now, nil},
		{now.Add(-300 * time.Second), nil},
		{now.Add(300 * time.Second), nil},
		{now.Add(-301 * time.Second), provider.ErrExpired},
		{now.Add(301 * time.Second), provider.ErrExpired},
	} {
		body, sig := p.SignWebhook(n, tc.at)
		h := http.Header{}
		h.Set(testprovider.SignatureHeader, sig)
		got, err := p.ParseNotification(context.Background(), h, body)
		if !errors.Is(err, tc.want) || (err == nil && (got.ID != "n1" || got.Type != provider.TypeRefund || got.Purchase.TransactionID != "t1")) {
			t.Errorf("signed at %v: %+v, %v; want %v", tc.at.Sub(now), got, err, tc.want)
		}
		if _, err := p.ParseNotification(context.Background(), h, append(body, ' ')); !errors.Is(err, provider.ErrBadSignature) {
			t.Errorf("another body: %v, want bad signature", err)
		}
	}
}

// TestPurchaseRoundTrip: Sign then ValidatePurchase gives the purchase
// back; quantity 0 means 1.
func TestPurchaseRoundTrip(t *testing.T) {
	p := testprovider.New("secret-0123456789abcdef", 0, nil)
	got, err := p.ValidatePurchase(context.Background(), p.Sign(testprovider.Purchase{TransactionID: "t", ProductID: "p", PurchasedAtUnix: 5}))
	if err != nil || got.TransactionID != "t" || got.ProductID != "p" || got.Quantity != 1 || got.PurchasedAt.Unix() != 5 || got.Environment != "test" {
		t.Fatalf("%+v, %v", got, err)
	}
}
