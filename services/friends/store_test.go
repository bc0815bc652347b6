package friends_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/services/friends"
	"github.com/noonhq/noon/services/friends/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) friends.Store { return friends.NewMemoryStore() })
}

// TestPostgresStore runs the contract against the real Postgres, in a
// schema of its own that the test migrates and drops.
func TestPostgresStore(t *testing.T) {
	s := pgStore(t)
	storetest.Run(t, func(*testing.T) friends.Store { return s })
}

// pgSchema returns the test Postgres and a fresh schema migrated with the
// module's migrations, dropped when the test ends.
func pgSchema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.Postgres(t)
	schema := "friends_" + testenv.UniqueID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := friends.Migrations
	if err := stores.Migrate(ctx, pool, schema, m.Table, m.FS, m.Dir); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return pool, schema
}

// pgStore returns a Postgres store in a fresh schema.
func pgStore(t testing.TB) friends.Store {
	t.Helper()
	pool, schema := pgSchema(t)
	s, err := friends.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
