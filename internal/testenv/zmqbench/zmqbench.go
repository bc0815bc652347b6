// Package zmqbench is the bare-ZeroMQ baseline that the platform's
// benchmarks compare against: an echo ROUTER and a DEALER client built the
// way the link layer builds its sockets (each socket owned by goroutines
// that alone touch it, callers talking to them over channels, replies
// matched by request id), with nothing else in the way, plus a helper that
// measures throughput and latency percentiles at a given concurrency.
package zmqbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
)

// ErrClosed is returned by Dealer.Call after Close.
var ErrClosed = errors.New("zmqbench: dealer closed")

// queueLen is the Dealer's send queue: deep enough for any benchmark's
// concurrency, bounded like the link layer's.
const queueLen = 1024

// StartEcho starts a ROUTER on tcp://127.0.0.1 (a free port) that sends
// every message back to its sender, and returns its endpoint. Like the link
// layer's server, one goroutine reads and another writes, fed by a bounded
// queue; tb.Cleanup closes it.
func StartEcho(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := zmq4.NewRouter(ctx, zmq4.WithTimeout(5*time.Second))
	if err := r.Listen("tcp://127.0.0.1:0"); err != nil {
		cancel()
		tb.Fatalf("zmqbench: listen: %v", err)
	}
	ep := "tcp://" + r.Addr().String()
	out := make(chan zmq4.Msg, queueLen)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // reader
		defer wg.Done()
		for {
			msg, err := r.Recv()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(time.Millisecond) // a broken connection: do not spin
				continue
			}
			if len(msg.Frames) < 2 {
				continue
			}
			select {
			case out <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { // writer
		defer wg.Done()
		for {
			select {
			case msg := <-out:
				_ = r.Send(msg)
			case <-ctx.Done():
				return
			}
		}
	}()
	tb.Cleanup(func() {
		cancel()
		_ = r.Close()
		wg.Wait()
	})
	return ep
}

// Dealer is a DEALER connected to one ROUTER. Call may be used by many
// goroutines at once: a writer goroutine sends what a bounded queue holds, a
// reader goroutine matches replies to calls by request id.
type Dealer struct {
	sock   zmq4.Socket
	cancel context.CancelFunc
	sendq  chan zmq4.Msg
	nextID atomic.Uint64
	wg     sync.WaitGroup
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex // guards pending
	pending map[uint64]chan []byte
}

// NewDealer dials endpoint with a DEALER (unique identity) and starts its
// reader and writer.
func NewDealer(endpoint string) (*Dealer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(time.Now().UnixNano())^dealerSeq.Add(1)<<48)
	s := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(fmt.Sprintf("zb-%x", id))), zmq4.WithTimeout(5*time.Second))
	if err := s.Dial(endpoint); err != nil {
		cancel()
		_ = s.Close()
		return nil, fmt.Errorf("zmqbench: dial %s: %w", endpoint, err)
	}
	d := &Dealer{
		sock:    s,
		cancel:  cancel,
		sendq:   make(chan zmq4.Msg, queueLen),
		done:    make(chan struct{}),
		pending: make(map[uint64]chan []byte),
	}
	d.wg.Add(2)
	go d.writeLoop()
	go d.readLoop()
	return d, nil
}

var dealerSeq atomic.Uint64

func (d *Dealer) writeLoop() {
	defer d.wg.Done()
	for {
		select {
		case <-d.done:
			return
		case m := <-d.sendq:
			_ = d.sock.SendMulti(m)
		}
	}
}

func (d *Dealer) readLoop() {
	defer d.wg.Done()
	for {
		msg, err := d.sock.Recv()
		if err != nil {
			select {
			case <-d.done:
				return
			case <-time.After(time.Millisecond): // a broken connection: do not spin
				continue
			}
		}
		if len(msg.Frames) < 2 || len(msg.Frames[0]) != 8 {
			continue
		}
		id := binary.BigEndian.Uint64(msg.Frames[0])
		d.mu.Lock()
		ch := d.pending[id]
		delete(d.pending, id)
		d.mu.Unlock()
		if ch != nil {
			ch <- msg.Frames[1]
		}
	}
}

// Call sends payload and waits for the echo, or for ctx to end.
func (d *Dealer) Call(ctx context.Context, payload []byte) ([]byte, error) {
	id := d.nextID.Add(1)
	var hdr [8]byte
	binary.BigEndian.PutUint64(hdr[:], id)
	ch := make(chan []byte, 1)
	d.mu.Lock()
	d.pending[id] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.pending, id)
		d.mu.Unlock()
	}()
	select {
	case d.sendq <- zmq4.NewMsgFrom(hdr[:], payload):
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.done:
		return nil, ErrClosed
	}
	select {
	case b := <-ch:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-d.done:
		return nil, ErrClosed
	}
}

// Close closes the socket and waits for its goroutines.
func (d *Dealer) Close() {
	d.once.Do(func() {
		close(d.done)
		d.cancel()
		_ = d.sock.Close()
		d.wg.Wait()
	})
}

// Result is what Measure found.
type Result struct {
	// Calls is the number of calls made.
	Calls int
	// Elapsed is the wall time they took.
	Elapsed time.Duration
	// RPS is calls per second.
	RPS float64
	// P50 and P99 are latency percentiles of one call.
	P50, P99 time.Duration
}

// Measure makes b.N calls of call, spread over concurrency goroutines, and
// returns throughput and latency percentiles; the first error fails b.
// It resets b's timer first.
func Measure(b *testing.B, concurrency int, call func(ctx context.Context) error) Result {
	b.Helper()
	if concurrency < 1 {
		concurrency = 1
	}
	lat := make([][]time.Duration, concurrency)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	n := int64(b.N)
	b.ResetTimer()
	start := time.Now()
	for g := range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for next.Add(1) <= n {
				t0 := time.Now()
				if err := call(ctx); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				lat[g] = append(lat[g], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("zmqbench: call failed: %v", err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	r := Result{Calls: len(all), Elapsed: elapsed}
	if elapsed > 0 {
		r.RPS = float64(len(all)) / elapsed.Seconds()
	}
	if len(all) > 0 {
		r.P50 = all[len(all)*50/100]
		r.P99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

// Report reports r on b as the metrics rps, p50-us and p99-us.
func (r Result) Report(b *testing.B) {
	b.ReportMetric(r.RPS, "rps")
	b.ReportMetric(float64(r.P50.Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(r.P99.Nanoseconds())/1e3, "p99-us")
}
