package services_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/testenv/zmqbench"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
)

// BenchmarkServiceCall measures Client.CallRaw round trips to an echo
// instance found through yellow, at 1 and 16 concurrent callers, next to a
// bare zmq4 DEALER<->ROUTER echo (internal/testenv/zmqbench) measured in the same
// run. Each service sub-benchmark reports rps, p50-us, p99-us and its ratio
// to the baseline (x-rps: the baseline's rps over ours; x-p50, x-p99: our
// latency over the baseline's).
//
//	go test -run '^$' -bench BenchmarkServiceCall -benchtime 20000x ./services/
func BenchmarkServiceCall(b *testing.B) {
	payload := bytes.Repeat([]byte("x"), 64)

	base := zmqbench.StartEcho(b)
	dealer, err := zmqbench.NewDealer(base)
	if err != nil {
		b.Fatal(err)
	}
	defer dealer.Close()

	// Default (1 s) heartbeats: a benchmark saturates the machine, and the
	// tests' short ones would expire records and links under that load.
	y := mustStartYellowHB(b, "", "", time.Second)
	mustStartEcho(b, []*testYellow{y}, func(o *services.Options) { o.Heartbeat = time.Second }, nil)
	c := newClientOpts(b, services.ClientOptions{Heartbeat: time.Second}, y)
	if _, err := echoCall(context.Background(), c, "warm up"); err != nil {
		b.Fatal(err)
	}

	for _, conc := range []int{1, 16} {
		var baseline zmqbench.Result
		b.Run(fmt.Sprintf("conc=%d/zmq4", conc), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			baseline = zmqbench.Measure(b, conc, func(ctx context.Context) error {
				_, err := dealer.Call(ctx, payload)
				return err
			})
			baseline.Report(b)
		})
		b.Run(fmt.Sprintf("conc=%d/service", conc), func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			r := zmqbench.Measure(b, conc, func(ctx context.Context) error {
				rep, err := c.CallRaw(ctx, router.Target{}, echo.MethodEcho, nil, payload)
				if err == nil && len(rep.GetPayload()) != len(payload) {
					err = fmt.Errorf("echo returned %d bytes", len(rep.GetPayload()))
				}
				return err
			})
			r.Report(b)
			if baseline.RPS > 0 && r.RPS > 0 {
				b.ReportMetric(baseline.RPS/r.RPS, "x-rps")
				b.ReportMetric(float64(r.P50)/float64(baseline.P50), "x-p50")
				b.ReportMetric(float64(r.P99)/float64(baseline.P99), "x-p99")
			}
		})
	}
}
