package apple_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/services/pay/apple"
	"github.com/noonhq/noon/services/pay/apple/appletest"
	"github.com/noonhq/noon/services/pay/provider"
)

const bundle = "com.noonhq.sample"

// newProvider returns a provider trusting ca's root.
func newProvider(t testing.TB, ca *appletest.CA, mod func(*apple.Options)) *apple.Provider {
	t.Helper()
	opts := apple.Options{RootCerts: ca.Roots(), BundleID: bundle}
	if mod != nil {
		mod(&opts)
	}
	p, err := apple.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func tx(id string) appletest.Transaction {
	return appletest.Transaction{
		TransactionID:   id,
		ProductID:       "gems100",
		Quantity:        2,
		PurchaseDate:    time.UnixMilli(1_700_000_000_123),
		AppAccountToken: "7e3fb20b-4cdb-47cc-936d-99d65f608138",
		BundleID:        bundle,
	}
}

func TestValidatePurchase(t *testing.T) {
	ca := appletest.NewCA(t)
	p := newProvider(t, ca, nil)
	if p.Name() != "apple" {
		t.Fatalf("Name = %q", p.Name())
	}
	got, err := p.ValidatePurchase(context.Background(), ca.SignTransaction(t, tx("2000000123")))
	if err != nil {
		t.Fatal(err)
	}
	want := provider.Purchase{
		TransactionID:         "2000000123",
		OriginalTransactionID: "2000000123",
		ProductID:             "gems100",
		Quantity:              2,
		PurchasedAt:           time.UnixMilli(1_700_000_000_123).UTC(),
		AppAccountToken:       "7e3fb20b-4cdb-47cc-936d-99d65f608138",
		Environment:           "Sandbox",
	}
	if got != want {
		t.Fatalf("purchase\n got %+v\nwant %+v", got, want)
	}

	// The environment is checked only when set.
	for _, env := range []string{"Sandbox", ""} {
		if _, err := newProvider(t, ca, func(o *apple.Options) { o.Environment = env }).
			ValidatePurchase(context.Background(), ca.SignTransaction(t, tx("1"))); err != nil {
			t.Fatalf("environment %q: %v", env, err)
		}
	}
	// A chain of leaf and intermediate only (the root left out) verifies
	// too: the root comes from the options.
	jws := ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Chain: ca.Chain()[:2]})
	if _, err := p.ValidatePurchase(context.Background(), jws); err != nil {
		t.Fatalf("chain without root: %v", err)
	}
}

