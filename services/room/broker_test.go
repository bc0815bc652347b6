package room

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/broker"
	edgeclient "github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// startFakeLogin starts a "login" instance whose login.Login logs anyone in
// (binds the user), for tests that need an authenticated connection.
func startFakeLogin(t testing.TB, c *cluster) {
	so := services.NewOptions()
	so.Name, so.Heartbeat, so.Yellows = "login", hb, c.yellows
	srv, err := services.NewServer(so, map[string]services.HandlerFunc{
		"login.Login": wire.Typed(loginpb.NewLoginRequest, func(_ context.Context, s *services.Session, req *loginpb.LoginRequest) (*loginpb.LoginReply, error) {
			s.Bind("user", req.Username)
			return &loginpb.LoginReply{UserID: req.Username}, nil
		}),
	}, c.log)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Main() }()
	t.Cleanup(srv.Exit)
	checkFor(t, 5*time.Second, "login listed in yellow", func() bool { return len(c.y.Registry().Query("login")) > 0 })
}

// edgePlayer is a game client on a broker connection, collecting its
// room.Event pushes.
type edgePlayer struct {
	c      *edgeclient.Client
	events chan *roompb.Event
}

func dialPlayer(t testing.TB, b *broker.Broker, user string) *edgePlayer {
	opts := edgeclient.DefaultOptions()
	opts.Push = true
	cl, err := edgeclient.Dial(context.Background(), b.TCPAddr().String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	p := &edgePlayer{c: cl, events: make(chan *roompb.Event, 1024)}
	go func() {
		for push := range cl.Pushes() {
			if push.Type != EventType {
				continue
			}
			var e roompb.Event
			if err := thriftx.Unmarshal(push.Payload, &e); err == nil {
				p.events <- &e
			}
		}
	}()
	// The broker may not see the login instance yet.
	checkFor(t, 10*time.Second, "login through the broker", func() bool {
		return p.call("login.Login", &loginpb.LoginRequest{Username: user, Password: "pw"}, nil) == nil
	})
	return p
}

func (p *edgePlayer) call(method string, req, resp thrift.TStruct) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.c.CallThrift(ctx, method, req, resp)
}

