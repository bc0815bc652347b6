package game_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/services/game"
)

var uniq atomic.Int64

// unique returns a lowercase token no other test or run uses, usable in
// user ids, Redis prefixes and schema names.
func unique(t testing.TB) string {
	return fmt.Sprintf("%s_%d", strings.ToLower(testenv.UniqueID(t)), uniq.Add(1))
}

// pgSchema migrates a fresh schema in the test Postgres (skipping without
// one) and drops it when the test ends.
func pgSchema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.Postgres(t)
	schema := "game_" + unique(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := game.MigrateSchema(ctx, pool, schema); err != nil {
		t.Fatalf("MigrateSchema: %v", err)
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
func pgStore(t testing.TB) *game.PostgresStore {
	t.Helper()
	pool, schema := pgSchema(t)
	s, err := game.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
