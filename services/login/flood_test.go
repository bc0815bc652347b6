package login_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// gather returns the sum of the samples of metric name in reg (the
// registry's prefix included) whose labels include want.
func gather(t testing.TB, reg *metrics.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// TestLoginFlood: a flood of bad logins from ever new addresses, many
// more than the hash slots can check, does not starve the owners logging
// in from addresses they logged in from before: their logins queue ahead
// and all succeed within their deadline, while the flood is shed
// (overloaded) once the queue is long. Before, every login waited in one
// FIFO behind the flood, past its deadline.
func TestLoginFlood(t *testing.T) {
	rdb := ownRedis(t)
	reg := metrics.NewRegistry("login")
	opts := testOptions(t)
	opts.Metrics = reg
	// One slot and a hash of a few milliseconds: the flood's 200 waiting
	// checks are a second or more of work.
	opts.Argon2.Concurrency = 1
	opts.Argon2.MemoryKiB = 4 << 10
	opts.Throttle.ShedQueue = 8
	svc := newService(t, opts, login.NewMemoryStore(), rdb)
	ctx := context.Background()

	const owners, rounds = 10, 5
	names := make([]string, owners)
	for i := range names {
		names[i] = username(t)
		if _, err := svc.Register(ctx, names[i], "password1", "", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Login(ctx, names[i], "password1", fmt.Sprintf("192.0.2.%d:1", i)); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var flood sync.WaitGroup
	var attempts, shed, bad atomic.Int64
	var seq atomic.Int64
	for range 200 {
		flood.Add(1)
		go func() {
			defer flood.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := seq.Add(1)
				addr := fmt.Sprintf("10.%d.%d.%d:1", n>>16&255, n>>8&255, n&255)
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := svc.Login(cctx, fmt.Sprintf("ghost%d", n), "wrong-password", addr)
				cancel()
				attempts.Add(1)
				switch {
				case wire.CodeOf(err) == wire.CodeOverloaded:
					shed.Add(1)
				case errors.Is(err, login.ErrBadCredentials):
					bad.Add(1)
				}
			}
		}()
	}
	// Wait until the flood fills the queue.
	checkFor(t, 10*time.Second, "the flood to be shed", func() bool { return shed.Load() > 0 })

	var good sync.WaitGroup
	var ok, failed atomic.Int64
	errs := make(chan error, owners*rounds)
	for i, name := range names {
		good.Add(1)
		go func() {
			defer good.Done()
			for r := range rounds {
				// A client's deadline: a few hashes' time, far less than
				// the flood's queue.
				cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err := svc.Login(cctx, name, "password1", fmt.Sprintf("192.0.2.%d:%d", i, 2+r))
				cancel()
				if err != nil {
					failed.Add(1)
					errs <- err
					continue
				}
				ok.Add(1)
			}
		}()
	}
	good.Wait()
	close(stop)
	flood.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("owner's login during the flood: %v", err)
	}
	t.Logf("owners: %d ok, %d failed; flood: %d attempts, %d checked, %d shed", ok.Load(), failed.Load(), attempts.Load(), bad.Load(), shed.Load())
	if ok.Load() != owners*rounds {
		t.Fatalf("%d of %d owners' logins succeeded", ok.Load(), owners*rounds)
	}
	if got := gather(t, reg, "noon_login_shed_total", nil); got != float64(shed.Load()) {
		t.Errorf("login_shed_total %v, want %d", got, shed.Load())
	}
	if got := gather(t, reg, "noon_login_hash_queue", nil); got != 0 {
		t.Errorf("login_hash_queue %v after the flood, want 0", got)
	}
}