func (p *edgePlayer) must(t testing.TB, method string, req, resp thrift.TStruct) {
	t.Helper()
	if err := p.call(method, req, resp); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// TestThroughBroker plays race31 end to end through a real broker, as a
// game client does: log in, CreateRoom and JoinRoom (pandaparty's names),
// ready, start, play to the win over two room instances; both players get
// the room's events as @room.Event pushes, in the same sequence.
func TestThroughBroker(t *testing.T) {
	t.Parallel()
	c := newCluster(t, NewMemoryStore(), 0)
	c.start(nil, false)
	c.start(nil, false)
	startFakeLogin(t, c)
	b := startBroker(t, c)

	alice := dialPlayer(t, b, "alice")
	bob := dialPlayer(t, b, "bob")
	checkFor(t, 10*time.Second, "broker routes room.List", func() bool {
		return alice.call(roomrpc.MethodList, &roompb.ListRequest{}, &roompb.ListReply{}) == nil
	})
	var st roompb.RoomState
	alice.must(t, "CreateRoom", &roompb.CreateRequest{Name: "via broker", MaxPlayers: 2}, &st)
	id := st.ID
	bob.must(t, "JoinRoom", &roompb.JoinRequest{RoomID: id}, nil)
	// Pushes start once the broker's subscription reaches the room's
	// instance: toggle alice's ready flag until both have seen one (the
	// pushes of a toggle may only show at the next poll).
	checkFor(t, 10*time.Second, "both players get pushes", func() bool {
		alice.must(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: false}, nil)
		alice.must(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
		return len(alice.events) > 0 && len(bob.events) > 0
	})
	bob.must(t, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
	bob.must(t, roomrpc.MethodStart, &roompb.StartRequest{}, &st)
	players := map[string]*edgePlayer{"alice": alice, "bob": bob}
	for st.Status == StatusPlaying {
		var g roompb.Race31State
		if err := thriftx.Unmarshal(st.GameState, &g); err != nil {
			t.Fatal(err)
		}
		p := players[g.Order[g.Turn]]
		a, _ := thriftx.Marshal(&roompb.Race31Action{Add: min(3, g.Target-g.Total)})
		p.must(t, roomrpc.MethodAct, &roompb.ActionRequest{Action: a}, nil)
		p.must(t, roomrpc.MethodGet, &roompb.GetRequest{}, &st)
	}
	if st.Status != StatusFinished || st.Winner == "" {
		t.Fatalf("final state %+v", &st)
	}
	// Both received every event from the first push they saw to the end.
	var seqs [2][]int64
	for i, p := range []*edgePlayer{alice, bob} {
		timeout := time.After(10 * time.Second)
		for len(seqs[i]) == 0 || seqs[i][len(seqs[i])-1] < st.Seq {
			select {
			case e := <-p.events:
				if e.RoomID != id {
					t.Fatalf("push of room %s", e.RoomID)
				}
				seqs[i] = append(seqs[i], e.Seq)
			case <-timeout:
				t.Fatalf("player %d: pushes %v, want up to seq %d", i, seqs[i], st.Seq)
			}
		}
		for j := 1; j < len(seqs[i]); j++ {
			if seqs[i][j] != seqs[i][j-1]+1 {
				t.Fatalf("player %d: pushes %v have a gap", i, seqs[i])
			}
		}
	}
	from := max(seqs[0][0], seqs[1][0])
	if !slices.Equal(seqs[0][from-seqs[0][0]:], seqs[1][from-seqs[1][0]:]) {
		t.Fatalf("players saw different sequences: %v and %v", seqs[0], seqs[1])
	}
	var lr roompb.LeaveReply
	alice.must(t, roomrpc.MethodLeave, &roompb.LeaveRequest{}, &lr)
	if err := alice.call(roomrpc.MethodGet, &roompb.GetRequest{}, &st); !errors.Is(err, &edgeclient.Error{Code: wire.CodeBadRequest}) {
		t.Fatalf("get after leave (unbound) = %v, want bad_request", err)
	}
}

// startBroker starts a broker on the cluster's yellow.
func startBroker(t testing.TB, c *cluster) *broker.Broker {
	bo := broker.NewOptions()
	bo.Edge.TCPAddr, bo.Edge.WSAddr, bo.Edge.Rate = "127.0.0.1:0", "", 0
	bo.Control = "tcp://127.0.0.1:0"
	bo.Yellows, bo.Heartbeat = c.yellows, hb
	b, err := broker.New(bo, c.log.With("broker", ""), metrics.NewRegistry("broker"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.Main() }()
	t.Cleanup(b.Exit)
	return b
}

// BenchmarkHotRoomBroker: one hot room ("counter" game), 16 players each on
// its own broker connection (TCP, pandaparty frames), one room instance:
// events/s and the latency of room.Act as a game client sees it.
func BenchmarkHotRoomBroker(b *testing.B) {
	for _, st := range benchStores() {
		b.Run("store="+st.name, func(b *testing.B) {
			c := newCluster(b, st.new(b), 0)
			c.start(nil, false)
			startFakeLogin(b, c)
			br := startBroker(b, c)
			ps := make([]*edgePlayer, 16)
			for i := range ps {
				ps[i] = dialPlayer(b, br, fmt.Sprintf("b%d", i))
			}
			checkFor(b, 10*time.Second, "broker routes room.List", func() bool {
				return ps[0].call(roomrpc.MethodList, &roompb.ListRequest{}, &roompb.ListReply{}) == nil
			})
			var rs roompb.RoomState
			ps[0].must(b, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "hot", Game: counterName, MaxPlayers: 16}, &rs)
			for _, p := range ps[1:] {
				p.must(b, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: rs.ID}, nil)
			}
			for _, p := range ps {
				p.must(b, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true}, nil)
			}
			ps[0].must(b, roomrpc.MethodStart, &roompb.StartRequest{}, nil)
			payload, _ := thriftx.Marshal(&roompb.ActionRequest{Action: []byte("x")})
			var next atomic.Int64
			var lat latencies
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for _, p := range ps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if _, err := p.c.Call(context.Background(), roomrpc.MethodAct, payload); err != nil {
							b.Error(err)
							return
						}
						mine = append(mine, time.Since(t0))
					}
					lat.add(mine)
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			lat.report(b, elapsed)
		})
	}
}
