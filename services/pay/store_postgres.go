package pay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

var _ Store = (*PostgresStore)(nil)

// PostgresStore is the Store in Postgres: the tables of the service's own
// schema (migrations/). A purchase and its outbox row are written in one
// transaction: either both are, or neither.
type PostgresStore struct {
	pool *pgxpool.Pool
	q    func(string) string
}

// NewPostgresStore returns a store over pool in schema ("" means
// DefaultSchema). Run MigrateSchema first.
func NewPostgresStore(pool *pgxpool.Pool, schema string) (*PostgresStore, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !stores.SchemaName.MatchString(schema) {
		return nil, fmt.Errorf("pay: postgres store: schema must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(schema))
	}
	s := pgx.Identifier{schema}.Sanitize()
	return &PostgresStore{pool: pool, q: func(sql string) string { return strings.ReplaceAll(sql, "$S", s) }}, nil
}

const purchaseCols = `id, provider, transaction_id, product, quantity, state, currencies, items, user_id, created_at`

func scanRecord(row pgx.Row, extra ...any) (Record, error) {
	var r Record
	var cur, items []byte
	dest := append([]any{&r.ID, &r.Provider, &r.TransactionID, &r.Product, &r.Quantity, &r.State, &cur, &items, &r.UserID, &r.CreatedAt}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Record{}, ErrNotFound
		}
		return Record{}, err
	}
	if err := json.Unmarshal(cur, &r.Currencies); err != nil {
		return Record{}, err
	}
	if err := json.Unmarshal(items, &r.Items); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Record implements Store.
func (s *PostgresStore) Record(ctx context.Context, r Record) (Record, bool, error) {
	cur, _ := json.Marshal(orEmpty(r.Currencies))
	items, _ := json.Marshal(orEmpty(r.Items))
	var out Record
	var existed bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		stored, err := scanRecord(tx.QueryRow(ctx, s.q(`INSERT INTO $S.purchases (provider, transaction_id, product, quantity, state, currencies, items, user_id, created_at)
VALUES ($1, $2, $3, $4, 'granting', $5, $6, $7, $8) ON CONFLICT (provider, transaction_id) DO NOTHING RETURNING `+purchaseCols),
			r.Provider, r.TransactionID, r.Product, r.Quantity, cur, items, r.UserID, r.CreatedAt))
		switch {
		case err == nil:
			out = stored
			_, err = tx.Exec(ctx, s.q(`INSERT INTO $S.outbox (purchase_id, kind) VALUES ($1, 'grant')`), stored.ID)
			return err
		case !errors.Is(err, ErrNotFound):
			return err
		}
		existed = true
		// Claim a purchase only a notification named, else read it.
		stored, err = scanRecord(tx.QueryRow(ctx, s.q(`UPDATE $S.purchases SET user_id = CASE WHEN user_id = '' THEN $3 ELSE user_id END
WHERE provider = $1 AND transaction_id = $2 RETURNING `+purchaseCols), r.Provider, r.TransactionID, r.UserID))
		if err != nil {
			return err
		}
		if stored.UserID != r.UserID {
			return ErrOtherUser
		}
		out = stored
		return nil
	})
	if err != nil {
		return Record{}, existed, err
	}
	return out, existed, nil
}

func orEmpty(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return m
}

// Purchase implements Store.
func (s *PostgresStore) Purchase(ctx context.Context, id int64) (Record, error) {
	return scanRecord(s.pool.QueryRow(ctx, s.q(`SELECT `+purchaseCols+` FROM $S.purchases WHERE id = $1`), id))
}

// PurchaseByTx implements Store.
func (s *PostgresStore) PurchaseByTx(ctx context.Context, provider, txid string) (Record, error) {
	return scanRecord(s.pool.QueryRow(ctx, s.q(`SELECT `+purchaseCols+` FROM $S.purchases WHERE provider = $1 AND transaction_id = $2`), provider, txid))
}

// List implements Store.
func (s *PostgresStore) List(ctx context.Context, userID string, before int64, limit int) ([]Record, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := s.pool.Query(ctx, s.q(`SELECT `+purchaseCols+` FROM $S.purchases WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`), userID, before, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

func (s *PostgresStore) outbox(ctx context.Context, where string, args ...any) ([]OutboxRow, error) {
	cols := strings.ReplaceAll(", "+purchaseCols, ", ", ", p.")[2:]
	rows, err := s.pool.Query(ctx, s.q(`SELECT `+cols+`, o.id, o.kind, o.done_at IS NOT NULL, o.debt
FROM $S.outbox o JOIN $S.purchases p ON p.id = o.purchase_id WHERE `+where), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []OutboxRow
	for rows.Next() {
		var o OutboxRow
		r, err := scanRecord(rows, &o.ID, &o.Kind, &o.Done, &o.Debt)
		if err != nil {
			return nil, err
		}
		o.Purchase = r
		out = append(out, o)
	}
	return out, rows.Err()
}

// Pending implements Store.
func (s *PostgresStore) Pending(ctx context.Context, limit int) ([]OutboxRow, error) {
	return s.outbox(ctx, `o.done_at IS NULL ORDER BY o.id LIMIT $1`, limit)
}

// Outbox implements Store.
func (s *PostgresStore) Outbox(ctx context.Context, purchaseID int64) ([]OutboxRow, error) {
	return s.outbox(ctx, `o.purchase_id = $1 ORDER BY o.id`, purchaseID)
}

// Done implements Store.
func (s *PostgresStore) Done(ctx context.Context, id int64, debt bool) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var pid int64
		var kind string
		err := tx.QueryRow(ctx, s.q(`UPDATE $S.outbox SET done_at = coalesce(done_at, now()), debt = $2, attempts = attempts + 1 WHERE id = $1 RETURNING purchase_id, kind`), id, debt).Scan(&pid, &kind)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil || kind != KindGrant {
			return err
		}
		_, err = tx.Exec(ctx, s.q(`UPDATE $S.purchases SET state = 'granted' WHERE id = $1 AND state = 'granting'`), pid)
		return err
	})
}

