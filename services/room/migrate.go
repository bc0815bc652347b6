package room

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
)

// DefaultSchema is the Postgres schema the room service's tables live in.
const DefaultSchema = "room"

// MigrationsTable is the table, in the service's schema, where
// golang-migrate records the schema's version; named for the service so
// that each service's migrations (and their advisory lock, derived from the
// table's name) stay apart even in a shared schema.
const MigrationsTable = "room_schema_migrations"

// schemaName is what a schema name may be (see stores.SchemaName).
var schemaName = stores.SchemaName

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
	if err := stores.Migrate(ctx, pool, schema, MigrationsTable, migrationFS, "migrations"); err != nil {
		return fmt.Errorf("room: %w", err)
	}
	return nil
}
