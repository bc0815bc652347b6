package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/testenv"
)

func mustEcho(t *testing.T) *EchoServer {
	t.Helper()
	e, err := NewEchoServer("127.0.0.1:0")
	if err != nil {
		t.Fatalf("NewEchoServer: %v", err)
	}
	t.Cleanup(e.Close)
	return e
}

// quick is a short run: sanity, not performance.
func quick(scenario, addr string) Config {
	return Config{
		Scenario: scenario,
		Addr:     addr,
		Conns:    4,
		Pipeline: 2,
		Payload:  32,
		Warmup:   50 * time.Millisecond,
		Duration: 200 * time.Millisecond,
	}
}

// checkSane checks what any healthy run must show, whatever the machine.
func checkSane(t *testing.T, r Result) {
	t.Helper()
	t.Logf("%s: %.0f req/s, p50 %.0f µs, p99 %.0f µs, p99.9 %.0f µs, max %.0f µs, CPU %.0f%%, RSS %d KiB",
		r.Scenario, r.RPS, r.P50Us, r.P99Us, r.P999Us, r.MaxUs, r.CPUPercent, r.PeakRSSBytes>>10)
	if r.Errors != 0 {
		t.Errorf("%d errors, first: %s", r.Errors, r.FirstError)
	}
	if r.Requests == 0 || r.RPS <= 0 {
		t.Errorf("requests = %d, rps = %v, want > 0", r.Requests, r.RPS)
	}
	if !(0 < r.P50Us && r.P50Us <= r.P99Us && r.P99Us <= r.P999Us && r.P999Us <= r.MaxUs) {
		t.Errorf("want 0 < p50 <= p99 <= p99.9 <= max, got %v %v %v %v", r.P50Us, r.P99Us, r.P999Us, r.MaxUs)
	}
	if r.DurationSec <= 0 || r.CPUUserSec+r.CPUSysSec <= 0 {
		t.Errorf("duration %v s, CPU %v+%v s: want > 0", r.DurationSec, r.CPUUserSec, r.CPUSysSec)
	}
	if r.PeakRSSBytes == 0 || r.PeakGoMemBytes == 0 {
		t.Errorf("peak RSS %d, Go memory %d: want > 0", r.PeakRSSBytes, r.PeakGoMemBytes)
	}
}

func TestRunEchoAndRelay(t *testing.T) {
	e := mustEcho(t)
	r, err := NewRelay("127.0.0.1:0", e.Addr())
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	t.Cleanup(r.Close)

	var phases []string
	cfg := quick("raw", e.Addr())
	cfg.Progress = func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
	}
	raw, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run raw: %v", err)
	}
	checkSane(t, raw)
	if got, want := len(phases), 4; got != want || phases[0] != "dial" || phases[3] != "drain" {
		t.Errorf("phases %v, want dial, warmup, measure, drain", phases)
	}

	relayed, err := Run(context.Background(), quick("relay", r.Addr()))
	if err != nil {
		t.Fatalf("Run relay: %v", err)
	}
	checkSane(t, relayed)

	// The runner closes its connections; the servers see them go.
	testenv.CheckFor(t, 5*time.Second, "the servers hold no connection after the runs", func() bool {
		return e.NumConns()+r.NumConns() == 0
	})
}

