package game_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/game"
)

// Benchmarks of the game service on one instance, handlers called
// in-process (the wire's cost is noonbench's, -only game): wallet changes
// per second (a game.Grant or game.Spend: checked, applied under the
// player's lock, logged, ledgered) for one hot player and across 10,000
// players, on the memory store and on Postgres; leaderboard submits and
// AroundMe reads per second on Postgres and Redis. 32 callers each.
//
//	go test -run '^$' -bench . -benchtime 2000x ./services/game/

// latencies collects per-request latencies from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) report(b *testing.B, unit string, elapsed time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
	if len(l.d) == 0 {
		return
	}
	slices.Sort(l.d)
	q := func(p float64) float64 { return float64(l.d[int(p*float64(len(l.d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// call is one request of a benchmark: a handler, the caller's session and
// the payload.
type call struct {
	h       services.HandlerFunc
	sess    *platformpb.Session
	payload []byte
}

// run makes b.N calls (call i from req(i)) from workers goroutines, and
// reports the rate and latency quantiles.
func run(b *testing.B, unit string, workers int, req func(i int) call) {
	var next atomic.Int64
	var lat latencies
	var wg sync.WaitGroup
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					break
				}
				c := req(i)
				t0 := time.Now()
				if _, err := c.h(ctx, services.NewSession(c.sess), c.payload); err != nil {
					b.Errorf("call %d: %v", i, err)
					return
				}
				mine = append(mine, time.Since(t0))
			}
			lat.mu.Lock()
			lat.d = append(lat.d, mine...)
			lat.mu.Unlock()
		}()
	}
	wg.Wait()
	lat.report(b, unit, time.Since(start))
}

func benchStores() []struct {
	name string
	new  func(testing.TB) game.Store
} {
	return []struct {
		name string
		new  func(testing.TB) game.Store
	}{
		{"mem", func(testing.TB) game.Store { return game.NewMemoryStore() }},
		{"pg", func(t testing.TB) game.Store { return pgStore(t) }},
	}
}

// BenchmarkWallet: wallet changes per second, alternating grants of 2 and
// spends of 1 (so balances only grow), for one hot player (every change
// waits for the previous one's lock) and across 10,000 players.
func BenchmarkWallet(b *testing.B) {
	for _, st := range benchStores() {
		for _, players := range []int{1, 10_000} {
			b.Run(fmt.Sprintf("store=%s/players=%d", st.name, players), func(b *testing.B) {
				s := newService(b, testOptions(b), st.new(b), miniRedis(b))
				prefix := unique(b)
				hs := s.Handlers()
				change := func(i int) call {
					u := fmt.Sprintf("%s-%d", prefix, i%players)
					key := fmt.Sprintf("k%d", i)
					if i < players || i%2 == 0 { // the first change of each player grants
						p, _ := thriftx.Marshal(&gamepb.GrantRequest{UserID: u, Currencies: map[string]int64{"coins": 2}, Reason: "bench", IdempotencyKey: key})
						return call{h: hs[gamerpc.MethodGrant], payload: p}
					}
					p, _ := thriftx.Marshal(&gamepb.SpendRequest{UserID: u, Currencies: map[string]int64{"coins": 1}, Reason: "bench", IdempotencyKey: key})
					return call{h: hs[gamerpc.MethodSpend], payload: p}
				}
				for i := range players { // every player exists before the timer starts
					c := change(i)
					if _, err := c.h(context.Background(), services.NewSession(nil), c.payload); err != nil {
						b.Fatal(err)
					}
				}
				run(b, "changes/s", 32, func(i int) call { return change(players + i) })
			})
		}
	}
}

// BenchmarkLeaderboard: game.SubmitScoreFor (a Postgres upsert, then the
// Redis script) and game.AroundMe (two Redis reads and the display names)
// per second on a board of 10,000 players, on real Postgres and Redis.
func BenchmarkLeaderboard(b *testing.B) {
	rdb := redis.UniversalClient(testenv.Redis(b))
	store := pgStore(b)
	opts := testOptions(b)
	b.Cleanup(func() { deleteKeys(b, rdb, opts.RedisPrefix) })
	s := newService(b, opts, store, rdb)
	hs := s.Handlers()
	const players = 10_000
	prefix := unique(b)
	user := func(i int) string { return fmt.Sprintf("%s-%05d", prefix, i%players) }
	submit := func(i int) call {
		p, _ := thriftx.Marshal(&gamepb.SubmitScoreForRequest{UserID: user(i * 7919), Board: "hi", Score: int64(i % 100_000)})
		return call{h: hs[gamerpc.MethodSubmitScoreFor], payload: p}
	}
	for i := range players { // the board before the timer: 10,000 players
		c := submit(i)
		if _, err := c.h(context.Background(), services.NewSession(nil), c.payload); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("submit", func(b *testing.B) { run(b, "submits/s", 32, submit) })
	around, _ := thriftx.Marshal(&gamepb.AroundMeRequest{Board: "hi", N: 5})
	b.Run("around-me", func(b *testing.B) {
		run(b, "reads/s", 32, func(i int) call {
			return call{h: hs[gamerpc.MethodAroundMe], sess: &platformpb.Session{Id: "c", UserId: user(i * 31)}, payload: around}
		})
	})
}
