package game_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/wire"
)

// testOptions are the options of the tests: a small catalogue, three
// boards and a Redis prefix of their own.
func testOptions(t testing.TB) game.Options {
	o := game.NewOptions()
	o.RedisPrefix = "noontest:" + unique(t) + ":"
	o.Currencies = []game.CurrencyOptions{{Name: "coins"}, {Name: "gems", Max: 100}}
	o.Items = []game.ItemOptions{
		{ID: "potion", Stackable: true, Consumable: true, MaxCount: 99, Properties: map[string]string{"heal": "50"}},
		{ID: "sword", Properties: map[string]string{"damage": "7"}},
	}
	o.Boards = []game.BoardOptions{
		{ID: "hi", Order: gamepb.ORDER_DESC, Operator: gamepb.OPERATOR_BEST},
		{ID: "lo", Order: gamepb.ORDER_ASC, Operator: gamepb.OPERATOR_BEST, ClientSubmit: true},
		{ID: "sum", Operator: gamepb.OPERATOR_INCR, Reset: gamepb.RESET_DAILY},
	}
	o.MaxMetadataBytes = 256
	o.MaxMetadataDepth = 3
	return o
}

// miniRedis returns a client of a fresh miniredis.
func miniRedis(t testing.TB) redis.UniversalClient {
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { c.Close() })
	return c
}

