package game

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/wire"
)

var _ Store = (*PostgresStore)(nil)

// Postgres SQLSTATEs the store tells apart.
const (
	pgCheckViolation  = "23514"
	pgNumericOverflow = "22003"
)

// PostgresStore is the Store in Postgres: the tables of the service's own
// schema (migrations/), which Migrate or MigrateSchema creates.
//
// A change (Apply) is one transaction at READ COMMITTED that first locks
// the player's row (SELECT ... FOR UPDATE), then reads the idempotency
// key's entry and the values it touches, checks and writes them, appends
// the log and ledger entries and bumps the player's seq. The row lock is
// the one writer per player: a second change of the same player waits at
// the lock and then reads what the first committed, so no update is lost
// and no balance goes negative, while changes of other players run in
// parallel. BEGIN and the reads are sent as one pipelined batch, the
// writes and COMMIT as another: a change costs two round trips, and holds
// the player's lock for one round trip and the commit.
type PostgresStore struct {
	pool *pgxpool.Pool
	q    pgQueries
}

type pgQueries struct {
	createPlayer, lockPlayer, keyEntry, balances, itemCounts, statValues, statCount      string
	upsertWallets, upsertItems, deleteZeroItems, upsertStats, appendLog, appendLedger    string
	bumpSeq, appendAudit, profile, updateProfile, wallet, inventory, stats, ledger, logs string
	setBan, audit, displayNames, submitScore, scores, scoresSince                        string
}

