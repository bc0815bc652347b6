package pay

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

var _ Store = (*MemoryStore)(nil)

// MemoryStore is the Store in memory, for `noon dev` and tests: one mutex
// over everything, lost at exit.
type MemoryStore struct {
	mu        sync.Mutex
	seq       int64
	purchases map[int64]*Record
	byTx      map[[2]string]int64
	outbox    []*OutboxRow
	keys      map[[2]string]*memKey
	notes     map[[2]string]bool
}

type memKey struct {
	KeyEntry
	at time.Time
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{purchases: map[int64]*Record{}, byTx: map[[2]string]int64{}, keys: map[[2]string]*memKey{}, notes: map[[2]string]bool{}}
}

func cloneRecord(r Record) Record {
	r.Currencies = maps.Clone(r.Currencies)
	r.Items = maps.Clone(r.Items)
	return r
}

// Record implements Store.
func (m *MemoryStore) Record(_ context.Context, r Record) (Record, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.byTx[[2]string{r.Provider, r.TransactionID}]; ok {
		p := m.purchases[id]
		switch {
		case p.UserID == "":
			p.UserID = r.UserID
		case p.UserID != r.UserID:
			return Record{}, true, ErrOtherUser
		}
		return cloneRecord(*p), true, nil
	}
	m.seq++
	r = cloneRecord(r)
	r.ID, r.State = m.seq, StateGranting
	m.purchases[r.ID] = &r
	m.byTx[[2]string{r.Provider, r.TransactionID}] = r.ID
	m.outbox = append(m.outbox, &OutboxRow{ID: int64(len(m.outbox) + 1), Kind: KindGrant, Purchase: r})
	return cloneRecord(r), false, nil
}

// Purchase implements Store.
func (m *MemoryStore) Purchase(_ context.Context, id int64) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.purchases[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	return cloneRecord(*p), nil
}

// PurchaseByTx implements Store.
func (m *MemoryStore) PurchaseByTx(_ context.Context, provider, txid string) (Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byTx[[2]string{provider, txid}]
	if !ok {
		return Record{}, ErrNotFound
	}
	return cloneRecord(*m.purchases[id]), nil
}

// List implements Store.
func (m *MemoryStore) List(_ context.Context, userID string, before int64, limit int) ([]Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for _, p := range m.purchases {
		if p.UserID == userID && (before == 0 || p.ID < before) {
			out = append(out, cloneRecord(*p))
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return int(b.ID - a.ID) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// row returns a copy of o with its purchase as it is now; caller holds mu.
func (m *MemoryStore) row(o *OutboxRow) OutboxRow {
	r := *o
	r.Purchase = cloneRecord(*m.purchases[o.Purchase.ID])
	return r
}

// Pending implements Store.
func (m *MemoryStore) Pending(_ context.Context, limit int) ([]OutboxRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []OutboxRow
	for _, o := range m.outbox {
		if !o.Done && len(out) < limit {
			out = append(out, m.row(o))
		}
	}
	return out, nil
}

// Outbox implements Store.
func (m *MemoryStore) Outbox(_ context.Context, purchaseID int64) ([]OutboxRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []OutboxRow
	for _, o := range m.outbox {
		if o.Purchase.ID == purchaseID {
			out = append(out, m.row(o))
		}
	}
	return out, nil
}

// Done implements Store.
func (m *MemoryStore) Done(_ context.Context, id int64, debt bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if id < 1 || id > int64(len(m.outbox)) {
		return ErrNotFound
	}
	o := m.outbox[id-1]
	o.Done, o.Debt = true, debt
	if p := m.purchases[o.Purchase.ID]; o.Kind == KindGrant && p.State == StateGranting {
		p.State = StateGranted
	}
	return nil
}

// Refund implements Store.
func (m *MemoryStore) Refund(_ context.Context, provider, nid, _, txid, product string, at time.Time) (bool, Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.notes[[2]string{provider, nid}] {
		return false, Record{}, nil
	}
	m.notes[[2]string{provider, nid}] = true
	id, ok := m.byTx[[2]string{provider, txid}]
	if !ok {
		m.seq++
		r := Record{ID: m.seq, Provider: provider, TransactionID: txid, Product: product, Quantity: 1, State: StateRefunded, CreatedAt: at}
		m.purchases[r.ID] = &r
		m.byTx[[2]string{provider, txid}] = r.ID
		return true, cloneRecord(r), nil
	}
	p := m.purchases[id]
	if p.State != StateRefunded {
		p.State = StateRefunded
		m.outbox = append(m.outbox, &OutboxRow{ID: int64(len(m.outbox) + 1), Kind: KindTake, Purchase: *p})
	}
	return true, cloneRecord(*p), nil
}

// Notify implements Store.
func (m *MemoryStore) Notify(_ context.Context, provider, nid, _, _ string, _ time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.notes[[2]string{provider, nid}] {
		return false, nil
	}
	m.notes[[2]string{provider, nid}] = true
	return true, nil
}

// ReserveKey implements Store.
func (m *MemoryStore) ReserveKey(_ context.Context, userID, key string, hash []byte, at time.Time) (KeyEntry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[[2]string{userID, key}]; ok {
		return KeyEntry{Hash: slices.Clone(k.Hash), Reply: slices.Clone(k.Reply), At: k.at}, false, nil
	}
	m.keys[[2]string{userID, key}] = &memKey{KeyEntry: KeyEntry{Hash: slices.Clone(hash)}, at: at}
	return KeyEntry{Hash: slices.Clone(hash), At: at}, true, nil
}

// AnswerKey implements Store.
func (m *MemoryStore) AnswerKey(_ context.Context, userID, key string, reply []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[[2]string{userID, key}]; ok {
		k.Reply = slices.Clone(reply)
	}
	return nil
}

// ReleaseKey implements Store.
func (m *MemoryStore) ReleaseKey(_ context.Context, userID, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if k, ok := m.keys[[2]string{userID, key}]; ok && k.Reply == nil {
		delete(m.keys, [2]string{userID, key})
	}
	return nil
}

// PruneKeys implements Store.
func (m *MemoryStore) PruneKeys(_ context.Context, before time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, v := range m.keys {
		if v.at.Before(before) {
			delete(m.keys, k)
		}
	}
	return nil
}