// TestRunCountsErrors: a server that answers with an error gets counted,
// not measured.
func TestRunCountsErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				r, w := frame.NewReader(nc, frame.Limits{}), frame.NewWriter(nc, frame.Limits{})
				for {
					if _, _, err := r.ReadRequest(); err != nil {
						return
					}
					_ = w.WriteResponse("unavailable: no echo here", nil)
					if w.Flush() != nil {
						return
					}
				}
			}()
		}
	}()
	cfg := quick("failing", ln.Addr().String())
	cfg.Conns, cfg.Pipeline = 1, 1
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Errors == 0 || res.Requests != 0 || res.FirstError != "unavailable: no echo here" {
		t.Errorf("errors %d, requests %d, first %q; want errors > 0, no requests, the server's error", res.Errors, res.Requests, res.FirstError)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := quick("x", "127.0.0.1:1")
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"not loopback": func(c *Config) { c.Addr = "10.0.0.1:1055" },
		"ipv6":         func(c *Config) { c.Addr = "[::1]:1055" },
		"no port":      func(c *Config) { c.Addr = "127.0.0.1" },
		"conns":        func(c *Config) { c.Conns = MaxConns + 1 },
		"zero conns":   func(c *Config) { c.Conns = 0 },
		"pipeline":     func(c *Config) { c.Pipeline = -1 },
		"payload":      func(c *Config) { c.Payload = MaxPayload + 1 },
		"duration":     func(c *Config) { c.Duration = 0 },
		"long":         func(c *Config) { c.Duration = MaxDuration + 1 },
	} {
		c := ok
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate passed %+v", name, c)
		}
	}
	if _, err := NewEchoServer("0.0.0.0:0"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("NewEchoServer on 0.0.0.0: %v, want ErrNotLoopback", err)
	}
	if _, err := NewRelay("127.0.0.1:0", "192.168.1.1:1055"); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("NewRelay to 192.168.1.1: %v, want ErrNotLoopback", err)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Count() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram not zero")
	}
	// 1..100000 µs, each once.
	for i := 1; i <= 100_000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 50 * time.Millisecond},
		{0.99, 99 * time.Millisecond},
		{0.999, 99900 * time.Microsecond},
		{1, 100 * time.Millisecond},
	} {
		got := h.Quantile(c.q)
		if rel := math.Abs(float64(got-c.want)) / float64(c.want); rel > 1.0/subCount {
			t.Errorf("Quantile(%v) = %v, want %v within %.2f%%", c.q, got, c.want, 100.0/subCount)
		}
	}
	if h.Max() != 100*time.Millisecond || h.Count() != 100_000 {
		t.Errorf("max %v count %d", h.Max(), h.Count())
	}
	if got, want := h.Mean(), 50000500*time.Nanosecond; got != want {
		t.Errorf("mean %v, want %v", got, want)
	}
	// Small values are exact; huge ones land in the last bucket.
	var s Histogram
	s.Record(3)
	s.Record(-1)
	s.Record(time.Hour)
	if s.Quantile(0) != 0 || s.Quantile(0.5) != 3 || s.Max() != time.Hour {
		t.Errorf("small/huge: q0 %v q50 %v max %v", s.Quantile(0), s.Quantile(0.5), s.Max())
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&s)
	if m.Count() != h.Count()+s.Count() || m.Max() != time.Hour {
		t.Errorf("merge: count %d max %v", m.Count(), m.Max())
	}
	// Every bucket's value maps back to the bucket.
	for i := range numBucket {
		if b := bucketOf(bucketValue(i)); b != i {
			t.Fatalf("bucketOf(bucketValue(%d) = %d) = %d", i, bucketValue(i), b)
		}
	}
}

// TestIdle opens idle connections over two source addresses to the echo
// server and measures them; the numbers only have to be sane.
func TestIdle(t *testing.T) {
	e := mustEcho(t)
	req := frame.AppendRequest(nil, DefaultMethod, []byte("hi"))
	cfg := IdleConfig{Addr: e.Addr(), Conns: 60, PerSource: 25, Request: req}
	set, err := DialIdle(context.Background(), cfg)
	if err != nil {
		t.Fatalf("DialIdle: %v", err)
	}
	if got := set.Sources(); len(got) != 3 || got[0] != "127.0.0.2" || got[2] != "127.0.0.4" {
		t.Errorf("sources %v, want 127.0.0.2 .. 127.0.0.4", got)
	}
	seen := map[string]int{}
	for _, nc := range set.conns {
		seen[nc.LocalAddr().(*net.TCPAddr).IP.String()]++
	}
	if seen["127.0.0.2"] != 25 || seen["127.0.0.3"] != 25 || seen["127.0.0.4"] != 10 {
		t.Errorf("connections per source address: %v", seen)
	}
	set.Close()

	// Enough connections that the echo server's per-connection buffers
	// and goroutine dominate the noise; the bare pair's few hundred bytes
	// may still drown in it, so only the totals are checked.
	cfg.Conns, cfg.PerSource = 300, 100
	res, err := MeasureIdle(context.Background(), cfg, e.NumConns)
	if err != nil {
		t.Fatalf("MeasureIdle: %v", err)
	}
	t.Logf("bare pair %.0f B, total %.0f B, server %.0f B, RSS %.0f B per connection",
		res.BarePairBytes, res.TotalPerConnBytes, res.ServerPerConnBytes, res.RSSPerConnBytes)
	if res.Conns != 300 || len(res.Sources) != 3 || res.TotalPerConnBytes <= 0 || res.ServerPerConnBytes <= 0 {
		t.Errorf("implausible idle result %+v", res)
	}
	if _, err := DialIdle(context.Background(), IdleConfig{Addr: e.Addr(), Conns: 1, FirstSource: "10.0.0.2"}); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("source 10.0.0.2: %v, want ErrNotLoopback", err)
	}
}

