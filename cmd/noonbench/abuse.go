package main

// The abuse scenario (-only abuse): a broker holding -abuse-conns client
// connections (default 10,000), of which -abuse-bad (default 100)
// misbehave as in issue 14, and the well-behaved ones' requests per second
// and p99 against a baseline taken in the same run, on the same broker,
// before the misbehaving connections start. It runs alone.
//
// The platform (yellow, one echo instance, the broker with TCP and
// WebSocket listeners) runs in a child process, this program re-executed
// with abuseChildEnv set: this machine allows 20,000 open files per
// process, and 10,000 connections cost 10,000 descriptors on each side.
// The child's per-address limits apply to loopback (addr_limits_exempt
// empty), so every client dials from its own 127.x.y.z source address.
//
// The misbehaving connections, a third each:
//   - pipeliners: TCP connections from 127.0.0.2-5 sending 1 MiB echo.Echo
//     requests back to back and never reading (redialled when cut);
//   - WebSocket slowloris: connections from 127.0.0.6 that announce a
//     1 MiB frame, send 4 bytes of it and then a byte a second
//     (redialled when cut);
//   - a connection flood from 127.0.0.66: goroutines dialling as fast as
//     they are answered and holding whatever is accepted.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/logging"
)

// scenarioAbuse is the abuse scenario; it is not in allScenarios (it runs
// only when -only names it, and alone).
const scenarioAbuse = "abuse"

// abuseChildEnv, set to "1", makes noonbench the abuse scenario's broker
// process (see abuseChild).
const abuseChildEnv = "NOONBENCH_ABUSE_CHILD"

// Defaults and bounds of the abuse scenario.
const (
	defaultAbuseConns = 10_000
	defaultAbuseBad   = 100
	// abuseActive is how many of the well-behaved connections run the
	// closed loop measured; the rest are idle players. 256 keeps two
	// cores busy without the load generator itself dominating.
	abuseActive = 256
	// abusePerSource is how many well-behaved connections share a source
	// address: under the broker's max_conns_per_addr (64) and its burst
	// of new connections per address (64).
	abusePerSource = 50
	// abuseBigPayload is a pipeliner's request payload: 1 MiB less room
	// for the frame's headers and method, the largest the default
	// max_frame takes.
	abuseBigPayload = 1<<20 - 64
	// abuseSettle is how long the misbehaving connections run before the
	// measurement starts, so that the broker's budgets are at their
	// limits when it does.
	abuseSettle = 3 * time.Second
	// abuseSlowlorisEvery is the WebSocket slowloris's pace: a byte a
	// second, far slower than frame_timeout allows for a whole frame.
	abuseSlowlorisEvery = time.Second
)

