package room

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/noonhq/noon/wire"
)

// pgStore is the Postgres Store: tables rooms, room_entries and
// room_snapshots in one schema (see migrations/). Every write is a single
// statement, so it is atomic and costs one round trip: the UPDATE of the
// room's row that checks the fencing epoch and the log's last seq, and the
// INSERTs of the entries and the snapshot that only happen when it matched.
type pgStore struct {
	pool *pgxpool.Pool
	q    pgQueries
}

type pgQueries struct {
	schema                                                                     string
	create, appendEntries, claim, snapshot, entries, state, saveSnapshot, list string
	lockCreator, countOpen, pruneSelect, pruneDelete, pruneArchive             string
}

var _ Store = (*pgStore)(nil)

// NewPostgresStore returns the Store over pool, in schema (DefaultSchema when
// ""), whose tables Migrate / MigrateSchema created.
func NewPostgresStore(pool *pgxpool.Pool, schema string) (Store, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	if !schemaName.MatchString(schema) {
		return nil, fmt.Errorf("room: schema must match [a-z_][a-z0-9_]{0,62}, got %q", wire.Snippet(schema))
	}
	s := pgx.Identifier{schema}.Sanitize()
	q := func(sql string) string { return strings.ReplaceAll(sql, "$S", s) }
	return &pgStore{pool: pool, q: pgQueries{
		create: q(`WITH r AS (
	INSERT INTO $S.rooms (id, name, game, status, host, players, max_players, epoch, last_seq, created_at, creator)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $14)
	ON CONFLICT (id) DO NOTHING
	RETURNING id)
INSERT INTO $S.room_entries (room_id, seq, kind, player, body, at)
SELECT r.id, 1, $10, $11, $12, $13 FROM r`),
		appendEntries: q(`WITH claim AS (
	UPDATE $S.rooms SET epoch = $2, last_seq = $3, name = $4, status = $5, host = $6,
		players = $7, max_players = $8, updated_at = now()
	WHERE id = $1 AND epoch <= $2 AND last_seq = $9
	RETURNING id
), snap AS (
	INSERT INTO $S.room_snapshots (room_id, seq, state)
	SELECT claim.id, $15, $16 FROM claim WHERE $16::bytea IS NOT NULL
	ON CONFLICT (room_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state, taken_at = now()
	WHERE room_snapshots.seq <= EXCLUDED.seq
)
INSERT INTO $S.room_entries (room_id, seq, kind, player, body, at)
SELECT claim.id, e.seq, e.kind, e.player, e.body, e.at
FROM claim, unnest($10::bigint[], $11::text[], $12::text[], $13::bytea[], $14::timestamptz[]) AS e(seq, kind, player, body, at)`),
		claim:    q(`UPDATE $S.rooms SET epoch = $2 WHERE id = $1 AND epoch <= $2 RETURNING last_seq`),
		snapshot: q(`SELECT seq, state FROM $S.room_snapshots WHERE room_id = $1`),
		entries: q(`SELECT seq, kind, player, body, at FROM $S.room_entries
WHERE room_id = $1 AND seq > COALESCE((SELECT seq FROM $S.room_snapshots WHERE room_id = $1), 0)
ORDER BY seq`),
		state: q(`SELECT epoch, last_seq FROM $S.rooms WHERE id = $1`),
		saveSnapshot: q(`WITH claim AS (
	UPDATE $S.rooms SET epoch = $2 WHERE id = $1 AND epoch <= $2 AND last_seq >= $3 RETURNING id)
INSERT INTO $S.room_snapshots (room_id, seq, state)
SELECT claim.id, $3, $4 FROM claim
ON CONFLICT (room_id) DO UPDATE SET seq = EXCLUDED.seq, state = EXCLUDED.state, taken_at = now()
WHERE room_snapshots.seq <= EXCLUDED.seq`),
		list: q(`SELECT id, name, game, status, host, players, max_players, created_at FROM $S.rooms
WHERE status = 'open' AND players < max_players AND ($1 = '' OR game = $1)
ORDER BY created_at DESC, id
LIMIT $2`),
		// One creator's creates are serialized by a transaction-scoped
		// advisory lock (keyed by schema and creator), so the count and the
		// insert are atomic across instances.
		lockCreator: `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`,
		countOpen:   q(`SELECT count(*) FROM $S.rooms WHERE creator = $1 AND status <> 'closed'`),
		pruneSelect: q(`SELECT id FROM $S.rooms WHERE status = 'closed' AND updated_at < $1 ORDER BY updated_at LIMIT $2`),
		// SKIP LOCKED: concurrent sweeps take disjoint rooms.
		pruneDelete: q(`WITH victims AS (
	SELECT id FROM $S.rooms WHERE status = 'closed' AND updated_at < $1
	ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM $S.rooms r USING victims v WHERE r.id = v.id RETURNING r.id`),
		pruneArchive: q(`WITH victims AS (
	SELECT id FROM $S.rooms WHERE status = 'closed' AND updated_at < $1
	ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED
), ra AS (
	INSERT INTO $S.rooms_archive (id, name, game, status, host, players, max_players, epoch, last_seq, created_at, updated_at, creator)
	SELECT r.id, r.name, r.game, r.status, r.host, r.players, r.max_players, r.epoch, r.last_seq, r.created_at, r.updated_at, r.creator
	FROM $S.rooms r JOIN victims v ON r.id = v.id
	ON CONFLICT (id) DO NOTHING
), ea AS (
	INSERT INTO $S.room_entries_archive (room_id, seq, kind, player, body, at)
	SELECT e.room_id, e.seq, e.kind, e.player, e.body, e.at
	FROM $S.room_entries e JOIN victims v ON e.room_id = v.id
	ON CONFLICT (room_id, seq) DO NOTHING
)
DELETE FROM $S.rooms r USING victims v WHERE r.id = v.id RETURNING r.id`),
		schema: schema,
	}}, nil
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func (p *pgStore) Create(ctx context.Context, epoch int64, sum Summary, first Entry, maxOpen int) error {
	if first.Seq != 1 {
		return fmt.Errorf("%w: a room's first entry has seq 1, got %d", ErrSeqConflict, first.Seq)
	}
	args := []any{sum.ID, sum.Name, sum.Game, sum.Status, sum.Host,
		sum.Players, sum.MaxPlayers, epoch, sum.Created,
		first.Kind, first.Player, nonNil(first.Body), msTime(first.At), sum.Creator}
	if maxOpen > 0 && sum.Creator != "" {
		return p.createLimited(ctx, sum, args, maxOpen)
	}
	tag, err := p.pool.Exec(ctx, p.q.create, args...)
	if err != nil {
		return fmt.Errorf("room: create %s: %w", sum.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrExists, sum.ID)
	}
	return nil
}

// createLimited is Create with the creator's open rooms counted first,
// in one transaction under the creator's advisory lock.
func (p *pgStore) createLimited(ctx context.Context, sum Summary, args []any, maxOpen int) error {
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("room: create %s: %w", sum.ID, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, p.q.lockCreator, "room-creator:"+p.q.schema+":"+sum.Creator); err != nil {
		return fmt.Errorf("room: create %s: %w", sum.ID, err)
	}
	var n int
	if err := tx.QueryRow(ctx, p.q.countOpen, sum.Creator).Scan(&n); err != nil {
		return fmt.Errorf("room: create %s: %w", sum.ID, err)
	}
	if n >= maxOpen {
		return fmt.Errorf("%w: %d", ErrQuota, n)
	}
	tag, err := tx.Exec(ctx, p.q.create, args...)
	if err != nil {
		return fmt.Errorf("room: create %s: %w", sum.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %s", ErrExists, sum.ID)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("room: create %s: %w", sum.ID, err)
	}
	return nil
}

func (p *pgStore) Prune(ctx context.Context, q PruneQuery) ([]string, error) {
	sql := p.q.pruneDelete
	switch {
	case q.DryRun:
		sql = p.q.pruneSelect
	case q.Archive:
		sql = p.q.pruneArchive
	}
	rows, err := p.pool.Query(ctx, sql, q.Before, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("room: prune: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("room: prune: %w", err)
	}
	return ids, nil
}

// nonNil turns a nil body into an empty one: bodies are NOT NULL.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (p *pgStore) Append(ctx context.Context, epoch int64, sum Summary, entries []Entry, snap *Snapshot) error {
	if len(entries) == 0 {
		return fmt.Errorf("room: append to %s: no entries", sum.ID)
	}
	n := len(entries)
	seqs := make([]int64, n)
	kinds := make([]string, n)
	players := make([]string, n)
	bodies := make([][]byte, n)
	ats := make([]time.Time, n)
	for i, e := range entries {
		seqs[i], kinds[i], players[i], bodies[i], ats[i] = e.Seq, e.Kind, e.Player, nonNil(e.Body), msTime(e.At)
		if i > 0 && e.Seq != seqs[i-1]+1 {
			return fmt.Errorf("%w: entries of %s are not consecutive (%d after %d)", ErrSeqConflict, sum.ID, e.Seq, seqs[i-1])
		}
	}
	var snapSeq int64
	var snapState []byte
	if snap != nil {
		snapSeq, snapState = snap.Seq, nonNil(snap.State)
	}
	last := seqs[n-1]
	tag, err := p.pool.Exec(ctx, p.q.appendEntries, sum.ID, epoch, last, sum.Name, sum.Status, sum.Host,
		sum.Players, sum.MaxPlayers, seqs[0]-1,
		seqs, kinds, players, bodies, ats, snapSeq, snapState)
	if err != nil {
		return fmt.Errorf("room: append to %s: %w", sum.ID, err)
	}
	if tag.RowsAffected() == int64(n) {
		return nil
	}
	return p.why(ctx, sum.ID, epoch, seqs[0]-1, "append")
}

// why explains why a fenced write matched no row: ErrNotFound, ErrFenced
// or ErrSeqConflict.
func (p *pgStore) why(ctx context.Context, id string, epoch, wantLast int64, op string) error {
	var cur, last int64
	err := p.pool.QueryRow(ctx, p.q.state, id).Scan(&cur, &last)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	case err != nil:
		return fmt.Errorf("room: %s %s: %w", op, id, err)
	case cur > epoch:
		return &FencedError{Room: id, Epoch: cur, Writer: epoch}
	}
	return fmt.Errorf("%w: room %s is at seq %d, the write expected %d", ErrSeqConflict, id, last, wantLast)
}

func (p *pgStore) Load(ctx context.Context, id string, epoch int64) (*Snapshot, []Entry, error) {
	// One round trip: the batch runs as one implicit transaction, the claim
	// first, so no lower epoch can write between it and the reads.
	b := &pgx.Batch{}
	b.Queue(p.q.claim, id, epoch)
	b.Queue(p.q.snapshot, id)
	b.Queue(p.q.entries, id)
	br := p.pool.SendBatch(ctx, b)
	defer br.Close()

	var last int64
	if err := br.QueryRow().Scan(&last); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			br.Close()
			return nil, nil, p.why(ctx, id, epoch, 0, "load")
		}
		return nil, nil, fmt.Errorf("room: load %s: %w", id, err)
	}
	var snap *Snapshot
	var s Snapshot
	switch err := br.QueryRow().Scan(&s.Seq, &s.State); {
	case err == nil:
		snap = &s
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, nil, fmt.Errorf("room: load %s snapshot: %w", id, err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("room: load %s entries: %w", id, err)
	}
	var entries []Entry
	for rows.Next() {
		var e Entry
		var at time.Time
		if err := rows.Scan(&e.Seq, &e.Kind, &e.Player, &e.Body, &at); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("room: load %s entries: %w", id, err)
		}
		e.At = at.UnixMilli()
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("room: load %s entries: %w", id, err)
	}
	from := int64(0)
	if snap != nil {
		from = snap.Seq
	}
	for i, e := range entries {
		if e.Seq != from+1+int64(i) {
			return nil, nil, fmt.Errorf("room: load %s: log has a gap at seq %d", id, from+1+int64(i))
		}
	}
	if from+int64(len(entries)) != last {
		return nil, nil, fmt.Errorf("room: load %s: log ends at %d, room says %d", id, from+int64(len(entries)), last)
	}
	return snap, entries, nil
}

