package pay_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/pay/testprovider"
)

// FuzzWebhookBody feeds the test provider's webhook body parser, and its
// purchase verifier, arbitrary bytes: they refuse or parse, never panic.
func FuzzWebhookBody(f *testing.F) {
	tp := testprovider.New(secret, 0, nil)
	body, _ := tp.SignWebhook(testprovider.Notification{ID: "n1", Type: "refund", Purchase: testprovider.Purchase{TransactionID: "t", ProductID: "p"}}, time.Unix(1, 0))
	f.Add(body)
	f.Add([]byte(`{"id":"x","type":"purchase","purchase":{"transaction_id":"t","product_id":"p","quantity":-1}}`))
	f.Add([]byte(`{}`))
	f.Add(tp.Sign(testprovider.Purchase{TransactionID: "t", ProductID: "p"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := testprovider.ParseBody(b); err == nil && (n.ID == "" || n.Purchase.Quantity < 1) {
			t.Fatalf("parsed %+v", n)
		}
		_, _ = tp.ValidatePurchase(t.Context(), b)
	})
}

// FuzzRequests feeds every pay method's handler arbitrary payloads as a
// logged-in client and as an operator: each decodes within its limits and
// answers or refuses, never panics.
func FuzzRequests(f *testing.F) {
	for _, m := range payrpc.Methods {
		b, _ := thriftx.Marshal(m.NewReq())
		f.Add(m.Name, b)
	}
	f.Fuzz(func(t *testing.T, method string, b []byte) {
		fx := newFixture(t, pay.NewMemoryStore(), nil)
		h, ok := fx.svc.Handlers()[method]
		if !ok {
			return
		}
		_, _ = h(t.Context(), session("u1"), b)
	})
}

// FuzzWebhookSignature feeds the test provider's webhook verification an
// arbitrary Noon-Signature header and body: it refuses or parses a
// notification whose signature is good, never panics.
func FuzzWebhookSignature(f *testing.F) {
	tp := testprovider.New(secret, 0, nil)
	body, sig := tp.SignWebhook(testprovider.Notification{ID: "n1", Type: "refund", Purchase: testprovider.Purchase{TransactionID: "t", ProductID: "p"}}, time.Now())
	f.Add(sig, body)
	f.Add("t=1,v1=00", []byte(`{}`))
	f.Add("t=,v1=", []byte(nil))
	f.Fuzz(func(t *testing.T, header string, b []byte) {
		h := http.Header{}
		h.Set(testprovider.SignatureHeader, header)
		_, _ = tp.ParseNotification(t.Context(), h, b)
	})
}
