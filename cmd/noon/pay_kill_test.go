package main

// Exactly-once grant across real process deaths: yellow, the broker and
// login run in process; game and pay run as `noon service` processes on
// the real Postgres, and the test SIGKILLs them.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// payKillSecret is the test provider's secret of the pay processes.
const payKillSecret = "kill-test-secret-0123456789"

// TestPayKilledBeforeGrant: with game down, a validation records the
// purchase and its outbox row but cannot grant; pay is SIGKILLed, game
// comes back, and a new pay process on the same database grants the
// purchase: one ledger entry for its key. Then game is SIGKILLed while
// clients validate new purchases back to back and started again: each
// purchase has exactly one ledger entry.
func TestPayKilledBeforeGrant(t *testing.T) {
	pool := testenv.Postgres(t)
	testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	u := strings.ToLower(testenv.UniqueID(t))
	gameSchema, paySchema := "kgame_"+u, "kpay_"+u
	if err := game.MigrateSchema(ctx, pool, gameSchema); err != nil {
		t.Fatal(err)
	}
	if err := pay.MigrateSchema(ctx, pool, paySchema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, s := range []string{gameSchema, paySchema} {
			if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", s, err)
			}
		}
	})

	// Plain links on loopback: the processes and the in-process platform
	// share no CA.
	opts := platformtest.Options(t, login.Module)
	opts.TLS = nil
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = ""
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	p := platformtest.Start(t, opts)

	common := []string{"-config", "../../configs/cluster.yaml",
		"-set", "postgres.url=" + testenv.PostgresURL(),
		"-set", "redis.addrs=" + redisAddr(t),
		"-set", "yellows=" + p.Yellow.RouterEndpoint(),
		"-admin", "127.0.0.1:0"}
	startGame := func(name string) *proc {
		return startDaemon(t, name, append([]string{"service", "game"}, append(append([]string{}, common...),
			"-set", "services.game.postgres_schema="+gameSchema,
			"-set", "services.game.heartbeat=100ms")...)...)
	}
	startPay := func(name string) *proc {
		return startDaemon(t, name, append([]string{"service", "pay"}, append(append([]string{}, common...),
			"-set", "services.pay.postgres_schema="+paySchema,
			"-set", "services.pay.heartbeat=100ms",
			"-set", "services.pay.retry_interval=50ms",
			"-set", "services.pay.http_addr=",
			"-set", "services.pay.test_provider={enabled: true, secret: "+payKillSecret+"}",
			"-set", "services.pay.products=[{id: gems_100, currencies: {coins: 100}}]")...)...)
	}
	kill := func(d *proc) {
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		<-d.done
	}
	routable := func(svcs ...string) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := p.Broker.WaitRoutable(wctx, svcs...); err != nil {
			t.Fatalf("%v not routable: %v", svcs, err)
		}
	}

	g1 := startGame("game-1")
	pay1 := startPay("pay-1")
	routable("game", "pay")

	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	name := "kill" + u
	if len(name) > 24 {
		name = name[:24]
	}
	if err := c.CallThrift(ctx, loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: name, Password: "password1"}, &loginpb.RegisterReply{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CallThrift(ctx, loginrpc.MethodLogin, &loginpb.LoginRequest{Username: name, Password: "password1"}, &loginpb.LoginReply{}); err != nil {
		t.Fatal(err)
	}
	tp := testprovider.New(payKillSecret, 0, nil)
	pc := payrpc.NewClient(c.CallThrift)
	gc := gamerpc.NewClient(c.CallThrift)

	// Game down: the purchase is recorded, its grant stays pending.
	kill(g1)
	tx := "tx-" + u
	var first *paypb.ValidateReply
	testenv.CheckFor(t, 30*time.Second, "a validation with game down", func() bool {
		r, err := pc.Validate(ctx, &paypb.ValidateRequest{Provider: testprovider.Name, Signed: tp.Sign(testprovider.Purchase{TransactionID: tx, ProductID: "gems_100"}), IdempotencyKey: "k1"})
		first = r
		return err == nil
	})
	if first.Purchase.State == pay.StateGranted {
		t.Fatalf("purchase granted with game down: %v", first.Purchase)
	}
	pending := func() int {
		var n int
		q := "SELECT count(*) FROM " + pgx.Identifier{paySchema, "outbox"}.Sanitize() + " WHERE done_at IS NULL"
		if err := pool.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := pending(); n != 1 {
		t.Fatalf("pending outbox rows = %d; want 1", n)
	}

	// pay dies between the record and the grant; game comes back, then a
	// new pay process drains the outbox.
	kill(pay1)
	g2 := startGame("game-2")
	routable("game")
	startPay("pay-2")
	routable("pay")
	testenv.CheckFor(t, 30*time.Second, "the outbox drained", func() bool { return pending() == 0 })
	ledger := func() map[string]int {
		t.Helper()
		keys := map[string]int{}
		cursor := ""
		for {
			r, err := gc.ListLedger(ctx, &gamepb.ListLedgerRequest{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range r.Entries {
				keys[e.IdempotencyKey]++
			}
			if r.NextCursor == "" || len(r.Entries) == 0 {
				return keys
			}
			cursor = r.NextCursor
		}
	}
	if keys := ledger(); len(keys) != 1 || keys["pay:test:"+tx] != 1 {
		t.Fatalf("ledger keys = %v; want one entry for pay:test:%s", keys, tx)
	}

	// game dies while grants are in flight: 8 clients validate new
	// purchases back to back, game is SIGKILLed once some are granted,
	// and the clients stop only after the kill.
	var (
		mu        sync.Mutex
		attempted []string
		wg        sync.WaitGroup
		next      atomic.Int64
	)
	stop := make(chan struct{})
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%s-%d", tx, next.Add(1))
				mu.Lock()
				attempted = append(attempted, id)
				mu.Unlock()
				// The reply may be an error when game dies under the
				// call; the record, if made, is granted by the outbox.
				_, _ = pc.Validate(ctx, &paypb.ValidateRequest{Provider: testprovider.Name, Signed: tp.Sign(testprovider.Purchase{TransactionID: id, ProductID: "gems_100"}), IdempotencyKey: "g" + id})
			}
		}()
	}
	var before int
	testenv.CheckFor(t, 30*time.Second, "grants in flight", func() bool { before = len(ledger()) - 1; return before >= 5 })
	kill(g2)
	close(stop)
	wg.Wait()
	t.Logf("game SIGKILLed with %d purchases granted; %d attempted in all", before, len(attempted))
	startGame("game-3")
	routable("game")
	// Validate again what may have failed: replays grant nothing new.
	for _, id := range attempted {
		testenv.CheckFor(t, 30*time.Second, "a validation", func() bool {
			_, err := pc.Validate(ctx, &paypb.ValidateRequest{Provider: testprovider.Name, Signed: tp.Sign(testprovider.Purchase{TransactionID: id, ProductID: "gems_100"}), IdempotencyKey: "g" + id})
			return err == nil
		})
	}
	testenv.CheckFor(t, 30*time.Second, "the outbox drained", func() bool { return pending() == 0 })
	keys := ledger()
	if len(keys) != len(attempted)+1 {
		t.Fatalf("ledger has %d keys; want %d: %v", len(keys), len(attempted)+1, keys)
	}
	for _, id := range attempted {
		if keys["pay:test:"+id] != 1 {
			t.Errorf("purchase %s has %d ledger entries; want 1", id, keys["pay:test:"+id])
		}
	}
	for k, c := range keys {
		if c != 1 {
			t.Errorf("ledger key %s has %d entries; want 1", k, c)
		}
	}
}
