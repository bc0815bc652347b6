package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/edge/client"
)

// Bounds of a Config, so that no flag can make a run unbounded.
const (
	// MaxConns bounds Config.Conns: each connection is a file descriptor
	// here and one or more at the server (this process's limit is 20,000),
	// and 10,000 busy connections already saturate two cores.
	MaxConns = 10_000
	// MaxPipeline bounds Config.Pipeline: the edge runs at most 64 requests
	// of a connection at once by default (edge.DefaultMaxInFlight), so a
	// deeper pipeline only queues in TCP.
	MaxPipeline = 1024
	// MaxPayload bounds Config.Payload, 512 KiB: well under the 1 MiB
	// frame limit with any method name.
	MaxPayload = 512 << 10
	// MaxDuration bounds Config.Duration and Config.Warmup: a benchmark
	// scenario of ten minutes is a soak test, not a benchmark.
	MaxDuration = 10 * time.Minute
)

// Defaults of a Config.
const (
	// DefaultMethod is what the runner calls: the echo service's echo,
	// which the raw echo server and the relay answer too.
	DefaultMethod = "echo.Echo"
	// DefaultDialTimeout bounds each connection's dial: microseconds on
	// loopback; seconds means the server is not there.
	DefaultDialTimeout = 5 * time.Second
	// drainGrace is how long the calls in flight at the end of a run may
	// take to come back before the run gives up on them: far beyond any
	// healthy loopback round trip, and the broker's default deadline.
	drainGrace = 5 * time.Second
	// progressEvery is how often Config.Progress is called.
	progressEvery = 250 * time.Millisecond
	// histShards is the most histograms the workers record into: atomic
	// adds spread over 16 copies do not contend on two cores, and 16 copies
	// of ~30 KiB keep the runner's own memory flat.
	histShards = 16
)

// Config is one closed-loop load run.
type Config struct {
	// Scenario labels the result ("raw", "relay", "noon").
	Scenario string
	// Addr is the loopback host:port to load (127.0.0.0/8 only).
	Addr string
	// Conns is the number of connections, each through edge/client.
	Conns int
	// Pipeline is how many requests each connection keeps outstanding; 0
	// means 1 (a request, wait for its reply, the next).
	Pipeline int
	// Payload is the request payload size in bytes; every reply must carry
	// the same bytes back.
	Payload int
	// Method is the method called; "" means DefaultMethod.
	Method string
	// Hello sends edge.Hello on connect (a broker answers it; the echo
	// server and the relay do not speak it).
	Hello bool
	// Warmup is run, and not measured, before Duration.
	Warmup time.Duration
	// Duration is the measured interval.
	Duration time.Duration
	// Progress, if set, is called every 250 ms and at each phase change,
	// from a goroutine of the runner.
	Progress func(Progress)
}

// Progress is where a run is.
type Progress struct {
	// Phase is "dial", "warmup", "measure" or "drain".
	Phase string
	// Elapsed is the time spent in this phase; Total its planned length (0
	// for dial and drain).
	Elapsed, Total time.Duration
	// Requests is the number of replies measured so far.
	Requests uint64
}

// Result is what a run measured. Latencies are in microseconds; CPU and
// memory are the whole process's, which holds the load generator as well as
// whatever it loads when that runs in the same process.
type Result struct {
	Scenario     string  `json:"scenario"`
	Conns        int     `json:"conns"`
	Pipeline     int     `json:"pipeline"`
	PayloadBytes int     `json:"payload_bytes"`
	WarmupSec    float64 `json:"warmup_s"`
	// DurationSec is the measured interval, as it actually ran.
	DurationSec float64 `json:"duration_s"`
	// Requests is the number of replies received in the measured
	// interval; RPS is Requests / DurationSec.
	Requests uint64  `json:"requests"`
	RPS      float64 `json:"rps"`
	// Errors counts failed calls (error replies, wrong payloads, lost
	// connections) over the whole run, warm-up included; FirstError is
	// the first one.
	Errors     uint64 `json:"errors"`
	FirstError string `json:"first_error,omitempty"`

	MeanUs float64 `json:"mean_us"`
	P50Us  float64 `json:"p50_us"`
	P99Us  float64 `json:"p99_us"`
	P999Us float64 `json:"p999_us"`
	MaxUs  float64 `json:"max_us"`

	// CPUUserSec and CPUSysSec are the process's CPU time in the measured
	// interval (getrusage); CPUPercent is their sum over the interval, in
	// percent of one core; CPUPerRequestUs their sum per request.
	CPUUserSec      float64 `json:"cpu_user_s"`
	CPUSysSec       float64 `json:"cpu_sys_s"`
	CPUPercent      float64 `json:"cpu_percent"`
	CPUPerRequestUs float64 `json:"cpu_per_request_us"`
	// HostCPUPercent is how busy the whole machine was (/proc/stat), in
	// percent of one core; OthersCPUPercent what of it was not this
	// process: other work competing with the run (-1 if unknown).
	HostCPUPercent   float64 `json:"host_cpu_percent"`
	OthersCPUPercent float64 `json:"others_cpu_percent"`
	// PeakRSSBytes is the highest RSS (VmRSS) sampled in the measured
	// interval, EndRSSBytes the last; PeakGoMemBytes the highest Go heap +
	// stack in use (runtime.MemStats HeapInuse + StackInuse).
	PeakRSSBytes   uint64 `json:"peak_rss_bytes"`
	EndRSSBytes    uint64 `json:"end_rss_bytes"`
	PeakGoMemBytes uint64 `json:"peak_go_mem_bytes"`
}

