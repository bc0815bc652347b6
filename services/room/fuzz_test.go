package room

import (
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// FuzzRoomRequests feeds arbitrary payloads to every room method through
// its real handler (the Typed decoder included), from a session in a
// playing room: each must answer a reply that decodes, or a known wire
// error; never panic. Each input is also fed in two halves. Runs on
// miniredis and the memory store, so it needs no servers.
func FuzzRoomRequests(f *testing.F) {
	rid := "rfuzzroom"
	for _, s := range []thrift.TStruct{
		&roompb.CreateRequest{Name: "fuzz", Game: "race31", MaxPlayers: 2},
		&roompb.CreateRequest{Name: "", MaxPlayers: -1},
		&roompb.JoinRequest{RoomID: rid},
		&roompb.JoinRequest{RoomID: "../../etc"},
		&roompb.LeaveRequest{RoomID: thrift.StringPtr("rnothere")},
		&roompb.ReadyRequest{Ready: false},
		&roompb.StartRequest{},
		&roompb.ListRequest{Game: "tally", Limit: 5},
		&roompb.ListRequest{Limit: -3},
		&roompb.GetRequest{RoomID: &rid},
		&roompb.GetRequest{SinceSeq: thrift.Int64Ptr(0)},
		&roompb.GetRequest{SinceSeq: thrift.Int64Ptr(-5)},
		&roompb.GetRequest{SinceSeq: thrift.Int64Ptr(1 << 62)},
		&roompb.PruneRequest{OlderThanMs: -1, Limit: -1},
		&roompb.RoomsRequest{Limit: -1},
		&roompb.RoomsRequest{Limit: 1 << 30},
		&roompb.ActionRequest{Action: []byte{0x15, 0x02, 0x00}}, // Race31Action{add: 1}
		&roompb.ActionRequest{Action: []byte("bad")},
		&roompb.CreateMatchedRequest{RoomID: "mfuzz", Members: []string{"fz3", "fz4"}, Game: "race31", MaxPlayers: 2},
		&roompb.CreateMatchedRequest{RoomID: "mfuzz", Members: []string{"fz3", "fz5"}},
		&roompb.CreateMatchedRequest{RoomID: "m/x", Members: []string{"a", "a", "\x00"}, MaxPlayers: -1},
	} {
		b, err := thriftx.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x18, 0xff, 0xff, 0xff, 0xff, 0x0f})

	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(mr.Close)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { rdb.Close() })
	w := yellow.Watch(yellow.ClientOptions{})
	f.Cleanup(w.Close)
	o := NewOptions()
	o.MaxRooms = 64
	o.IdleEvict = 50 * time.Millisecond
	svc, err := New(o, Deps{Store: NewMemoryStore(), Redis: rdb, Watcher: w, Games: testGames(0)})
	if err != nil {
		f.Fatal(err)
	}
	svc.attach("room-fuzz", Name, func(string, string, []byte) error { return nil }, nil)
	f.Cleanup(svc.Close)

	// A race31 game the fuzzing session plays in.
	uc, rival := newUnitClient(svc, "fz"), newUnitClient(svc, "fz2")
	var st roompb.RoomState
	uc.must(f, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "fuzz", Game: "race31", MaxPlayers: 2}, &st)
	room := st.ID
	rival.must(f, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: room}, nil)
	uc.must(f, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	rival.must(f, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	uc.must(f, roomrpc.MethodStart, &roompb.StartRequest{}, nil)

	replies := map[string]func() thrift.TStruct{
		roomrpc.MethodCreate: func() thrift.TStruct { return roompb.NewRoomState() },
		roomrpc.MethodJoin:   func() thrift.TStruct { return roompb.NewRoomState() },
		roomrpc.MethodLeave:  func() thrift.TStruct { return roompb.NewLeaveReply() },
		roomrpc.MethodReady:  func() thrift.TStruct { return roompb.NewRoomState() },
		roomrpc.MethodStart:  func() thrift.TStruct { return roompb.NewRoomState() },
		roomrpc.MethodList:   func() thrift.TStruct { return roompb.NewListReply() },
		roomrpc.MethodGet:    func() thrift.TStruct { return roompb.NewRoomState() },
		roomrpc.MethodAct:    func() thrift.TStruct { return roompb.NewActionReply() },
		// The matchmaker's: called with no client session (a plain link's
		// service call, which the guard lets through) so that its checks
		// run; a client's call is refused at the guard.
		roomrpc.MethodCreateMatched: func() thrift.TStruct { return roompb.NewCreateMatchedReply() },
		// The admin's: refused with a client session.
		roomrpc.MethodPrune: func() thrift.TStruct { return roompb.NewPruneReply() },
		roomrpc.MethodRooms: func() thrift.TStruct { return roompb.NewRoomsReply() },
	}
	handlers := svc.Handlers()
	if len(handlers) != len(replies) {
		f.Fatalf("%d handlers, %d covered", len(handlers), len(replies))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for m, h := range handlers {
			if m == roomrpc.MethodLeave {
				continue // would take the session out of the room for good
			}
			for _, in := range [][]byte{b, b[:len(b)/2]} {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				sess := services.NewSession(&platformpb.Session{Id: "s-fz", UserId: "fz", Bindings: map[string]string{BindingKey: room}})
				if m == roomrpc.MethodCreateMatched {
					sess = services.NewSession(nil)
				}
				out, err := h(ctx, sess, in)
				cancel()
				if err != nil {
					if !wire.KnownCode(wire.CodeOf(err)) || wire.CodeOf(err) == wire.CodeInternal {
						t.Fatalf("%s(%x) = %v", m, in, err)
					}
					continue
				}
				if err := thriftx.Unmarshal(out, replies[m]()); err != nil {
					t.Fatalf("%s(%x) reply does not decode: %v", m, in, err)
				}
			}
		}
		// Leave with its own session: decoding only matters.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		sess := services.NewSession(&platformpb.Session{Id: "s-other", UserId: "other"})
		if _, err := handlers[roomrpc.MethodLeave](ctx, sess, b); err != nil && !wire.KnownCode(wire.CodeOf(err)) {
			t.Fatalf("Leave(%x) = %v", b, err)
		}
	})
}
