package game

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

var _ Store = (*MemoryStore)(nil)

// MemoryStore is a Store in process memory, for `noon dev` and tests: it
// passes the same contract suite as PostgresStore and forgets everything
// when the process exits. A player's changes are serialised by the
// player's own mutex, as the Postgres store serialises them by locking the
// player's row.
//
// Lock order: MemoryStore.mu, then a memPlayer's mu; auditMu and scoresMu
// are leaves.
type MemoryStore struct {
	mu      sync.RWMutex          // guards players (the map, not the players)
	players map[string]*memPlayer // by user id

	auditMu sync.Mutex
	audit   []AuditEntry // oldest first; ID is the index + 1

	scoresMu sync.Mutex
	scores   map[string]map[string]*ScoreRow // board + "\x00" + season -> user -> row
	version  int64
}

// memPlayer is one player; mu serialises its changes.
type memPlayer struct {
	mu     sync.Mutex
	prof   Profile
	bal    map[string]int64
	items  map[string]int64
	stats  map[string]int64
	log    []LogEntry       // seq i+1 at index i
	keys   map[string]int64 // idempotency key -> seq
	ledger []LedgerEntry    // oldest first
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{players: map[string]*memPlayer{}, scores: map[string]map[string]*ScoreRow{}}
}

// player returns user's player, created at at when create is set; nil
// when there is none.
func (m *MemoryStore) player(user string, create bool, at time.Time) *memPlayer {
	m.mu.RLock()
	p := m.players[user]
	m.mu.RUnlock()
	if p != nil || !create {
		return p
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p = m.players[user]; p == nil {
		at = utcMicro(at)
		p = &memPlayer{
			prof: Profile{UserID: user, Metadata: "{}", PrivateMetadata: "{}", Created: at, Updated: at},
			bal:  map[string]int64{}, items: map[string]int64{}, stats: map[string]int64{}, keys: map[string]int64{},
		}
		m.players[user] = p
	}
	return p
}

// Profile implements Store.
func (m *MemoryStore) Profile(ctx context.Context, user string) (Profile, error) {
	if err := ctx.Err(); err != nil {
		return Profile{}, err
	}
	p := m.player(user, false, time.Time{})
	if p == nil {
		return Profile{}, ErrNotFound
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.prof, nil
}

// UpdateProfile implements Store.
func (m *MemoryStore) UpdateProfile(ctx context.Context, user string, u ProfileUpdate, at time.Time) (Profile, error) {
	if err := ctx.Err(); err != nil {
		return Profile{}, err
	}
	if !validUserID(user) {
		return Profile{}, fmt.Errorf("%w: user id", ErrInvalid)
	}
	p := m.player(user, true, at)
	p.mu.Lock()
	defer p.mu.Unlock()
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&p.prof.DisplayName, u.DisplayName)
	set(&p.prof.Avatar, u.Avatar)
	set(&p.prof.Metadata, u.Metadata)
	set(&p.prof.PrivateMetadata, u.PrivateMetadata)
	p.prof.Updated = utcMicro(at)
	return p.prof, nil
}

// Apply implements Store.
func (m *MemoryStore) Apply(ctx context.Context, user string, c Change) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	if err := c.check(user); err != nil {
		return Result{}, err
	}
	p := m.player(user, c.Create, c.At)
	if p == nil {
		return Result{}, ErrNotFound
	}
	hash := c.Hash()
	p.mu.Lock()
	defer p.mu.Unlock()
	if seq, ok := p.keys[c.Key]; ok {
		e := p.log[seq-1]
		if e.Hash != hash {
			return Result{}, fmt.Errorf("%w: key %q was a %s (seq %d)", ErrKeyReused, c.Key, e.Kind, e.Seq)
		}
		var r Result
		if err := json.Unmarshal([]byte(e.Result), &r); err != nil {
			return Result{}, fmt.Errorf("game: stored result of seq %d: %w", e.Seq, err)
		}
		r.Replayed = true
		return r, nil
	}
	r, err := c.next(values{bal: p.bal, items: p.items, stats: p.stats, statCount: len(p.stats)})
	if err != nil {
		return Result{}, err
	}
	at := utcMicro(c.At)
	r.Seq = int64(len(p.log)) + 1
	for k, v := range r.Balances {
		setOrDelete(p.bal, k, v)
	}
	for k, v := range r.Items {
		setOrDelete(p.items, k, v)
	}
	maps.Copy(p.stats, r.Stats)
	for _, d := range sortedDeltas(c.Currencies) {
		p.ledger = append(p.ledger, LedgerEntry{Seq: r.Seq, Currency: d.Name, Delta: d.Delta, Balance: r.Balances[d.Name],
			Reason: c.Reason, Reference: c.Reference, Key: c.Key, At: at})
	}
	b, _ := json.Marshal(r)
	p.log = append(p.log, LogEntry{Seq: r.Seq, Kind: c.Kind, Key: c.Key, Hash: hash, Reason: c.Reason, Reference: c.Reference, Result: string(b), At: at})
	p.keys[c.Key] = r.Seq
	p.prof.Seq = r.Seq
	if c.Audit != nil {
		m.appendAudit(*c.Audit)
	}
	return r, nil
}

