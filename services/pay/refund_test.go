package pay_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/pay/provider"
	"github.com/noonhq/noon/services/pay/testprovider"
)

// pushes records what the service publishes.
type pushes struct {
	mu  sync.Mutex
	got []string // topic + " " + type + " " + the purchase's state
}

func (p *pushes) Publish(topic, typ string, payload []byte) error {
	var pu paypb.Purchase
	if err := thriftx.Unmarshal(payload, &pu); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, topic+" "+typ+" "+pu.State)
	return nil
}

func (p *pushes) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.got...)
}

// TestRefundAfterSpendIsDebt: the goods of a refunded purchase the player
// already spent cannot be taken back: the take is recorded as debt, the
// balance stays at 0 (never below), and the player gets @pay.Refunded.
func TestRefundAfterSpendIsDebt(t *testing.T) {
	stores(t, func(t *testing.T, st func() pay.Store) {
		game := newFakeGame()
		pub := &pushes{}
		tp := testprovider.New(secret, 0, nil)
		svc, err := pay.New(options(), pay.Deps{Store: st(), Game: game, Publisher: pub, Providers: []provider.Provider{tp}, Logger: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(svc.Close)
		svc.Run()
		f := &fixture{svc: svc, game: game, tp: tp, st: st()}
		pu := testprovider.Purchase{TransactionID: "tx-" + unique(t), ProductID: "gems_100"}
		rep, err := f.validate(t, "u1", tp.Sign(pu), "k")
		if err != nil || rep.Purchase.State != pay.StateGranted {
			t.Fatalf("validate = %v, %v", rep, err)
		}
		game.mu.Lock()
		game.balances["u1"]["coins"] = 30 // the player spent 70
		game.mu.Unlock()
		if rec := webhook(t, svc.HTTPHandler(), tp, testprovider.Notification{ID: "n-" + pu.TransactionID, Type: "revoke", Purchase: pu}, time.Now()); rec.Code != http.StatusOK {
			t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
		}
		testenv.CheckFor(t, waitLong, "@pay.Refunded", func() bool { return len(pub.list()) == 1 })
		if got := pub.list()[0]; got != "user/u1 pay.Refunded refunded" {
			t.Fatalf("push = %q", got)
		}
		_, _, takes, bal := game.snapshot()
		if takes != 0 || bal["u1"]["coins"] != 30 {
			t.Fatalf("takes %d, balances %v; want none taken, 30 left", takes, bal)
		}
		id := rep.Purchase.ID
		rows, err := f.st.Outbox(context.Background(), mustID(t, id))
		if err != nil || len(rows) != 2 || !rows[1].Done || !rows[1].Debt || rows[1].Kind != pay.KindTake {
			t.Fatalf("outbox = %+v, %v; want the take done as debt", rows, err)
		}
	})
}

func mustID(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	for _, c := range s {
		n = n*10 + int64(c-'0')
	}
	return n
}

// TestAbandonedKey: a key whose first request died with its process (its
// reservation older than the lease, without a reply) does not block the
// client's retry with it.
func TestAbandonedKey(t *testing.T) {
	stores(t, func(t *testing.T, st func() pay.Store) {
		f := newFixture(t, st(), nil)
		signed := f.tp.Sign(testprovider.Purchase{TransactionID: "tx-" + unique(t), ProductID: "gems_100"})
		if _, _, err := f.st.ReserveKey(context.Background(), "u1", "k", pay.RequestHash(testprovider.Name, signed), time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		rep, err := f.validate(t, "u1", signed, "k")
		if err != nil || rep.Purchase.State != pay.StateGranted {
			t.Fatalf("retry after an abandoned key = %v, %v", rep, err)
		}
		again, err := f.validate(t, "u1", signed, "k")
		if err != nil || again.String() != rep.String() {
			t.Fatalf("the key's reply = %v, %v; want %v", again, err, rep)
		}
	})
}
