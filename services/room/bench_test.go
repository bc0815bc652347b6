package room

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
)

// Benchmarks of the room service on one instance: events per second (an
// event = one room.Act, decoded, applied, stored, published, answered; the
// game is "counter", whose state does not grow)
// for one hot room and across 1,000 rooms, on the memory store and on
// Postgres, with append_batch 1 (strictly one event at a time) and 32
// (group commit); and failover time. Handlers are called in-process
// (BenchmarkHotRoomWire goes through the services runtime's ZeroMQ link).
//
//	go test -run '^$' -bench . -benchtime 3s ./services/room/

// latencies collects per-request latencies from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d []time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d...)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B, elapsed time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

func benchStores() []struct {
	name string
	new  func(testing.TB) Store
} {
	return []struct {
		name string
		new  func(testing.TB) Store
	}{
		{"mem", func(testing.TB) Store { return NewMemoryStore() }},
		{"pg", newPGStore},
	}
}

// actPayload is a tally action, encoded once.
func actPayload(b *testing.B, room string) []byte {
	p, err := thriftx.Marshal(&roompb.ActionRequest{Action: []byte("x"), RoomID: &room})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// runActs sends b.N actions from workers goroutines, each picking its room
// with pick(i), and reports events/s and latency quantiles.
func runActs(b *testing.B, svc *Service, workers int, pick func(worker, i int) (user string, payload []byte)) {
	h := svc.Handlers()[roomrpc.MethodAct]
	var next atomic.Int64
	var lat latencies
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				user, payload := pick(w, i)
				sess := services.NewSession(&platformpb.Session{UserId: user})
				t0 := time.Now()
				if _, err := h(context.Background(), sess, payload); err != nil {
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
}

// BenchmarkHotRoom: 16 players hammer one room.
func BenchmarkHotRoom(b *testing.B) {
	for _, st := range benchStores() {
		for _, batch := range []int{1, 32} {
			b.Run(fmt.Sprintf("store=%s/batch=%d", st.name, batch), func(b *testing.B) {
				svc, _ := newUnit(b, st.new(b), func(o *Options) { o.AppendBatch = batch; o.QueueSize = 1024 })
				c := newUnitClient(svc, "h0")
				var rs roompb.RoomState
				c.must(b, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "hot", Game: counterName, MaxPlayers: 16}, &rs)
				users := make([]string, 16)
				for i := range users {
					users[i] = fmt.Sprintf("h%d", i)
					if i > 0 {
						newUnitClient(svc, users[i]).must(b, roomrpc.MethodJoin, &roompb.JoinRequest{RoomID: rs.ID}, nil)
					}
					u := newUnitClient(svc, users[i])
					u.must(b, roomrpc.MethodReady, &roompb.ReadyRequest{Ready: true, RoomID: &rs.ID}, nil)
				}
				c.must(b, roomrpc.MethodStart, &roompb.StartRequest{RoomID: &rs.ID}, nil)
				payload := actPayload(b, rs.ID)
				runActs(b, svc, len(users), func(w, _ int) (string, []byte) { return users[w], payload })
			})
		}
	}
}

// BenchmarkManyRooms: 1,000 rooms of one player each, 64 players acting at
// once across them.
func BenchmarkManyRooms(b *testing.B) {
	const rooms, workers = 1000, 64
	for _, st := range benchStores() {
		b.Run("store="+st.name, func(b *testing.B) {
			svc, _ := newUnit(b, st.new(b), nil)
			users := make([]string, rooms)
			payloads := make([][]byte, rooms)
			var wg sync.WaitGroup
			sem := make(chan struct{}, 32)
			for i := range users {
				users[i] = fmt.Sprintf("m%d", i)
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					_, id := unitRoom(b, svc, users[i], counterName)
					payloads[i] = actPayload(b, id)
				}()
			}
			wg.Wait()
			runActs(b, svc, workers, func(_, i int) (string, []byte) { return users[i%rooms], payloads[i%rooms] })
			b.ReportMetric(float64(svc.Stats().Rooms), "rooms")
		})
	}
}

// BenchmarkHotRoomWire: one hot room, 16 players calling through the
// services runtime (ZeroMQ link, a real server) and the broker-like router.
func BenchmarkHotRoomWire(b *testing.B) {
	for _, st := range benchStores() {
		b.Run("store="+st.name, func(b *testing.B) {
			c := newCluster(b, st.new(b), 0)
			c.start(nil, false)
			r := newRouter(c)
			names := make([]string, 16)
			for i := range names {
				names[i] = fmt.Sprintf("w%d", i)
			}
			cs, _ := startGame(b, r, counterName, 16, names...)
			var next atomic.Int64
			var lat latencies
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for _, cl := range cs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var mine []time.Duration
					for next.Add(1) <= int64(b.N) {
						t0 := time.Now()
						if _, err := cl.act(context.Background(), "x"); err != nil {
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

// BenchmarkFailover: the owner of a room is killed; the time until the
// room's next action succeeds on another instance (lease TTL 1 s, yellow
// expiry 0.5 s). Run with -benchtime 3x.
func BenchmarkFailover(b *testing.B) {
	c := newCluster(b, newPGStore(b), 0)
	r := newRouter(c)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		a, bb := c.start(nil, true), c.start(nil, true)
		cs, id := startTally(b, r, 1, fmt.Sprintf("f%d", i))
		owner, survivor := ownerIn(id, a, bb), a
		if survivor == owner {
			survivor = bb
		}
		b.StartTimer()
		killed := time.Now()
		owner.kill()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := cs[0].act(ctx, "after")
			cancel()
			if err == nil {
				break
			}
		}
		total += time.Since(killed)
		b.StopTimer()
		survivor.stop()
		checkFor(b, 5*time.Second, "instances gone", func() bool { return !c.listed(survivor.id) && !c.listed(owner.id) })
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/failover")
}
