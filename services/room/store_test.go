package room

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noonhq/noon/internal/testenv"
)

// newPGStore returns a Postgres store in a schema of its own, dropped when
// the test ends.
func newPGStore(t testing.TB) Store {
	t.Helper()
	pool := testenv.Postgres(t)
	schema := "room_" + testenv.UniqueID(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := MigrateSchema(ctx, pool, schema); err != nil {
		t.Fatalf("MigrateSchema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = pool.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	st, err := NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMemStoreContract(t *testing.T) {
	t.Parallel()
	storeContract(t, func(t *testing.T) Store { return NewMemoryStore() })
}

func TestPGStoreContract(t *testing.T) {
	t.Parallel()
	storeContract(t, func(t *testing.T) Store { return newPGStore(t) })
}

func TestMigrateTwice(t *testing.T) {
	pool := testenv.Postgres(t)
	schema := "room_" + testenv.UniqueID(t)
	ctx := context.Background()
	t.Cleanup(func() { _, _ = pool.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- MigrateSchema(ctx, pool, schema) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent MigrateSchema: %v", err)
		}
	}
	if err := MigrateSchema(ctx, pool, "Bad-Schema"); err == nil {
		t.Fatal("MigrateSchema accepted a bad schema name")
	}
}

var tBase = time.UnixMilli(1_700_000_000_000).UTC()

func sum(id string) Summary {
	return Summary{ID: id, Name: "n " + id, Game: "race31", Status: StatusOpen, Host: "u1", Players: 1, MaxPlayers: 4, Created: tBase}
}

func ent(seq int64, kind string) Entry {
	return Entry{Seq: seq, Kind: kind, Player: fmt.Sprintf("u%d", seq), Body: []byte{byte(seq), 0, 1}, At: tBase.UnixMilli() + seq}
}

func ents(from, to int64) []Entry {
	var out []Entry
	for s := from; s <= to; s++ {
		out = append(out, ent(s, KindAct))
	}
	return out
}

func sameEntries(t *testing.T, got, want []Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.Kind != w.Kind || g.Player != w.Player || !bytes.Equal(g.Body, w.Body) || g.At != w.At {
			t.Fatalf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}

// storeContract is what every Store must do; the memory and Postgres
// stores both pass it.
func storeContract(t *testing.T, newStore func(*testing.T) Store) {
	ctx := context.Background()
	id := func(t *testing.T) string { return "r" + testenv.UniqueID(t) }

	t.Run("CreateLoad", func(t *testing.T) {
		s, r := newStore(t), id(t)
		first := ent(1, KindCreate)
		if err := s.Create(ctx, 1, sum(r), first, 0); err != nil {
			t.Fatal(err)
		}
		snap, got, err := s.Load(ctx, r, 1)
		if err != nil || snap != nil {
			t.Fatalf("Load = %v, %v", snap, err)
		}
		sameEntries(t, got, []Entry{first})
		if err := s.Create(ctx, 1, sum(r), first, 0); !errors.Is(err, ErrExists) {
			t.Fatalf("second Create = %v, want ErrExists", err)
		}
		if err := s.Create(ctx, 1, sum(r+"x"), ent(2, KindCreate), 0); !errors.Is(err, ErrSeqConflict) {
			t.Fatalf("Create at seq 2 = %v, want ErrSeqConflict", err)
		}
		if _, _, err := s.Load(ctx, r+"nope", 1); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Load of no room = %v, want ErrNotFound", err)
		}
		if err := s.Append(ctx, 1, sum(r+"nope"), ents(2, 2), nil); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Append to no room = %v, want ErrNotFound", err)
		}
		if err := s.SaveSnapshot(ctx, r+"nope", 1, Snapshot{Seq: 1}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("SaveSnapshot of no room = %v, want ErrNotFound", err)
		}
	})

	t.Run("AppendInOrder", func(t *testing.T) {
		s, r := newStore(t), id(t)
		if err := s.Create(ctx, 1, sum(r), ent(1, KindCreate), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, 1, sum(r), ents(2, 2), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, 1, sum(r), ents(3, 6), nil); err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][]Entry{ents(6, 6), ents(8, 8), ents(2, 3), {ent(7, KindAct), ent(9, KindAct)}} {
			if err := s.Append(ctx, 1, sum(r), bad, nil); !errors.Is(err, ErrSeqConflict) {
				t.Fatalf("Append of seqs %d.. = %v, want ErrSeqConflict", bad[0].Seq, err)
			}
		}
		_, got, err := s.Load(ctx, r, 1)
		if err != nil {
			t.Fatal(err)
		}
		sameEntries(t, got, append([]Entry{ent(1, KindCreate)}, ents(2, 6)...))
	})

	t.Run("Snapshots", func(t *testing.T) {
		s, r := newStore(t), id(t)
		if err := s.Create(ctx, 1, sum(r), ent(1, KindCreate), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, 1, sum(r), ents(2, 5), &Snapshot{Seq: 5, State: []byte("at5")}); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, 1, sum(r), ents(6, 7), nil); err != nil {
			t.Fatal(err)
		}
		snap, got, err := s.Load(ctx, r, 1)
		if err != nil || snap == nil || snap.Seq != 5 || string(snap.State) != "at5" {
			t.Fatalf("Load snapshot = %+v, %v", snap, err)
		}
		sameEntries(t, got, ents(6, 7))
		// An older snapshot does not replace a newer one.
		if err := s.SaveSnapshot(ctx, r, 1, Snapshot{Seq: 3, State: []byte("at3")}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveSnapshot(ctx, r, 1, Snapshot{Seq: 8, State: []byte("at8")}); !errors.Is(err, ErrSeqConflict) {
			t.Fatalf("snapshot past the log = %v, want ErrSeqConflict", err)
		}
		if err := s.SaveSnapshot(ctx, r, 1, Snapshot{Seq: 7, State: []byte("at7")}); err != nil {
			t.Fatal(err)
		}
		snap, got, err = s.Load(ctx, r, 1)
		if err != nil || snap.Seq != 7 || string(snap.State) != "at7" || len(got) != 0 {
			t.Fatalf("Load = %+v, %d entries, %v", snap, len(got), err)
		}
	})

	t.Run("Fencing", func(t *testing.T) {
		s, r := newStore(t), id(t)
		if err := s.Create(ctx, 1, sum(r), ent(1, KindCreate), 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, 1, sum(r), ents(2, 2), nil); err != nil {
			t.Fatal(err)
		}
		// A new owner (epoch 3) loads: the old one (1) can write no more.
		if _, _, err := s.Load(ctx, r, 3); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, 1, sum(r), ents(3, 3), nil); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale Append = %v, want ErrFenced", err)
		}
		if err := s.SaveSnapshot(ctx, r, 1, Snapshot{Seq: 2, State: []byte("x")}); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale SaveSnapshot = %v, want ErrFenced", err)
		}
		if _, _, err := s.Load(ctx, r, 2); !errors.Is(err, ErrFenced) {
			t.Fatalf("stale Load = %v, want ErrFenced", err)
		}
		if err := s.Append(ctx, 3, sum(r), ents(3, 3), nil); err != nil {
			t.Fatalf("owner's Append: %v", err)
		}
		// A higher epoch's write claims the room too.
		if err := s.Append(ctx, 4, sum(r), ents(4, 4), nil); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, 3, sum(r), ents(5, 5), nil); !errors.Is(err, ErrFenced) {
			t.Fatalf("Append at 3 after 4 wrote = %v, want ErrFenced", err)
		}
		_, got, err := s.Load(ctx, r, 4)
		if err != nil {
			t.Fatal(err)
		}
		sameEntries(t, got, append([]Entry{ent(1, KindCreate)}, ents(2, 4)...))
	})

	// RacingOwners: an old owner appends as fast as it can while a new
	// owner loads; once the load returned, no write of the old owner
	// lands, so the new owner's log view is complete.
	t.Run("RacingOwners", func(t *testing.T) {
		s, r := newStore(t), id(t)
		if err := s.Create(ctx, 1, sum(r), ent(1, KindCreate), 0); err != nil {
			t.Fatal(err)
		}
		var loaded atomic.Bool
		var lateWrites atomic.Int64
		done := make(chan struct{})
		writing := make(chan struct{}) // closed once the old owner's first write landed
		go func() {
			defer close(done)
			for seq := int64(2); ; seq++ {
				after := loaded.Load()
				err := s.Append(ctx, 1, sum(r), ents(seq, seq), nil)
				if errors.Is(err, ErrFenced) {
					return
				}
				if err != nil {
					t.Errorf("old owner: %v", err)
					return
				}
				if seq == 2 {
					close(writing)
				}
				if after {
					lateWrites.Add(1)
				}
			}
		}()
		select { // the new owner loads while the old one is writing
		case <-writing:
		case <-done:
			t.Fatal("the old owner stopped before writing")
		}
		_, got, err := s.Load(ctx, r, 2)
		loaded.Store(true)
		if err != nil {
			t.Fatal(err)
		}
		<-done
		if n := lateWrites.Load(); n != 0 {
			t.Fatalf("%d writes of the fenced owner landed after the new owner loaded", n)
		}
		last := got[len(got)-1].Seq
		if err := s.Append(ctx, 2, sum(r), ents(last+1, last+1), nil); err != nil {
			t.Fatalf("new owner continues the log it loaded: %v", err)
		}
		t.Logf("old owner wrote %d entries before it was fenced", last-1)
	})

	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		game := "g" + testenv.UniqueID(t)[1:12]
		mk := func(name string, age time.Duration, players, max int, status string) string {
			r := id(t) + name
			sm := Summary{ID: r, Name: name, Game: game, Status: StatusOpen, Players: 1, MaxPlayers: max, Created: tBase.Add(-age)}
			if err := s.Create(ctx, 1, sm, ent(1, KindCreate), 0); err != nil {
				t.Fatal(err)
			}
			sm.Players, sm.Status = players, status
			if err := s.Append(ctx, 1, sm, ents(2, 2), nil); err != nil {
				t.Fatal(err)
			}
			return r
		}
		old := mk("old", 2*time.Minute, 1, 4, StatusOpen)
		young := mk("young", time.Minute, 3, 4, StatusOpen)
		mk("full", 0, 4, 4, StatusOpen)
		mk("playing", 0, 2, 4, StatusPlaying)
		mk("closed", 0, 0, 4, StatusClosed)
		list, err := s.List(ctx, ListQuery{Game: game, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != young || list[1].ID != old {
			t.Fatalf("List = %+v, want [young old]", list)
		}
		if l := list[0]; l.Name != "young" || l.Players != 3 || l.MaxPlayers != 4 || l.Status != StatusOpen || !l.Created.Equal(tBase.Add(-time.Minute)) {
			t.Fatalf("summary = %+v", l)
		}
		if list, _ := s.List(ctx, ListQuery{Game: game, Limit: 1}); len(list) != 1 {
			t.Fatalf("List limit 1 = %d rooms", len(list))
		}
		if list, _ := s.List(ctx, ListQuery{Game: game + "x", Limit: 10}); len(list) != 0 {
			t.Fatalf("List of another game = %d rooms", len(list))
		}
	})
}
