// Package storetest is the contract every game.Store passes: the memory
// store and the Postgres store run the same suite, so `noon dev` on memory
// behaves like a cluster on Postgres.
//
//	func TestMemoryStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) game.Store { return game.NewMemoryStore() })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/services/game"
)

// Run runs the contract suite against stores made by newStore. Each
// subtest calls newStore once; a store may be shared between calls, since
// every subtest uses fresh user ids and boards.
func Run(t *testing.T, newStore func(t *testing.T) game.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s game.Store)
	}{
		{"Profile", testProfile},
		{"GrantAndSpend", testGrantAndSpend},
		{"Refusals", testRefusals},
		{"Idempotency", testIdempotency},
		{"ConcurrentWallet", testConcurrentWallet},
		{"StatsLimit", testStatsLimit},
		{"LedgerPages", testLedgerPages},
		{"BanAndAudit", testBanAndAudit},
		{"Scores", testScores},
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

// user returns a user id no other subtest or run uses.
func user(t *testing.T) string {
	return fmt.Sprintf("u%x-%d", time.Now().UnixNano(), seq.Add(1))
}

// at is a fixed time with sub-microsecond digits (stores keep microseconds).
var at = time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.FixedZone("X", 3600))

func coins(n int64) []game.Delta {
	return []game.Delta{{Name: "coins", Delta: n, Max: game.MaxBalance}}
}

func grant(key string, n int64) game.Change {
	return game.Change{Kind: game.KindGrant, Key: key, Reason: "test", Reference: "ref-" + key, Currencies: coins(n), Create: true, At: at}
}

func spend(key string, n int64) game.Change {
	return game.Change{Kind: game.KindSpend, Key: key, Reason: "test", Currencies: coins(-n), At: at}
}

func must[T any](t *testing.T, what string) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
}

func testProfile(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	if _, err := s.Profile(ctx, u); !errors.Is(err, game.ErrNotFound) {
		t.Fatalf("Profile(unknown) = %v, want ErrNotFound", err)
	}
	name, meta := "Ünï ☃", `{"a":[1,{"b":2}]}`
	p := must[game.Profile](t, "UpdateProfile")(s.UpdateProfile(ctx, u, game.ProfileUpdate{DisplayName: &name, Metadata: &meta}, at))
	want := at.UTC().Truncate(time.Microsecond)
	if p.UserID != u || p.DisplayName != name || p.Metadata != meta || p.PrivateMetadata != "{}" || p.Avatar != "" ||
		!p.Created.Equal(want) || p.Created.Location() != time.UTC || p.Seq != 0 {
		t.Fatalf("created %+v", p)
	}
	priv := `{"secret":true}`
	p = must[game.Profile](t, "UpdateProfile")(s.UpdateProfile(ctx, u, game.ProfileUpdate{PrivateMetadata: &priv}, at.Add(time.Second)))
	if p.DisplayName != name || p.Metadata != meta || p.PrivateMetadata != priv || !p.Updated.Equal(want.Add(time.Second)) || !p.Created.Equal(want) {
		t.Fatalf("a partial update changed what it did not set: %+v", p)
	}
	got := must[game.Profile](t, "Profile")(s.Profile(ctx, u))
	if got != p {
		t.Fatalf("Profile = %+v, want %+v", got, p)
	}
	names := must[map[string]string](t, "DisplayNames")(s.DisplayNames(ctx, []string{u, user(t)}))
	if len(names) != 1 || names[u] != name {
		t.Fatalf("DisplayNames = %v", names)
	}
}

