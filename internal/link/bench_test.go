package link

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// Both benchmarks run the same load: conc goroutines share b.N echo round
// trips of a size-byte payload over 127.0.0.1, and report round trips per
// second and the p50 / p99 latency of one round trip.
var (
	benchConc  = []int{1, 16}
	benchSizes = []int{64, 4096}
)

func runLoad(b *testing.B, conc, size int, roundTrip func(payload []byte) error) {
	b.Helper()
	payload := make([]byte, size)
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := roundTrip(payload); err != nil {
					b.Error(err)
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rt/s")
	b.ReportMetric(float64(lat[len(lat)/2])/1e3, "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e3, "p99-µs")
}

// BenchmarkCall is Peer.Call against a Server running an echo handler,
// over plain links and over mutual TLS (the sub-benchmarks' ratio is what
// TLS costs a link).
func BenchmarkCall(b *testing.B) {
	quiet := slog.New(slog.DiscardHandler)
	for _, mode := range []string{"plain", "tls"} {
		var so ServerOptions
		var po PeerOptions
		if mode == "tls" {
			so.TLS, po.TLS = creds(b, loginID, false), creds(b, brokerID, false)
		}
		so.Logger, po.Logger = quiet, quiet
		s, err := Listen("tcp://127.0.0.1:0", so, echo)
		if err != nil {
			b.Fatal(err)
		}
		p := Dial(s.Endpoint(), po)
		checkFor(b, 5*time.Second, "peer alive", p.Alive)
		for _, size := range benchSizes {
			for _, conc := range benchConc {
				b.Run(fmt.Sprintf("%s/size=%d/conc=%d", mode, size, conc), func(b *testing.B) {
					runLoad(b, conc, size, func(payload []byte) error {
						ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
						defer cancel()
						rep, err := p.Call(ctx, &platformpb.Envelope{Method: "echo.Echo", Payload: payload})
						if err == nil && len(rep.GetPayload()) != len(payload) {
							err = errors.New("short echo")
						}
						return err
					})
				})
			}
		}
		p.Close()
		s.Close()
	}
}

// BenchmarkBareZMQ is the baseline: a bare zmq4 ROUTER echoing frames to a
// bare zmq4 DEALER over plain tcp://, with the same structure on the caller
// side as a Peer (one writer goroutine fed by a channel, one reader
// goroutine matching replies to callers by an 8-byte id), but no protobuf,
// heartbeats, deadlines or guard.
func BenchmarkBareZMQ(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	router := zmq4.NewRouter(ctx)
	defer router.Close()
	if err := router.Listen("tcp://127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	go func() {
		for {
			msg, err := router.Recv()
			if err != nil {
				return
			}
			if err := router.Send(msg); err != nil {
				return
			}
		}
	}()
	dealer := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(newIdentity("bench-"))))
	defer dealer.Close()
	if err := dealer.Dial("tcp://" + router.Addr().String()); err != nil {
		b.Fatal(err)
	}

	var (
		mu      sync.Mutex
		pending = make(map[uint64]chan []byte)
		nextID  atomic.Uint64
		sendq   = make(chan []byte, DefaultQueueSize)
	)
	go func() { // the DEALER's only writer
		for {
			select {
			case m := <-sendq:
				if err := dealer.Send(zmq4.NewMsg(m)); err != nil {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { // the DEALER's only reader
		for {
			msg, err := dealer.Recv()
			if err != nil {
				return
			}
			body := msg.Frames[0]
			id := binary.BigEndian.Uint64(body)
			mu.Lock()
			ch := pending[id]
			delete(pending, id)
			mu.Unlock()
			if ch != nil {
				ch <- body
			}
		}
	}()

	for _, size := range benchSizes {
		for _, conc := range benchConc {
			b.Run(fmt.Sprintf("size=%d/conc=%d", size, conc), func(b *testing.B) {
				runLoad(b, conc, size, func(payload []byte) error {
					id := nextID.Add(1)
					m := make([]byte, 8, 8+len(payload))
					binary.BigEndian.PutUint64(m, id)
					m = append(m, payload...)
					ch := make(chan []byte, 1)
					mu.Lock()
					pending[id] = ch
					mu.Unlock()
					sendq <- m
					select {
					case rep := <-ch:
						if len(rep) != len(m) {
							return errors.New("short echo")
						}
						return nil
					case <-time.After(5 * time.Second):
						return errors.New("timeout")
					}
				})
			})
		}
	}
}