func (p *pgStore) SaveSnapshot(ctx context.Context, id string, epoch int64, snap Snapshot) error {
	tag, err := p.pool.Exec(ctx, p.q.saveSnapshot, id, epoch, snap.Seq, nonNil(snap.State))
	if err != nil {
		return fmt.Errorf("room: snapshot %s: %w", id, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var cur, last int64
	err = p.pool.QueryRow(ctx, p.q.state, id).Scan(&cur, &last)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	case err != nil:
		return fmt.Errorf("room: snapshot %s: %w", id, err)
	case cur > epoch:
		return &FencedError{Room: id, Epoch: cur, Writer: epoch}
	case last < snap.Seq:
		return fmt.Errorf("%w: snapshot at seq %d past the log's end %d", ErrSeqConflict, snap.Seq, last)
	}
	return nil // a newer snapshot is stored already
}

func (p *pgStore) List(ctx context.Context, q ListQuery) ([]Summary, error) {
	rows, err := p.pool.Query(ctx, p.q.list, q.Game, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("room: list: %w", err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var s Summary
		if err := rows.Scan(&s.ID, &s.Name, &s.Game, &s.Status, &s.Host, &s.Players, &s.MaxPlayers, &s.Created); err != nil {
			return nil, fmt.Errorf("room: list: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("room: list: %w", err)
	}
	return out, nil
}