func testGrantAndSpend(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	c := grant("g1", 100)
	c.Currencies = append(c.Currencies, game.Delta{Name: "gems", Delta: 5, Max: 10})
	c.Items = []game.Delta{{Name: "potion", Delta: 3, Max: 99}, {Name: "sword", Delta: 1, Max: 1}}
	c.Stats = []game.Delta{{Name: "wins", Delta: 1}, {Name: "losses", Delta: -2}}
	r := must[game.Result](t, "grant")(s.Apply(ctx, u, c))
	if r.Seq != 1 || r.Replayed || r.Balances["coins"] != 100 || r.Balances["gems"] != 5 || r.Items["potion"] != 3 ||
		r.Items["sword"] != 1 || r.Stats["wins"] != 1 || r.Stats["losses"] != -2 {
		t.Fatalf("grant = %+v", r)
	}
	sp := spend("s1", 30)
	sp.Items = []game.Delta{{Name: "sword", Delta: -1, Max: 1}}
	r = must[game.Result](t, "spend")(s.Apply(ctx, u, sp))
	if r.Seq != 2 || r.Balances["coins"] != 70 || r.Items["sword"] != 0 || len(r.Balances) != 1 {
		t.Fatalf("spend = %+v", r)
	}
	set := game.Change{Kind: game.KindSetStat, Key: "set1", SetStats: []game.Delta{{Name: "wins", Delta: 42}}, At: at}
	if r = must[game.Result](t, "set stat")(s.Apply(ctx, u, set)); r.Seq != 3 || r.Stats["wins"] != 42 {
		t.Fatalf("set stat = %+v", r)
	}
	wallet := must[map[string]int64](t, "Wallet")(s.Wallet(ctx, u))
	inv := must[map[string]int64](t, "Inventory")(s.Inventory(ctx, u))
	stats := must[map[string]int64](t, "Stats")(s.Stats(ctx, u))
	if len(wallet) != 2 || wallet["coins"] != 70 || wallet["gems"] != 5 {
		t.Fatalf("Wallet = %v", wallet)
	}
	if len(inv) != 1 || inv["potion"] != 3 { // a count of 0 is not listed
		t.Fatalf("Inventory = %v", inv)
	}
	if len(stats) != 2 || stats["wins"] != 42 || stats["losses"] != -2 {
		t.Fatalf("Stats = %v", stats)
	}
	led := must[[]game.LedgerEntry](t, "Ledger")(s.Ledger(ctx, u, game.LedgerQuery{Limit: 10}))
	wantLed := []string{"2 coins -30 70 s1", "1 coins 100 100 g1", "1 gems 5 5 g1"}
	var gotLed []string
	for _, e := range led {
		gotLed = append(gotLed, fmt.Sprintf("%d %s %d %d %s", e.Seq, e.Currency, e.Delta, e.Balance, e.Key))
		if !e.At.Equal(at.UTC().Truncate(time.Microsecond)) || e.Reason != "test" {
			t.Fatalf("ledger entry %+v", e)
		}
	}
	if !slices.Equal(gotLed, wantLed) {
		t.Fatalf("Ledger = %q, want %q", gotLed, wantLed)
	}
	if led[1].Reference != "ref-g1" {
		t.Fatalf("reference %q", led[1].Reference)
	}
	log := must[[]game.LogEntry](t, "Log")(s.Log(ctx, u, 0, 10))
	if len(log) != 3 || log[0].Kind != game.KindGrant || log[1].Key != "s1" || log[2].Kind != game.KindSetStat || log[2].Seq != 3 {
		t.Fatalf("Log = %+v", log)
	}
	if tail := must[[]game.LogEntry](t, "Log")(s.Log(ctx, u, 2, 10)); len(tail) != 1 || tail[0].Seq != 3 {
		t.Fatalf("Log after 2 = %+v", tail)
	}
	if p := must[game.Profile](t, "Profile")(s.Profile(ctx, u)); p.Seq != 3 {
		t.Fatalf("profile seq %d, want 3", p.Seq)
	}
}

