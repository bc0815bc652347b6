// Package storetest is the contract every login.Store passes: the memory
// store and the Postgres store run the same suite, so `noon dev` on memory
// behaves like a cluster on Postgres.
//
//	func TestMemoryStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) login.Store { return login.NewMemoryStore() })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/services/login"
)

// Run runs the contract suite against stores made by newStore. Each subtest
// calls newStore once; a store may be shared between calls (the Postgres run
// uses one schema per test run), since every subtest uses fresh usernames.
func Run(t *testing.T, newStore func(t *testing.T) login.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s login.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"UsernameIgnoresCase", testUsernameIgnoresCase},
		{"Exists", testExists},
		{"NotFound", testNotFound},
		{"Invalid", testInvalid},
		{"CreatedAtDefault", testCreatedAtDefault},
		{"ConcurrentCreate", testConcurrentCreate},
		{"Canceled", testCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

var (
	seqMu sync.Mutex
	seq   int
)

// name returns a username no other subtest or run uses (ASCII, at most 32
// characters).
func name(t *testing.T) string {
	seqMu.Lock()
	seq++
	n := seq
	seqMu.Unlock()
	return fmt.Sprintf("st%x_%d", time.Now().UnixNano(), n)
}

// account returns a valid new account.
func account(t *testing.T) login.Account {
	return login.Account{
		ID:           login.NewAccountID(),
		Username:     name(t),
		Nickname:     "Ünïcödé 名前 ☃",
		PasswordHash: "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHRzYWx0$" + strings.Repeat("A", 43),
		CreatedAt:    time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("X", 3600)),
	}
}

// want is a as a store returns it: CreatedAt in UTC, to the microsecond.
func want(a login.Account) login.Account {
	a.CreatedAt = a.CreatedAt.UTC().Truncate(time.Microsecond)
	return a
}

