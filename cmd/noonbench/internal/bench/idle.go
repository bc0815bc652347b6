package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/edge/frame"
)

// Defaults and bounds of an IdleConfig.
const (
	// DefaultPerSource is how many connections DialIdle opens from one
	// source address: a (source IP, destination) pair has ~28,000
	// ephemeral ports here (32768-60999), and every bound socket of the IP
	// takes one whatever its destination, so 2,000 per address stays far
	// from exhaustion even with earlier runs' sockets in TIME_WAIT.
	DefaultPerSource = 2000
	// DefaultFirstSource is the first source address; the next ones count
	// up from it (127.0.0.3, ...). 127.0.0.1 is left to the load runs.
	DefaultFirstSource = "127.0.0.2"
	// MaxIdle bounds IdleConfig.Conns: the platform's goal is 100,000 idle
	// connections on one broker; more is not a benchmark of this machine.
	MaxIdle = 100_000
	// idleParallel is how many connections DialIdle opens at once.
	idleParallel = 8
	// idleRoundTrip bounds each connection's first request's round trip.
	idleRoundTrip = 10 * time.Second
	// maxIdleReply bounds the reply to that request: an echo of a small
	// payload or a short error.
	maxIdleReply = 64 << 10
	// settleTime is how long the held connections get to go idle (their
	// goroutines parked, pooled buffers returned) before memory is read.
	settleTime = 200 * time.Millisecond
	// heldTimeout bounds the wait for the server to count all the
	// connections as open (or all closed).
	heldTimeout = 30 * time.Second
)

// IdleConfig is a set of idle connections to open.
type IdleConfig struct {
	// Addr is the loopback host:port to connect to.
	Addr string
	// Conns is the number of connections.
	Conns int
	// PerSource is how many connections share a source address; 0 means
	// DefaultPerSource.
	PerSource int
	// FirstSource is the first source address, in 127.0.0.0/8; "" means
	// DefaultFirstSource.
	FirstSource string
	// Request, if set, is a whole request frame sent on each connection
	// once it is open; its reply must be a success. Use it to take each
	// connection through one request, as a real client's would, so that
	// what the server holds is a connection gone idle after use.
	Request []byte
	// Progress, if set, is called as connections open (every 500 and at
	// the end) with the phase ("dial"; MeasureIdle's are "bare" and
	// "server") and the number open so far. It may be called from several
	// goroutines at once.
	Progress func(phase string, open int)

	// phase is what Progress is told; "" means "dial".
	phase string
}

func (c IdleConfig) withDefaults() IdleConfig {
	if c.PerSource == 0 {
		c.PerSource = DefaultPerSource
	}
	if c.FirstSource == "" {
		c.FirstSource = DefaultFirstSource
	}
	if c.phase == "" {
		c.phase = "dial"
	}
	return c
}

// sources returns the source addresses of c's connections.
func (c IdleConfig) sources() ([]netip.Addr, error) {
	first, err := netip.ParseAddr(c.FirstSource)
	if err != nil || !first.Is4() || !first.IsLoopback() {
		return nil, fmt.Errorf("%w: FirstSource %q", ErrNotLoopback, c.FirstSource)
	}
	n := (c.Conns + c.PerSource - 1) / c.PerSource
	out := make([]netip.Addr, 0, n)
	for a := first; len(out) < n; a = a.Next() {
		if !a.IsLoopback() {
			return nil, fmt.Errorf("%w: %d source addresses from %s leave 127.0.0.0/8", ErrNotLoopback, n, first)
		}
		out = append(out, a)
	}
	return out, nil
}

// IdleConns is a set of open, idle connections.
type IdleConns struct {
	conns   []net.Conn
	sources []netip.Addr
}

// Len returns the number of connections.
func (s *IdleConns) Len() int { return len(s.conns) }

// Sources returns the source addresses used.
func (s *IdleConns) Sources() []string {
	out := make([]string, len(s.sources))
	for i, a := range s.sources {
		out[i] = a.String()
	}
	return out
}

// Close closes every connection.
func (s *IdleConns) Close() {
	for _, nc := range s.conns {
		if nc != nil {
			_ = nc.Close()
		}
	}
}