func (c Config) withDefaults() Config {
	if c.Pipeline == 0 {
		c.Pipeline = 1
	}
	if c.Method == "" {
		c.Method = DefaultMethod
	}
	return c
}

// Validate checks the config (after defaults), naming the bad field.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Conns < 1 || c.Conns > MaxConns:
		return fmt.Errorf("bench: Conns is %d, want 1..%d", c.Conns, MaxConns)
	case c.Pipeline < 1 || c.Pipeline > MaxPipeline:
		return fmt.Errorf("bench: Pipeline is %d, want 1..%d", c.Pipeline, MaxPipeline)
	case c.Payload < 0 || c.Payload > MaxPayload:
		return fmt.Errorf("bench: Payload is %d, want 0..%d", c.Payload, MaxPayload)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("bench: Duration is %v, want (0, %v]", c.Duration, MaxDuration)
	case c.Warmup < 0 || c.Warmup > MaxDuration:
		return fmt.Errorf("bench: Warmup is %v, want [0, %v]", c.Warmup, MaxDuration)
	}
	if _, err := checkLoopback(c.Addr); err != nil {
		return err
	}
	return nil
}

// shard is one histogram the workers record into, with its counters.
type shard struct {
	hist Histogram
	n    atomic.Uint64 // replies measured, for progress
}

// run is the state shared by a run's workers.
type run struct {
	cfg       Config
	payload   []byte
	shards    []*shard
	recording atomic.Bool
	stop      atomic.Bool

	errs     atomic.Uint64
	errOnce  sync.Once
	firstErr string
}

// newRun returns the state of a run of cfg by workers goroutines.
func newRun(cfg Config, workers int) *run {
	r := &run{cfg: cfg, shards: make([]*shard, min(workers, histShards))}
	for i := range r.shards {
		r.shards[i] = new(shard)
	}
	return r
}

// fail counts an error, keeping the first.
func (r *run) fail(err error) {
	r.errs.Add(1)
	r.errOnce.Do(func() { r.firstErr = err.Error() })
}

func (r *run) measured() uint64 {
	var n uint64
	for _, s := range r.shards {
		n += s.n.Load()
	}
	return n
}

// Run dials cfg.Conns connections to cfg.Addr and drives them closed-loop,
// each with cfg.Pipeline calls outstanding, for cfg.Warmup and then
// cfg.Duration, measuring latency, CPU and memory in the second interval.
// It stops by itself: the calls still out at the end get 5 s to return
// before Run gives up on them and closes the connections. It fails if a
// connection cannot be dialled; call errors are counted in the Result.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	cfg = cfg.withDefaults()
	addr, _ := checkLoopback(cfg.Addr)
	progress := cfg.Progress
	if progress == nil {
		progress = func(Progress) {}
	}

	workers := cfg.Conns * cfg.Pipeline
	r := newRun(cfg, workers)
	r.payload = make([]byte, cfg.Payload)
	for i := range r.payload {
		r.payload[i] = byte('a' + i%26)
	}

	progress(Progress{Phase: "dial"})
	opts := client.Options{DialTimeout: DefaultDialTimeout, Hello: cfg.Hello}
	clients := make([]*client.Client, 0, cfg.Conns)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for i := range cfg.Conns {
		c, err := client.Dial(ctx, addr, opts)
		if err != nil {
			return Result{}, fmt.Errorf("bench: %s: connection %d of %d: %w", cfg.Scenario, i+1, cfg.Conns, err)
		}
		clients = append(clients, c)
	}

	return r.drive(ctx, workers, func(ctx context.Context, i int, s *shard) {
		r.worker(ctx, clients[i/cfg.Pipeline], s)
	})
}

