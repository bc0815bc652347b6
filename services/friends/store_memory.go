package friends

import (
	"context"
	"slices"
	"sync"
	"time"
)

var _ Store = (*MemoryStore)(nil)

// MemoryStore is a Store in memory, for `noon dev` without Postgres and for
// tests: one lock serialises every Update (the whole store is one process's
// data), which keeps it simple and obviously right.
type MemoryStore struct {
	mu    sync.Mutex                 // guards edges
	edges map[string]map[string]Edge // user -> other -> edge
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{edges: make(map[string]map[string]Edge)}
}

// Update implements Store: fn runs under the store's lock, on a
// transaction that buffers its writes until fn returns nil.
func (s *MemoryStore) Update(ctx context.Context, a, b string, fn func(tx Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tx := &memTx{s: s, a: a, b: b, writes: map[[2]string]*Edge{}}
	if err := fn(tx); err != nil {
		return err
	}
	for k, e := range tx.writes {
		if e == nil {
			delete(s.edges[k[0]], k[1])
			if len(s.edges[k[0]]) == 0 {
				delete(s.edges, k[0])
			}
			continue
		}
		m := s.edges[k[0]]
		if m == nil {
			m = make(map[string]Edge)
			s.edges[k[0]] = m
		}
		m[k[1]] = *e
	}
	return nil
}

// List implements Store.
func (s *MemoryStore) List(ctx context.Context, user string, q ListQuery) ([]Edge, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	var out []Edge
	for _, e := range s.edges[user] {
		if q.wants(e) {
			out = append(out, e)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(x, y Edge) int {
		if c := y.Updated.Compare(x.Updated); c != 0 {
			return c
		}
		switch {
		case x.Other < y.Other:
			return -1
		case x.Other > y.Other:
			return 1
		}
		return 0
	})
	if len(out) > q.Limit {
		out = out[:max(q.Limit, 0)]
	}
	return out, nil
}

// Purge implements Store.
func (s *MemoryStore) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for user, m := range s.edges {
		for other, e := range m {
			if n >= limit {
				return n, nil
			}
			if e.State.pending() && e.Updated.Before(before) {
				delete(m, other)
				n++
			}
		}
		if len(m) == 0 {
			delete(s.edges, user)
		}
	}
	return n, nil
}

// memTx is a MemoryStore transaction; the store's lock is held.
type memTx struct {
	s      *MemoryStore
	a, b   string
	writes map[[2]string]*Edge // (from, to) -> the new edge, nil: deleted
}

func (t *memTx) Get(ctx context.Context, from, to string) (Edge, bool, error) {
	if !inPair(t.a, t.b, from, to) {
		return Edge{}, false, ErrNotInPair
	}
	if e, ok := t.writes[[2]string{from, to}]; ok {
		if e == nil {
			return Edge{}, false, nil
		}
		return *e, true, nil
	}
	e, ok := t.s.edges[from][to]
	return e, ok, nil
}

func (t *memTx) Count(ctx context.Context, user string, pendingSince time.Time) (Counts, error) {
	if user != t.a && user != t.b {
		return Counts{}, ErrNotInPair
	}
	seen := map[string]bool{}
	var c Counts
	add := func(e Edge) {
		if e.State.pending() && e.Updated.Before(pendingSince) {
			return
		}
		switch e.State {
		case StateFriend:
			c.Friends++
		case StateInviteSent:
			c.Sent++
		case StateInviteReceived:
			c.Received++
		case StateBlocked:
			c.Blocked++
		}
	}
	for k, e := range t.writes {
		if k[0] == user {
			seen[k[1]] = true
			if e != nil {
				add(*e)
			}
		}
	}
	for other, e := range t.s.edges[user] {
		if !seen[other] {
			add(e)
		}
	}
	return c, nil
}

func (t *memTx) Put(ctx context.Context, e Edge) error {
	if !inPair(t.a, t.b, e.User, e.Other) {
		return ErrNotInPair
	}
	if err := checkEdge(&e); err != nil {
		return err
	}
	t.writes[[2]string{e.User, e.Other}] = &e
	return nil
}

func (t *memTx) Delete(ctx context.Context, from, to string) error {
	if !inPair(t.a, t.b, from, to) {
		return ErrNotInPair
	}
	t.writes[[2]string{from, to}] = nil
	return nil
}
