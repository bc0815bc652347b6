package login

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/noonhq/noon/wire"
)

var _ Store = (*PostgresStore)(nil)

// pgUniqueViolation is Postgres's SQLSTATE for a unique constraint
// violation.
const pgUniqueViolation = "23505"

// PostgresStore is a Store in Postgres: the accounts table of the service's
// own schema, which Migrate (or MigrateSchema) creates.
type PostgresStore struct {
	pool                     *pgxpool.Pool
	insert, byUsername, byID string // queries, with the schema in them
}

// NewPostgresStore returns a store over pool in schema ("" means
// DefaultSchema). It does not touch the database: run MigrateSchema first.
func NewPostgresStore(pool *pgxpool.Pool, schema string) (*PostgresStore, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("login: postgres store: schema must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(schema))
	}
	table := pgx.Identifier{schema, "accounts"}.Sanitize()
	const cols = `id::text, username, nickname, password_hash, created_at`
	return &PostgresStore{
		pool:       pool,
		insert:     `INSERT INTO ` + table + ` (id, username, nickname, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)`,
		byUsername: `SELECT ` + cols + ` FROM ` + table + ` WHERE lower(username) = lower($1)`,
		byID:       `SELECT ` + cols + ` FROM ` + table + ` WHERE id = $1`,
	}, nil
}

// Create implements Store.
func (s *PostgresStore) Create(ctx context.Context, a Account) error {
	if err := checkAccount(&a); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, s.insert, a.ID, a.Username, a.Nickname, a.PasswordHash, a.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgUniqueViolation {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("login: create account: %w", err)
	}
	return nil
}

// ByUsername implements Store.
func (s *PostgresStore) ByUsername(ctx context.Context, username string) (Account, error) {
	if !storableUsername(username) {
		if err := ctx.Err(); err != nil {
			return Account{}, err
		}
		return Account{}, ErrNotFound
	}
	return s.get(ctx, s.byUsername, username)
}

// ByID implements Store.
func (s *PostgresStore) ByID(ctx context.Context, id string) (Account, error) {
	if !validID(id) { // Postgres would fail to parse it as a uuid
		if err := ctx.Err(); err != nil {
			return Account{}, err
		}
		return Account{}, ErrNotFound
	}
	return s.get(ctx, s.byID, id)
}

func (s *PostgresStore) get(ctx context.Context, query, arg string) (Account, error) {
	var a Account
	err := s.pool.QueryRow(ctx, query, arg).Scan(&a.ID, &a.Username, &a.Nickname, &a.PasswordHash, &a.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Account{}, ErrNotFound
	}
	if err != nil {
		return Account{}, fmt.Errorf("login: get account: %w", err)
	}
	a.CreatedAt = a.CreatedAt.UTC()
	return a, nil
}