// drive runs workers goroutines, worker i running work(ctx, i, shard) until
// the run stops (r.stop) or ctx ends, through r.cfg's warm-up and measured
// interval, and returns what was measured. Every goroutine ends by the
// planned end plus drainGrace, whatever the server does: work must return
// when ctx ends.
func (r *run) drive(ctx context.Context, workers int, work func(ctx context.Context, i int, s *shard)) (Result, error) {
	cfg := r.cfg
	progress := cfg.Progress
	if progress == nil {
		progress = func(Progress) {}
	}
	runtime.GC() // start every scenario from a collected heap
	ctx, cancel := context.WithTimeout(ctx, cfg.Warmup+cfg.Duration+drainGrace)
	defer cancel()
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(ctx, i, r.shards[i%len(r.shards)])
		}()
	}

	var sampler *Sampler
	var measureStart time.Time
	phase := func(name string, d time.Duration) {
		start := time.Now()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		end := time.NewTimer(d)
		defer end.Stop()
		for {
			progress(Progress{Phase: name, Elapsed: time.Since(start), Total: d, Requests: r.measured()})
			select {
			case <-t.C:
			case <-end.C:
				return
			case <-ctx.Done():
				return
			}
		}
	}
	if cfg.Warmup > 0 {
		phase("warmup", cfg.Warmup)
	}
	sampler = StartSampler()
	measureStart = time.Now()
	r.recording.Store(true)
	phase("measure", cfg.Duration)
	r.recording.Store(false)
	wall := time.Since(measureStart)
	usage := sampler.Stop()
	r.stop.Store(true)
	progress(Progress{Phase: "drain", Requests: r.measured()})
	wg.Wait()
	if err := ctx.Err(); err != nil && errors.Is(err, context.Canceled) {
		return Result{}, err
	}

	var h Histogram
	for _, s := range r.shards {
		h.Merge(&s.hist)
	}
	n := h.Count()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	res := Result{
		Scenario:         cfg.Scenario,
		Conns:            cfg.Conns,
		Pipeline:         cfg.Pipeline,
		PayloadBytes:     cfg.Payload,
		WarmupSec:        cfg.Warmup.Seconds(),
		DurationSec:      wall.Seconds(),
		Requests:         n,
		RPS:              float64(n) / wall.Seconds(),
		Errors:           r.errs.Load(),
		FirstError:       r.firstErr,
		MeanUs:           us(h.Mean()),
		P50Us:            us(h.Quantile(0.50)),
		P99Us:            us(h.Quantile(0.99)),
		P999Us:           us(h.Quantile(0.999)),
		MaxUs:            us(h.Max()),
		CPUUserSec:       usage.User.Seconds(),
		CPUSysSec:        usage.Sys.Seconds(),
		CPUPercent:       usage.CPUPercent(),
		HostCPUPercent:   usage.HostCPUPercent,
		OthersCPUPercent: usage.OthersCPUPercent(),
		PeakRSSBytes:     usage.PeakRSS,
		EndRSSBytes:      usage.EndRSS,
		PeakGoMemBytes:   usage.PeakGoMem,
	}
	if n > 0 {
		res.CPUPerRequestUs = us(usage.User+usage.Sys) / float64(n)
	}
	return res, nil
}

// errMismatch is counted when a reply does not carry the request's payload.
var errMismatch = errors.New("bench: the reply's payload differs from the request's")

// worker calls in a closed loop on c until the run stops, its connection
// fails, or ctx ends.
func (r *run) worker(ctx context.Context, c *client.Client, s *shard) {
	for !r.stop.Load() {
		start := time.Now()
		resp, err := c.Call(ctx, r.cfg.Method, r.payload)
		d := time.Since(start)
		if err != nil {
			if ctx.Err() != nil || r.stop.Load() && c.Err() != nil {
				return
			}
			r.fail(err)
			if c.Err() != nil {
				return // the connection is gone
			}
			continue
		}
		if !bytes.Equal(resp, r.payload) {
			r.fail(errMismatch)
			continue
		}
		if r.recording.Load() {
			s.hist.Record(d)
			s.n.Add(1)
		}
	}
}
