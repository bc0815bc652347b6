package pay

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
)

// MigrationsTable is the table, in the service's schema, where
// golang-migrate records the schema's version.
const MigrationsTable = "pay_schema_migrations"

//go:embed migrations/*.sql
var migrationFS embed.FS

// MigrateSchema creates schema if needed and applies the embedded
// migrations (services/pay/migrations) to it.
func MigrateSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if err := stores.Migrate(ctx, pool, schema, MigrationsTable, migrationFS, "migrations"); err != nil {
		return fmt.Errorf("pay: %w", err)
	}
	return nil
}