// TestValidatePurchaseRefused covers each way a signed transaction is
// refused, the error class and the message.
func TestValidatePurchaseRefused(t *testing.T) {
	ca := appletest.NewCA(t)
	other := appletest.NewCA(t)
	p := newProvider(t, ca, nil)
	valid := ca.SignTransaction(t, tx("1"))

	cases := []struct {
		name   string
		p      *apple.Provider
		signed []byte
		want   error
		msg    string
	}{
		{"tampered payload", p, appletest.Tamper(t, valid, func(m map[string]any) { m["quantity"] = 100 }),
			provider.ErrBadSignature, "ES256 signature does not verify"},
		{"tampered product", p, appletest.Tamper(t, valid, func(m map[string]any) { m["productId"] = "gems10000" }),
			provider.ErrBadSignature, "ES256 signature does not verify"},
		{"wrong chain", p, other.SignTransaction(t, tx("1")),
			provider.ErrBadSignature, "x5c chain"},
		{"other root's chain with our root appended", p,
			other.Sign(t, tx("1").Payload(), appletest.SignOptions{Chain: append(other.Chain()[:2], ca.Root)}),
			provider.ErrBadSignature, "x5c chain"},
		{"signed by another key", p, ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Key: other.LeafKey}),
			provider.ErrBadSignature, "ES256 signature does not verify"},
		{"expired leaf", p, ca.ExpiredLeaf(t).SignTransaction(t, tx("1")),
			provider.ErrExpired, "x5c chain"},
		{"expired intermediate", p, ca.ExpiredIntermediate(t).SignTransaction(t, tx("1")),
			provider.ErrExpired, "certificate has expired or is not yet valid"},
		{"intermediate without Apple's extension", p, ca.PlainIntermediate(t).SignTransaction(t, tx("1")),
			provider.ErrBadSignature, "intermediate lacks Apple's extension"},
		{"now after leaf", newProvider(t, ca, func(o *apple.Options) {
			o.Now = func() time.Time { return time.Now().Add(2 * 365 * 24 * time.Hour) }
		}), valid, provider.ErrExpired, "x5c chain"},
		{"now before leaf", newProvider(t, ca, func(o *apple.Options) {
			o.Now = func() time.Time { return time.Now().Add(-24 * time.Hour) }
		}), valid, provider.ErrExpired, "x5c chain"},
		{"alg HS256", p, ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Alg: "HS256"}),
			provider.ErrBadSignature, `JWS alg "HS256", want ES256`},
		{"alg none", p, ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Alg: "none"}),
			provider.ErrBadSignature, `JWS alg "none", want ES256`},
		{"no x5c", p, ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Chain: []*x509.Certificate{}}),
			provider.ErrBadSignature, "x5c has 0 certificates"},
		{"long x5c", p, ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Chain: append(ca.Chain(), ca.Chain()...)}),
			provider.ErrBadSignature, "x5c has 6 certificates"},
		{"root as leaf", p, ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Chain: []*x509.Certificate{ca.Root}, Key: ca.RootKey}),
			provider.ErrBadSignature, "leaf lacks Apple's extension"},
		{"intermediate as leaf", p, ca.Sign(t, tx("1").Payload(), appletest.SignOptions{Chain: []*x509.Certificate{ca.Intermediate, ca.Root}, Key: ca.IntermediateKey}),
			provider.ErrBadSignature, "leaf lacks Apple's extension"},
		{"wrong bundle id", p, ca.SignTransaction(t, appletest.Transaction{TransactionID: "1", ProductID: "gems100", BundleID: "com.evil"}),
			apple.ErrWrongBundle, `bundle id mismatch: "com.evil", want "com.noonhq.sample"`},
		{"wrong environment", newProvider(t, ca, func(o *apple.Options) { o.Environment = "Production" }), valid,
			apple.ErrWrongEnvironment, `environment mismatch: "Sandbox", want "Production"`},
		{"revoked", p, ca.SignTransaction(t, appletest.Transaction{TransactionID: "1", ProductID: "gems100", BundleID: bundle, RevocationDate: time.Now()}),
			apple.ErrRevoked, "transaction revoked"},
		{"oversized", newProvider(t, ca, func(o *apple.Options) { o.MaxPayload = len(valid) - 1 }), valid,
			provider.ErrTooLarge, "over"},
		{"oversized default", p, []byte(strings.Repeat("a", apple.DefaultMaxPayload+1)),
			provider.ErrTooLarge, "over 65536"},
		{"not a JWS", p, []byte("hello"), provider.ErrMalformed, "JWS has no '.'"},
		{"four parts", p, append(append([]byte{}, valid...), ".x"...), provider.ErrMalformed, "not 3 parts"},
		{"bad header", p, []byte("!!.e30.e30"), provider.ErrMalformed, "JWS header"},
		{"short signature", p, []byte(string(valid[:strings.LastIndexByte(string(valid), '.')]) + ".AAAA"),
			provider.ErrBadSignature, "signature of 3 bytes"},
		{"payload not JSON", p, ca.Sign(t, []byte("not json"), appletest.SignOptions{}),
			provider.ErrMalformed, "transaction payload"},
		{"no transactionId", p, ca.Sign(t, map[string]any{"productId": "x", "bundleId": bundle, "purchaseDate": 1}, appletest.SignOptions{}),
			provider.ErrMalformed, "no transactionId"},
		{"negative quantity", p, ca.Sign(t, map[string]any{"transactionId": "1", "productId": "x", "quantity": -1, "bundleId": bundle, "purchaseDate": 1}, appletest.SignOptions{}),
			provider.ErrMalformed, "quantity -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.p.ValidatePurchase(context.Background(), c.signed)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %q, want it to say %q", err, c.msg)
			}
		})
	}
}