// newService returns a game service over store and rdb.
func newService(t testing.TB, opts game.Options, store game.Store, rdb redis.UniversalClient) *game.Service {
	t.Helper()
	s, err := game.New(opts, game.Deps{Store: store, Redis: rdb, Logger: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("game.New: %v", err)
	}
	return s
}

// as returns the service's client stubs calling its handlers directly
// with session pb: a player's (a client session through a broker) or nil
// (a platform process on a plain link).
func as(s *game.Service, pb *platformpb.Session) *gamerpc.Client {
	hs := s.Handlers()
	return gamerpc.NewClient(func(ctx context.Context, method string, req, resp thrift.TStruct) error {
		b, err := thriftx.Marshal(req)
		if err != nil {
			return err
		}
		out, err := hs[method](ctx, services.NewSession(pb), b)
		if err != nil {
			return err
		}
		return thriftx.Unmarshal(out, resp)
	})
}

// player is the session of a logged-in client.
func player(id string) *platformpb.Session {
	return &platformpb.Session{Id: "conn-" + id, UserId: id, Broker: "b1"}
}

// code checks that err carries the wire code want (and, when set, text
// in its message).
func code(t *testing.T, what string, err error, want, text string) {
	t.Helper()
	if wire.CodeOf(err) != want || err == nil || !strings.Contains(err.Error(), text) {
		t.Fatalf("%s = %v; want %s containing %q", what, err, want, text)
	}
}

var bg = context.Background()

func TestProfileAndInventory(t *testing.T) {
	s := newService(t, testOptions(t), game.NewMemoryStore(), miniRedis(t))
	ann, bob := "ann-"+unique(t), "bob-"+unique(t)
	a, b := as(s, player(ann)), as(s, player(bob))

	p, err := a.GetProfile(bg, &gamepb.GetProfileRequest{})
	if err != nil || p.Profile.UserID != ann || p.Profile.Metadata != "{}" || p.Profile.CreatedUnixMs != 0 {
		t.Fatalf("own profile before any change: %+v, %v", p, err)
	}
	_, err = b.GetProfile(bg, &gamepb.GetProfileRequest{UserID: ann})
	code(t, "another's profile before it exists", err, wire.CodeNotFound, "no player")

	name, meta, priv := "Ann ☃", `{"title":"champion","badges":[1,2]}`, `{"email_opt_in":true}`
	up, err := a.UpdateProfile(bg, &gamepb.UpdateProfileRequest{DisplayName: &name, Metadata: &meta, PrivateMetadata: &priv})
	if err != nil || up.Profile.DisplayName != name || up.Profile.PrivateMetadata != priv {
		t.Fatalf("UpdateProfile: %+v, %v", up, err)
	}
	other, err := b.GetProfile(bg, &gamepb.GetProfileRequest{UserID: ann})
	if err != nil || other.Profile.DisplayName != name || other.Profile.Metadata != meta || other.Profile.PrivateMetadata != "" || len(other.Profile.Stats) != 0 {
		t.Fatalf("bob sees ann's %+v, %v; want the public part only", other, err)
	}

	// Bad profile input: refused, nothing changed.
	for _, tc := range []struct {
		what string
		req  *gamepb.UpdateProfileRequest
		text string
	}{
		{"oversized metadata", &gamepb.UpdateProfileRequest{Metadata: thrift.StringPtr(`{"x":"` + strings.Repeat("a", 300) + `"}`)}, "at most 256 bytes"},
		{"deep metadata", &gamepb.UpdateProfileRequest{Metadata: thrift.StringPtr(`{"a":{"b":{"c":{}}}}`)}, "nested deeper than 3"},
		{"an array", &gamepb.UpdateProfileRequest{PrivateMetadata: thrift.StringPtr(`[1]`)}, "must be a JSON object"},
		{"two objects", &gamepb.UpdateProfileRequest{Metadata: thrift.StringPtr(`{} {}`)}, "not valid JSON"},
		{"not JSON", &gamepb.UpdateProfileRequest{Metadata: thrift.StringPtr(`{"a":`)}, "not valid JSON"},
		{"a long name", &gamepb.UpdateProfileRequest{DisplayName: thrift.StringPtr(strings.Repeat("n", 33))}, "display_name"},
		{"a control character", &gamepb.UpdateProfileRequest{DisplayName: thrift.StringPtr("a\x00b")}, "display_name"},
		{"a long avatar", &gamepb.UpdateProfileRequest{Avatar: thrift.StringPtr(strings.Repeat("a", 257))}, "avatar"},
	} {
		_, err := a.UpdateProfile(bg, tc.req)
		code(t, tc.what, err, wire.CodeBadRequest, tc.text)
	}
	if p, _ := a.GetProfile(bg, &gamepb.GetProfileRequest{}); p.Profile.Metadata != meta || p.Profile.DisplayName != name {
		t.Fatalf("a refused update changed the profile: %+v", p.Profile)
	}

	// Grants are server paths; the inventory lists with the catalogue.
	srv := as(s, nil)
	if _, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, Items: map[string]int64{"potion": 3, "sword": 1},
		Stats: map[string]int64{"wins": 2}, Reason: "quest", IdempotencyKey: "q1"}); err != nil {
		t.Fatal(err)
	}
	inv, err := a.GetInventory(bg, &gamepb.GetInventoryRequest{})
	if err != nil || len(inv.Items) != 2 || inv.Items[0].Item != "potion" || inv.Items[0].Count != 3 || !inv.Items[0].Consumable ||
		inv.Items[0].Properties["heal"] != "50" || inv.Items[1].Item != "sword" || inv.Items[1].Stackable {
		t.Fatalf("GetInventory: %+v, %v", inv, err)
	}
	if p, _ := a.GetProfile(bg, &gamepb.GetProfileRequest{}); p.Profile.Stats["wins"] != 2 {
		t.Fatalf("own stats: %+v", p.Profile.Stats)
	}
	rep, err := a.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "potion", Count: 2, IdempotencyKey: "c1"})
	if err != nil || rep.Items["potion"] != 1 || rep.Replayed {
		t.Fatalf("ConsumeItem: %+v, %v", rep, err)
	}
	if rep, err = a.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "potion", Count: 2, IdempotencyKey: "c1"}); err != nil || !rep.Replayed || rep.Items["potion"] != 1 {
		t.Fatalf("ConsumeItem retried: %+v, %v", rep, err)
	}
	_, err = a.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "potion", Count: 5, IdempotencyKey: "c1"})
	code(t, "a key reused for another consume", err, wire.CodeConflict, "idempotency key")
	_, err = a.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "potion", Count: 2, IdempotencyKey: "c2"})
	code(t, "consume more than owned", err, wire.CodeConflict, "count of item potion is 1")
	_, err = a.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "sword", Count: 1, IdempotencyKey: "c3"})
	code(t, "consume a sword", err, wire.CodeBadRequest, "not consumable")
	_, err = a.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "elixir", Count: 1, IdempotencyKey: "c4"})
	code(t, "consume an unknown item", err, wire.CodeNotFound, "no item")
	_, err = b.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "potion", Count: 1, IdempotencyKey: "c1"})
	code(t, "consume by a player who owns nothing", err, wire.CodeConflict, "you have no potion")
	_, err = a.ConsumeItem(bg, &gamepb.ConsumeItemRequest{Item: "potion", Count: 1})
	code(t, "consume without a key", err, wire.CodeBadRequest, "idempotency_key is required")
}