// NewPostgresStore returns a store over pool in schema ("" means
// DefaultSchema). It does not touch the database: run MigrateSchema first.
func NewPostgresStore(pool *pgxpool.Pool, schema string) (*PostgresStore, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !stores.SchemaName.MatchString(schema) {
		return nil, fmt.Errorf("game: postgres store: schema must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(schema))
	}
	s := pgx.Identifier{schema}.Sanitize()
	q := func(sql string) string { return strings.ReplaceAll(sql, "$S", s) }
	const profileCols = `user_id, display_name, avatar, metadata, private_metadata, created_at, updated_at, seq, banned_until, ban_reason`
	return &PostgresStore{pool: pool, q: pgQueries{
		createPlayer: q(`INSERT INTO $S.players (user_id, created_at, updated_at) VALUES ($1, $2, $2) ON CONFLICT (user_id) DO NOTHING`),
		lockPlayer:   q(`SELECT seq FROM $S.players WHERE user_id = $1 FOR UPDATE`),
		keyEntry:     q(`SELECT seq, kind, request_hash, result FROM $S.player_log WHERE user_id = $1 AND idempotency_key = $2`),
		balances:     q(`SELECT currency, balance FROM $S.wallets WHERE user_id = $1 AND currency = ANY($2)`),
		itemCounts:   q(`SELECT item, count FROM $S.items WHERE user_id = $1 AND item = ANY($2)`),
		statValues:   q(`SELECT name, value FROM $S.stats WHERE user_id = $1 AND name = ANY($2)`),
		statCount:    q(`SELECT count(*) FROM $S.stats WHERE user_id = $1`),
		upsertWallets: q(`INSERT INTO $S.wallets (user_id, currency, balance)
SELECT $1, c, b FROM unnest($2::text[], $3::bigint[]) AS t(c, b)
ON CONFLICT (user_id, currency) DO UPDATE SET balance = EXCLUDED.balance`),
		upsertItems: q(`INSERT INTO $S.items (user_id, item, count)
SELECT $1, i, n FROM unnest($2::text[], $3::bigint[]) AS t(i, n)
ON CONFLICT (user_id, item) DO UPDATE SET count = EXCLUDED.count`),
		deleteZeroItems: q(`DELETE FROM $S.items WHERE user_id = $1 AND count = 0`),
		upsertStats: q(`INSERT INTO $S.stats (user_id, name, value)
SELECT $1, n, v FROM unnest($2::text[], $3::bigint[]) AS t(n, v)
ON CONFLICT (user_id, name) DO UPDATE SET value = EXCLUDED.value`),
		appendLog: q(`INSERT INTO $S.player_log (user_id, seq, kind, idempotency_key, request_hash, reason, reference, result, at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`),
		appendLedger: q(`INSERT INTO $S.ledger (user_id, seq, currency, delta, balance, reason, reference, idempotency_key, at)
SELECT $1, $2, c, d, b, $6, $7, $8, $9 FROM unnest($3::text[], $4::bigint[], $5::bigint[]) AS t(c, d, b)`),
		bumpSeq:     q(`UPDATE $S.players SET seq = $2 WHERE user_id = $1`),
		appendAudit: q(`INSERT INTO $S.audit (at, admin, action, user_id, reason, detail) VALUES ($1, $2, $3, $4, $5, $6)`),
		profile:     q(`SELECT ` + profileCols + ` FROM $S.players WHERE user_id = $1`),
		updateProfile: q(`INSERT INTO $S.players (user_id, display_name, avatar, metadata, private_metadata, created_at, updated_at)
VALUES ($1, COALESCE($2, ''), COALESCE($3, ''), COALESCE($4, '{}'), COALESCE($5, '{}'), $6, $6)
ON CONFLICT (user_id) DO UPDATE SET
	display_name = COALESCE($2, players.display_name), avatar = COALESCE($3, players.avatar),
	metadata = COALESCE($4, players.metadata), private_metadata = COALESCE($5, players.private_metadata),
	updated_at = $6
RETURNING ` + profileCols),
		wallet:    q(`SELECT currency, balance FROM $S.wallets WHERE user_id = $1 AND balance <> 0`),
		inventory: q(`SELECT item, count FROM $S.items WHERE user_id = $1 AND count <> 0`),
		stats:     q(`SELECT name, value FROM $S.stats WHERE user_id = $1`),
		ledger: q(`SELECT seq, currency, delta, balance, reason, reference, idempotency_key, at FROM $S.ledger
WHERE user_id = $1 AND ($2 = '' OR currency = $2) AND ($3 = 0 OR seq < $3 OR (seq = $3 AND currency COLLATE "C" > $4))
ORDER BY seq DESC, currency COLLATE "C" ASC LIMIT $5`),
		logs: q(`SELECT seq, kind, idempotency_key, request_hash, reason, reference, result, at FROM $S.player_log
WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`),
		setBan: q(`WITH p AS (
	INSERT INTO $S.players (user_id, banned_until, ban_reason, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)
	ON CONFLICT (user_id) DO UPDATE SET banned_until = EXCLUDED.banned_until, ban_reason = EXCLUDED.ban_reason
	RETURNING banned_until, ban_reason
), a AS (
	INSERT INTO $S.audit (at, admin, action, user_id, reason, detail) VALUES ($4, $5, $6, $1, $7, $8)
)
SELECT banned_until, ban_reason FROM p`),
		audit: q(`SELECT id, at, admin, action, user_id, reason, detail FROM $S.audit
WHERE ($1 = '' OR user_id = $1) ORDER BY id DESC LIMIT $2`),
		displayNames: q(`SELECT user_id, display_name FROM $S.players WHERE user_id = ANY($1)`),
		submitScore: q(`INSERT INTO $S.scores AS s (board, season, user_id, score, version, updated_at)
VALUES ($1, $2, $3, $4, nextval('` + pgx.Identifier{schema, "score_versions"}.Sanitize() + `'), $5)
ON CONFLICT (board, season, user_id) DO UPDATE SET
	score = CASE $6::text
		WHEN 'incr' THEN s.score + EXCLUDED.score
		WHEN 'best_asc' THEN LEAST(s.score, EXCLUDED.score)
		WHEN 'best_desc' THEN GREATEST(s.score, EXCLUDED.score)
		ELSE EXCLUDED.score END,
	version = EXCLUDED.version, updated_at = EXCLUDED.updated_at
RETURNING score, version, updated_at`),
		scores: q(`SELECT user_id, score, version, updated_at FROM $S.scores
WHERE board = $1 AND season = $2 AND user_id COLLATE "C" > $3 ORDER BY user_id COLLATE "C" LIMIT $4`),
		scoresSince: q(`SELECT user_id, score, version, updated_at FROM $S.scores
WHERE board = $1 AND season = $2 AND updated_at >= $3 ORDER BY user_id COLLATE "C"`),
	}}, nil
}

// Apply implements Store.
func (s *PostgresStore) Apply(ctx context.Context, user string, c Change) (r Result, err error) {
	if err := c.check(user); err != nil {
		return Result{}, err
	}
	hash := c.Hash()
	at := utcMicro(c.At)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("game: apply: %w", err)
	}
	// A connection left in a transaction (an error before COMMIT) is
	// closed by Release, never reused.
	defer conn.Release()
	done := false
	defer func() {
		if !done && conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()

	// BEGIN and the reads, pipelined: the row lock first, so what follows
	// sees every change of the player committed before ours.
	var b pgx.Batch
	b.Queue("BEGIN")
	if c.Create {
		b.Queue(s.q.createPlayer, user, at)
	}
	cur := values{bal: map[string]int64{}, items: map[string]int64{}, stats: map[string]int64{}}
	var seq int64
	found := false
	var prior LogEntry
	replay := false
	b.Queue(s.q.lockPlayer, user).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	b.Queue(s.q.keyEntry, user, c.Key).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&prior.Seq, &prior.Kind, &prior.Hash, &prior.Result)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		replay = err == nil
		return err
	})
	readInto := func(query string, ds []Delta, into map[string]int64) {
		if len(ds) == 0 {
			return
		}
		b.Queue(query, user, names(ds)).Query(func(rows pgx.Rows) error {
			var k string
			var v int64
			_, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error { into[k] = v; return nil })
			return err
		})
	}
	readInto(s.q.balances, c.Currencies, cur.bal)
	readInto(s.q.itemCounts, c.Items, cur.items)
	if len(c.Stats)+len(c.SetStats) > 0 {
		readInto(s.q.statValues, append(append([]Delta(nil), c.Stats...), c.SetStats...), cur.stats)
		b.Queue(s.q.statCount, user).QueryRow(func(row pgx.Row) error { return row.Scan(&cur.statCount) })
	}
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		return Result{}, fmt.Errorf("game: apply: reading: %w", err)
	}
	switch {
	case !found:
		return Result{}, ErrNotFound
	case replay && prior.Hash != hash:
		return Result{}, fmt.Errorf("%w: key %q was a %s (seq %d)", ErrKeyReused, c.Key, prior.Kind, prior.Seq)
	case replay:
		if err := json.Unmarshal([]byte(prior.Result), &r); err != nil {
			return Result{}, fmt.Errorf("game: stored result of seq %d: %w", prior.Seq, err)
		}
		r.Replayed = true
		return r, nil
	}
	if r, err = c.next(cur); err != nil {
		return Result{}, err
	}
	r.Seq = seq + 1

	// The writes and COMMIT, pipelined: a failed statement skips the rest
	// (COMMIT included), and the deferred ROLLBACK ends the transaction.
	b = pgx.Batch{}
	upsert := func(query string, vals map[string]int64) {
		if len(vals) == 0 {
			return
		}
		ks := make([]string, 0, len(vals))
		vs := make([]int64, 0, len(vals))
		for k, v := range vals {
			ks, vs = append(ks, k), append(vs, v)
		}
		b.Queue(query, user, ks, vs)
	}
	upsert(s.q.upsertWallets, r.Balances)
	upsert(s.q.upsertItems, r.Items)
	if len(r.Items) > 0 {
		b.Queue(s.q.deleteZeroItems, user)
	}
	upsert(s.q.upsertStats, r.Stats)
	res, _ := json.Marshal(r)
	b.Queue(s.q.appendLog, user, r.Seq, c.Kind, c.Key, hash, c.Reason, c.Reference, string(res), at)
	if len(c.Currencies) > 0 {
		ds := sortedDeltas(c.Currencies)
		cs, deltas, bals := make([]string, len(ds)), make([]int64, len(ds)), make([]int64, len(ds))
		for i, d := range ds {
			cs[i], deltas[i], bals[i] = d.Name, d.Delta, r.Balances[d.Name]
		}
		b.Queue(s.q.appendLedger, user, r.Seq, cs, deltas, bals, c.Reason, c.Reference, c.Key, at)
	}
	b.Queue(s.q.bumpSeq, user, r.Seq)
	if a := c.Audit; a != nil {
		b.Queue(s.q.appendAudit, utcMicro(a.At), a.Admin, a.Action, a.UserID, a.Reason, a.Detail)
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		return Result{}, fmt.Errorf("game: apply: writing: %w", err)
	}
	done = true
	return r, nil
}