func equal(t *testing.T, what string, got, want login.Account) {
	t.Helper()
	if got.ID != want.ID || got.Username != want.Username || got.Nickname != want.Nickname ||
		got.PasswordHash != want.PasswordHash || !got.CreatedAt.Equal(want.CreatedAt) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testCreateAndGet(t *testing.T, s login.Store) {
	ctx := context.Background()
	a := account(t)
	if err := s.Create(ctx, a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := s.ByID(ctx, a.ID)
	if err != nil {
		t.Fatalf("ByID: %v", err)
	}
	equal(t, "ByID", got, want(a))
	got, err = s.ByUsername(ctx, a.Username)
	if err != nil {
		t.Fatalf("ByUsername: %v", err)
	}
	equal(t, "ByUsername", got, want(a))
}

func testUsernameIgnoresCase(t *testing.T, s login.Store) {
	ctx := context.Background()
	a := account(t)
	a.Username = "MiXeD." + a.Username
	if err := s.Create(ctx, a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	for _, u := range []string{a.Username, strings.ToLower(a.Username), strings.ToUpper(a.Username)} {
		got, err := s.ByUsername(ctx, u)
		if err != nil {
			t.Fatalf("ByUsername(%q): %v", u, err)
		}
		equal(t, "ByUsername("+u+")", got, want(a)) // the username as registered
	}
	// Only ASCII folds: the Kelvin sign is not a "k" (Go's ToLower would
	// say it is).
	k := login.Account{ID: login.NewAccountID(), Username: "k" + name(t), PasswordHash: "x"}
	if err := s.Create(ctx, k); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := s.ByUsername(ctx, "\u212a"+k.Username[1:]); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("ByUsername(Kelvin sign) = %v, want ErrNotFound", err)
	}
}

func testExists(t *testing.T, s login.Store) {
	ctx := context.Background()
	a := account(t)
	if err := s.Create(ctx, a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	sameName := account(t)
	sameName.Username = strings.ToUpper(a.Username)
	if err := s.Create(ctx, sameName); !errors.Is(err, login.ErrExists) {
		t.Fatalf("Create(same username, other case) = %v, want ErrExists", err)
	}
	sameID := account(t)
	sameID.ID = a.ID
	if err := s.Create(ctx, sameID); !errors.Is(err, login.ErrExists) {
		t.Fatalf("Create(same id) = %v, want ErrExists", err)
	}
	if _, err := s.ByID(ctx, sameName.ID); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("a refused account was stored: %v", err)
	}
	if _, err := s.ByUsername(ctx, sameID.Username); !errors.Is(err, login.ErrNotFound) {
		t.Fatalf("a refused account was stored: %v", err)
	}
	got, err := s.ByUsername(ctx, a.Username)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "the first account", got, want(a))
}

func testNotFound(t *testing.T, s login.Store) {
	ctx := context.Background()
	for _, id := range []string{login.NewAccountID(), "", "nope", "00000000-0000-0000-0000-00000000000Z",
		"00000000-0000-0000-0000-000000000000", "'; DROP TABLE accounts; --", strings.Repeat("a", 10_000)} {
		if _, err := s.ByID(ctx, id); !errors.Is(err, login.ErrNotFound) {
			t.Errorf("ByID(%.40q) = %v, want ErrNotFound", id, err)
		}
	}
	for _, u := range []string{name(t), "", "with space", "nul\x00byte", "ünï", "'; DROP TABLE accounts; --", "%", "_", strings.Repeat("a", 10_000)} {
		if _, err := s.ByUsername(ctx, u); !errors.Is(err, login.ErrNotFound) {
			t.Errorf("ByUsername(%.40q) = %v, want ErrNotFound", u, err)
		}
	}
}

func testInvalid(t *testing.T, s login.Store) {
	ctx := context.Background()
	for _, mod := range []struct {
		what string
		fn   func(*login.Account)
	}{
		{"no id", func(a *login.Account) { a.ID = "" }},
		{"id not a uuid", func(a *login.Account) { a.ID = "user-1" }},
		{"uppercase uuid", func(a *login.Account) { a.ID = strings.ToUpper(a.ID) }},
		{"no username", func(a *login.Account) { a.Username = "" }},
		{"username with a space", func(a *login.Account) { a.Username = "a b" }},
		{"non-ASCII username", func(a *login.Account) { a.Username = "ünï" + a.Username }},
		{"username too long", func(a *login.Account) { a.Username = strings.Repeat("a", login.MaxUsernameLen+1) }},
		{"no password hash", func(a *login.Account) { a.PasswordHash = "" }},
	} {
		a := account(t)
		mod.fn(&a)
		if err := s.Create(ctx, a); !errors.Is(err, login.ErrInvalidAccount) {
			t.Errorf("Create(%s) = %v, want ErrInvalidAccount", mod.what, err)
		}
	}
}

func testCreatedAtDefault(t *testing.T, s login.Store) {
	ctx := context.Background()
	a := account(t)
	a.CreatedAt = time.Time{}
	a.Nickname = ""
	before := time.Now().Add(-time.Second)
	if err := s.Create(ctx, a); err != nil {
		t.Fatalf("Create: %v", err)
	}
	got, err := s.ByID(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) || got.CreatedAt.Location() != time.UTC {
		t.Fatalf("CreatedAt = %v, want about now in UTC", got.CreatedAt)
	}
	if got.Nickname != "" {
		t.Fatalf("Nickname = %q, want empty as stored", got.Nickname)
	}
}

func testConcurrentCreate(t *testing.T, s login.Store) {
	ctx := context.Background()
	u := name(t)
	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			a := account(t)
			a.Username = u
			if i%2 == 1 {
				a.Username = strings.ToUpper(u)
			}
			errs <- s.Create(ctx, a)
		}(i)
	}
	wg.Wait()
	close(errs)
	created := 0
	for err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, login.ErrExists):
			t.Errorf("Create: %v", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d of %d concurrent Creates of one username succeeded, want 1", created, n)
	}
}

func testCanceled(t *testing.T, s login.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	a := account(t)
	if err := s.Create(ctx, a); !errors.Is(err, context.Canceled) {
		t.Errorf("Create(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.ByID(ctx, a.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("ByID(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.ByUsername(ctx, a.Username); !errors.Is(err, context.Canceled) {
		t.Errorf("ByUsername(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.ByID(context.Background(), a.ID); !errors.Is(err, login.ErrNotFound) {
		t.Errorf("a canceled Create stored the account: %v", err)
	}
}