func TestWalletAndBadInput(t *testing.T) {
	s := newService(t, testOptions(t), game.NewMemoryStore(), miniRedis(t))
	ann := "ann-" + unique(t)
	a, srv := as(s, player(ann)), as(s, nil)

	w, err := a.GetWallet(bg, &gamepb.GetWalletRequest{})
	if err != nil || len(w.Balances) != 2 || w.Balances["coins"] != 0 || w.Balances["gems"] != 0 {
		t.Fatalf("empty wallet: %+v, %v", w, err)
	}
	g, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"coins": 100, "gems": 10}, Reason: "room_win", Reference: "room:r1", IdempotencyKey: "room:r1:win"})
	if err != nil || g.Balances["coins"] != 100 || g.Seq != 1 {
		t.Fatalf("Grant: %+v, %v", g, err)
	}
	sp, err := srv.Spend(bg, &gamepb.SpendRequest{UserID: ann, Currencies: map[string]int64{"coins": 30}, Reason: "purchase", IdempotencyKey: "order-1"})
	if err != nil || sp.Balances["coins"] != 70 || sp.Seq != 2 {
		t.Fatalf("Spend: %+v, %v", sp, err)
	}
	for _, tc := range []struct {
		what string
		call func() error
		code string
		text string
	}{
		{"a spend beyond the balance", func() error {
			_, err := srv.Spend(bg, &gamepb.SpendRequest{UserID: ann, Currencies: map[string]int64{"coins": 71, "gems": 1}, IdempotencyKey: "k1"})
			return err
		}, wire.CodeConflict, "balance of coins is 70, the change takes 71"},
		{"a grant past a currency's max", func() error {
			_, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"gems": 91}, IdempotencyKey: "k2"})
			return err
		}, wire.CodeConflict, "max 100"},
		{"an unknown currency", func() error {
			_, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"gold": 1}, IdempotencyKey: "k3"})
			return err
		}, wire.CodeNotFound, `no currency "gold"`},
		{"an unknown item", func() error {
			_, err := srv.Spend(bg, &gamepb.SpendRequest{UserID: ann, Items: map[string]int64{"shield": 1}, IdempotencyKey: "k4"})
			return err
		}, wire.CodeNotFound, `no item "shield"`},
		{"a take of what is not owned", func() error {
			_, err := srv.Spend(bg, &gamepb.SpendRequest{UserID: ann, Items: map[string]int64{"sword": 1}, IdempotencyKey: "k5"})
			return err
		}, wire.CodeConflict, "count of item sword is 0"},
		{"an unknown user", func() error {
			_, err := srv.Spend(bg, &gamepb.SpendRequest{UserID: "nobody-" + unique(t), Currencies: map[string]int64{"coins": 1}, IdempotencyKey: "k6"})
			return err
		}, wire.CodeNotFound, "no player"},
		{"a negative amount", func() error {
			_, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"coins": -5}, IdempotencyKey: "k7"})
			return err
		}, wire.CodeBadRequest, "an amount in [1,"},
		{"no key", func() error {
			_, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"coins": 5}})
			return err
		}, wire.CodeBadRequest, "idempotency_key is required"},
		{"nothing", func() error {
			_, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, IdempotencyKey: "k8"})
			return err
		}, wire.CodeBadRequest, "nothing to grant"},
		{"too many entries", func() error {
			st := map[string]int64{}
			for i := range 17 {
				st[fmt.Sprintf("s%d", i)] = 1
			}
			_, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: ann, Stats: st, IdempotencyKey: "k9"})
			return err
		}, wire.CodeBadRequest, "at most 16"},
		{"a bad user id", func() error {
			_, err := srv.Grant(bg, &gamepb.GrantRequest{UserID: "a b", Currencies: map[string]int64{"coins": 5}, IdempotencyKey: "k10"})
			return err
		}, wire.CodeBadRequest, "user_id"},
		{"the key of the grant, for a spend", func() error {
			_, err := srv.Spend(bg, &gamepb.SpendRequest{UserID: ann, Currencies: map[string]int64{"coins": 1}, IdempotencyKey: "room:r1:win"})
			return err
		}, wire.CodeConflict, "idempotency key"},
		{"a client's Grant", func() error {
			_, err := a.Grant(bg, &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"coins": 1000}, IdempotencyKey: "k11"})
			return err
		}, wire.CodeUnauthenticated, "clients may not call it"},
		{"a client's AdminGrant", func() error {
			_, err := a.AdminGrant(bg, &gamepb.AdminGrantRequest{Grant: &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"coins": 1}, IdempotencyKey: "k12", Reason: "x"}})
			return err
		}, wire.CodeUnauthenticated, "clients may not call it"},
		{"an operator's grant without a reason", func() error {
			_, err := srv.AdminGrant(bg, &gamepb.AdminGrantRequest{Grant: &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"coins": 1}, IdempotencyKey: "k13"}})
			return err
		}, wire.CodeBadRequest, "reason is required"},
		{"a client's submit to a server board", func() error {
			_, err := a.SubmitScore(bg, &gamepb.SubmitScoreRequest{Board: "hi", Score: 5})
			return err
		}, wire.CodeUnauthenticated, "servers only"},
		{"an unknown board", func() error {
			_, err := a.Top(bg, &gamepb.TopRequest{Board: "nope"})
			return err
		}, wire.CodeNotFound, `no board "nope"`},
		{"a score out of range", func() error {
			_, err := a.SubmitScore(bg, &gamepb.SubmitScoreRequest{Board: "lo", Score: game.MaxScore + 1})
			return err
		}, wire.CodeBadRequest, "score must be within"},
		{"a bad cursor", func() error {
			_, err := a.ListLedger(bg, &gamepb.ListLedgerRequest{Cursor: "x"})
			return err
		}, wire.CodeBadRequest, "cursor"},
		{"not logged in", func() error {
			_, err := srv.GetWallet(bg, &gamepb.GetWalletRequest{})
			return err
		}, wire.CodeUnauthenticated, "log in first"},
	} {
		code(t, tc.what, tc.call(), tc.code, tc.text)
	}
	w, _ = a.GetWallet(bg, &gamepb.GetWalletRequest{})
	if w.Balances["coins"] != 70 || w.Balances["gems"] != 10 {
		t.Fatalf("refusals changed the wallet: %v", w.Balances)
	}
	led, err := a.ListLedger(bg, &gamepb.ListLedgerRequest{Limit: 2})
	if err != nil || len(led.Entries) != 2 || led.Entries[0].Reason != "purchase" || led.Entries[0].Balance != 70 || led.NextCursor == "" {
		t.Fatalf("ListLedger: %+v, %v", led, err)
	}
	rest, err := a.ListLedger(bg, &gamepb.ListLedgerRequest{Limit: 2, Cursor: led.NextCursor})
	if err != nil || len(rest.Entries) != 1 || rest.Entries[0].Currency != "gems" || rest.Entries[0].Reference != "room:r1" || rest.NextCursor != "" {
		t.Fatalf("ListLedger page 2: %+v, %v", rest, err)
	}
	gems, err := a.ListLedger(bg, &gamepb.ListLedgerRequest{Currency: thrift.StringPtr("coins")})
	if err != nil || len(gems.Entries) != 2 || gems.Entries[1].Reference != "room:r1" || gems.Entries[1].IdempotencyKey != "room:r1:win" {
		t.Fatalf("ListLedger coins: %+v, %v", gems, err)
	}
}

