package login_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/login/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) login.Store { return login.NewMemoryStore() })
}

// TestPostgresStore runs the contract against the real Postgres, in a
// schema of its own that the test migrates and drops.
func TestPostgresStore(t *testing.T) {
	s := pgStore(t)
	storetest.Run(t, func(*testing.T) login.Store { return s })
}

// TestMigrateConcurrent migrates one fresh schema from several goroutines
// at once (as several instances starting together do): all succeed, and
// the schema works.
func TestMigrateConcurrent(t *testing.T) {
	pool, schema := pgSchema(t) // created and migrated once
	if _, err := pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- login.MigrateSchema(ctx, pool, schema)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent MigrateSchema: %v", err)
		}
	}
	var version int
	var dirty bool
	if err := pool.QueryRow(ctx, "SELECT version, dirty FROM "+schema+"."+login.MigrationsTable).Scan(&version, &dirty); err != nil {
		t.Fatal(err)
	}
	if version != 1 || dirty {
		t.Fatalf("version %d dirty %v, want 1 clean", version, dirty)
	}
	s, err := login.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	a := login.Account{ID: login.NewAccountID(), Username: "after_migrate", PasswordHash: "x"}
	if err := s.Create(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := login.MigrateSchema(ctx, pool, schema); err != nil {
		t.Fatalf("migrating again: %v", err)
	}
}

// TestMigrateDefaultSchema runs Migrate on the real "login" schema, as
// `noon migrate` does: it is idempotent, whoever else ran it.
func TestMigrateDefaultSchema(t *testing.T) {
	pool, _ := pgSchema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 2; i++ {
		if err := login.Migrate(ctx, pool); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	s, err := login.NewPostgresStore(pool, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ByUsername(ctx, username(t)); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("ByUsername in the default schema: %v", err)
	}
}

func TestMigrateBadSchema(t *testing.T) {
	for _, schema := range []string{"", "Login", "login; DROP", "1abc"} {
		if err := login.MigrateSchema(context.Background(), nil, schema); err == nil {
			t.Errorf("MigrateSchema(%q) succeeded", schema)
		}
		if _, err := login.NewPostgresStore(nil, schema); schema != "" && err == nil {
			t.Errorf("NewPostgresStore(%q) succeeded", schema)
		}
	}
}

func TestNewAccountID(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := login.NewAccountID()
		if len(id) != 36 || id[14] != '7' || !(id[19] >= '8' && id[19] <= 'b') {
			t.Fatalf("%q is not a UUIDv7", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if id[:13] < prev[:min(13, len(prev))] {
			t.Fatalf("ids go back in time: %s after %s", id, prev)
		}
		prev = id
	}
}
