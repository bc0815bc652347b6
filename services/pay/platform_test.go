package pay_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noonhq/noon/edge/client"
	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/pay/testprovider"
)

// TestValidateOnPlatform: login, game and pay on the platform with mutual
// TLS and real Postgres (a fresh schema each); a client through the
// broker validates one purchase 50 times at once, half with one key and
// half with keys of their own: one purchase, and one entry in the
// player's ledger in the game service.
func TestValidateOnPlatform(t *testing.T) {
	pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u := unique(t)
	schemas := map[string]string{"login": "plogin_" + u, "game": "pgame_" + u, "pay": "ppay_" + u}
	for _, m := range []func(context.Context) error{
		func(ctx context.Context) error { return login.MigrateSchema(ctx, pool, schemas["login"]) },
		func(ctx context.Context) error { return game.MigrateSchema(ctx, pool, schemas["game"]) },
		func(ctx context.Context) error { return pay.MigrateSchema(ctx, pool, schemas["pay"]) },
	} {
		if err := m(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range schemas {
			if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", s, err)
			}
		}
	})

	opts := platformtest.Options(t, login.Module, game.Module, pay.Module)
	opts.Env.Postgres = pool
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr, lo.PostgresSchema = "", schemas["login"]
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	opts.Sections[game.Name].(*services.Config[game.Options]).Service.PostgresSchema = schemas["game"]
	po := &opts.Sections[pay.Name].(*services.Config[pay.Options]).Service
	po.PostgresSchema, po.HTTPAddr = schemas["pay"], "127.0.0.1:0"
	po.TestProvider = pay.TestProviderOptions{Enabled: true, Secret: secret}
	po.Products = []pay.Product{{ID: "gems_100", Currencies: map[string]int64{"coins": 100}}}
	p := platformtest.Start(t, opts)

	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := "ann" + fmt.Sprint(uniq.Add(1))
	var reg loginpb.RegisterReply
	if err := c.CallThrift(ctx, loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: name, Password: "password1"}, &reg); err != nil {
		t.Fatal(err)
	}
	if err := c.CallThrift(ctx, loginrpc.MethodLogin, &loginpb.LoginRequest{Username: name, Password: "password1"}, &loginpb.LoginReply{}); err != nil {
		t.Fatal(err)
	}
	signed := testprovider.New(secret, 0, nil).Sign(testprovider.Purchase{TransactionID: "tx-" + u, ProductID: "gems_100"})
	pc := payrpc.NewClient(c.CallThrift)
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		key := "same"
		if i%2 == 1 {
			key = fmt.Sprintf("k%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = pc.Validate(ctx, &paypb.ValidateRequest{Provider: testprovider.Name, Signed: signed, IdempotencyKey: key})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("validate %d: %v", i, err)
		}
	}
	list, err := pc.List(ctx, &paypb.ListRequest{})
	if err != nil || len(list.Purchases) != 1 {
		t.Fatalf("purchases = %v, %v; want one", list, err)
	}
	testenv.CheckFor(t, 15*time.Second, "the grant", func() bool {
		st, err := pc.Status(ctx, &paypb.StatusRequest{ID: list.Purchases[0].ID})
		return err == nil && st.Purchase.State == pay.StateGranted
	})
	// GetPaymentStatus, pandaparty's name, is pay.Status.
	var st paypb.StatusReply
	if err := c.CallThrift(ctx, "GetPaymentStatus", &paypb.StatusRequest{ID: list.Purchases[0].ID}, &st); err != nil || st.Purchase.State != pay.StateGranted {
		t.Fatalf("GetPaymentStatus = %v, %v", st.Purchase, err)
	}
	led, err := gamerpc.NewClient(c.CallThrift).ListLedger(ctx, &gamepb.ListLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(led.Entries) != 1 || led.Entries[0].Delta != 100 || led.Entries[0].IdempotencyKey != "pay:test:tx-"+u {
		t.Fatalf("ledger = %v; want one entry of +100 coins", led.Entries)
	}
}