func TestOperators(t *testing.T) {
	s := newService(t, testOptions(t), game.NewMemoryStore(), miniRedis(t))
	ann := "ann-" + unique(t)
	gm := as(s, nil) // a plain link: the caller is not known, admin methods accept it
	_, err := gm.GetPlayer(bg, &gamepb.GetPlayerRequest{UserID: ann})
	code(t, "GetPlayer of an unknown player", err, wire.CodeNotFound, "no player")
	if _, err := gm.AdminGrant(bg, &gamepb.AdminGrantRequest{Grant: &gamepb.GrantRequest{UserID: ann, Currencies: map[string]int64{"coins": 50},
		Items: map[string]int64{"sword": 1}, Reason: "support ticket 12", IdempotencyKey: "gm1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gm.AdminTake(bg, &gamepb.AdminTakeRequest{Take: &gamepb.SpendRequest{UserID: ann, Currencies: map[string]int64{"coins": 20},
		Reason: "duplicated reward", IdempotencyKey: "gm2"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := gm.SetStat(bg, &gamepb.SetStatRequest{UserID: ann, Stat: "wins", Value: 7, Reason: "restore", IdempotencyKey: "gm3"}); err != nil {
		t.Fatal(err)
	}
	b, err := gm.Ban(bg, &gamepb.BanRequest{UserID: ann, DurationSeconds: 3600, Reason: "cheating"})
	if err != nil || !b.Ban.Banned || b.Ban.Reason != "cheating" || b.Ban.UntilUnixMs < time.Now().Add(59*time.Minute).UnixMilli() {
		t.Fatalf("Ban: %+v, %v", b, err)
	}
	st, err := gm.BanStatus(bg, &gamepb.BanStatusRequest{UserID: ann})
	if err != nil || !st.Banned {
		t.Fatalf("BanStatus: %+v, %v", st, err)
	}
	p, err := gm.GetPlayer(bg, &gamepb.GetPlayerRequest{UserID: ann})
	if err != nil || p.Player.Balances["coins"] != 30 || len(p.Player.Items) != 1 || p.Player.Profile.Stats["wins"] != 7 || !p.Player.Ban.Banned || p.Player.Seq != 3 {
		t.Fatalf("GetPlayer: %+v, %v", p, err)
	}
	if _, err := gm.Unban(bg, &gamepb.UnbanRequest{UserID: ann, Reason: "appeal"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := gm.BanStatus(bg, &gamepb.BanStatusRequest{UserID: ann}); st.Banned {
		t.Fatal("still banned after Unban")
	}
	_, err = gm.Ban(bg, &gamepb.BanRequest{UserID: ann, DurationSeconds: 0, Reason: "x"})
	code(t, "a ban of no duration", err, wire.CodeBadRequest, "duration_seconds")
	_, err = gm.Ban(bg, &gamepb.BanRequest{UserID: ann, DurationSeconds: 60})
	code(t, "a ban without a reason", err, wire.CodeBadRequest, "reason is required")
	au, err := gm.Audit(bg, &gamepb.AuditRequest{UserID: ann})
	var got []string
	for _, e := range au.GetEntries() {
		got = append(got, e.Action+"/"+e.Admin+"/"+e.Reason)
	}
	want := []string{"unban/unknown/appeal", "ban/unknown/cheating", "set_stat/unknown/restore", "gm_take/unknown/duplicated reward", "gm_grant/unknown/support ticket 12"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Audit = %q, %v; want %q", got, err, want)
	}
	if !strings.Contains(au.Entries[4].Detail, `"coins":50`) {
		t.Fatalf("audit detail %s", au.Entries[4].Detail)
	}
	if st, err := gm.BanStatus(bg, &gamepb.BanStatusRequest{UserID: "nobody-" + unique(t)}); err != nil || st.Banned {
		t.Fatalf("BanStatus of an unknown player: %+v, %v", st, err)
	}
}

// TestSeasons: a board's season id derives from the time, in UTC.
func TestSeasons(t *testing.T) {
	at := time.Date(2026, 12, 31, 23, 30, 0, 0, time.FixedZone("X", -3600)) // 2027-01-01 00:30 UTC, a Friday
	for _, tc := range []struct{ reset, season string }{
		{gamepb.RESET_NEVER, "all"}, {gamepb.RESET_DAILY, "d20270101"}, {gamepb.RESET_WEEKLY, "w202653"}, {gamepb.RESET_MONTHLY, "m202701"},
	} {
		o := testOptions(t)
		o.Boards = []game.BoardOptions{{ID: "b", Reset: tc.reset, ClientSubmit: true}}
		s, err := game.New(o, game.Deps{Store: game.NewMemoryStore(), Redis: miniRedis(t), Clock: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := as(s, player("p1")).SubmitScore(bg, &gamepb.SubmitScoreRequest{Board: "b", Score: 1})
		if err != nil || rep.Season != tc.season || rep.Rank != 1 {
			t.Errorf("reset %s: %+v, %v; want season %s", tc.reset, rep, err, tc.season)
		}
	}
}

// expected is the board a test computes: rows best first, ties by user id.
func expected(scores map[string]int64, asc bool) []*gamepb.Score {
	var out []*gamepb.Score
	for u, v := range scores {
		out = append(out, &gamepb.Score{UserID: u, Score: v})
	}
	slices.SortFunc(out, func(a, b *gamepb.Score) int {
		if a.Score != b.Score {
			if (a.Score < b.Score) == asc {
				return -1
			}
			return 1
		}
		return strings.Compare(a.UserID, b.UserID)
	})
	for i, r := range out {
		r.Rank = int64(i) + 1
	}
	return out
}

// sameRows compares rows by rank, user and score (and display name when
// names is set).
func sameRows(t *testing.T, what string, got, want []*gamepb.Score, names map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Rank != w.Rank || g.UserID != w.UserID || g.Score != w.Score || names != nil && g.DisplayName != names[w.UserID] {
			t.Fatalf("%s: row %d = %+v, want %+v (name %q)", what, i, g, w, names[w.UserID])
		}
	}
}

// TestLeaderboardRealStores: 10,000 scores over 100 players on real
// Postgres and Redis (two boards: best-of, descending, and a sum that
// resets daily): 8,000 of them already in Postgres when the service starts
// (written in bulk, as a board's history: the first read rebuilds Redis
// from them), 2,000 submitted through game.SubmitScoreFor by 64 callers
// at once. Top and AroundMe agree with a sort done here; the Redis keys
// deleted, the boards are rebuilt from Postgres with the same answers.
// (Each live submit is a Postgres commit: 10,000 of them take seconds.)
func TestLeaderboardRealStores(t *testing.T) {
	rdb := testenv.Redis(t)
	pool, schema := pgSchema(t)
	store, err := game.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	bulk := func(board, season string, rows map[string]int64) {
		var users []string
		var scores []int64
		for u, v := range rows {
			users, scores = append(users, u), append(scores, v)
		}
		sql := `INSERT INTO ` + schema + `.scores (board, season, user_id, score, version, updated_at)
SELECT $1, $2, u, s, nextval('` + schema + `.score_versions'), now() FROM unnest($3::text[], $4::bigint[]) AS t(u, s)`
		if _, err := pool.Exec(bg, sql, board, season, users, scores); err != nil {
			t.Fatal(err)
		}
	}
	testLeaderboard(t, store, rdb, 10_000, 8_000, bulk)
}

// TestLeaderboardMemory is the same on the memory store and miniredis,
// every score submitted live.
func TestLeaderboardMemory(t *testing.T) {
	testLeaderboard(t, game.NewMemoryStore(), miniRedis(t), 2_000, 0, nil)
}

// testLeaderboard submits n scores, the first preloaded of them written
// by bulk (board, season, the rows they leave) before the service reads
// the boards.
func testLeaderboard(t *testing.T, store game.Store, rdb redis.UniversalClient, n, preloaded int, bulk func(board, season string, rows map[string]int64)) {
	opts := testOptions(t)
	s := newService(t, opts, store, rdb)
	t.Cleanup(func() { deleteKeys(t, rdb, opts.RedisPrefix) })
	srv := as(s, nil)
	const players = 100
	users := make([]string, players)
	names := map[string]string{}
	for i := range users {
		users[i] = fmt.Sprintf("p%03d-%s", i, unique(t))
		if i%10 == 0 {
			names[users[i]] = fmt.Sprintf("Player %d", i)
			if _, err := as(s, player(users[i])).UpdateProfile(bg, &gamepb.UpdateProfileRequest{DisplayName: thrift.StringPtr(names[users[i]])}); err != nil {
				t.Fatal(err)
			}
		}
	}
	best, sums := map[string]int64{}, map[string]int64{}
	type sub struct {
		board, user string
		score       int64
	}
	subs := make([]sub, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range subs {
		u := users[rng.IntN(players)]
		if i%2 == 0 {
			v := rng.Int64N(5000)
			subs[i] = sub{"hi", u, v}
			if old, ok := best[u]; !ok || v > old {
				best[u] = v
			}
		} else {
			v := rng.Int64N(200) - 50
			subs[i] = sub{"sum", u, v}
			sums[u] += v
		}
	}
	if preloaded > 0 {
		hi, sum := map[string]int64{}, map[string]int64{}
		for _, x := range subs[:preloaded] {
			if x.board == "hi" {
				if old, ok := hi[x.user]; !ok || x.score > old {
					hi[x.user] = x.score
				}
			} else {
				sum[x.user] += x.score
			}
		}
		season := "d" + time.Now().UTC().Format("20060102")
		bulk("hi", "all", hi)
		bulk("sum", season, sum)
		subs = subs[preloaded:]
	}
	work := make(chan sub)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := range work {
				if _, err := srv.SubmitScoreFor(bg, &gamepb.SubmitScoreForRequest{UserID: x.user, Board: x.board, Score: x.score}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for _, x := range subs {
		work <- x
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("SubmitScoreFor: %v", err)
	}

	check := func(when string) {
		for _, bd := range []struct {
			id   string
			want []*gamepb.Score
		}{{"hi", expected(best, false)}, {"sum", expected(sums, false)}} {
			_, err := srv.Top(bg, &gamepb.TopRequest{}) // not logged in
			code(t, "Top not logged in", err, wire.CodeUnauthenticated, "log in")
			top, err := as(s, player(users[0])).Top(bg, &gamepb.TopRequest{Board: bd.id, N: 100})
			if err != nil {
				t.Fatal(err)
			}
			sameRows(t, when+": Top "+bd.id, top.Scores, bd.want, names)
			if top, _ = as(s, player(users[0])).Top(bg, &gamepb.TopRequest{Board: bd.id}); len(top.Scores) != 10 {
				t.Fatalf("Top with n 0: %d rows, want 10", len(top.Scores))
			}
			for _, i := range []int{0, 1, 2, 50, 97, 99} {
				me := bd.want[i].UserID
				am, err := as(s, player(me)).AroundMe(bg, &gamepb.AroundMeRequest{Board: bd.id, N: 3})
				if err != nil {
					t.Fatal(err)
				}
				sameRows(t, fmt.Sprintf("%s: AroundMe %s rank %d", when, bd.id, i+1), am.Scores, bd.want[max(0, i-3):min(len(bd.want), i+4)], nil)
			}
		}
		am, err := as(s, player("nobody")).AroundMe(bg, &gamepb.AroundMeRequest{Board: "hi"})
		if err != nil || len(am.Scores) != 0 {
			t.Fatalf("AroundMe of a player with no score: %+v, %v", am, err)
		}
	}
	check("built by submits")
	// Redis loses the boards; 8 readers at once find them missing: one
	// rebuilds under the lock, the others wait for it, none sees a part.
	deleteKeys(t, rdb, opts.RedisPrefix)
	want := expected(best, false)
	var rwg sync.WaitGroup
	for i := range 8 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			top, err := as(s, player(users[i])).Top(bg, &gamepb.TopRequest{Board: "hi", N: 100})
			if err != nil || len(top.Scores) != len(want) || top.Scores[99].UserID != want[99].UserID {
				t.Errorf("a reader during the rebuild: %d rows, %v", len(top.GetScores()), err)
			}
		}()
	}
	rwg.Wait()
	check("rebuilt from the store")
}

// deleteKeys deletes every Redis key under prefix.
func deleteKeys(t testing.TB, rdb redis.UniversalClient, prefix string) {
	t.Helper()
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		if err := rdb.Del(ctx, keys...).Err(); err != nil {
			t.Fatal(err)
		}
	}
}
