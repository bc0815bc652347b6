package stores

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"
	"strconv"
	"time"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// SchemaName is the form of a schema a service's tables live in: a plain
// identifier, so it needs no quoting in search_path.
var SchemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Migrate creates schema if needed and applies the SQL migrations in dir of
// migrations to it with golang-migrate, which records the version in
// schema.table (each service names its own table, so services sharing a
// schema keep their versions and advisory locks apart). It is safe to run
// from many processes at once: creating the schema and migrating each hold
// a Postgres advisory lock, so one runs the migrations and the others then
// find nothing to do. A migration that failed half-way leaves the schema
// "dirty" and Migrate failing until someone fixes it by hand (see
// golang-migrate's `force`).
//
// Migrate opens its own connection with pool's configuration and
// search_path = schema. It waits for the lock at most until ctx's deadline,
// and stops between migrations when ctx is done.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema, table string, migrations fs.FS, dir string) error {
	if !SchemaName.MatchString(schema) {
		return fmt.Errorf("migrate: schema must match [a-z_][a-z0-9_]{0,62}, got %q", schema)
	}
	if err := createSchema(ctx, pool, schema); err != nil {
		return fmt.Errorf("migrate: create schema %s: %w", schema, err)
	}
	cfg := pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["search_path"] = schema // a plain identifier, see SchemaName
	if dl, ok := ctx.Deadline(); ok {
		ms := max(time.Until(dl).Milliseconds(), 1)
		cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(ms, 10)
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(ms, 10)
	}
	db := stdlib.OpenDB(*cfg)
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{MigrationsTable: table, SchemaName: schema})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	src, err := iofs.New(migrations, dir)
	if err != nil {
		_ = drv.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		_ = src.Close()
		_ = drv.Close()
		return fmt.Errorf("migrate: %w", err)
	}
	defer m.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-stop:
		}
	}()
	err = m.Up()
	if errors.Is(err, migrate.ErrNoChange) {
		err = nil
	}
	if err == nil {
		err = ctx.Err() // stopped early
	}
	if err != nil {
		return fmt.Errorf("migrate schema %s: %w", schema, err)
	}
	return nil
}

// createSchema creates schema unless it exists. Concurrent CREATE SCHEMA IF
// NOT EXISTS can fail with a unique violation, so it holds a transaction
// advisory lock; an existing schema needs no CREATE privilege.
func createSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	var exists bool
	const q = `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`
	if err := pool.QueryRow(ctx, q, schema).Scan(&exists); err != nil || exists {
		return err
	}
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		h := fnv.New64a()
		h.Write([]byte("noon.create_schema." + schema))
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(h.Sum64())); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
		return err
	})
}