// Profile implements Store.
func (s *PostgresStore) Profile(ctx context.Context, user string) (Profile, error) {
	if !validUserID(user) {
		if err := ctx.Err(); err != nil {
			return Profile{}, err
		}
		return Profile{}, ErrNotFound
	}
	p, err := scanProfile(s.pool.QueryRow(ctx, s.q.profile, user))
	if errors.Is(err, pgx.ErrNoRows) {
		return Profile{}, ErrNotFound
	}
	if err != nil {
		return Profile{}, fmt.Errorf("game: profile: %w", err)
	}
	return p, nil
}

// scanProfile scans a row of profileCols.
func scanProfile(row pgx.Row) (Profile, error) {
	var p Profile
	var until *time.Time
	err := row.Scan(&p.UserID, &p.DisplayName, &p.Avatar, &p.Metadata, &p.PrivateMetadata, &p.Created, &p.Updated, &p.Seq, &until, &p.Ban.Reason)
	if err != nil {
		return Profile{}, err
	}
	p.Created, p.Updated = p.Created.UTC(), p.Updated.UTC()
	if until != nil {
		p.Ban.Until = until.UTC()
	}
	return p, nil
}

// UpdateProfile implements Store.
func (s *PostgresStore) UpdateProfile(ctx context.Context, user string, u ProfileUpdate, at time.Time) (Profile, error) {
	if !validUserID(user) {
		return Profile{}, fmt.Errorf("%w: user id", ErrInvalid)
	}
	p, err := scanProfile(s.pool.QueryRow(ctx, s.q.updateProfile, user, u.DisplayName, u.Avatar, u.Metadata, u.PrivateMetadata, utcMicro(at)))
	if err != nil {
		return Profile{}, fmt.Errorf("game: update profile: %w", err)
	}
	return p, nil
}

