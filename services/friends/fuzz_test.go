package friends

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/proto"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// FuzzFriendsRequests feeds arbitrary payloads to every friends method
// through its real handler (the generated decoder included), as a player
// in a room, as a player in none, and with no session: each must answer a
// reply that decodes, or a known wire error other than internal; never
// panic. Each input is also fed in two halves. Runs on miniredis and the
// memory store, so it needs no servers; the store keeps what the inputs
// do, so later inputs meet relations earlier ones made.
func FuzzFriendsRequests(f *testing.F) {
	const u1, u2 = "fz-1", "fz-2"
	state := int32(StateFriend)
	for _, s := range []thrift.TStruct{
		&friendspb.RequestRequest{UserID: thrift.StringPtr(u2)},
		&friendspb.RequestRequest{Username: thrift.StringPtr("FUZZ2")},
		&friendspb.RequestRequest{UserID: thrift.StringPtr(u1), Username: thrift.StringPtr("x")},
		&friendspb.RequestRequest{UserID: thrift.StringPtr("no such user")},
		&friendspb.AcceptRequest{UserID: u2},
		&friendspb.DeclineRequest{UserID: u2},
		&friendspb.RemoveRequest{UserID: u2},
		&friendspb.BlockRequest{UserID: u2},
		&friendspb.UnblockRequest{UserID: u2},
		&friendspb.ListRequest{},
		&friendspb.ListRequest{State: &state, Cursor: encodeCursor(Cursor{Updated: time.Unix(1, 0), Other: u2}), Limit: 3},
		&friendspb.ListRequest{Cursor: "!!", Limit: -5},
		&friendspb.ListRequest{State: thrift.Int32Ptr(-1), Limit: 1 << 30},
		&friendspb.InviteRequest{UserID: u2},
	} {
		b, err := thriftx.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x19, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a list of 2^32 elements

	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { rdb.Close() })
	e := newEnvOn(f, NewMemoryStore(), rdb)
	e.dir.add(u1, "fuzz1")
	e.dir.add(u2, "fuzz2")
	s := e.service()

	replies := map[string]func() thrift.TStruct{}
	for _, m := range friendsrpc.Methods {
		replies[m.Name] = m.NewReply
	}
	handlers := s.Handlers()
	sessions := []*platformpb.Session{
		{Id: "c1", UserId: u1, Broker: "b1", Bindings: map[string]string{BindingRoom: "r1"}},
		{Id: "c2", UserId: u2, Broker: "b1"},
		nil,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	f.Cleanup(cancel)
	f.Fuzz(func(t *testing.T, b []byte) {
		for m, h := range handlers {
			for _, pb := range sessions {
				for _, in := range [][]byte{b, b[:len(b)/2]} {
					sess := services.NewSession(pb)
					out, err := h(services.ContextWithSession(ctx, sess), sess, in)
					if err != nil {
						if c := wire.CodeOf(err); !wire.KnownCode(c) || c == wire.CodeInternal {
							t.Fatalf("%s(%x) = %v", m, in, err)
						}
						continue
					}
					if err := thriftx.Unmarshal(out, replies[m]()); err != nil {
						t.Fatalf("%s(%x) reply does not decode: %v", m, in, err)
					}
				}
			}
		}
		e.pub.take()
	})
}

// FuzzPresenceEvent feeds arbitrary presence payloads through the decoder
// a follower uses and, when they decode, to the service: an event that
// names no valid connection is dropped, any other is applied without
// error.
func FuzzPresenceEvent(f *testing.F) {
	for _, p := range []*platformpb.Presence{
		{UserId: "u1", Session: "s1", Broker: "b1", Online: true, AtUnixMs: 1},
		{UserId: "u1", Session: "s1", Broker: "b1", GraceMs: 30000, AtUnixMs: 2},
		{UserId: "u 1", Session: "s|1", GraceMs: -1, AtUnixMs: -5},
	} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(1))
	}
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { rdb.Close() })
	e := newEnvOn(f, NewMemoryStore(), rdb)
	s := e.service()
	f.Fuzz(func(t *testing.T, b []byte, seq uint64) {
		for _, in := range [][]byte{b, b[:len(b)/2]} {
			p := services.DecodePresence(&platformpb.Event{Type: wire.EventPresence, Payload: in})
			if p == nil {
				continue
			}
			ev, ok := s.presenceEvent("b1", seq, p)
			if !ok {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := s.pres.conn(ctx, ev, e.clock.Now())
			cancel()
			if err != nil {
				t.Fatalf("presence %+v: %v", p, err)
			}
		}
	})
}