// DialIdle opens cfg.Conns TCP connections to cfg.Addr, binding the i-th
// to source address FirstSource + i/PerSource (so that no source address
// runs out of ephemeral ports), and, if cfg.Request is set, takes each
// through one request and its reply. The connections are plain sockets,
// the cheapest client there is, holding no goroutine. On any error it
// closes what it opened.
func DialIdle(ctx context.Context, cfg IdleConfig) (*IdleConns, error) {
	cfg = cfg.withDefaults()
	if cfg.Conns < 1 || cfg.Conns > MaxIdle {
		return nil, fmt.Errorf("bench: Conns is %d, want 1..%d", cfg.Conns, MaxIdle)
	}
	if cfg.PerSource < 1 {
		return nil, fmt.Errorf("bench: PerSource is %d, want > 0", cfg.PerSource)
	}
	addr, err := checkLoopback(cfg.Addr)
	if err != nil {
		return nil, err
	}
	srcs, err := cfg.sources()
	if err != nil {
		return nil, err
	}
	set := &IdleConns{conns: make([]net.Conn, cfg.Conns), sources: srcs}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next, open atomic.Int64
		wg         sync.WaitGroup
		errOnce    sync.Once
		firstErr   error
	)
	for range min(idleParallel, cfg.Conns) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= cfg.Conns {
					return
				}
				nc, err := dialOne(ctx, addr, srcs[i/cfg.PerSource], cfg.Request)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("bench: idle connection %d of %d: %w", i+1, cfg.Conns, err) })
					cancel()
					return
				}
				set.conns[i] = nc
				if n := open.Add(1); cfg.Progress != nil && n%500 == 0 {
					cfg.Progress(cfg.phase, int(n))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		set.Close()
		return nil, firstErr
	}
	if cfg.Progress != nil {
		cfg.Progress(cfg.phase, cfg.Conns)
	}
	return set, nil
}

// dialOne opens one connection from src and takes it through req.
func dialOne(ctx context.Context, addr string, src netip.Addr, req []byte) (net.Conn, error) {
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
		Timeout:   DefaultDialTimeout,
	}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%w (file descriptor limit? ulimit -n)", err)
	}
	if len(req) == 0 {
		return nc, nil
	}
	if err := roundTrip(nc, req); err != nil {
		_ = nc.Close()
		return nil, err
	}
	return nc, nil
}

// roundTrip writes req and reads one reply frame, which must be a success.
func roundTrip(nc net.Conn, req []byte) error {
	_ = nc.SetDeadline(time.Now().Add(idleRoundTrip))
	defer func() { _ = nc.SetDeadline(time.Time{}) }()
	if _, err := nc.Write(req); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	total := int32(binary.BigEndian.Uint32(hdr[:]))
	if total < frame.MinFrame || total > maxIdleReply {
		return fmt.Errorf("reply of %d bytes: not a reply to a small request", total)
	}
	msg := make([]byte, 4+int(total))
	copy(msg, hdr[:])
	if _, err := io.ReadFull(nc, msg[4:]); err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	first, _, err := frame.DecodeResponseFrame(msg, frame.DefaultLimits())
	if err != nil {
		return err
	}
	if len(first) > 0 {
		return fmt.Errorf("error reply: %.100q", first)
	}
	return nil
}

// IdleResult is the memory cost of idle connections held by a server in
// this process. Every figure is Go heap + stack in use
// (runtime.MemStats HeapInuse + StackInuse) after two GCs, except the RSS
// one.
type IdleResult struct {
	// Conns is the number of idle connections held.
	Conns int `json:"conns"`
	// Sources are the client source addresses used.
	Sources []string `json:"source_addrs"`
	// BarePairBytes is the cost of one bare socket pair: a client
	// net.Conn and an accepted net.Conn held by a plain listener, no
	// goroutines, no buffers.
	BarePairBytes float64 `json:"bare_pair_bytes"`
	// TotalPerConnBytes is the growth per connection with the server
	// holding them: the server's cost plus the client socket's.
	TotalPerConnBytes float64 `json:"total_per_conn_bytes"`
	// ServerPerConnBytes is the server's cost per connection:
	// TotalPerConnBytes - BarePairBytes/2 (the client's half of a bare
	// pair is not the server's).
	ServerPerConnBytes float64 `json:"server_per_conn_bytes"`
	// HeapPerConnBytes and StackPerConnBytes split TotalPerConnBytes
	// into heap and goroutine stacks.
	HeapPerConnBytes  float64 `json:"heap_per_conn_bytes"`
	StackPerConnBytes float64 `json:"stack_per_conn_bytes"`
	// RSSPerConnBytes is the growth of RSS per connection, client sockets
	// included and nothing subtracted: a cross-check of the Go figure.
	RSSPerConnBytes float64 `json:"rss_per_conn_bytes"`
	// GoroutinesPerConn is the growth of runtime.NumGoroutine per
	// connection (the client sockets hold none).
	GoroutinesPerConn float64 `json:"goroutines_per_conn"`
	// Method says how the figures were measured.
	Method string `json:"method"`
}

