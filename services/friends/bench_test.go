package friends

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
)

// BenchmarkListWithPresence measures friends.List of a player with 200
// friends, half of them online, through its handler (the request decoded,
// the store read, each friend's presence read from Redis in one pipeline,
// the reply encoded): one call is one full page of 200. On the memory and
// the Postgres store, the test Redis, with 1 and 16 callers (each a
// different player with 200 friends). It reports lists per second and
// each call's latency, p50 and p99.
func BenchmarkListWithPresence(b *testing.B) {
	for _, st := range []string{"memory", "postgres"} {
		for _, callers := range []int{1, 16} {
			b.Run(fmt.Sprintf("store=%s/callers=%d", st, callers), func(b *testing.B) {
				var store Store = NewMemoryStore()
				if st == "postgres" {
					s, err := NewPostgresStore(migratedSchema(b))
					if err != nil {
						b.Fatal(err)
					}
					store = s
				}
				benchList(b, store, callers)
			})
		}
	}
}

func benchList(b *testing.B, store Store, callers int) {
	e := newEnv(b, store)
	s := e.service()
	const friends = 200
	players := e.users(callers)
	ctx := context.Background()
	for i, p := range players {
		others := e.users(friends)
		for j, o := range others {
			befriend(b, store, p, o)
			if j%2 == 0 {
				ev := connEvent{user: o, broker: "b1", session: fmt.Sprintf("s%d-%d", i, j), at: 1, seq: 1, online: true}
				if _, err := s.pres.conn(ctx, ev, e.clock.Now()); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	req, err := thriftx.Marshal(&friendspb.ListRequest{Limit: friends})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handlers()[friendsrpc.MethodList]
	// Check one reply: 200 friends, 100 online.
	out, err := h(ctx, sessionOf(players[0]), req)
	if err != nil {
		b.Fatal(err)
	}
	var rep friendspb.ListReply
	if err := thriftx.Unmarshal(out, &rep); err != nil || len(rep.Friends) != friends {
		b.Fatalf("List = %d friends, %v", len(rep.Friends), err)
	}
	online := 0
	for _, f := range rep.Friends {
		if f.Online {
			online++
		}
	}
	if online != friends/2 {
		b.Fatalf("%d friends online, want %d", online, friends/2)
	}

	lat := make([][]time.Duration, callers)
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := sessionOf(players[c])
			cctx := services.ContextWithSession(ctx, sess)
			for next.Add(1) <= int64(b.N) {
				t0 := time.Now()
				if _, err := h(cctx, sess, req); err != nil {
					b.Error(err)
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "lists/s")
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}