// setOrDelete sets m[k] = v, deleting a zero.
func setOrDelete(m map[string]int64, k string, v int64) {
	if v == 0 {
		delete(m, k)
		return
	}
	m[k] = v
}

// sortedDeltas returns ds sorted by name: ledger entries of one change are
// in currency order in every store.
func sortedDeltas(ds []Delta) []Delta {
	out := slices.Clone(ds)
	slices.SortFunc(out, func(a, b Delta) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// snapshot returns a copy of one of p's maps under its lock.
func (m *MemoryStore) snapshot(ctx context.Context, user string, pick func(*memPlayer) map[string]int64) (map[string]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := m.player(user, false, time.Time{})
	if p == nil {
		return map[string]int64{}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(pick(p)), nil
}

// Wallet implements Store.
func (m *MemoryStore) Wallet(ctx context.Context, user string) (map[string]int64, error) {
	return m.snapshot(ctx, user, func(p *memPlayer) map[string]int64 { return p.bal })
}

// Inventory implements Store.
func (m *MemoryStore) Inventory(ctx context.Context, user string) (map[string]int64, error) {
	return m.snapshot(ctx, user, func(p *memPlayer) map[string]int64 { return p.items })
}

// Stats implements Store.
func (m *MemoryStore) Stats(ctx context.Context, user string) (map[string]int64, error) {
	return m.snapshot(ctx, user, func(p *memPlayer) map[string]int64 { return p.stats })
}

// Ledger implements Store.
func (m *MemoryStore) Ledger(ctx context.Context, user string, q LedgerQuery) ([]LedgerEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := m.player(user, false, time.Time{})
	if p == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []LedgerEntry
	// Newest first: seq descending, currency ascending within a seq.
	for i := len(p.ledger) - 1; i >= 0 && len(out) < q.Limit; {
		j := i
		for j > 0 && p.ledger[j-1].Seq == p.ledger[i].Seq {
			j--
		}
		for _, e := range p.ledger[j : i+1] {
			if len(out) == q.Limit {
				break
			}
			if q.Currency != "" && e.Currency != q.Currency {
				continue
			}
			if q.BeforeSeq > 0 && (e.Seq > q.BeforeSeq || e.Seq == q.BeforeSeq && e.Currency <= q.AfterCurrency) {
				continue
			}
			out = append(out, e)
		}
		i = j - 1
	}
	return out, nil
}

// Log implements Store.
func (m *MemoryStore) Log(ctx context.Context, user string, after int64, limit int) ([]LogEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p := m.player(user, false, time.Time{})
	if p == nil {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	after = max(after, 0)
	if after >= int64(len(p.log)) {
		return nil, nil
	}
	end := min(int64(len(p.log)), after+int64(limit))
	return slices.Clone(p.log[after:end]), nil
}

// SetBan implements Store.
func (m *MemoryStore) SetBan(ctx context.Context, user string, b Ban, audit AuditEntry) (Ban, error) {
	if err := ctx.Err(); err != nil {
		return Ban{}, err
	}
	if !validUserID(user) {
		return Ban{}, fmt.Errorf("%w: user id", ErrInvalid)
	}
	p := m.player(user, true, audit.At)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !b.Until.IsZero() {
		b.Until = utcMicro(b.Until)
	}
	p.prof.Ban = b
	m.appendAudit(audit)
	return b, nil
}

// appendAudit adds e to the audit log.
func (m *MemoryStore) appendAudit(e AuditEntry) {
	m.auditMu.Lock()
	defer m.auditMu.Unlock()
	e.ID = int64(len(m.audit)) + 1
	e.At = utcMicro(e.At)
	m.audit = append(m.audit, e)
}

// Audit implements Store.
func (m *MemoryStore) Audit(ctx context.Context, user string, limit int) ([]AuditEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.auditMu.Lock()
	defer m.auditMu.Unlock()
	var out []AuditEntry
	for i := len(m.audit) - 1; i >= 0 && len(out) < limit; i-- {
		if user == "" || m.audit[i].UserID == user {
			out = append(out, m.audit[i])
		}
	}
	return out, nil
}

// DisplayNames implements Store.
func (m *MemoryStore) DisplayNames(ctx context.Context, users []string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(users))
	for _, u := range users {
		if p := m.player(u, false, time.Time{}); p != nil {
			p.mu.Lock()
			out[u] = p.prof.DisplayName
			p.mu.Unlock()
		}
	}
	return out, nil
}

// SubmitScore implements Store.
func (m *MemoryStore) SubmitScore(ctx context.Context, board, season, user string, score int64, op ScoreOp, at time.Time) (ScoreRow, error) {
	if err := ctx.Err(); err != nil {
		return ScoreRow{}, err
	}
	if !validUserID(user) {
		return ScoreRow{}, fmt.Errorf("%w: user id", ErrInvalid)
	}
	m.scoresMu.Lock()
	defer m.scoresMu.Unlock()
	key := board + "\x00" + season
	rows := m.scores[key]
	if rows == nil {
		rows = map[string]*ScoreRow{}
		m.scores[key] = rows
	}
	old := rows[user]
	var cur int64
	if old != nil {
		cur = old.Score
	}
	v, err := combineScore(cur, old != nil, score, op)
	if err != nil {
		return ScoreRow{}, err
	}
	m.version++
	row := &ScoreRow{UserID: user, Score: v, Version: m.version, Updated: utcMicro(at)}
	rows[user] = row
	return *row, nil
}

// Scores implements Store.
func (m *MemoryStore) Scores(ctx context.Context, board, season, after string, limit int) ([]ScoreRow, error) {
	return m.scoreRows(ctx, board, season, func(r *ScoreRow) bool { return r.UserID > after }, limit)
}

// ScoresSince implements Store.
func (m *MemoryStore) ScoresSince(ctx context.Context, board, season string, since time.Time) ([]ScoreRow, error) {
	since = utcMicro(since)
	return m.scoreRows(ctx, board, season, func(r *ScoreRow) bool { return !r.Updated.Before(since) }, -1)
}

// scoreRows returns the rows of board's season that keep selects, by user
// id, at most limit (-1: all).
func (m *MemoryStore) scoreRows(ctx context.Context, board, season string, keep func(*ScoreRow) bool, limit int) ([]ScoreRow, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.scoresMu.Lock()
	var out []ScoreRow
	for _, r := range m.scores[board+"\x00"+season] {
		if keep(r) {
			out = append(out, *r)
		}
	}
	m.scoresMu.Unlock()
	slices.SortFunc(out, func(a, b ScoreRow) int { return cmp.Compare(a.UserID, b.UserID) })
	if limit >= 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
