package pay_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/pay/testprovider"
	"github.com/noonhq/noon/wire"
)

const waitLong = 10 * time.Second

// validate calls pay.Validate as user.
func (f *fixture) validate(t *testing.T, user string, signed []byte, key string) (*paypb.ValidateReply, error) {
	t.Helper()
	b, err := thriftx.Marshal(&paypb.ValidateRequest{Provider: testprovider.Name, Signed: signed, IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.call(t, session(user), payrpc.MethodValidate, b)
	if err != nil {
		return nil, err
	}
	var rep paypb.ValidateReply
	if err := thriftx.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep, nil
}

// list returns user's purchases.
func (f *fixture) list(t *testing.T, user string) []*paypb.Purchase {
	t.Helper()
	b, _ := thriftx.Marshal(&paypb.ListRequest{})
	out, err := f.call(t, session(user), payrpc.MethodList, b)
	if err != nil {
		t.Fatal(err)
	}
	var rep paypb.ListReply
	if err := thriftx.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	return rep.Purchases
}

func TestValidateConcurrentOnce(t *testing.T) {
	stores(t, func(t *testing.T, st func() pay.Store) {
		f := newFixture(t, st(), nil)
		signed := f.tp.Sign(testprovider.Purchase{TransactionID: "tx-" + unique(t), ProductID: "gems_100"})
		const n = 50
		var wg sync.WaitGroup
		sameKey := make([]*paypb.ValidateReply, n)
		errs := make([]error, 2*n)
		for i := range n {
			wg.Add(2)
			go func() {
				defer wg.Done()
				sameKey[i], errs[i] = f.validate(t, "u1", signed, "same-key")
			}()
			go func() {
				defer wg.Done()
				_, errs[n+i] = f.validate(t, "u1", signed, fmt.Sprintf("key-%d", i))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		for i, r := range sameKey {
			if r.String() != sameKey[0].String() {
				t.Errorf("same key, reply %d = %v, want the first reply %v", i, r, sameKey[0])
			}
		}
		if ps := f.list(t, "u1"); len(ps) != 1 {
			t.Fatalf("purchases = %v, want one", ps)
		}
		testenv.CheckFor(t, waitLong, "the grant", func() bool { _, g, _, _ := f.game.snapshot(); return g == 1 })
		ledger, grants, _, bal := f.game.snapshot()
		if ledger != 1 || grants != 1 || bal["u1"]["coins"] != 100 {
			t.Fatalf("game: %d ledger entries, %d grants, balances %v; want one grant of 100 coins", ledger, grants, bal)
		}
		// The same key with another request: a clear conflict.
		other := f.tp.Sign(testprovider.Purchase{TransactionID: "tx-other-" + unique(t), ProductID: "gems_100"})
		if _, err := f.validate(t, "u1", other, "same-key"); wire.CodeOf(err) != wire.CodeConflict || !strings.Contains(err.Error(), "idempotency_key") {
			t.Fatalf("reused key: %v, want conflict naming idempotency_key", err)
		}
		// Another player replaying the purchase gets nothing.
		if _, err := f.validate(t, "u2", signed, "k"); wire.CodeOf(err) != wire.CodeConflict {
			t.Fatalf("another player's purchase: %v, want conflict", err)
		}
		if ledger, _, _, _ := f.game.snapshot(); ledger != 1 {
			t.Fatalf("ledger = %d after replays, want 1", ledger)
		}
	})
}

func TestValidateStatusAndSeenBefore(t *testing.T) {
	stores(t, func(t *testing.T, st func() pay.Store) {
		f := newFixture(t, st(), nil)
		signed := f.tp.Sign(testprovider.Purchase{TransactionID: "tx-" + unique(t), ProductID: "pack", Quantity: 2})
		rep, err := f.validate(t, "u1", signed, "a")
		if err != nil {
			t.Fatal(err)
		}
		p := rep.Purchase
		if rep.SeenBefore || p.State != pay.StateGranted || p.Currencies["coins"] != 10 || p.Items["sword"] != 2 || p.Quantity != 2 {
			t.Fatalf("first validate = %v", rep)
		}
		rep2, err := f.validate(t, "u1", signed, "b")
		if err != nil || !rep2.SeenBefore {
			t.Fatalf("second validate = %v, %v; want seen_before", rep2, err)
		}
		b, _ := thriftx.Marshal(&paypb.StatusRequest{ID: p.ID})
		out, err := f.call(t, session("u1"), payrpc.MethodStatus, b)
		if err != nil {
			t.Fatal(err)
		}
		var sr paypb.StatusReply
		if err := thriftx.Unmarshal(out, &sr); err != nil || sr.Purchase.TransactionID != p.TransactionID {
			t.Fatalf("status = %v, %v", sr.Purchase, err)
		}
		if _, err := f.call(t, session("u2"), payrpc.MethodStatus, b); wire.CodeOf(err) != wire.CodeNotFound {
			t.Fatalf("another's status: %v, want not_found", err)
		}
		if _, err := f.call(t, session(""), payrpc.MethodValidate, b); wire.CodeOf(err) != wire.CodeUnauthenticated {
			t.Fatalf("without login: %v, want unauthenticated", err)
		}
	})
}

func TestBadInputRecordsNothing(t *testing.T) {
	stores(t, func(t *testing.T, st func() pay.Store) {
		f := newFixture(t, st(), nil)
		good := f.tp.Sign(testprovider.Purchase{TransactionID: "tx-" + unique(t), ProductID: "gems_100"})
		forged := testprovider.New("another-secret-0123456", 0, nil).Sign(testprovider.Purchase{TransactionID: "tx-f", ProductID: "gems_100"})
		for name, tc := range map[string]struct {
			provider string
			signed   []byte
			want     string
		}{
			"unknown provider": {"steam", good, "unknown provider"},
			"unknown product":  {testprovider.Name, f.tp.Sign(testprovider.Purchase{TransactionID: "tx-p", ProductID: "nope"}), "unknown product"},
			"bad signature":    {testprovider.Name, forged, "bad signature"},
			"tampered":         {testprovider.Name, append([]byte("x"), good...), "bad signature"},
			"over the limit":   {testprovider.Name, bytes.Repeat([]byte("a"), pay.DefaultMaxPayload+1), "at most"},
			"malformed":        {testprovider.Name, []byte("nodot"), "malformed"},
		} {
			b, _ := thriftx.Marshal(&paypb.ValidateRequest{Provider: tc.provider, Signed: tc.signed, IdempotencyKey: "k-" + name})
			_, err := f.call(t, session("u1"), payrpc.MethodValidate, b)
			if wire.CodeOf(err) != wire.CodeBadRequest || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want bad_request with %q", name, err, tc.want)
			}
		}
		if ps := f.list(t, "u1"); len(ps) != 0 {
			t.Fatalf("purchases after bad input = %v", ps)
		}
		if ledger, _, _, _ := f.game.snapshot(); ledger != 0 {
			t.Fatalf("ledger = %d after bad input", ledger)
		}
		// A refused request releases its key: a good request may use it.
		if _, err := f.validate(t, "u1", good, "k-bad signature"); err != nil {
			t.Fatalf("a released key: %v", err)
		}
	})
}

// webhook posts a signed test notification to h at t.
func webhook(t *testing.T, h http.Handler, tp *testprovider.Provider, n testprovider.Notification, at time.Time) *httptest.ResponseRecorder {
	t.Helper()
	body, sig := tp.SignWebhook(n, at)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/test", bytes.NewReader(body))
	req.Header.Set(testprovider.SignatureHeader, sig)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestWebhookRefundTwiceAndOutOfOrder(t *testing.T) {
	stores(t, func(t *testing.T, st func() pay.Store) {
		f := newFixture(t, st(), nil)
		f.svc.Run()
		h := f.svc.HTTPHandler()
		// In order: purchase, refund twice.
		tx := "tx-" + unique(t)
		pu := testprovider.Purchase{TransactionID: tx, ProductID: "gems_100"}
		if _, err := f.validate(t, "u1", f.tp.Sign(pu), "k1"); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			rec := webhook(t, h, f.tp, testprovider.Notification{ID: "n-" + tx, Type: "refund", Purchase: pu}, time.Now())
			if rec.Code != http.StatusOK {
				t.Fatalf("delivery %d: %d %s", i, rec.Code, rec.Body)
			}
			if want := []string{"new", "duplicate"}[i]; !strings.Contains(rec.Body.String(), want) {
				t.Fatalf("delivery %d: %s, want %s", i, rec.Body, want)
			}
		}
		testenv.CheckFor(t, waitLong, "the take", func() bool { _, _, tk, _ := f.game.snapshot(); return tk == 1 })
		_, grants, takes, bal := f.game.snapshot()
		if grants != 1 || takes != 1 || bal["u1"]["coins"] != 0 {
			t.Fatalf("grants %d takes %d balances %v; want one of each, 0 coins", grants, takes, bal)
		}
		if ps := f.list(t, "u1"); len(ps) != 1 || ps[0].State != pay.StateRefunded {
			t.Fatalf("purchases = %v, want one refunded", ps)
		}
		// Out of order: the refund first, then the client validates.
		tx2 := "tx2-" + unique(t)
		pu2 := testprovider.Purchase{TransactionID: tx2, ProductID: "gems_100"}
		if rec := webhook(t, h, f.tp, testprovider.Notification{ID: "n-" + tx2, Type: "refund", Purchase: pu2}, time.Now()); rec.Code != http.StatusOK {
			t.Fatalf("refund first: %d %s", rec.Code, rec.Body)
		}
		rep, err := f.validate(t, "u2", f.tp.Sign(pu2), "k2")
		if err != nil {
			t.Fatal(err)
		}
		if !rep.SeenBefore || rep.Purchase.State != pay.StateRefunded {
			t.Fatalf("validate after refund = %v, want seen_before, refunded", rep)
		}
		if _, g, tk, bal := f.game.snapshot(); g != 1 || tk != 1 || bal["u2"]["coins"] != 0 {
			t.Fatalf("after an early refund: grants %d takes %d balances %v", g, tk, bal)
		}
	})
}

func TestWebhookRefused(t *testing.T) {
	f := newFixture(t, pay.NewMemoryStore(), nil)
	h := f.svc.HTTPHandler()
	pu := testprovider.Purchase{TransactionID: "tx", ProductID: "gems_100"}
	n := testprovider.Notification{ID: "n1", Type: "refund", Purchase: pu}
	if rec := webhook(t, h, f.tp, n, time.Now().Add(-301*time.Second)); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "expired") {
		t.Fatalf("stale: %d %s", rec.Code, rec.Body)
	}
	if rec := webhook(t, h, testprovider.New("another-secret-0123456", 0, nil), n, time.Now()); rec.Code != http.StatusBadRequest {
		t.Fatalf("forged: %d %s", rec.Code, rec.Body)
	}
	req := httptest.NewRequest(http.MethodPost, "/webhooks/test", bytes.NewReader(bytes.Repeat([]byte("a"), pay.DefaultMaxPayload+1)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("too large: %d", rec.Code)
	}
	req = httptest.NewRequest(http.MethodPost, "/webhooks/nope", strings.NewReader("{}"))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("unknown provider: %d", rec.Code)
	}
	// Nothing was recorded: the same notification, good now, is new.
	if rec := webhook(t, h, f.tp, n, time.Now()); !strings.Contains(rec.Body.String(), "new") {
		t.Fatalf("good delivery after refusals: %d %s", rec.Code, rec.Body)
	}
}

// TestCrashBetweenRecordAndGrant stops a Service after the purchase
// record and before its delivery, then starts another over the same
// store: the grant happens exactly once.
func TestCrashBetweenRecordAndGrant(t *testing.T) {
	stores(t, func(t *testing.T, st func() pay.Store) {
		game := newFakeGame()
		first := newFixture(t, st(), game)
		first.svc.SetAfterRecord(func() error { return errors.New("crashed") })
		signed := first.tp.Sign(testprovider.Purchase{TransactionID: "tx-" + unique(t), ProductID: "gems_100"})
		if _, err := first.validate(t, "u1", signed, "k"); err == nil {
			t.Fatal("the crashed validate succeeded")
		}
		first.svc.Close()
		if l, _, _, _ := game.snapshot(); l != 0 {
			t.Fatalf("ledger = %d before the restart", l)
		}
		// A new instance on the same store delivers the pending row; game
		// down at first, so the worker retries.
		game.fail.Store(true)
		second := newFixture(t, st(), game)
		second.svc.Run()
		third := newFixture(t, st(), game) // a second instance racing it
		third.svc.Run()
		game.fail.Store(false)
		testenv.CheckFor(t, waitLong, "the grant after the restart", func() bool {
			ps := second.list(t, "u1")
			return len(ps) == 1 && ps[0].State == pay.StateGranted
		})
		// The client's retry with its key: seen before, nothing more.
		rep, err := second.validate(t, "u1", signed, "k")
		if err != nil || !rep.SeenBefore {
			t.Fatalf("retry = %v, %v", rep, err)
		}
		if l, g, _, bal := game.snapshot(); l != 1 || g != 1 || bal["u1"]["coins"] != 100 {
			t.Fatalf("ledger %d grants %d balances %v; want exactly one grant", l, g, bal)
		}
	})
}

func TestAdminReplayAndList(t *testing.T) {
	f := newFixture(t, pay.NewMemoryStore(), nil)
	f.game.fail.Store(true)
	pu := testprovider.Purchase{TransactionID: "tx-r", ProductID: "gems_100"}
	rep, err := f.validate(t, "u1", f.tp.Sign(pu), "k")
	if err != nil || rep.Purchase.State != pay.StateGranting {
		t.Fatalf("validate with game down = %v, %v; want granting", rep, err)
	}
	f.game.fail.Store(false)
	admin := services.NewSession(&platformpb.Session{}) // an operator on a plain link
	for _, ref := range []string{"test:tx-r", rep.Purchase.ID} {
		b, _ := thriftx.Marshal(&paypb.ReplayRequest{Ref: ref})
		out, err := f.call(t, admin, payrpc.MethodReplay, b)
		if err != nil {
			t.Fatal(err)
		}
		var rr paypb.ReplayReply
		if err := thriftx.Unmarshal(out, &rr); err != nil || !rr.Delivered || rr.Purchase.State != pay.StateGranted {
			t.Fatalf("replay %s = %v, %v", ref, &rr, err)
		}
	}
	if l, _, _, _ := f.game.snapshot(); l != 1 {
		t.Fatalf("ledger = %d after two replays, want 1", l)
	}
	b, _ := thriftx.Marshal(&paypb.AdminListRequest{UserID: "u1"})
	out, err := f.call(t, admin, payrpc.MethodAdminList, b)
	var lr paypb.ListReply
	if err != nil || thriftx.Unmarshal(out, &lr) != nil || len(lr.Purchases) != 1 {
		t.Fatalf("admin list = %v, %v", lr.Purchases, err)
	}
	if _, err := f.call(t, session("u1"), payrpc.MethodReplay, b); wire.CodeOf(err) != wire.CodeUnauthenticated {
		t.Fatalf("a client's replay: %v", err)
	}
}
