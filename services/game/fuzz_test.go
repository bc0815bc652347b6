package game_test

import (
	"context"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/wire"
)

// FuzzGameRequests feeds arbitrary payloads to every game method through
// its real handler (the Typed decoder included), as a logged-in player
// and as a platform process: each must answer a reply that decodes, or a
// known wire error; never panic. Each input is also fed in two halves.
// Runs on the memory store and miniredis, so it needs no servers.
func FuzzGameRequests(f *testing.F) {
	s := func(v string) *string { return &v }
	for _, req := range []thrift.TStruct{
		&gamepb.GetProfileRequest{UserID: "u1"},
		&gamepb.UpdateProfileRequest{DisplayName: s("Ann"), Metadata: s(`{"a":[1,{"b":2}]}`), PrivateMetadata: s(`{"x":`)},
		&gamepb.GetInventoryRequest{},
		&gamepb.ConsumeItemRequest{Item: "potion", Count: 1, IdempotencyKey: "k"},
		&gamepb.ConsumeItemRequest{Item: "potion", Count: -9223372036854775808, IdempotencyKey: "k"},
		&gamepb.GetWalletRequest{},
		&gamepb.ListLedgerRequest{Cursor: "3.coins", Limit: 5, Currency: s("coins")},
		&gamepb.SubmitScoreRequest{Board: "lo", Score: 9007199254740991},
		&gamepb.TopRequest{Board: "hi", N: 1000},
		&gamepb.AroundMeRequest{Board: "sum", N: -1},
		&gamepb.GrantRequest{UserID: "u1", Currencies: map[string]int64{"coins": 5}, Items: map[string]int64{"sword": 1},
			Stats: map[string]int64{"wins": 1}, Reason: "r", IdempotencyKey: "g"},
		&gamepb.SpendRequest{UserID: "u1", Currencies: map[string]int64{"coins": 5}, IdempotencyKey: "s"},
		&gamepb.SubmitScoreForRequest{UserID: "u1", Board: "hi", Score: 3},
		&gamepb.BanStatusRequest{UserID: "u1"},
		&gamepb.GetPlayerRequest{UserID: "u1"},
		&gamepb.AdminGrantRequest{Grant: &gamepb.GrantRequest{UserID: "u1", Currencies: map[string]int64{"gems": 1}, Reason: "r", IdempotencyKey: "a"}},
		&gamepb.AdminGrantRequest{},
		&gamepb.AdminTakeRequest{Take: &gamepb.SpendRequest{UserID: "u1", Items: map[string]int64{"sword": 1}, Reason: "r", IdempotencyKey: "t"}},
		&gamepb.SetStatRequest{UserID: "u1", Stat: "wins", Value: -1, Reason: "r", IdempotencyKey: "st"},
		&gamepb.BanRequest{UserID: "u1", DurationSeconds: 9223372036854775807, Reason: "r"},
		&gamepb.UnbanRequest{UserID: "u1", Reason: "r"},
		&gamepb.AuditRequest{UserID: "u1", Limit: 3},
	} {
		b, err := thriftx.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a map of 2^32 entries

	svc := newService(f, testOptions(f), game.NewMemoryStore(), miniRedis(f))
	replies := map[string]func() thrift.TStruct{}
	for _, m := range gamerpc.Methods {
		replies[m.Name] = m.NewReply
	}
	handlers := svc.Handlers()
	player := &platformpb.Session{Id: "c-fuzz", UserId: "u1", Broker: "b1"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	f.Cleanup(cancel)
	f.Fuzz(func(t *testing.T, b []byte) {
		for m, h := range handlers {
			for _, pb := range []*platformpb.Session{player, nil} {
				for _, in := range [][]byte{b, b[:len(b)/2]} {
					out, err := h(ctx, services.NewSession(pb), in)
					if err != nil {
						if !wire.KnownCode(wire.CodeOf(err)) {
							t.Fatalf("%s(%x) = %v: unknown code", m, in, err)
						}
						continue
					}
					if err := thriftx.Unmarshal(out, replies[m]()); err != nil {
						t.Fatalf("%s(%x) reply does not decode: %v", m, in, err)
					}
				}
			}
		}
	})
}
