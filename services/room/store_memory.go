package room

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// memStore is the in-memory Store of `noon dev` and tests: the same
// semantics as the Postgres store, fencing included, in one process. Entries
// a snapshot covers are dropped, so a long dev session does not grow
// without bound (the Postgres store keeps the whole log).
type memStore struct {
	mu       sync.Mutex // guards rooms, archived and everything in them
	rooms    map[string]*memRoom
	archived map[string]*memRoom // retention mode archive
}

type memRoom struct {
	sum     Summary
	epoch   int64
	lastSeq int64
	entries []Entry // after snap
	snap    *Snapshot
	updated time.Time // the last write
}

var _ Store = (*memStore)(nil)

// NewMemoryStore returns an empty in-memory Store.
func NewMemoryStore() Store {
	return &memStore{rooms: make(map[string]*memRoom)}
}

func cloneEntry(e Entry) Entry {
	e.Body = slices.Clone(e.Body)
	return e
}

// claim checks epoch against r's and raises r's to it. Caller holds mu.
func (r *memRoom) claim(epoch int64) error {
	if epoch < r.epoch {
		return &FencedError{Room: r.sum.ID, Epoch: r.epoch, Writer: epoch}
	}
	r.epoch = epoch
	return nil
}

func (m *memStore) Create(ctx context.Context, epoch int64, sum Summary, first Entry, maxOpen int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if first.Seq != 1 {
		return fmt.Errorf("%w: a room's first entry has seq 1, got %d", ErrSeqConflict, first.Seq)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.rooms[sum.ID]; ok {
		return fmt.Errorf("%w: %s", ErrExists, sum.ID)
	}
	if maxOpen > 0 && sum.Creator != "" {
		n := 0
		for _, r := range m.rooms {
			if r.sum.Creator == sum.Creator && r.sum.Status != StatusClosed {
				n++
			}
		}
		if n >= maxOpen {
			return fmt.Errorf("%w: %d", ErrQuota, n)
		}
	}
	m.rooms[sum.ID] = &memRoom{sum: sum, epoch: epoch, lastSeq: 1, entries: []Entry{cloneEntry(first)}, updated: time.Now()}
	return nil
}

func (m *memStore) Load(ctx context.Context, id string, epoch int64) (*Snapshot, []Entry, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[id]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := r.claim(epoch); err != nil {
		return nil, nil, err
	}
	var snap *Snapshot
	if r.snap != nil {
		snap = &Snapshot{Seq: r.snap.Seq, State: slices.Clone(r.snap.State)}
	}
	entries := make([]Entry, len(r.entries))
	for i, e := range r.entries {
		entries[i] = cloneEntry(e)
	}
	return snap, entries, nil
}

func (m *memStore) Append(ctx context.Context, epoch int64, sum Summary, entries []Entry, snap *Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[sum.ID]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, sum.ID)
	}
	if epoch < r.epoch {
		return &FencedError{Room: sum.ID, Epoch: r.epoch, Writer: epoch}
	}
	for i, e := range entries {
		if e.Seq != r.lastSeq+1+int64(i) {
			return fmt.Errorf("%w: room %s is at seq %d, entry %d has seq %d", ErrSeqConflict, sum.ID, r.lastSeq, i, e.Seq)
		}
	}
	r.epoch = epoch
	for _, e := range entries {
		r.entries = append(r.entries, cloneEntry(e))
	}
	r.lastSeq += int64(len(entries))
	created, creator := r.sum.Created, r.sum.Creator
	r.sum = sum
	r.sum.Created, r.sum.Creator = created, creator
	r.updated = time.Now()
	if snap != nil {
		r.setSnap(*snap)
	}
	return nil
}

// setSnap installs snap unless the stored one is newer, dropping the
// entries it covers. Caller holds mu.
func (r *memRoom) setSnap(snap Snapshot) {
	if r.snap != nil && r.snap.Seq > snap.Seq {
		return
	}
	r.snap = &Snapshot{Seq: snap.Seq, State: slices.Clone(snap.State)}
	i := 0
	for i < len(r.entries) && r.entries[i].Seq <= snap.Seq {
		i++
	}
	r.entries = slices.Clone(r.entries[i:])
}

func (m *memStore) SaveSnapshot(ctx context.Context, id string, epoch int64, snap Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if snap.Seq > r.lastSeq {
		return fmt.Errorf("%w: snapshot at seq %d past the log's end %d", ErrSeqConflict, snap.Seq, r.lastSeq)
	}
	if err := r.claim(epoch); err != nil {
		return err
	}
	r.setSnap(snap)
	return nil
}

func (m *memStore) List(ctx context.Context, q ListQuery) ([]Summary, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	var out []Summary
	for _, r := range m.rooms {
		s := r.sum
		if s.Status == StatusOpen && s.Players < s.MaxPlayers && (q.Game == "" || q.Game == s.Game) {
			out = append(out, s)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Summary) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

func (m *memStore) Prune(ctx context.Context, q PruneQuery) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*memRoom
	for _, r := range m.rooms {
		if r.sum.Status == StatusClosed && r.updated.Before(q.Before) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *memRoom) int { return a.updated.Compare(b.updated) })
	if len(out) > q.Limit {
		out = out[:q.Limit]
	}
	ids := make([]string, len(out))
	for i, r := range out {
		ids[i] = r.sum.ID
		if q.DryRun {
			continue
		}
		delete(m.rooms, r.sum.ID)
		if q.Archive {
			if m.archived == nil {
				m.archived = make(map[string]*memRoom)
			}
			m.archived[r.sum.ID] = r
		}
	}
	return ids, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