// Refund implements Store.
func (s *PostgresStore) Refund(ctx context.Context, provider, nid, typ, txid, product string, at time.Time) (bool, Record, error) {
	var fresh bool
	var out Record
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ok, err := s.notify(ctx, tx, provider, nid, typ, txid, at)
		if err != nil || !ok {
			return err
		}
		fresh = true
		// Insert a refunded record when the purchase is unknown, else lock it.
		r, err := scanRecord(tx.QueryRow(ctx, s.q(`INSERT INTO $S.purchases (provider, transaction_id, product, quantity, state, user_id, created_at)
VALUES ($1, $2, $3, 1, 'refunded', '', $4) ON CONFLICT (provider, transaction_id) DO NOTHING RETURNING `+purchaseCols), provider, txid, product, at))
		if err == nil {
			out = r
			return nil
		}
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		r, err = scanRecord(tx.QueryRow(ctx, s.q(`SELECT `+purchaseCols+` FROM $S.purchases WHERE provider = $1 AND transaction_id = $2 FOR UPDATE`), provider, txid))
		if err != nil {
			return err
		}
		if r.State != StateRefunded {
			if _, err := tx.Exec(ctx, s.q(`UPDATE $S.purchases SET state = 'refunded' WHERE id = $1`), r.ID); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, s.q(`INSERT INTO $S.outbox (purchase_id, kind) VALUES ($1, 'take') ON CONFLICT DO NOTHING`), r.ID); err != nil {
				return err
			}
			r.State = StateRefunded
		}
		out = r
		return nil
	})
	return fresh, out, err
}

func (s *PostgresStore) notify(ctx context.Context, tx pgx.Tx, provider, nid, typ, txid string, at time.Time) (bool, error) {
	tag, err := tx.Exec(ctx, s.q(`INSERT INTO $S.notifications (provider, id, type, transaction_id, received_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`), provider, nid, typ, txid, at)
	return tag.RowsAffected() == 1, err
}

// Notify implements Store.
func (s *PostgresStore) Notify(ctx context.Context, provider, nid, typ, txid string, at time.Time) (bool, error) {
	var fresh bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		fresh, err = s.notify(ctx, tx, provider, nid, typ, txid, at)
		return err
	})
	return fresh, err
}

// ReserveKey implements Store.
func (s *PostgresStore) ReserveKey(ctx context.Context, userID, key string, hash []byte, at time.Time) (KeyEntry, bool, error) {
	tag, err := s.pool.Exec(ctx, s.q(`INSERT INTO $S.idempotency_keys (user_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`), userID, key, hash, at)
	if err != nil {
		return KeyEntry{}, false, err
	}
	if tag.RowsAffected() == 1 {
		return KeyEntry{Hash: hash, At: at}, true, nil
	}
	var e KeyEntry
	err = s.pool.QueryRow(ctx, s.q(`SELECT request_hash, reply, created_at FROM $S.idempotency_keys WHERE user_id = $1 AND key = $2`), userID, key).Scan(&e.Hash, &e.Reply, &e.At)
	if errors.Is(err, pgx.ErrNoRows) { // released meanwhile: try again
		return s.ReserveKey(ctx, userID, key, hash, at)
	}
	return e, false, err
}

// AnswerKey implements Store.
func (s *PostgresStore) AnswerKey(ctx context.Context, userID, key string, reply []byte) error {
	_, err := s.pool.Exec(ctx, s.q(`UPDATE $S.idempotency_keys SET reply = $3 WHERE user_id = $1 AND key = $2`), userID, key, reply)
	return err
}

// ReleaseKey implements Store.
func (s *PostgresStore) ReleaseKey(ctx context.Context, userID, key string) error {
	_, err := s.pool.Exec(ctx, s.q(`DELETE FROM $S.idempotency_keys WHERE user_id = $1 AND key = $2 AND reply IS NULL`), userID, key)
	return err
}

// PruneKeys implements Store.
func (s *PostgresStore) PruneKeys(ctx context.Context, before time.Time) error {
	_, err := s.pool.Exec(ctx, s.q(`DELETE FROM $S.idempotency_keys WHERE created_at < $1`), before)
	return err
}