// unchanged checks that u's wallet, inventory and log are as before.
func unchanged(t *testing.T, s game.Store, u string, seq int64, wallet map[string]int64) {
	t.Helper()
	ctx := context.Background()
	if got := must[map[string]int64](t, "Wallet")(s.Wallet(ctx, u)); !equalMaps(got, wallet) {
		t.Fatalf("a refused change changed the wallet: %v, want %v", got, wallet)
	}
	if log := must[[]game.LogEntry](t, "Log")(s.Log(ctx, u, 0, 100)); int64(len(log)) != seq {
		t.Fatalf("a refused change was logged: %d entries, want %d", len(log), seq)
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func testRefusals(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	if _, err := s.Apply(ctx, u, spend("x", 1)); !errors.Is(err, game.ErrNotFound) {
		t.Fatalf("spend of an unknown player = %v, want ErrNotFound", err)
	}
	if _, err := s.Profile(ctx, u); !errors.Is(err, game.ErrNotFound) {
		t.Fatalf("a refused spend created the player: %v", err)
	}
	c := grant("g", 10)
	c.Items = []game.Delta{{Name: "sword", Delta: 1, Max: 1}}
	must[game.Result](t, "grant")(s.Apply(ctx, u, c))
	wallet := map[string]int64{"coins": 10}
	for _, tc := range []struct {
		what string
		c    game.Change
		want error
	}{
		{"spend beyond the balance", spend("s", 11), game.ErrInsufficient},
		{"spend and take with one short", func() game.Change {
			c := spend("s2", 5)
			c.Items = []game.Delta{{Name: "sword", Delta: -2, Max: 1}}
			return c
		}(), game.ErrNotOwned},
		{"take what is not owned", game.Change{Kind: game.KindConsume, Key: "c", Items: []game.Delta{{Name: "potion", Delta: -1}}, At: at}, game.ErrNotOwned},
		{"past an item's max", func() game.Change {
			c := grant("g2", 1)
			c.Items = []game.Delta{{Name: "sword", Delta: 1, Max: 1}}
			return c
		}(), game.ErrLimit},
		{"past a currency's max", game.Change{Kind: game.KindGrant, Key: "g3", Currencies: []game.Delta{{Name: "coins", Delta: 1, Max: 10}}, At: at}, game.ErrLimit},
		{"empty key", game.Change{Kind: game.KindGrant, Currencies: coins(1), At: at}, game.ErrInvalid},
		{"bad user id", grant("g5", 1), game.ErrInvalid},
	} {
		uu := u
		if tc.what == "bad user id" {
			uu = "has space"
		}
		_, err := s.Apply(ctx, uu, tc.c)
		if !errors.Is(err, tc.want) {
			t.Fatalf("%s = %v, want %v", tc.what, err, tc.want)
		}
	}
	big := game.Change{Kind: game.KindGrant, Key: "big", Stats: []game.Delta{{Name: "big", Delta: 1 << 62}}, At: at}
	must[game.Result](t, "a big stat")(s.Apply(ctx, u, big))
	big.Key = "bigger"
	if _, err := s.Apply(ctx, u, big); !errors.Is(err, game.ErrLimit) {
		t.Fatalf("a stat past int64 = %v, want ErrLimit", err)
	}
	unchanged(t, s, u, 2, wallet)
	inv := must[map[string]int64](t, "Inventory")(s.Inventory(ctx, u))
	if len(inv) != 1 || inv["sword"] != 1 {
		t.Fatalf("Inventory = %v after refusals", inv)
	}
}

func testIdempotency(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	first := must[game.Result](t, "grant")(s.Apply(ctx, u, grant("k", 10)))
	c := grant("k", 10)
	c.At = at.Add(time.Hour) // a retry later: same request
	again := must[game.Result](t, "replay")(s.Apply(ctx, u, c))
	if !again.Replayed || again.Seq != first.Seq || again.Balances["coins"] != 10 {
		t.Fatalf("replay = %+v, want the first result %+v", again, first)
	}
	must[game.Result](t, "grant 2")(s.Apply(ctx, u, grant("k2", 5)))
	// A replay after another change still answers the first result.
	if again = must[game.Result](t, "replay")(s.Apply(ctx, u, grant("k", 10))); again.Balances["coins"] != 10 || again.Seq != 1 {
		t.Fatalf("late replay = %+v", again)
	}
	for _, other := range []game.Change{grant("k", 11), spend("k", 10), func() game.Change { c := grant("k", 10); c.Reason = "other"; return c }()} {
		if _, err := s.Apply(ctx, u, other); !errors.Is(err, game.ErrKeyReused) {
			t.Fatalf("key reused by %+v = %v, want ErrKeyReused", other, err)
		}
	}
	unchanged(t, s, u, 2, map[string]int64{"coins": 15})
	// Keys are per player.
	if r := must[game.Result](t, "other player")(s.Apply(ctx, user(t), grant("k", 11))); r.Replayed || r.Seq != 1 {
		t.Fatalf("another player's key k = %+v", r)
	}
}

// testConcurrentWallet: 64 concurrent grants and spends against one
// player's wallet, some with repeated keys (the same request, or another
// under the same key): the final balance is the start plus every distinct
// accepted change, it never went negative, the ledger sums to it and the
// log has one entry per accepted change.
func testConcurrentWallet(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	must[game.Result](t, "start")(s.Apply(ctx, u, grant("start", 50)))
	const n = 64
	type outcome struct {
		key   string
		delta int64
		r     game.Result
		err   error
	}
	out := make(chan outcome, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Keys 0..39: goroutines i and i+40 share key i%40; they send
			// the same request when i%40 is even, another when odd.
			k := i % 40
			amount := int64(1 + k%9)
			c := grant(fmt.Sprintf("g%d", k), amount)
			delta := amount
			if k%3 == 0 {
				c, delta = spend(fmt.Sprintf("s%d", k), 3*amount), -3*amount
			}
			if i >= 40 && k%2 == 1 {
				c.Reason = "another request"
			}
			<-start
			r, err := s.Apply(ctx, u, c)
			out <- outcome{key: c.Key, delta: delta, r: r, err: err}
		}()
	}
	close(start)
	wg.Wait()
	close(out)
	want := int64(50)
	applied := map[string]bool{}
	accepted := 0
	for o := range out {
		switch {
		case o.err == nil && !o.r.Replayed:
			if applied[o.key] {
				t.Fatalf("key %s applied twice", o.key)
			}
			applied[o.key] = true
			want += o.delta
			accepted++
		case o.err == nil: // a replay: the first result
		case errors.Is(o.err, game.ErrInsufficient), errors.Is(o.err, game.ErrKeyReused):
		default:
			t.Fatalf("Apply %s: %v", o.key, o.err)
		}
		if o.err == nil && o.r.Balances["coins"] < 0 {
			t.Fatalf("a negative balance: %+v", o.r)
		}
	}
	wallet := must[map[string]int64](t, "Wallet")(s.Wallet(ctx, u))
	if wallet["coins"] != want {
		t.Fatalf("balance %d, want %d (the start plus %d distinct accepted changes)", wallet["coins"], want, accepted)
	}
	led := must[[]game.LedgerEntry](t, "Ledger")(s.Ledger(ctx, u, game.LedgerQuery{Limit: 1000}))
	var sum int64
	prev := int64(0)
	for i := len(led) - 1; i >= 0; i-- { // oldest first
		e := led[i]
		sum += e.Delta
		if e.Balance < 0 || e.Balance != sum || e.Seq <= prev {
			t.Fatalf("ledger entry %+v: the running sum is %d (previous seq %d)", e, sum, prev)
		}
		prev = e.Seq
	}
	if sum != wallet["coins"] || len(led) != accepted+1 {
		t.Fatalf("ledger: %d entries summing to %d, want %d summing to %d", len(led), sum, accepted+1, wallet["coins"])
	}
	log := must[[]game.LogEntry](t, "Log")(s.Log(ctx, u, 0, 1000))
	for i, e := range log {
		if e.Seq != int64(i)+1 {
			t.Fatalf("log seq %d at %d: not gapless", e.Seq, i)
		}
	}
	if len(log) != accepted+1 {
		t.Fatalf("log has %d entries, want %d", len(log), accepted+1)
	}
}

func testStatsLimit(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	for b := 0; b < game.MaxStatsPerPlayer; b += 16 {
		c := game.Change{Kind: game.KindGrant, Key: fmt.Sprintf("k%d", b), Create: true, At: at}
		for i := b; i < b+16; i++ {
			c.Stats = append(c.Stats, game.Delta{Name: fmt.Sprintf("s%03d", i), Delta: 1})
		}
		must[game.Result](t, "stats")(s.Apply(ctx, u, c))
	}
	more := game.Change{Kind: game.KindGrant, Key: "more", Stats: []game.Delta{{Name: "s000", Delta: 1}, {Name: "new", Delta: 1}}, At: at}
	if _, err := s.Apply(ctx, u, more); !errors.Is(err, game.ErrLimit) {
		t.Fatalf("stat %d = %v, want ErrLimit", game.MaxStatsPerPlayer+1, err)
	}
	more.Stats = more.Stats[:1]
	if r := must[game.Result](t, "existing stat")(s.Apply(ctx, u, more)); r.Stats["s000"] != 2 {
		t.Fatalf("existing stat: %+v", r)
	}
}

func testLedgerPages(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	for i := range 10 {
		c := grant(fmt.Sprintf("g%d", i), int64(i+1))
		c.Currencies = append(c.Currencies, game.Delta{Name: "a-gems", Delta: 1, Max: game.MaxBalance})
		must[game.Result](t, "grant")(s.Apply(ctx, u, c))
	}
	all := must[[]game.LedgerEntry](t, "Ledger")(s.Ledger(ctx, u, game.LedgerQuery{Limit: 100}))
	if len(all) != 20 || all[0].Seq != 10 || all[0].Currency != "a-gems" || all[1].Currency != "coins" {
		t.Fatalf("ledger order: %+v", all[:2])
	}
	var paged []game.LedgerEntry
	q := game.LedgerQuery{Limit: 3}
	for {
		page := must[[]game.LedgerEntry](t, "Ledger page")(s.Ledger(ctx, u, q))
		paged = append(paged, page...)
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.BeforeSeq, q.AfterCurrency = last.Seq, last.Currency
	}
	if len(paged) != len(all) {
		t.Fatalf("pages hold %d entries, want %d", len(paged), len(all))
	}
	for i := range all {
		if paged[i] != all[i] {
			t.Fatalf("page entry %d = %+v, want %+v", i, paged[i], all[i])
		}
	}
	only := must[[]game.LedgerEntry](t, "Ledger coins")(s.Ledger(ctx, u, game.LedgerQuery{Currency: "coins", Limit: 4}))
	if len(only) != 4 || only[0].Balance != 55 || only[3].Seq != 7 {
		t.Fatalf("coins only: %+v", only)
	}
	if none := must[[]game.LedgerEntry](t, "Ledger")(s.Ledger(ctx, user(t), game.LedgerQuery{Limit: 3})); len(none) != 0 {
		t.Fatalf("an unknown player's ledger: %+v", none)
	}
}

func testBanAndAudit(t *testing.T, s game.Store) {
	ctx := context.Background()
	u := user(t)
	until := at.Add(24 * time.Hour)
	b := must[game.Ban](t, "SetBan")(s.SetBan(ctx, u, game.Ban{Until: until, Reason: "cheating"},
		game.AuditEntry{At: at, Admin: "admin", Action: "ban", UserID: u, Reason: "cheating", Detail: `{"d":1}`}))
	if !b.Until.Equal(until.UTC().Truncate(time.Microsecond)) || b.Reason != "cheating" || !b.Active(at) || b.Active(until) {
		t.Fatalf("ban %+v", b)
	}
	if p := must[game.Profile](t, "Profile")(s.Profile(ctx, u)); p.Ban != b {
		t.Fatalf("profile ban %+v, want %+v (a ban creates the player)", p.Ban, b)
	}
	c := grant("gm", 5)
	c.Kind = game.KindAdminGrant
	c.Audit = &game.AuditEntry{At: at, Admin: "admin", Action: game.KindAdminGrant, UserID: u, Reason: "refund", Detail: "{}"}
	must[game.Result](t, "audited grant")(s.Apply(ctx, u, c))
	must[game.Result](t, "audited replay")(s.Apply(ctx, u, c)) // a replay writes no second line
	must[game.Ban](t, "unban")(s.SetBan(ctx, u, game.Ban{}, game.AuditEntry{At: at, Admin: "admin", Action: "unban", UserID: u, Reason: "appeal", Detail: "{}"}))
	if p := must[game.Profile](t, "Profile")(s.Profile(ctx, u)); p.Ban.Active(at) || !p.Ban.Until.IsZero() {
		t.Fatalf("after unban: %+v", p.Ban)
	}
	list := must[[]game.AuditEntry](t, "Audit")(s.Audit(ctx, u, 10))
	var got []string
	for _, e := range list {
		got = append(got, e.Action+":"+e.Reason)
		if e.UserID != u || e.Admin != "admin" || e.ID == 0 {
			t.Fatalf("audit entry %+v", e)
		}
	}
	if want := []string{"unban:appeal", "gm_grant:refund", "ban:cheating"}; !slices.Equal(got, want) {
		t.Fatalf("Audit = %v, want %v", got, want)
	}
	if list[0].ID <= list[1].ID {
		t.Fatalf("audit ids do not grow: %d after %d", list[0].ID, list[1].ID)
	}
	if two := must[[]game.AuditEntry](t, "Audit")(s.Audit(ctx, "", 2)); len(two) != 2 {
		t.Fatalf("Audit of everyone, limit 2: %d entries", len(two))
	}
}

func testScores(t *testing.T, s game.Store) {
	ctx := context.Background()
	board := fmt.Sprintf("b%x", rand.Uint64())
	u1, u2 := user(t), user(t)
	desc := game.ScoreOp{Operator: "best"}
	asc := game.ScoreOp{Operator: "best", Asc: true}
	step := func(b, season, u string, score int64, op game.ScoreOp, want int64) game.ScoreRow {
		t.Helper()
		r := must[game.ScoreRow](t, "SubmitScore")(s.SubmitScore(ctx, b, season, u, score, op, at))
		if r.Score != want || r.UserID != u {
			t.Fatalf("SubmitScore(%s %s %d %+v) = %+v, want score %d", b, season, score, op, r, want)
		}
		return r
	}
	r1 := step(board, "all", u1, 10, desc, 10)
	r2 := step(board, "all", u1, 5, desc, 10)
	step(board, "all", u1, 12, desc, 12)
	step(board+"a", "all", u1, 10, asc, 10)
	step(board+"a", "all", u1, 12, asc, 10)
	step(board+"a", "all", u1, 3, asc, 3)
	step(board+"s", "all", u1, 10, game.ScoreOp{Operator: "set"}, 10)
	step(board+"s", "all", u1, -4, game.ScoreOp{Operator: "set"}, -4)
	step(board+"i", "all", u1, 10, game.ScoreOp{Operator: "incr"}, 10)
	step(board+"i", "all", u1, -4, game.ScoreOp{Operator: "incr"}, 6)
	step(board, "d20260101", u1, 1, desc, 1) // another season: another board
	if r2.Version <= r1.Version {
		t.Fatalf("versions do not grow: %d then %d", r1.Version, r2.Version)
	}
	step(board+"i", "all", u2, game.MaxScore, game.ScoreOp{Operator: "incr"}, game.MaxScore)
	if _, err := s.SubmitScore(ctx, board+"i", "all", u2, 1, game.ScoreOp{Operator: "incr"}, at); !errors.Is(err, game.ErrLimit) {
		t.Fatalf("incr past MaxScore = %v, want ErrLimit", err)
	}
	if _, err := s.SubmitScore(ctx, board, "all", u2, game.MaxScore+1, desc, at); !errors.Is(err, game.ErrLimit) {
		t.Fatalf("a score past MaxScore = %v, want ErrLimit", err)
	}
	// Pages by user id.
	var users []string
	for i := range 25 {
		u := fmt.Sprintf("p%02d-%s", i, board)
		users = append(users, u)
		s.SubmitScore(ctx, board+"p", "all", u, int64(i), desc, at.Add(time.Duration(i)*time.Second))
	}
	var got []string
	after := ""
	for {
		page := must[[]game.ScoreRow](t, "Scores")(s.Scores(ctx, board+"p", "all", after, 10))
		for _, r := range page {
			got = append(got, r.UserID)
		}
		if len(page) < 10 {
			break
		}
		after = page[len(page)-1].UserID
	}
	if !slices.Equal(got, users) {
		t.Fatalf("Scores pages = %v", got)
	}
	since := must[[]game.ScoreRow](t, "ScoresSince")(s.ScoresSince(ctx, board+"p", "all", at.Add(20*time.Second)))
	if len(since) != 5 || !strings.HasPrefix(since[0].UserID, "p20-") {
		t.Fatalf("ScoresSince = %+v", since)
	}
}

func testCanceled(t *testing.T, s game.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	u := user(t)
	if _, err := s.Apply(ctx, u, grant("k", 1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply(canceled) = %v, want context.Canceled", err)
	}
	if _, err := s.Profile(context.Background(), u); !errors.Is(err, game.ErrNotFound) {
		t.Fatalf("a canceled grant created the player: %v", err)
	}
}
