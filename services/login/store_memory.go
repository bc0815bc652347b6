package login

import (
	"context"
	"sync"
)

var _ Store = (*MemoryStore)(nil)

// MemoryStore is a Store in process memory, for `noon dev` and tests: it
// passes the same contract suite as PostgresStore and forgets everything
// when the process exits.
type MemoryStore struct {
	mu     sync.RWMutex       // guards the maps
	byID   map[string]Account // id -> account
	byName map[string]string  // usernameKey -> id
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{byID: map[string]Account{}, byName: map[string]string{}}
}

// Create implements Store.
func (m *MemoryStore) Create(ctx context.Context, a Account) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkAccount(&a); err != nil {
		return err
	}
	key := usernameKey(a.Username)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byName[key]; ok {
		return ErrExists
	}
	if _, ok := m.byID[a.ID]; ok {
		return ErrExists
	}
	m.byID[a.ID] = a
	m.byName[key] = a.ID
	return nil
}

// ByUsername implements Store.
func (m *MemoryStore) ByUsername(ctx context.Context, username string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	if !storableUsername(username) {
		return Account{}, ErrNotFound
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.byName[usernameKey(username)]
	if !ok {
		return Account{}, ErrNotFound
	}
	return m.byID[id], nil
}

// ByID implements Store.
func (m *MemoryStore) ByID(ctx context.Context, id string) (Account, error) {
	if err := ctx.Err(); err != nil {
		return Account{}, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	a, ok := m.byID[id]
	if !ok {
		return Account{}, ErrNotFound
	}
	return a, nil
}

// Len returns the number of accounts.
func (m *MemoryStore) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.byID)
}