// idleMethod is IdleResult.Method.
const idleMethod = "Go heap+stack in use (runtime.MemStats HeapInuse+StackInuse, after 2 GCs) " +
	"before and after opening the connections, divided by their number; " +
	"minus half the cost of a bare socket pair (client net.Conn + accepted net.Conn, no goroutines) " +
	"measured the same way against a plain listener, which is the client socket's share. " +
	"Kernel socket memory is not counted. With few connections the figure reads low: each P keeps up to 64 " +
	"exited goroutines' stacks for reuse, which new goroutines take without growing StackInuse."

// MeasureIdle measures what idle connections cost the server at cfg.Addr,
// which runs in this process: first a bare socket pair's cost, against a
// plain listener, then the growth with cfg.Conns connections held by the
// server; held must return how many connections the server holds (0 at
// the start). It closes every connection it opened before returning.
func MeasureIdle(ctx context.Context, cfg IdleConfig, held func() int) (IdleResult, error) {
	cfg = cfg.withDefaults()
	if err := waitHeld(ctx, held, 0); err != nil {
		return IdleResult{}, fmt.Errorf("bench: before the idle test: %w", err)
	}
	bare, err := BarePairCost(ctx, cfg)
	if err != nil {
		return IdleResult{}, err
	}

	heapBefore, stackBefore := memSplit()
	rssBefore, gBefore := RSS(), runtime.NumGoroutine()
	cfg.phase = "server"
	set, err := DialIdle(ctx, cfg)
	if err != nil {
		return IdleResult{}, err
	}
	defer func() {
		set.Close()
		_ = waitHeld(context.Background(), held, 0)
	}()
	if err := waitHeld(ctx, held, cfg.Conns); err != nil {
		return IdleResult{}, err
	}
	time.Sleep(settleTime)
	heapAfter, stackAfter := memSplit()
	rssAfter, gAfter := RSS(), runtime.NumGoroutine()
	n := float64(cfg.Conns)
	perConn := func(after, before uint64) float64 { return (float64(after) - float64(before)) / n }
	heap, stack := perConn(heapAfter, heapBefore), perConn(stackAfter, stackBefore)
	total := heap + stack
	return IdleResult{
		Conns:              cfg.Conns,
		Sources:            set.Sources(),
		BarePairBytes:      bare,
		TotalPerConnBytes:  total,
		ServerPerConnBytes: total - bare/2,
		HeapPerConnBytes:   heap,
		StackPerConnBytes:  stack,
		RSSPerConnBytes:    perConn(rssAfter, rssBefore),
		GoroutinesPerConn:  float64(gAfter-gBefore) / n,
		Method:             idleMethod,
	}, nil
}

// errHeld is returned when the server does not reach the expected count.
var errHeld = errors.New("the server does not hold the expected connections")

// waitHeld polls held until it returns want.
func waitHeld(ctx context.Context, held func() int, want int) error {
	deadline := time.Now().Add(heldTimeout)
	for {
		n := held()
		if n == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: %d, want %d after %v", errHeld, n, want, heldTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// BarePairCost returns the Go heap + stack cost of one bare socket pair:
// it opens cfg.Conns connections (from cfg's source addresses, without
// cfg.Request) to a plain listener on 127.0.0.1 that only holds the
// accepted sockets, and divides the growth by their number. The server
// sides are closed first, so that the TIME_WAIT sockets are the
// listener's and the source addresses' ports stay free.
func BarePairCost(ctx context.Context, cfg IdleConfig) (float64, error) {
	cfg = cfg.withDefaults()
	cfg.Request = nil
	cfg.phase = "bare"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	cfg.Addr = ln.Addr().String()
	accepted := make([]net.Conn, 0, cfg.Conns)
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			accepted = append(accepted, nc)
			mu.Unlock()
		}
	}()
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	closeAll := func() {
		_ = ln.Close()
		<-done
		for _, nc := range accepted {
			_ = nc.Close()
		}
	}

	before := MemInUse()
	set, err := DialIdle(ctx, cfg)
	if err != nil {
		closeAll()
		return 0, err
	}
	if err := waitHeld(ctx, count, cfg.Conns); err != nil {
		closeAll()
		set.Close()
		return 0, fmt.Errorf("bench: bare sockets: %w", err)
	}
	after := MemInUse()
	closeAll()
	set.Close()
	return (float64(after) - float64(before)) / float64(cfg.Conns), nil
}
