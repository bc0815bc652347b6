package pay_test

import (
	"context"
	"net/http"
	"testing"

	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/pay/apple"
	"github.com/noonhq/noon/services/pay/apple/appletest"
	"github.com/noonhq/noon/services/pay/provider"
	"github.com/noonhq/noon/wire"
)

// TestAppleEndToEnd: with the App Store provider registered (roots of a
// test CA), a StoreKit 2 signed transaction validates and grants its
// product once, a replay is seen_before, a tampered one is refused and
// records nothing, and a signed REFUND notification takes the goods back.
func TestAppleEndToEnd(t *testing.T) {
	ca := appletest.NewCA(t)
	ap, err := apple.New(apple.Options{RootCerts: ca.Roots(), BundleID: "com.example.game"})
	if err != nil {
		t.Fatal(err)
	}
	game := newFakeGame()
	svc, err := pay.New(options(), pay.Deps{Store: pay.NewMemoryStore(), Game: game, Providers: []provider.Provider{ap}, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	svc.Run()
	f := &fixture{svc: svc, game: game}
	validate := func(signed []byte, key string) (*paypb.ValidateReply, error) {
		b, err := thriftx.Marshal(&paypb.ValidateRequest{Provider: apple.Name, Signed: signed, IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		out, err := f.call(t, session("ann"), payrpc.MethodValidate, b)
		if err != nil {
			return nil, err
		}
		var rep paypb.ValidateReply
		if err := thriftx.Unmarshal(out, &rep); err != nil {
			t.Fatal(err)
		}
		return &rep, nil
	}

	tx := appletest.Transaction{TransactionID: "2000000001", ProductID: "gems_100", BundleID: "com.example.game"}
	signed := ca.SignTransaction(t, tx)
	rep, err := validate(signed, "k1")
	if err != nil || rep.SeenBefore || rep.Purchase.TransactionID != tx.TransactionID {
		t.Fatalf("first validation: %+v, %v", rep, err)
	}
	if rep, err := validate(signed, "k2"); err != nil || !rep.SeenBefore {
		t.Fatalf("replay with another key: %+v, %v", rep, err)
	}
	tampered := appletest.Tamper(t, ca.SignTransaction(t, appletest.Transaction{TransactionID: "2000000002", ProductID: "gems_100", BundleID: "com.example.game"}),
		func(m map[string]any) { m["quantity"] = 50 })
	if _, err := validate(tampered, "k3"); wire.CodeOf(err) == "" {
		t.Fatalf("a tampered transaction was accepted")
	}
	testenv.CheckFor(t, waitLong, "one grant", func() bool {
		_, grants, _, _ := game.snapshot()
		return grants == 1
	})

	body := ca.SignNotification(t, appletest.Notification{Type: "REFUND", BundleID: "com.example.game", SignedTransactionInfo: signed})
	n, err := ap.ParseNotification(context.Background(), http.Header{}, body)
	if err != nil {
		t.Fatal(err)
	}
	if fresh, err := svc.Notify(context.Background(), apple.Name, n); err != nil || !fresh {
		t.Fatalf("refund: %v, %v", fresh, err)
	}
	testenv.CheckFor(t, waitLong, "the refund's take", func() bool {
		_, grants, takes, _ := game.snapshot()
		return grants == 1 && takes == 1
	})
}
