package login

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
)

// MigrationsTable is the table, in the service's schema, where
// golang-migrate records the schema's version. It is named for the service
// so that each service's migrations (and their advisory lock, derived from
// the table's name) stay apart even in a shared schema.
const MigrationsTable = "login_schema_migrations"

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrate brings the login service's schema (DefaultSchema) up to date; see
// MigrateSchema.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return MigrateSchema(ctx, pool, DefaultSchema)
}

// MigrateSchema creates schema if needed and applies the embedded
// migrations (services/login/migrations) to it with golang-migrate, which
// records the version in schema.MigrationsTable. It is safe to run from
// many processes at once: creating the schema and migrating each hold a
// Postgres advisory lock, so one runs the migrations and the others then
// find nothing to do. A migration that failed half-way leaves the schema
// "dirty" and MigrateSchema failing until someone fixes it by hand (see
// golang-migrate's `force`).
//
// MigrateSchema opens its own connection with pool's configuration and
// search_path = schema. It waits for the lock at most until ctx's deadline,
// and stops between migrations when ctx is done.
func MigrateSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if err := stores.Migrate(ctx, pool, schema, MigrationsTable, migrationFS, "migrations"); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return nil
}