// kv reads two-column rows into a map.
func (s *PostgresStore) kv(ctx context.Context, query, user string) (map[string]int64, error) {
	out := map[string]int64{}
	rows, err := s.pool.Query(ctx, query, user)
	if err != nil {
		return nil, fmt.Errorf("game: read: %w", err)
	}
	var k string
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error { out[k] = v; return nil }); err != nil {
		return nil, fmt.Errorf("game: read: %w", err)
	}
	return out, nil
}

// Wallet implements Store.
func (s *PostgresStore) Wallet(ctx context.Context, user string) (map[string]int64, error) {
	return s.kv(ctx, s.q.wallet, user)
}

// Inventory implements Store.
func (s *PostgresStore) Inventory(ctx context.Context, user string) (map[string]int64, error) {
	return s.kv(ctx, s.q.inventory, user)
}

// Stats implements Store.
func (s *PostgresStore) Stats(ctx context.Context, user string) (map[string]int64, error) {
	return s.kv(ctx, s.q.stats, user)
}

// Ledger implements Store.
func (s *PostgresStore) Ledger(ctx context.Context, user string, q LedgerQuery) ([]LedgerEntry, error) {
	rows, err := s.pool.Query(ctx, s.q.ledger, user, q.Currency, q.BeforeSeq, q.AfterCurrency, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("game: ledger: %w", err)
	}
	var out []LedgerEntry
	var e LedgerEntry
	_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.Currency, &e.Delta, &e.Balance, &e.Reason, &e.Reference, &e.Key, &e.At}, func() error {
		e.At = e.At.UTC()
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("game: ledger: %w", err)
	}
	return out, nil
}

