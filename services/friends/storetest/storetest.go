// Package storetest is the contract every friends.Store passes: the memory
// store and the Postgres store run the same suite, so `noon dev` on memory
// behaves like a cluster on Postgres.
//
//	func TestMemoryStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) friends.Store { return friends.NewMemoryStore() })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/services/friends"
)

// Run runs the contract suite against stores made by newStore. Each subtest
// calls newStore once; a store may be shared between calls (the Postgres run
// uses one schema per test run), since every subtest uses fresh user ids.
func Run(t *testing.T, newStore func(t *testing.T) friends.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s friends.Store)
	}{
		{"PutGetDelete", testPutGetDelete},
		{"Rollback", testRollback},
		{"OnlyThePair", testOnlyThePair},
		{"Invalid", testInvalid},
		{"Count", testCount},
		{"List", testList},
		{"Purge", testPurge},
		{"Serialised", testSerialised},
		{"Canceled", testCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

var seq atomic.Int64

// users returns n user ids no other subtest or run uses.
func users(n int) []string {
	base := time.Now().UnixNano()
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u%x-%d-%d", base, seq.Add(1), i)
	}
	return out
}

// t0 is a time with nanoseconds, in a zone other than UTC: stores keep it
// in UTC to the microsecond.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.FixedZone("X", 3600))

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// put stores edges through one Update of a and b.
func put(t *testing.T, s friends.Store, a, b string, edges ...friends.Edge) {
	t.Helper()
	if err := s.Update(ctx(t), a, b, func(tx friends.Tx) error {
		for _, e := range edges {
			if err := tx.Put(ctx(t), e); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("Update put %v: %v", edges, err)
	}
}

// get reads the edge from -> to.
func get(t *testing.T, s friends.Store, from, to string) (friends.Edge, bool) {
	t.Helper()
	var e friends.Edge
	var ok bool
	if err := s.Update(ctx(t), from, to, func(tx friends.Tx) error {
		var err error
		e, ok, err = tx.Get(ctx(t), from, to)
		return err
	}); err != nil {
		t.Fatalf("Update get: %v", err)
	}
	return e, ok
}

func testPutGetDelete(t *testing.T, s friends.Store) {
	u := users(2)
	put(t, s, u[0], u[1],
		friends.Edge{User: u[0], Other: u[1], State: friends.StateInviteSent, Updated: t0},
		friends.Edge{User: u[1], Other: u[0], State: friends.StateInviteReceived, Updated: t0})
	want := friends.Edge{User: u[0], Other: u[1], State: friends.StateInviteSent, Updated: t0.UTC().Truncate(time.Microsecond)}
	if e, ok := get(t, s, u[0], u[1]); !ok || e != want || e.Updated.Location() != time.UTC {
		t.Fatalf("Get = %+v, %v; want %+v in UTC", e, ok, want)
	}
	// Put replaces; a read in the same Update sees its own writes.
	later := t0.Add(time.Hour)
	if err := s.Update(ctx(t), u[1], u[0], func(tx friends.Tx) error {
		if err := tx.Put(ctx(t), friends.Edge{User: u[0], Other: u[1], State: friends.StateFriend, Updated: later}); err != nil {
			return err
		}
		if err := tx.Delete(ctx(t), u[1], u[0]); err != nil {
			return err
		}
		if e, ok, err := tx.Get(ctx(t), u[0], u[1]); err != nil || !ok || e.State != friends.StateFriend {
			return fmt.Errorf("own write: %+v, %v, %v", e, ok, err)
		}
		if _, ok, err := tx.Get(ctx(t), u[1], u[0]); err != nil || ok {
			return fmt.Errorf("own delete: %v, %v", ok, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if e, ok := get(t, s, u[0], u[1]); !ok || e.State != friends.StateFriend || !e.Updated.Equal(later.Truncate(time.Microsecond)) {
		t.Fatalf("after replace: %+v, %v", e, ok)
	}
	if _, ok := get(t, s, u[1], u[0]); ok {
		t.Fatal("a deleted edge is still there")
	}
	// Deleting what is not there is fine.
	if err := s.Update(ctx(t), u[0], u[1], func(tx friends.Tx) error { return tx.Delete(ctx(t), u[1], u[0]) }); err != nil {
		t.Fatalf("delete of nothing: %v", err)
	}
}

func testRollback(t *testing.T, s friends.Store) {
	u := users(2)
	boom := errors.New("boom")
	err := s.Update(ctx(t), u[0], u[1], func(tx friends.Tx) error {
		if err := tx.Put(ctx(t), friends.Edge{User: u[0], Other: u[1], State: friends.StateBlocked, Updated: t0}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want fn's error", err)
	}
	if _, ok := get(t, s, u[0], u[1]); ok {
		t.Fatal("a failed Update kept its write")
	}
}

func testOnlyThePair(t *testing.T, s friends.Store) {
	u := users(3)
	err := s.Update(ctx(t), u[0], u[1], func(tx friends.Tx) error {
		if _, _, err := tx.Get(ctx(t), u[0], u[2]); !errors.Is(err, friends.ErrNotInPair) {
			return fmt.Errorf("tx.Get outside the pair: %v", err)
		}
		if err := tx.Put(ctx(t), friends.Edge{User: u[2], Other: u[0], State: friends.StateFriend, Updated: t0}); !errors.Is(err, friends.ErrNotInPair) {
			return fmt.Errorf("tx.Put outside the pair: %v", err)
		}
		if err := tx.Delete(ctx(t), u[1], u[2]); !errors.Is(err, friends.ErrNotInPair) {
			return fmt.Errorf("tx.Delete outside the pair: %v", err)
		}
		if _, err := tx.Count(ctx(t), u[2], time.Time{}); !errors.Is(err, friends.ErrNotInPair) {
			return fmt.Errorf("tx.Count outside the pair: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func testInvalid(t *testing.T, s friends.Store) {
	u := users(2)
	for _, e := range []friends.Edge{
		{User: u[0], Other: u[0], State: friends.StateFriend, Updated: t0},
		{User: u[0], Other: u[1], State: 4, Updated: t0},
		{User: u[0], Other: u[1], State: -1, Updated: t0},
	} {
		err := s.Update(ctx(t), u[0], u[1], func(tx friends.Tx) error { return tx.Put(ctx(t), e) })
		if !errors.Is(err, friends.ErrInvalidEdge) && !(e.User == e.Other && errors.Is(err, friends.ErrNotInPair)) {
			t.Errorf("Put(%+v) = %v, want ErrInvalidEdge", e, err)
		}
	}
	bad := "bad id"
	err := s.Update(ctx(t), bad, u[1], func(tx friends.Tx) error {
		return tx.Put(ctx(t), friends.Edge{User: bad, Other: u[1], State: friends.StateFriend, Updated: t0})
	})
	if !errors.Is(err, friends.ErrInvalidEdge) {
		t.Errorf("Put with a bad id = %v, want ErrInvalidEdge", err)
	}
}

func testCount(t *testing.T, s friends.Store) {
	u := users(6)
	me := u[0]
	old, recent := t0.Add(-48*time.Hour), t0
	put(t, s, me, u[1], friends.Edge{User: me, Other: u[1], State: friends.StateFriend, Updated: old})
	put(t, s, me, u[2], friends.Edge{User: me, Other: u[2], State: friends.StateInviteSent, Updated: recent})
	put(t, s, me, u[3], friends.Edge{User: me, Other: u[3], State: friends.StateInviteSent, Updated: old}) // expired
	put(t, s, me, u[4], friends.Edge{User: me, Other: u[4], State: friends.StateInviteReceived, Updated: recent})
	put(t, s, me, u[5], friends.Edge{User: me, Other: u[5], State: friends.StateBlocked, Updated: old},
		friends.Edge{User: u[5], Other: me, State: friends.StateBlocked, Updated: old}) // not me's
	since := t0.Add(-24 * time.Hour)
	want := friends.Counts{Friends: 1, Sent: 1, Received: 1, Blocked: 1}
	err := s.Update(ctx(t), me, u[1], func(tx friends.Tx) error {
		c, err := tx.Count(ctx(t), me, since)
		if err != nil || c != want {
			return fmt.Errorf("tx.Count = %+v, %v; want %+v", c, err, want)
		}
		// Counts see the transaction's own writes.
		if err := tx.Delete(ctx(t), me, u[1]); err != nil {
			return err
		}
		c, err = tx.Count(ctx(t), me, since)
		if want.Friends = 0; err != nil || c != want {
			return fmt.Errorf("tx.Count after a delete = %+v, %v; want %+v", c, err, want)
		}
		if err := tx.Put(ctx(t), friends.Edge{User: me, Other: u[1], State: friends.StateInviteSent, Updated: recent}); err != nil {
			return err
		}
		c, err = tx.Count(ctx(t), me, since)
		if want.Sent = 2; err != nil || c != want {
			return fmt.Errorf("tx.Count after a put = %+v, %v; want %+v", c, err, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := (friends.Counts{Friends: 1, Sent: 2, Received: 3}).Pending(); n != 5 {
		t.Fatalf("Pending = %d, want 5", n)
	}
}

func testList(t *testing.T, s friends.Store) {
	u := users(8)
	me := u[0]
	// u1..u4 friends at t0-1h, t0-2h, t0-2h, t0-3h; u5 sent (recent), u6
	// sent (expired), u7 blocked at t0.
	at := []time.Time{{}, t0.Add(-time.Hour), t0.Add(-2 * time.Hour), t0.Add(-2 * time.Hour), t0.Add(-3 * time.Hour), t0.Add(-time.Minute), t0.Add(-100 * time.Hour), t0}
	st := []friends.State{0, friends.StateFriend, friends.StateFriend, friends.StateFriend, friends.StateFriend, friends.StateInviteSent, friends.StateInviteSent, friends.StateBlocked}
	for i := 1; i < len(u); i++ {
		put(t, s, me, u[i], friends.Edge{User: me, Other: u[i], State: st[i], Updated: at[i]})
	}
	since := t0.Add(-24 * time.Hour)
	list := func(q friends.ListQuery) []string {
		t.Helper()
		edges, err := s.List(ctx(t), me, q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		var out []string
		for _, e := range edges {
			if e.User != me || e.Updated.Location() != time.UTC {
				t.Fatalf("List returned %+v", e)
			}
			out = append(out, e.Other)
		}
		return out
	}
	eq := func(what string, got []string, want ...string) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s = %v, want %v", what, got, want)
		}
	}
	// Newest first, ties by other id (u2 < u3: same time); the expired
	// invite is left out.
	all := list(friends.ListQuery{PendingSince: since, Limit: 100})
	eq("all", all, u[7], u[5], u[1], u[2], u[3], u[4])
	eq("friends", list(friends.ListQuery{States: []friends.State{friends.StateFriend}, PendingSince: since, Limit: 100}), u[1], u[2], u[3], u[4])
	eq("blocked and sent", list(friends.ListQuery{States: []friends.State{friends.StateBlocked, friends.StateInviteSent}, PendingSince: since, Limit: 100}), u[7], u[5])
	eq("no expiry", list(friends.ListQuery{States: []friends.State{friends.StateInviteSent}, Limit: 100}), u[5], u[6])
	// Pages of two, each after the last of the previous.
	var paged []string
	var after friends.Cursor
	for range 10 {
		edges, err := s.List(ctx(t), me, friends.ListQuery{PendingSince: since, After: after, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(edges) == 0 {
			break
		}
		for _, e := range edges {
			paged = append(paged, e.Other)
		}
		last := edges[len(edges)-1]
		after = friends.Cursor{Updated: last.Updated, Other: last.Other}
	}
	eq("paged", paged, all...)
	if edges, err := s.List(ctx(t), users(1)[0], friends.ListQuery{Limit: 10}); err != nil || len(edges) != 0 {
		t.Fatalf("List of a user with nothing = %v, %v", edges, err)
	}
}

func testPurge(t *testing.T, s friends.Store) {
	u := users(5)
	old := time.Now().Add(-10 * 365 * 24 * time.Hour) // older than any other subtest's
	put(t, s, u[0], u[1],
		friends.Edge{User: u[0], Other: u[1], State: friends.StateInviteSent, Updated: old},
		friends.Edge{User: u[1], Other: u[0], State: friends.StateInviteReceived, Updated: old})
	put(t, s, u[0], u[2], friends.Edge{User: u[0], Other: u[2], State: friends.StateFriend, Updated: old})
	put(t, s, u[0], u[3], friends.Edge{User: u[0], Other: u[3], State: friends.StateBlocked, Updated: old})
	put(t, s, u[0], u[4], friends.Edge{User: u[0], Other: u[4], State: friends.StateInviteSent, Updated: time.Now()})
	before := old.Add(time.Second)
	total := 0
	for range 100 {
		n, err := s.Purge(ctx(t), before, 1)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if n > 1 {
			t.Fatalf("Purge with limit 1 deleted %d", n)
		}
		total += n
	}
	if total < 2 {
		t.Fatalf("Purge deleted %d, want both sides of the old request", total)
	}
	if _, ok := get(t, s, u[0], u[1]); ok {
		t.Fatal("an expired invite survived Purge")
	}
	if _, ok := get(t, s, u[1], u[0]); ok {
		t.Fatal("an expired invite's other side survived Purge")
	}
	for _, o := range u[2:] {
		if _, ok := get(t, s, u[0], o); !ok {
			t.Fatalf("Purge deleted %s's edge, not an expired invite", o)
		}
	}
}

// testSerialised: 32 users ask one user at once, each Update counting the
// user's invites and adding one only under 10: exactly 10 land.
func testSerialised(t *testing.T, s friends.Store) {
	u := users(33)
	me := u[0]
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for _, o := range u[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Update(ctx(t), o, me, func(tx friends.Tx) error {
				c, err := tx.Count(ctx(t), me, time.Time{})
				if err != nil || c.Received >= 10 {
					return err
				}
				if err := tx.Put(ctx(t), friends.Edge{User: o, Other: me, State: friends.StateInviteSent, Updated: t0}); err != nil {
					return err
				}
				return tx.Put(ctx(t), friends.Edge{User: me, Other: o, State: friends.StateInviteReceived, Updated: t0})
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	edges, err := s.List(ctx(t), me, friends.ListQuery{Limit: 100})
	if err != nil || len(edges) != 10 {
		t.Fatalf("%d invites landed (%v), want exactly 10", len(edges), err)
	}
}

func testCanceled(t *testing.T, s friends.Store) {
	u := users(2)
	c, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := s.Update(c, u[0], u[1], func(friends.Tx) error { ran = true; return nil }); err == nil || ran {
		t.Fatalf("Update on a canceled context = %v (fn ran: %v)", err, ran)
	}
	if _, err := s.List(c, u[0], friends.ListQuery{Limit: 1}); err == nil {
		t.Fatal("List on a canceled context succeeded")
	}
	if _, err := s.Purge(c, t0, 1); err == nil {
		t.Fatal("Purge on a canceled context succeeded")
	}
}
