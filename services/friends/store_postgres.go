package friends

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

var _ Store = (*PostgresStore)(nil)

// PostgresStore is a Store in Postgres: the edges table of the service's
// own schema, which the module's migrations create. Update is a
// transaction that first takes a transaction-scoped advisory lock per user
// (in a fixed order, so two Updates never deadlock): everything that reads
// or changes a user's relations goes through it, so a count read in fn
// holds until commit.
type PostgresStore struct {
	pool *pgxpool.Pool
	// lockSpace prefixes the advisory lock keys (hashed with the user id),
	// keeping them apart from other schemas' and services' locks.
	lockSpace string

	get, count, put, del, purge string // statements, with the schema in them
	list                        string
}

// NewPostgresStore returns a store over pool in schema ("" means
// DefaultSchema). It does not touch the database: the module migrates it
// (Migrations) first.
func NewPostgresStore(pool *pgxpool.Pool, schema string) (*PostgresStore, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !stores.SchemaName.MatchString(schema) {
		return nil, fmt.Errorf("friends: postgres store: schema must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(schema))
	}
	t := pgx.Identifier{schema, "edges"}.Sanitize()
	return &PostgresStore{
		pool:      pool,
		lockSpace: "noon.friends." + schema + ":",
		get:       `SELECT state, updated_at FROM ` + t + ` WHERE user_id = $1 AND other_id = $2`,
		count: `SELECT state, count(*) FROM ` + t + ` WHERE user_id = $1 AND (state IN (0, 3) OR updated_at >= $2)
			GROUP BY state`,
		put: `INSERT INTO ` + t + ` (user_id, other_id, state, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (user_id, other_id) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
		del: `DELETE FROM ` + t + ` WHERE user_id = $1 AND other_id = $2`,
		// Both sides of a request share updated_at, so both expire in the
		// same purge (or the next one, past the limit).
		purge: `DELETE FROM ` + t + ` WHERE ctid IN (SELECT ctid FROM ` + t + `
			WHERE state IN (1, 2) AND updated_at < $1 ORDER BY updated_at LIMIT $2)`,
		list: `SELECT other_id, state, updated_at FROM ` + t + `
			WHERE user_id = $1
			  AND ($2::smallint[] IS NULL OR state = ANY($2))
			  AND (state IN (0, 3) OR updated_at >= $3)
			  AND ($4::text = '' OR updated_at < $5 OR (updated_at = $5 AND other_id > $4))
			ORDER BY updated_at DESC, other_id
			LIMIT $6`,
	}, nil
}

// Update implements Store.
func (s *PostgresStore) Update(ctx context.Context, a, b string, fn func(tx Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("friends: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	first, second := min(a, b), max(a, b)
	for _, u := range []string{first, second} {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.lockSpace+u); err != nil {
			return fmt.Errorf("friends: lock: %w", err)
		}
		if first == second {
			break
		}
	}
	if err := fn(&pgTx{s: s, tx: tx, a: a, b: b}); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("friends: commit: %w", err)
	}
	return nil
}

// List implements Store.
func (s *PostgresStore) List(ctx context.Context, user string, q ListQuery) ([]Edge, error) {
	var states []int16
	for _, st := range q.States {
		states = append(states, int16(st))
	}
	after := q.After.Updated
	if q.After.IsZero() {
		after = time.Time{}
	}
	rows, err := s.pool.Query(ctx, s.list, user, states, q.PendingSince, q.After.Other, after, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("friends: list: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Edge, error) {
		e := Edge{User: user}
		var st int16
		err := row.Scan(&e.Other, &st, &e.Updated)
		e.State, e.Updated = State(st), e.Updated.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("friends: list: %w", err)
	}
	return out, nil
}

// Purge implements Store.
func (s *PostgresStore) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, s.purge, before, limit)
	if err != nil {
		return 0, fmt.Errorf("friends: purge: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// pgTx is a PostgresStore transaction holding both users' locks.
type pgTx struct {
	s    *PostgresStore
	tx   pgx.Tx
	a, b string
}

func (t *pgTx) Get(ctx context.Context, from, to string) (Edge, bool, error) {
	if !inPair(t.a, t.b, from, to) {
		return Edge{}, false, ErrNotInPair
	}
	e := Edge{User: from, Other: to}
	var st int16
	err := t.tx.QueryRow(ctx, t.s.get, from, to).Scan(&st, &e.Updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return Edge{}, false, nil
	}
	if err != nil {
		return Edge{}, false, fmt.Errorf("friends: get: %w", err)
	}
	e.State, e.Updated = State(st), e.Updated.UTC()
	return e, true, nil
}

func (t *pgTx) Count(ctx context.Context, user string, pendingSince time.Time) (Counts, error) {
	if user != t.a && user != t.b {
		return Counts{}, ErrNotInPair
	}
	rows, err := t.tx.Query(ctx, t.s.count, user, pendingSince)
	if err != nil {
		return Counts{}, fmt.Errorf("friends: count: %w", err)
	}
	var c Counts
	var st int16
	var n int
	_, err = pgx.ForEachRow(rows, []any{&st, &n}, func() error {
		switch State(st) {
		case StateFriend:
			c.Friends = n
		case StateInviteSent:
			c.Sent = n
		case StateInviteReceived:
			c.Received = n
		case StateBlocked:
			c.Blocked = n
		}
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("friends: count: %w", err)
	}
	return c, nil
}

func (t *pgTx) Put(ctx context.Context, e Edge) error {
	if !inPair(t.a, t.b, e.User, e.Other) {
		return ErrNotInPair
	}
	if err := checkEdge(&e); err != nil {
		return err
	}
	if _, err := t.tx.Exec(ctx, t.s.put, e.User, e.Other, int16(e.State), e.Updated); err != nil {
		return fmt.Errorf("friends: put: %w", err)
	}
	return nil
}

func (t *pgTx) Delete(ctx context.Context, from, to string) error {
	if !inPair(t.a, t.b, from, to) {
		return ErrNotInPair
	}
	if _, err := t.tx.Exec(ctx, t.s.del, from, to); err != nil {
		return fmt.Errorf("friends: delete: %w", err)
	}
	return nil
}