// Log implements Store.
func (s *PostgresStore) Log(ctx context.Context, user string, after int64, limit int) ([]LogEntry, error) {
	rows, err := s.pool.Query(ctx, s.q.logs, user, after, limit)
	if err != nil {
		return nil, fmt.Errorf("game: log: %w", err)
	}
	var out []LogEntry
	var e LogEntry
	_, err = pgx.ForEachRow(rows, []any{&e.Seq, &e.Kind, &e.Key, &e.Hash, &e.Reason, &e.Reference, &e.Result, &e.At}, func() error {
		e.At = e.At.UTC()
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("game: log: %w", err)
	}
	return out, nil
}

// SetBan implements Store.
func (s *PostgresStore) SetBan(ctx context.Context, user string, b Ban, a AuditEntry) (Ban, error) {
	if !validUserID(user) {
		return Ban{}, fmt.Errorf("%w: user id", ErrInvalid)
	}
	var until *time.Time
	if !b.Until.IsZero() {
		t := utcMicro(b.Until)
		until = &t
	}
	var got *time.Time
	var out Ban
	err := s.pool.QueryRow(ctx, s.q.setBan, user, until, b.Reason, utcMicro(a.At), a.Admin, a.Action, a.Reason, a.Detail).Scan(&got, &out.Reason)
	if err != nil {
		return Ban{}, fmt.Errorf("game: set ban: %w", err)
	}
	if got != nil {
		out.Until = got.UTC()
	}
	return out, nil
}

// Audit implements Store.
func (s *PostgresStore) Audit(ctx context.Context, user string, limit int) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, s.q.audit, user, limit)
	if err != nil {
		return nil, fmt.Errorf("game: audit: %w", err)
	}
	var out []AuditEntry
	var e AuditEntry
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.At, &e.Admin, &e.Action, &e.UserID, &e.Reason, &e.Detail}, func() error {
		e.At = e.At.UTC()
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("game: audit: %w", err)
	}
	return out, nil
}

// DisplayNames implements Store.
func (s *PostgresStore) DisplayNames(ctx context.Context, users []string) (map[string]string, error) {
	out := make(map[string]string, len(users))
	if len(users) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, s.q.displayNames, users)
	if err != nil {
		return nil, fmt.Errorf("game: display names: %w", err)
	}
	var u, n string
	if _, err := pgx.ForEachRow(rows, []any{&u, &n}, func() error { out[u] = n; return nil }); err != nil {
		return nil, fmt.Errorf("game: display names: %w", err)
	}
	return out, nil
}

// SubmitScore implements Store.
func (s *PostgresStore) SubmitScore(ctx context.Context, board, season, user string, score int64, op ScoreOp, at time.Time) (ScoreRow, error) {
	if !validUserID(user) {
		return ScoreRow{}, fmt.Errorf("%w: user id", ErrInvalid)
	}
	if _, err := combineScore(0, false, score, op); err != nil {
		return ScoreRow{}, err
	}
	mode := op.Operator
	if mode == "best" {
		mode = "best_desc"
		if op.Asc {
			mode = "best_asc"
		}
	}
	row := ScoreRow{UserID: user}
	err := s.pool.QueryRow(ctx, s.q.submitScore, board, season, user, score, utcMicro(at), mode).Scan(&row.Score, &row.Version, &row.Updated)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == pgCheckViolation || pgErr.Code == pgNumericOverflow) {
		return ScoreRow{}, fmt.Errorf("%w: a score must stay within ±%d", ErrLimit, int64(MaxScore))
	}
	if err != nil {
		return ScoreRow{}, fmt.Errorf("game: submit score: %w", err)
	}
	row.Updated = row.Updated.UTC()
	return row, nil
}

// Scores implements Store.
func (s *PostgresStore) Scores(ctx context.Context, board, season, after string, limit int) ([]ScoreRow, error) {
	return s.scoreRows(ctx, s.q.scores, board, season, after, limit)
}

// ScoresSince implements Store.
func (s *PostgresStore) ScoresSince(ctx context.Context, board, season string, since time.Time) ([]ScoreRow, error) {
	return s.scoreRows(ctx, s.q.scoresSince, board, season, utcMicro(since))
}

func (s *PostgresStore) scoreRows(ctx context.Context, query string, args ...any) ([]ScoreRow, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("game: scores: %w", err)
	}
	var out []ScoreRow
	var r ScoreRow
	_, err = pgx.ForEachRow(rows, []any{&r.UserID, &r.Score, &r.Version, &r.Updated}, func() error {
		r.Updated = r.Updated.UTC()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("game: scores: %w", err)
	}
	return out, nil
}
