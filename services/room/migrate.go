package room

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
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

// DefaultSchema is the Postgres schema the room service's tables live in.
const DefaultSchema = "room"

// MigrationsTable is the table, in the service's schema, where
// golang-migrate records the schema's version; named for the service so
// that each service's migrations (and their advisory lock, derived from the
// table's name) stay apart even in a shared schema.
const MigrationsTable = "room_schema_migrations"

// schemaName is what a schema name may be: a plain lower-case identifier,
// so it needs no quoting in search_path.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrate brings the room service's schema (DefaultSchema) up to date; see
// MigrateSchema.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return MigrateSchema(ctx, pool, DefaultSchema)
}

// MigrateSchema creates schema if needed and applies the embedded
// migrations (services/room/migrations) to it with golang-migrate, which
// records the version in schema.room_schema_migrations. It is safe to run
// from many processes at once: creating the schema and migrating each hold
// a Postgres advisory lock. A migration that failed half-way leaves the
// schema "dirty" until fixed by hand (golang-migrate's `force`).
//
// It opens its own connection with pool's configuration and search_path =
// schema, waits for the lock at most until ctx's deadline, and stops
// between migrations when ctx is done.
func MigrateSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if !schemaName.MatchString(schema) {
		return fmt.Errorf("room: migrate: schema must match [a-z_][a-z0-9_]{0,62}, got %q", snippet(schema))
	}
	if err := createSchema(ctx, pool, schema); err != nil {
		return fmt.Errorf("room: migrate: create schema %s: %w", schema, err)
	}
	cfg := pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["search_path"] = schema
	if dl, ok := ctx.Deadline(); ok {
		ms := max(time.Until(dl).Milliseconds(), 1)
		cfg.RuntimeParams["lock_timeout"] = strconv.FormatInt(ms, 10)
		cfg.RuntimeParams["statement_timeout"] = strconv.FormatInt(ms, 10)
	}
	db := stdlib.OpenDB(*cfg)
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{
		MigrationsTable: MigrationsTable,
		SchemaName:      schema,
	})
	if err != nil {
		_ = db.Close()
		return fmt.Errorf("room: migrate: %w", err)
	}
	src, err := iofs.New(migrationFS, "migrations")
	if err != nil {
		_ = drv.Close()
		return fmt.Errorf("room: migrate: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		_ = src.Close()
		_ = drv.Close()
		return fmt.Errorf("room: migrate: %w", err)
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
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("room: migrate schema %s: %w", schema, err)
	}
	return nil
}

// createSchema creates schema unless it exists, under a transaction
// advisory lock (concurrent CREATE SCHEMA IF NOT EXISTS can fail with a
// unique violation); an existing schema needs no CREATE privilege.
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
