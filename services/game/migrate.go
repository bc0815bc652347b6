package game

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
)

// MigrationsTable is the table, in the service's schema, where
// golang-migrate records the schema's version; named for the service so
// that each service's migrations (and their advisory lock, derived from the
// table's name) stay apart even in a shared schema.
const MigrationsTable = "game_schema_migrations"

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrate brings the game service's schema (DefaultSchema) up to date; see
// MigrateSchema.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return MigrateSchema(ctx, pool, DefaultSchema)
}

// MigrateSchema creates schema if needed and applies the embedded
// migrations (services/game/migrations) to it with golang-migrate, which
// records the version in schema.game_schema_migrations. It is safe to run
// from many processes at once: creating the schema and migrating each hold
// a Postgres advisory lock.
func MigrateSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if err := stores.Migrate(ctx, pool, schema, MigrationsTable, migrationFS, "migrations"); err != nil {
		return fmt.Errorf("game: %w", err)
	}
	return nil
}