// abuseResult is one closed-loop measurement of the well-behaved
// connections.
type abuseResult struct {
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors"`
	PerSecond float64 `json:"per_second"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
}

// brokerStats is what the child reports of its broker.
type brokerStats struct {
	Conns         int64  `json:"conns"`
	BufferedBytes int64  `json:"buffered_bytes"`
	HeapInuse     uint64 `json:"heap_inuse"`
	Rejected      uint64 `json:"rejected"`
	AddrRejected  uint64 `json:"addr_rejected"`
	ByteWaits     uint64 `json:"byte_waits"`
	FrameTimeouts uint64 `json:"frame_timeouts"`
	SlowConsumers uint64 `json:"slow_consumers"`
}

// abuseCounts count what the misbehaving connections did.
type abuseCounts struct {
	pipeDials, pipeMiB, wsDials, floodDials, floodRefused, floodHeld atomic.Int64
}

// runAbuse runs the abuse scenario and prints its table.
func runAbuse(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	if cfg.abuseConns < cfg.abuseBad+abuseActive {
		return fmt.Errorf("-abuse-conns %d: want at least -abuse-bad + %d", cfg.abuseConns, abuseActive)
	}
	child, err := startAbuseChild(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer child.stop()
	fmt.Fprintf(stderr, "abuse: broker in child process %d, tcp %s, ws %s\n", child.cmd.Process.Pid, child.tcp, child.ws)

	good := cfg.abuseConns - cfg.abuseBad
	req := frame.AppendRequest(nil, bench.DefaultMethod, make([]byte, defaultPayload))
	idle, err := bench.DialIdle(ctx, bench.IdleConfig{Addr: child.tcp, Conns: good - abuseActive, PerSource: abusePerSource,
		FirstSource: "127.1.0.1", Request: req,
		Progress: func(_ string, open int) { fmt.Fprintf(stderr, "\rabuse: %d idle well-behaved connections open", open) }})
	fmt.Fprintln(stderr)
	if err != nil {
		return fmt.Errorf("opening the idle connections: %w", err)
	}
	defer idle.Close()
	active, err := dialActive(ctx, child.tcp, abuseActive, "127.2.0.1")
	if err != nil {
		return err
	}
	defer func() {
		for _, nc := range active {
			_ = nc.Close()
		}
	}()

	fmt.Fprintf(stderr, "abuse: baseline, %d connections, %d active\n", good, abuseActive)
	_, _ = closedLoop(ctx, active, req, cfg.warmup)
	base, err := closedLoop(ctx, active, req, cfg.duration)
	if err != nil {
		return err
	}
	baseStats, _ := child.stats()

	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var counts abuseCounts
	startMisbehaving(actx, &wg, child, cfg.abuseBad, &counts)
	fmt.Fprintf(stderr, "abuse: %d misbehaving connections started, settling %v\n", cfg.abuseBad, abuseSettle)
	select {
	case <-time.After(abuseSettle):
	case <-ctx.Done():
	}
	_, _ = closedLoop(ctx, active, req, cfg.warmup)
	under, err := closedLoop(ctx, active, req, cfg.duration)
	abuseStats, _ := child.stats()
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}

	fmt.Fprintf(stdout, "\nabuse: broker (child process) with %d connections: %d well-behaved (%d active in a closed loop of %d-byte echo.Echo), %d misbehaving\n",
		cfg.abuseConns, good, abuseActive, defaultPayload, cfg.abuseBad)
	fmt.Fprintf(stdout, "%-10s %12s %10s %10s %8s %14s %12s\n", "run", "req/s", "p50", "p99", "errors", "broker heap", "buffered")
	for _, r := range []struct {
		name string
		res  abuseResult
		st   brokerStats
	}{{"baseline", base, baseStats}, {"abuse", under, abuseStats}} {
		fmt.Fprintf(stdout, "%-10s %12.0f %10s %10s %8d %14s %12s\n", r.name, r.res.PerSecond, fmtUs(r.res.P50us), fmtUs(r.res.P99us),
			r.res.Errors, fmtMiB(r.st.HeapInuse), fmtMiB(uint64(max(r.st.BufferedBytes, 0))))
	}
	fmt.Fprintf(stdout, "ratio abuse/baseline: req/s %.2f, p99 %.2f\n", under.PerSecond/base.PerSecond, under.P99us/base.P99us)
	fmt.Fprintf(stdout, "misbehaving: pipeliners %d dials, %d MiB sent; ws slowloris %d dials; flood %d dials, %d refused overloaded, %d held\n",
		counts.pipeDials.Load(), counts.pipeMiB.Load(), counts.wsDials.Load(), counts.floodDials.Load(), counts.floodRefused.Load(), counts.floodHeld.Load())
	fmt.Fprintf(stdout, "broker during abuse: %d connections, refused %d (%d per address), byte waits %d, frame timeouts %d, slow consumers %d\n",
		abuseStats.Conns, abuseStats.Rejected, abuseStats.AddrRejected, abuseStats.ByteWaits, abuseStats.FrameTimeouts, abuseStats.SlowConsumers)
	if cfg.jsonPath != "" {
		b, err := json.MarshalIndent(map[string]any{"scenario": scenarioAbuse, "conns": cfg.abuseConns, "bad": cfg.abuseBad,
			"active": abuseActive, "baseline": base, "abuse": under, "broker_baseline": baseStats, "broker_abuse": abuseStats,
			"ratio_per_second": under.PerSecond / base.PerSecond, "ratio_p99": under.P99us / base.P99us}, "", "  ")
		if err == nil {
			err = os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			return fmt.Errorf("-json: %w", err)
		}
	}
	return nil
}

// dialActive opens n connections to addr from source addresses starting at
// first, abusePerSource each.
func dialActive(ctx context.Context, addr string, n int, first string) ([]net.Conn, error) {
	src := netip.MustParseAddr(first)
	var out []net.Conn
	for i := range n {
		if i > 0 && i%abusePerSource == 0 {
			src = src.Next()
		}
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: bench.DefaultDialTimeout}
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			for _, c := range out {
				_ = c.Close()
			}
			return nil, fmt.Errorf("dialling active connection %d: %w", i, err)
		}
		out = append(out, nc)
	}
	return out, nil
}

// closedLoop runs each connection in a closed loop of req for d and
// returns the rate and latency of the successful replies.
func closedLoop(ctx context.Context, conns []net.Conn, req []byte, d time.Duration) (abuseResult, error) {
	var (
		hist         bench.Histogram
		okN, errN    atomic.Uint64
		wg           sync.WaitGroup
		fatal        atomic.Pointer[error]
		start        = time.Now()
		end          = start.Add(d)
		lim          = frame.Limits{MaxFrame: 1 << 20}
		replyTimeout = 10 * time.Second
	)
	for _, nc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := frame.NewReader(nc, lim)
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				_ = nc.SetDeadline(t0.Add(replyTimeout))
				if _, err := nc.Write(req); err != nil {
					fatal.CompareAndSwap(nil, &err)
					return
				}
				first, _, err := r.ReadResponse()
				if err != nil {
					fatal.CompareAndSwap(nil, &err)
					return
				}
				if len(first) > 0 {
					errN.Add(1)
					continue
				}
				hist.Record(time.Since(t0))
				okN.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if p := fatal.Load(); p != nil {
		return abuseResult{}, fmt.Errorf("a well-behaved connection failed: %w", *p)
	}
	return abuseResult{
		Requests:  okN.Load(),
		Errors:    errN.Load(),
		PerSecond: float64(okN.Load()) / elapsed.Seconds(),
		P50us:     float64(hist.Quantile(0.5)) / float64(time.Microsecond),
		P99us:     float64(hist.Quantile(0.99)) / float64(time.Microsecond),
	}, nil
}

// startMisbehaving starts bad misbehaving clients (a third of each kind)
// that run until ctx ends.
func startMisbehaving(ctx context.Context, wg *sync.WaitGroup, child *abuseChildProc, bad int, counts *abuseCounts) {
	nPipe := bad / 3
	nWS := bad / 3
	nFlood := bad - nPipe - nWS
	big := frame.AppendRequest(nil, bench.DefaultMethod, make([]byte, abuseBigPayload))
	for i := range nPipe {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(2 + i%4)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				counts.pipeDials.Add(1)
				nc, err := dialFrom(ctx, child.tcp, src)
				if err != nil {
					pause(ctx, 100*time.Millisecond)
					continue
				}
				_ = nc.(*net.TCPConn).SetReadBuffer(4096)
				stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
				for ctx.Err() == nil {
					if _, err := nc.Write(big); err != nil {
						break
					}
					counts.pipeMiB.Add(1)
				}
				stop()
				_ = nc.Close()
			}
		}()
	}
	wsSrc := netip.MustParseAddr("127.0.0.6")
	for range nWS {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				counts.wsDials.Add(1)
				slowloris(ctx, child.ws, wsSrc)
			}
		}()
	}
	floodSrc := netip.MustParseAddr("127.0.0.66")
	for range nFlood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held []net.Conn
			defer func() {
				for _, nc := range held {
					_ = nc.Close()
				}
			}()
			for ctx.Err() == nil {
				counts.floodDials.Add(1)
				nc, err := dialFrom(ctx, child.tcp, floodSrc)
				if err != nil {
					pause(ctx, 10*time.Millisecond)
					continue
				}
				_ = nc.(*net.TCPConn).SetLinger(0) // no TIME_WAIT: the flood would run out of ports
				// A refused connection is answered at once; an accepted
				// one says nothing and is held.
				_ = nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				var hdr [4]byte
				if _, err := io.ReadFull(nc, hdr[:]); err == nil {
					counts.floodRefused.Add(1)
					_ = nc.Close()
					continue
				}
				_ = nc.SetReadDeadline(time.Time{})
				counts.floodHeld.Add(1)
				held = append(held, nc)
			}
		}()
	}
}

// slowloris opens one WebSocket from src, announces a 1 MiB frame with 4
// bytes of it, and sends a byte a second until the broker closes it or ctx
// ends.
func slowloris(ctx context.Context, wsURL string, src netip.Addr) {
	host := strings.TrimPrefix(wsURL, "ws://")
	path := "/"
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host, path = host[:i], host[i:]
	}
	nc, err := dialFrom(ctx, host, src)
	if err != nil {
		pause(ctx, 100*time.Millisecond)
		return
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	defer stop()
	fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, host)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		pause(ctx, 100*time.Millisecond)
		return
	}
	_ = nc.SetReadDeadline(time.Time{})
	var announce [8]byte
	binary.BigEndian.PutUint32(announce[:], 1<<20)
	binary.BigEndian.PutUint32(announce[4:], 4)
	if _, err := nc.Write(wsMaskedFrame(0x2, announce[:])); err != nil {
		return
	}
	for ctx.Err() == nil {
		pause(ctx, abuseSlowlorisEvery)
		if _, err := nc.Write(wsMaskedFrame(0x0, []byte{'x'})); err != nil {
			return
		}
	}
}

// wsMaskedFrame encodes a non-final client WebSocket frame of opcode op
// carrying p (at most 125 bytes).
func wsMaskedFrame(op byte, p []byte) []byte {
	mask := [4]byte{7, 1, 3, 5}
	out := append([]byte{op, 0x80 | byte(len(p))}, mask[:]...)
	for i, c := range p {
		out = append(out, c^mask[i%4])
	}
	return out
}

// dialFrom dials addr from source address src.
func dialFrom(ctx context.Context, addr string, src netip.Addr) (net.Conn, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), Timeout: bench.DefaultDialTimeout}
	return d.DialContext(ctx, "tcp", addr)
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// abuseChildProc is the broker's process, driven over its stdin and stdout:
// it prints "ready <tcp> <ws-url>", then answers each "stats" line with a
// JSON brokerStats line, and exits when its stdin closes.
type abuseChildProc struct {
	*childProc
	tcp, ws string
}

// startAbuseChild re-executes this program as the broker's process.
func startAbuseChild(ctx context.Context, cfg config, stderr io.Writer) (*abuseChildProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-log", cfg.logLevel)
	cmd.Env = append(os.Environ(), abuseChildEnv+"=1")
	c, err := startProc(ctx, "broker", cmd, stderr, readyLine)
	if err != nil {
		return nil, err
	}
	if len(c.ready) != 2 {
		c.stop()
		return nil, fmt.Errorf("the broker process said ready %q, want <tcp> <ws-url>", c.ready)
	}
	return &abuseChildProc{childProc: c, tcp: c.ready[0], ws: c.ready[1]}, nil
}

// stats asks the child for its broker's stats.
func (c *abuseChildProc) stats() (brokerStats, error) {
	var st brokerStats
	line, err := c.ask("stats")
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal([]byte(line), &st)
}

// abuseChild is the broker's process: the platform with the broker's
// per-address limits applying to loopback, a WebSocket listener, and the
// benchmark's settings (no rate limit, no auth timeout).
func abuseChild(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	level := "error"
	if len(args) == 2 && args[0] == "-log" {
		level = args[1]
	}
	log, err := logging.New(logging.Options{Level: level}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "noonbench abuse broker: %v\n", err)
		return 2
	}
	ctx := context.Background()
	n, err := startNoonWith(ctx, log, abuseActive, false, func(o *broker.Options) {
		o.Edge.WSAddr = "127.0.0.1:0"
		o.Edge.AddrLimitsExempt = []string{}
	})
	if err != nil {
		fmt.Fprintf(stderr, "noonbench abuse broker: %v\n", err)
		return 1
	}
	defer n.close()
	fmt.Fprintf(stdout, "ready %s ws://%s%s\n", n.addr(), n.b.WSAddr(), n.b.Options().Edge.WSPath)
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		if sc.Text() != "stats" {
			continue
		}
		st := n.b.Edge().Stats()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b, _ := json.Marshal(brokerStats{Conns: st.Conns, BufferedBytes: st.BufferedBytes, HeapInuse: ms.HeapInuse,
			Rejected: st.Rejected, AddrRejected: st.AddrRejected, ByteWaits: st.ByteWaits,
			FrameTimeouts: st.FrameTimeouts, SlowConsumers: st.SlowConsumers})
		fmt.Fprintf(stdout, "%s\n", b)
	}
	return 0
}

// errAbuseAlone is the error of -only naming abuse with other scenarios.
var errAbuseAlone = errors.New("-only abuse runs alone (it needs this process's file descriptors)")