// TestConcurrent validates from many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	ca := appletest.NewCA(t)
	p := newProvider(t, ca, nil)
	valid := ca.SignTransaction(t, tx("1"))
	body := ca.SignNotification(t, appletest.Notification{Type: "REFUND", UUID: "u", BundleID: bundle, SignedTransactionInfo: valid})
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			var err error
			if i%2 == 0 {
				_, err = p.ValidatePurchase(context.Background(), valid)
			} else {
				_, err = p.ParseNotification(context.Background(), nil, body)
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestNew(t *testing.T) {
	ca := appletest.NewCA(t)
	cases := []struct {
		opts apple.Options
		msg  string
	}{
		{apple.Options{BundleID: bundle}, "apple: Options.RootCerts is empty"},
		{apple.Options{RootCerts: []*x509.Certificate{nil}, BundleID: bundle}, "apple: Options.RootCerts[0] is nil"},
		{apple.Options{RootCerts: ca.Roots()}, "apple: Options.BundleID is empty"},
		{apple.Options{RootCerts: ca.Roots(), BundleID: bundle, Environment: "prod"}, `apple: Options.Environment "prod" is not "Production", "Sandbox" or empty`},
		{apple.Options{RootCerts: ca.Roots(), BundleID: bundle, MaxPayload: -1}, "apple: Options.MaxPayload -1 is negative"},
	}
	for _, c := range cases {
		if _, err := apple.New(c.opts); err == nil || err.Error() != c.msg {
			t.Errorf("New(%+v) = %v, want %q", c.opts, err, c.msg)
		}
	}
}

func TestLoadRoots(t *testing.T) {
	ca := appletest.NewCA(t)
	dir := t.TempDir()
	roots, err := apple.LoadRoots(ca.WriteRootPEM(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || !roots[0].Equal(ca.Root) {
		t.Fatalf("roots = %v", roots)
	}
	p, err := apple.New(apple.Options{RootCerts: roots, BundleID: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.ValidatePurchase(context.Background(), ca.SignTransaction(t, tx("1"))); err != nil {
		t.Fatal(err)
	}
	// DER, as Apple publishes its root.
	der := dir + "/root.cer"
	writeFile(t, der, ca.Root.Raw)
	if roots, err := apple.LoadRoots(der); err != nil || !roots[0].Equal(ca.Root) {
		t.Fatalf("DER: %v %v", roots, err)
	}
	empty := dir + "/empty.pem"
	writeFile(t, empty, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	if _, err := apple.LoadRoots(empty); err == nil || !strings.Contains(err.Error(), "no CERTIFICATE block") {
		t.Fatalf("err = %v", err)
	}
	if _, err := apple.LoadRoots(dir + "/missing.pem"); err == nil {
		t.Fatal("missing file loaded")
	}
}

func TestParseNotification(t *testing.T) {
	ca := appletest.NewCA(t)
	p := newProvider(t, ca, nil)
	signed := time.UnixMilli(1_700_000_100_000)
	types := []struct{ typ, subtype, want, wantSub string }{
		{"ONE_TIME_CHARGE", "", provider.TypePurchase, "ONE_TIME_CHARGE"},
		{"DID_RENEW", "BILLING_RECOVERY", provider.TypePurchase, "DID_RENEW/BILLING_RECOVERY"},
		{"SUBSCRIBED", "INITIAL_BUY", provider.TypePurchase, "SUBSCRIBED/INITIAL_BUY"},
		{"REFUND", "", provider.TypeRefund, "REFUND"},
		{"REVOKE", "", provider.TypeRevoke, "REVOKE"},
		{"CONSUMPTION_REQUEST", "", provider.TypeOther, "CONSUMPTION_REQUEST"},
		{"REFUND_DECLINED", "", provider.TypeOther, "REFUND_DECLINED"},
	}
	for _, c := range types {
		txn := tx("42")
		if c.want == provider.TypeRefund || c.want == provider.TypeRevoke {
			txn.RevocationDate = signed // a refunded transaction carries it; the notification is still valid
		}
		body := ca.SignNotification(t, appletest.Notification{
			Type: c.typ, Subtype: c.subtype, UUID: "uuid-" + c.typ, SignedDate: signed,
			BundleID: bundle, SignedTransactionInfo: ca.SignTransaction(t, txn),
		})
		n, err := p.ParseNotification(context.Background(), nil, body)
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		if n.ID != "uuid-"+c.typ || n.Type != c.want || n.Subtype != c.wantSub || !n.SignedAt.Equal(signed) ||
			n.Purchase.TransactionID != "42" || n.Purchase.ProductID != "gems100" || n.Purchase.Quantity != 2 {
			t.Fatalf("%s: %+v", c.typ, n)
		}
	}

	// A TEST notification has no transaction: it is "other".
	n, err := p.ParseNotification(context.Background(), nil, ca.SignNotification(t, appletest.Notification{Type: "TEST", UUID: "u", BundleID: bundle}))
	if err != nil || n.Type != provider.TypeOther || n.Subtype != "TEST" || n.Purchase != (provider.Purchase{}) {
		t.Fatalf("TEST: %+v %v", n, err)
	}
}

func TestParseNotificationRefused(t *testing.T) {
	ca := appletest.NewCA(t)
	other := appletest.NewCA(t)
	p := newProvider(t, ca, nil)
	txn := ca.SignTransaction(t, tx("42"))
	note := appletest.Notification{Type: "REFUND", UUID: "u1", BundleID: bundle, SignedTransactionInfo: txn}
	valid := ca.SignNotification(t, note)
	signedPayload := ca.Sign(t, note.Payload(), appletest.SignOptions{})

	with := func(mod func(*appletest.Notification)) appletest.Notification {
		n := note
		mod(&n)
		return n
	}
	cases := []struct {
		name string
		p    *apple.Provider
		body []byte
		want error
		msg  string
	}{
		{"nested transaction tampered", p, ca.SignNotification(t, with(func(n *appletest.Notification) {
			n.SignedTransactionInfo = appletest.Tamper(t, txn, func(m map[string]any) { m["transactionId"] = "43" })
		})), provider.ErrBadSignature, `apple: notification "u1": apple: transaction: bad signature: ES256 signature does not verify`},
		{"nested transaction of another root", p, ca.SignNotification(t, with(func(n *appletest.Notification) {
			n.SignedTransactionInfo = other.SignTransaction(t, tx("42"))
		})), provider.ErrBadSignature, "x5c chain"},
		{"nested transaction of another app", p, ca.SignNotification(t, with(func(n *appletest.Notification) {
			n.SignedTransactionInfo = ca.SignTransaction(t, appletest.Transaction{TransactionID: "1", ProductID: "p", BundleID: "com.evil"})
		})), apple.ErrWrongBundle, "bundle id mismatch"},
		{"nested transaction expired leaf", p, ca.SignNotification(t, with(func(n *appletest.Notification) {
			n.SignedTransactionInfo = ca.ExpiredLeaf(t).SignTransaction(t, tx("42"))
		})), provider.ErrExpired, "x5c chain"},
		{"refund without transaction", p, ca.SignNotification(t, with(func(n *appletest.Notification) { n.SignedTransactionInfo = nil })),
			provider.ErrMalformed, "REFUND without signedTransactionInfo"},
		{"tampered payload", p, appletest.Body(t, appletest.Tamper(t, signedPayload, func(m map[string]any) { m["notificationType"] = "ONE_TIME_CHARGE" })),
			provider.ErrBadSignature, "ES256 signature does not verify"},
		{"wrong chain", p, other.SignNotification(t, note), provider.ErrBadSignature, "x5c chain"},
		{"expired leaf", p, ca.ExpiredLeaf(t).SignNotification(t, note), provider.ErrExpired, "x5c chain"},
		{"wrong alg", p, appletest.Body(t, ca.Sign(t, note.Payload(), appletest.SignOptions{Alg: "ES384"})),
			provider.ErrBadSignature, `JWS alg "ES384"`},
		{"wrong bundle id", p, ca.SignNotification(t, with(func(n *appletest.Notification) { n.BundleID = "com.evil" })),
			apple.ErrWrongBundle, "bundle id mismatch"},
		{"wrong environment", newProvider(t, ca, func(o *apple.Options) { o.Environment = "Production" }), valid,
			apple.ErrWrongEnvironment, "environment mismatch"},
		{"oversized", newProvider(t, ca, func(o *apple.Options) { o.MaxPayload = len(valid) - 1 }), valid,
			provider.ErrTooLarge, "over"},
		{"body not JSON", p, []byte("signedPayload="), provider.ErrMalformed, "notification body"},
		{"no signedPayload", p, []byte(`{}`), provider.ErrMalformed, "no signedPayload"},
		{"no uuid", p, appletest.Body(t, ca.Sign(t, map[string]any{"notificationType": "TEST", "data": map[string]any{"bundleId": bundle}}, appletest.SignOptions{})),
			provider.ErrMalformed, "no notificationUUID"},
		{"no data", p, appletest.Body(t, ca.Sign(t, map[string]any{"notificationType": "TEST", "notificationUUID": "u"}, appletest.SignOptions{})),
			provider.ErrMalformed, "no data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.p.ParseNotification(context.Background(), nil, c.body)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("err = %q, want it to say %q", err, c.msg)
			}
		})
	}
}

// isProviderError says whether err wraps one of the provider errors.
func isProviderError(err error) bool {
	for _, e := range []error{provider.ErrBadSignature, provider.ErrExpired, provider.ErrMalformed, provider.ErrTooLarge} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzValidatePurchase(f *testing.F) {
	ca := appletest.NewCA(f)
	p := newProvider(f, ca, func(o *apple.Options) { o.MaxPayload = 16 << 10 })
	valid := ca.SignTransaction(f, tx("1"))
	f.Add(valid)
	f.Add(appletest.Tamper(f, valid, func(m map[string]any) { m["quantity"] = 7 }))
	f.Add(ca.Sign(f, tx("1").Payload(), appletest.SignOptions{Alg: "none"}))
	f.Add(ca.Sign(f, []byte(`{"transactionId":1}`), appletest.SignOptions{}))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, signed []byte) {
		pur, err := p.ValidatePurchase(context.Background(), signed)
		if err != nil {
			if !isProviderError(err) {
				t.Fatalf("error wraps no provider error: %v", err)
			}
			return
		}
		if pur.TransactionID == "" || pur.ProductID == "" || pur.Quantity < 1 {
			t.Fatalf("accepted %+v", pur)
		}
	})
}

func FuzzParseNotification(f *testing.F) {
	ca := appletest.NewCA(f)
	p := newProvider(f, ca, func(o *apple.Options) { o.MaxPayload = 16 << 10 })
	txn := ca.SignTransaction(f, tx("1"))
	note := appletest.Notification{Type: "REFUND", UUID: "u", BundleID: bundle, SignedTransactionInfo: txn}
	f.Add(ca.SignNotification(f, note))
	f.Add(ca.SignNotification(f, appletest.Notification{Type: "TEST", UUID: "u", BundleID: bundle}))
	f.Add(ca.SignNotification(f, appletest.Notification{Type: "REFUND", UUID: "u", BundleID: bundle,
		SignedTransactionInfo: appletest.Tamper(f, txn, func(m map[string]any) { m["productId"] = "x" })}))
	f.Add(appletest.Body(f, []byte("a.b.c")))
	f.Add([]byte(`{"signedPayload":""}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := p.ParseNotification(context.Background(), nil, body)
		if err != nil {
			if !isProviderError(err) {
				t.Fatalf("error wraps no provider error: %v", err)
			}
			return
		}
		if n.ID == "" || n.Type == "" {
			t.Fatalf("accepted %+v", n)
		}
	})
}

func writeFile(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