// TestRunLoop drives a function: every call is measured or counted, and
// ErrStopWorker ends a worker.
func TestRunLoop(t *testing.T) {
	var calls atomic.Int64
	res, err := RunLoop(context.Background(), LoopConfig{
		Scenario: "sleep",
		Workers:  3,
		Warmup:   50 * time.Millisecond,
		Duration: 200 * time.Millisecond,
		Op: func(ctx context.Context, w int) error {
			if w == 2 {
				return fmt.Errorf("%w: worker 2 has no connection", ErrStopWorker)
			}
			if calls.Add(1)%10 == 0 {
				return errors.New("every tenth fails")
			}
			select {
			case <-time.After(time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	})
	if err != nil {
		t.Fatalf("RunLoop: %v", err)
	}
	t.Logf("%+v", res)
	if res.Scenario != "sleep" || res.Conns != 3 || res.Pipeline != 1 || res.Requests == 0 || res.RPS <= 0 {
		t.Errorf("implausible %+v", res)
	}
	if !(1000 <= res.P50Us && res.P50Us <= res.P99Us && res.P99Us <= res.MaxUs) {
		t.Errorf("latency p50 %v p99 %v max %v, want >= 1 ms and ordered", res.P50Us, res.P99Us, res.MaxUs)
	}
	// Worker 2 failed once and stopped; the others failed every tenth call.
	if want := uint64(calls.Load()/10) + 1; res.Errors != want {
		t.Errorf("errors %d, want %d (%d calls)", res.Errors, want, calls.Load())
	}
	if _, err := RunLoop(context.Background(), LoopConfig{Workers: 1, Duration: time.Second}); err == nil {
		t.Error("RunLoop without Op passed")
	}
}

// TestRunLoopRate: a paced loop never runs ahead of its schedule (at most
// Rate per second, plus one call per worker), and a call's latency counts
// from when it was due: a worker whose calls take longer than its
// interval falls behind, and its latencies grow past a call's own time.
func TestRunLoopRate(t *testing.T) {
	const rate, workers = 400.0, 4
	var calls atomic.Int64
	cfg := LoopConfig{
		Scenario: "paced",
		Workers:  workers,
		Duration: 500 * time.Millisecond,
		Rate:     rate,
		Op: func(ctx context.Context, w int) error {
			calls.Add(1)
			if w == 0 {
				// 20 ms a call against a 10 ms interval: worker 0 falls behind.
				select {
				case <-time.After(20 * time.Millisecond):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		},
	}
	start := time.Now()
	res, err := RunLoop(context.Background(), cfg)
	if err != nil {
		t.Fatalf("RunLoop: %v", err)
	}
	elapsed := time.Since(start).Seconds()
	if max := int64(rate*elapsed) + workers; calls.Load() > max {
		t.Errorf("%d calls in %.2f s, the schedule allows %d", calls.Load(), elapsed, max)
	}
	// Worker 0's last calls were due long before they started: the
	// slowest latency is well past its 20 ms.
	if res.MaxUs < 100_000 {
		t.Errorf("max latency %v us: a worker behind its schedule does not show", res.MaxUs)
	}
	cfg.Rate = -1
	if _, err := RunLoop(context.Background(), cfg); err == nil {
		t.Error("a negative Rate passed")
	}
}
