package match

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/testenv"
)

// countHook counts the commands a client sends (a pipeline's one by one).
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// timedPusher records when each user's Matched push was sent.
type timedPusher struct {
	mu      sync.Mutex
	matched map[string]time.Time
	done    chan struct{}
	want    int
}

func (p *timedPusher) PublishSession(_ string, ds ...*platformpb.SessionDirective) error {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range ds {
		if d.GetPushType() == PushMatched {
			p.matched[d.GetUserId()] = now
			if len(p.matched) == p.want {
				close(p.done)
			}
		}
	}
	return nil
}

// BenchmarkStartToMatched measures tickets per second from match.Start
// (the handler, decoding included) to the Matched push, through two
// instances sharing the test Redis, with the room creator and the pushes
// faked; it reports the time from a session's last Start to its Matched
// push (p50, p99) and the Redis commands per ticket. b.N is the number of
// tickets; waiting runs with that many players already searching, each
// alone in a bucket (a loaded model); rate paces the Starts (tickets per
// second; 0: as fast as 32 callers go, where the latency is queueing).
func BenchmarkStartToMatched(b *testing.B) {
	for _, c := range []struct {
		q             QueueOptions
		waiting, rate int
	}{
		{duel, 0, 0}, {quad, 0, 0}, {duel, 1000, 0}, {duel, 10000, 0}, {duel, 1000, 5000}, {quad, 1000, 5000},
	} {
		b.Run(fmt.Sprintf("%s/waiting=%d/rate=%d", c.q.Name, c.waiting, c.rate), func(b *testing.B) {
			benchStartToMatched(b, c.q, c.waiting, c.rate)
		})
	}
}

func benchStartToMatched(b *testing.B, q QueueOptions, waiting, rate int) {
	base := testenv.Redis(b)
	opt := base.Options()
	opt.PoolSize = 64
	rdb := redis.NewClient(opt)
	b.Cleanup(func() { rdb.Close() })
	hook := &countHook{}
	rdb.AddHook(hook)
	if q.Equal == nil {
		q.Equal = []string{"region"}
	}
	e := newEnvOn(b, rdb, q)
	b.Cleanup(e.flush)
	n := max(b.N-b.N%q.MaxPlayers, q.MaxPlayers)
	pusher := &timedPusher{matched: map[string]time.Time{}, done: make(chan struct{}), want: n}
	var insts []*Service
	for i := range 2 {
		s, err := New(e.opts, Deps{Redis: rdb, Pusher: pusher, Rooms: e.rooms, Cluster: e.cluster, InstanceID: fmt.Sprintf("m%d", i)})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(s.Close)
		s.Run()
		insts = append(insts, s)
	}
	// Players already searching, each alone in a bucket nobody else uses.
	for i := range waiting {
		p := newPlayer(fmt.Sprintf("w%06d", i), "b1")
		p.start(b, insts[i%2], q.Name, map[string]string{"region": p.user}, nil)
	}
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("p%07d", i)
	}
	lastStart := make([]time.Time, n/q.MaxPlayers) // per group of MaxPlayers consecutive players
	hook.n.Store(0)
	b.ResetTimer()
	began := time.Now()
	const workers = 32
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if rate > 0 {
					time.Sleep(time.Until(began.Add(time.Duration(i) * time.Second / time.Duration(rate))))
				}
				p := newPlayer(names[i], "b1")
				// Consecutive players share a region, so each session is
				// filled by one worker's neighbours.
				p.start(b, insts[w%2], q.Name, map[string]string{"region": fmt.Sprintf("r%d", i/q.MaxPlayers)}, nil)
				g := i / q.MaxPlayers
				now := time.Now()
				pusher.mu.Lock()
				if now.After(lastStart[g]) {
					lastStart[g] = now
				}
				pusher.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	select {
	case <-pusher.done:
	case <-time.After(time.Minute):
		b.Fatalf("%d of %d matched after a minute", len(pusher.matched), n)
	}
	elapsed := time.Since(began)
	b.StopTimer()
	lat := make([]float64, 0, len(lastStart))
	pusher.mu.Lock()
	for g, t0 := range lastStart {
		var last time.Time
		for j := range q.MaxPlayers {
			if t := pusher.matched[names[g*q.MaxPlayers+j]]; t.After(last) {
				last = t
			}
		}
		lat = append(lat, float64(last.Sub(t0).Microseconds())/1000)
	}
	pusher.mu.Unlock()
	slices.Sort(lat)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "tickets/s")
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(float64(hook.n.Load())/float64(n), "redis-cmds/ticket")
}
