package match

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// FuzzMatchRequests feeds arbitrary payloads to every match method
// through its real handler (the Typed decoder included), as a logged-in
// player and as a platform process: each must answer a reply that
// decodes, or a known wire error; never panic. Each input is also fed in
// two halves. Runs on miniredis, so it needs no servers.
func FuzzMatchRequests(f *testing.F) {
	for _, s := range []thrift.TStruct{
		&matchpb.StartRequest{Queue: "duel"},
		&matchpb.StartRequest{Queue: "ranked", Numbers: map[string]float64{"skill": 1500}},
		&matchpb.StartRequest{Queue: "ranked", Numbers: map[string]float64{"skill": math.NaN()}},
		&matchpb.StartRequest{Queue: "quad", Strings: map[string]string{"region": "eu", "": "x"}},
		&matchpb.StartRequest{Queue: "nope"},
		&matchpb.CancelRequest{Ticket: "duel.aaaaaaaaaaaaaaaa"},
		&matchpb.CancelRequest{Ticket: "../../x"},
		&matchpb.StatusRequest{Ticket: "quad.aaaaaaaaaaaaaaaa"},
		&matchpb.RegisterServerRequest{Queue: "ded", ServerID: "s1", Addr: "10.0.0.1:7777", Available: true},
		&matchpb.RegisterServerRequest{Queue: "ded", ServerID: "s 1", Addr: ":0"},
		&matchpb.ServerAvailableRequest{Queue: "ded", ServerID: "s1"},
		&matchpb.LeaveServerRequest{Queue: "ded", ServerID: "s1"},
		&matchpb.QueuesRequest{},
		&matchpb.TicketsRequest{Queue: "duel", Limit: 5},
		&matchpb.TicketsRequest{Queue: "duel", Limit: -1},
		&matchpb.AdminCancelRequest{Ticket: "duel.aaaaaaaaaaaaaaaa"},
	} {
		b, err := thriftx.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a map of 2^32 entries

	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { rdb.Close() })
	e := newEnvOn(f, rdb, duel, quad, skill, QueueOptions{Name: "ded", Placement: matchpb.PLACEMENT_SERVER, MaxPlayers: 2})
	s := e.service("fuzz")

	replies := map[string]func() thrift.TStruct{}
	for _, m := range matchrpc.Methods {
		replies[m.Name] = m.NewReply
	}
	handlers := s.Handlers()
	player := &platformpb.Session{Id: "c-fuzz", UserId: "ufuzz", Broker: "b1"}
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
		// A player's searching ticket would make the next Start a
		// conflict: start each input afresh.
		rdb.FlushAll(ctx)
	})
}
