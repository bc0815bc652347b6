package pay_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/pay/provider"
	"github.com/noonhq/noon/services/pay/testprovider"
	"github.com/noonhq/noon/wire"
)

const secret = "test-secret-0123456789"

var uniq atomic.Int64

// unique returns a lowercase token no other test or run uses.
func unique(t testing.TB) string {
	return fmt.Sprintf("%s_%d", strings.ToLower(testenv.UniqueID(t)), uniq.Add(1))
}

// pgStore returns a Postgres store in a fresh schema (skipping without
// Postgres).
func pgStore(t testing.TB) *pay.PostgresStore {
	t.Helper()
	pool := testenv.Postgres(t)
	schema := "pay_" + unique(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pay.MigrateSchema(ctx, pool, schema); err != nil {
		t.Fatalf("MigrateSchema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	s, err := pay.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stores runs fn with each Store: memory, and Postgres.
func stores(t *testing.T, fn func(t *testing.T, st func() pay.Store)) {
	t.Run("memory", func(t *testing.T) {
		m := pay.NewMemoryStore()
		fn(t, func() pay.Store { return m })
	})
	t.Run("postgres", func(t *testing.T) {
		p := pgStore(t)
		fn(t, func() pay.Store { return p })
	})
}

// fakeGame is game's Grant and Spend: idempotent by key, all-or-nothing
// Spend, a ledger entry per applied change.
type fakeGame struct {
	mu       sync.Mutex
	keys     map[string]bool
	balances map[string]map[string]int64
	ledger   int // changes applied
	grants   int
	takes    int
	fail     atomic.Bool
}

func newFakeGame() *fakeGame {
	return &fakeGame{keys: map[string]bool{}, balances: map[string]map[string]int64{}}
}

func (g *fakeGame) Grant(_ context.Context, req *gamepb.GrantRequest) (*gamepb.ChangeReply, error) {
	if g.fail.Load() {
		return nil, wire.Errorf(wire.CodeUnavailable, "game down")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.keys[req.IdempotencyKey] {
		return &gamepb.ChangeReply{Replayed: true}, nil
	}
	g.keys[req.IdempotencyKey] = true
	b := g.balances[req.UserID]
	if b == nil {
		b = map[string]int64{}
		g.balances[req.UserID] = b
	}
	for k, v := range req.Currencies {
		b[k] += v
	}
	for k, v := range req.Items {
		b["item:"+k] += v
	}
	g.ledger++
	g.grants++
	return &gamepb.ChangeReply{}, nil
}

func (g *fakeGame) Spend(_ context.Context, req *gamepb.SpendRequest) (*gamepb.ChangeReply, error) {
	if g.fail.Load() {
		return nil, wire.Errorf(wire.CodeUnavailable, "game down")
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.keys[req.IdempotencyKey] {
		return &gamepb.ChangeReply{Replayed: true}, nil
	}
	b := g.balances[req.UserID]
	for k, v := range req.Currencies {
		if b[k] < v {
			return nil, wire.Errorf(wire.CodeConflict, "insufficient %s", k)
		}
	}
	g.keys[req.IdempotencyKey] = true
	for k, v := range req.Currencies {
		b[k] -= v
	}
	g.ledger++
	g.takes++
	return &gamepb.ChangeReply{}, nil
}

func (g *fakeGame) snapshot() (ledger, grants, takes int, bal map[string]map[string]int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	bal = map[string]map[string]int64{}
	for u, b := range g.balances {
		bal[u] = maps.Clone(b)
	}
	return g.ledger, g.grants, g.takes, bal
}

// fixture is a Service over a store and a fake game.
type fixture struct {
	svc  *pay.Service
	game *fakeGame
	tp   *testprovider.Provider
	st   pay.Store
}

func options() pay.Options {
	o := pay.NewOptions()
	o.HTTPAddr = ""
	o.RetryInterval = 20 * time.Millisecond
	o.TestProvider = pay.TestProviderOptions{Enabled: true, Secret: secret}
	o.Products = []pay.Product{{ID: "gems_100", Currencies: map[string]int64{"coins": 100}}, {ID: "pack", Currencies: map[string]int64{"coins": 5}, Items: map[string]int64{"sword": 1}}}
	return o
}

// newFixture makes a Service over st with game (nil: a new fake game).
func newFixture(t *testing.T, st pay.Store, game *fakeGame) *fixture {
	t.Helper()
	if game == nil {
		game = newFakeGame()
	}
	tp := testprovider.New(secret, 0, nil)
	svc, err := pay.New(options(), pay.Deps{Store: st, Game: game, Providers: []provider.Provider{tp}, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return &fixture{svc: svc, game: game, tp: tp, st: st}
}

// session is a logged-in client's session.
func session(user string) *services.Session {
	return services.NewSession(&platformpb.Session{Id: "s-" + user, UserId: user})
}

// call runs method on the fixture's handlers with sess.
func (f *fixture) call(t *testing.T, sess *services.Session, method string, req []byte) ([]byte, error) {
	t.Helper()
	h, ok := f.svc.Handlers()[method]
	if !ok {
		t.Fatalf("no handler %s", method)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return h(ctx, sess, req)
}
