package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrStopWorker, wrapped in an error a LoopConfig.Op returns, ends that
// worker after the error is counted: its connection is gone, and calling
// again would only count the same failure as fast as the CPU allows.
var ErrStopWorker = errors.New("bench: worker stopped")

// LoopConfig is a closed-loop run of any operation, for what Run cannot
// drive (a call that is not an echo, a protocol other than pandaparty
// frames): Workers goroutines each call Op back to back, and the runner
// measures as Run does.
type LoopConfig struct {
	// Scenario labels the result.
	Scenario string
	// Workers is the number of goroutines calling Op, each with one call
	// outstanding: the number of connections, when each has its own
	// (Result.Conns reports it).
	Workers int
	// Warmup is run, and not measured, before Duration.
	Warmup time.Duration
	// Duration is the measured interval.
	Duration time.Duration
	// Op does one operation as worker w (0 <= w < Workers) and returns
	// its error, counted in the Result; an error wrapping ErrStopWorker
	// also ends the worker. Op must return soon after ctx ends: the run
	// cancels it 5 s after the planned end.
	Op func(ctx context.Context, w int) error
	// Progress, if set, is called every 250 ms and at each phase change.
	Progress func(Progress)
	// Rate, if > 0, paces the workers to Rate operations per second in
	// all (each Workers/Rate apart, staggered): latency at a given load
	// rather than at the most the loop can do. A call's latency counts
	// from when it was due, not when it started, so a server that falls
	// behind shows it (no coordinated omission).
	Rate float64
}

// Validate checks the config, naming the bad field.
func (c LoopConfig) Validate() error {
	switch {
	case c.Workers < 1 || c.Workers > MaxConns:
		return fmt.Errorf("bench: Workers is %d, want 1..%d", c.Workers, MaxConns)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("bench: Duration is %v, want (0, %v]", c.Duration, MaxDuration)
	case c.Warmup < 0 || c.Warmup > MaxDuration:
		return fmt.Errorf("bench: Warmup is %v, want [0, %v]", c.Warmup, MaxDuration)
	case c.Op == nil:
		return errors.New("bench: Op is nil")
	case c.Rate < 0 || c.Rate > MaxRate:
		return fmt.Errorf("bench: Rate is %v, want [0, %v]", c.Rate, MaxRate)
	}
	return nil
}

// RunLoop runs cfg.Workers goroutines calling cfg.Op in a closed loop for
// cfg.Warmup and then cfg.Duration, measuring latency (each Op call),
// throughput, CPU and memory in the second interval, as Run does. The
// Result's Conns is cfg.Workers, its Pipeline 1, its PayloadBytes 0.
func RunLoop(ctx context.Context, cfg LoopConfig) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	r := newRun(Config{
		Scenario: cfg.Scenario,
		Conns:    cfg.Workers,
		Pipeline: 1,
		Warmup:   cfg.Warmup,
		Duration: cfg.Duration,
		Progress: cfg.Progress,
	}, cfg.Workers)
	return r.drive(ctx, cfg.Workers, func(ctx context.Context, w int, s *shard) {
		r.opWorker(ctx, w, s, cfg)
	})
}

// MaxRate bounds LoopConfig.Rate.
const MaxRate = 10_000_000

// opWorker calls cfg.Op as worker w until the run stops, Op asks it to
// stop, or ctx ends.
func (r *run) opWorker(ctx context.Context, w int, s *shard, cfg LoopConfig) {
	var (
		interval time.Duration // between this worker's calls (Rate)
		due      time.Time
		timer    *time.Timer
	)
	if cfg.Rate > 0 {
		interval = time.Duration(float64(cfg.Workers) / cfg.Rate * float64(time.Second))
		due = time.Now().Add(interval * time.Duration(w) / time.Duration(cfg.Workers))
		timer = time.NewTimer(0)
		<-timer.C
		defer timer.Stop()
	}
	for !r.stop.Load() {
		start := time.Now()
		if interval > 0 {
			if wait := due.Sub(start); wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			start, due = due, due.Add(interval)
		}
		err := cfg.Op(ctx, w)
		d := time.Since(start)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.fail(err)
			if errors.Is(err, ErrStopWorker) {
				return
			}
			continue
		}
		if r.recording.Load() {
			s.hist.Record(d)
			s.n.Add(1)
		}
	}
}
