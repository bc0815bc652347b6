package main

// The like-for-like scenario (-only lfl, issue 15): the server side runs in
// processes of its own, as Nakama and its load client do, and the load
// comes from this process.
//
//	noon:  this process -> broker process -> echo process (yellow and one
//	       echo instance) -> broker -> this process, over WebSocket
//	       (noon-ws, the shape of the Nakama comparison) and over TCP frames
//	       (noon-tcp, the same transport as the relay), mutual TLS on the
//	       internal links as noon dev runs them (-lfl-plain: plain links);
//	relay: this process -> relay process -> echo server process -> back,
//	       the two-hop Go TCP relay of the in-process relay scenario.
//
// Each child is this program re-executed with lflChildEnv naming its role;
// it prints "ready ..." on stdout, obeys "profile start FILE" / "profile
// stop" lines on stdin (a CPU profile of itself: the daemons serve no
// /debug/pprof), and exits when its stdin closes; the kernel kills it if
// this process dies (Pdeathsig). Each server process's CPU time is read
// from /proc/<pid>/stat at the start and end of every measured interval,
// so the broker's CPU per request is the broker process's alone.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/internal/gctune"
	"github.com/noonhq/noon/internal/logging"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/yellow"
)

// scenarioLFL is the like-for-like scenario; it runs alone.
const scenarioLFL = "lfl"

// Rows of the like-for-like scenario, in the order each connection count
// runs them.
const (
	lflRelay   = "relay"
	lflNoonTCP = "noon-tcp"
	lflNoonWS  = "noon-ws"
	// lflDevWS is noon dev (one process: yellow, broker, every service)
	// over WebSocket, as issue 15 measured it against Nakama (-noon-dev).
	lflDevWS = "dev-ws"
)

var lflRows = []string{lflRelay, lflNoonTCP, lflNoonWS, lflDevWS, lflNakama}

// Roles of the like-for-like child processes (the value of lflChildEnv).
const (
	lflChildEnv      = "NOONBENCH_LFL_CHILD"
	roleEchoServer   = "echoserver" // the relay's upstream: bench.EchoServer
	roleRelay        = "relay"      // bench.Relay to -upstream
	roleEchoInstance = "echo"       // yellow and one echo instance
	roleBroker       = "broker"     // one broker on -yellow
	// roleNoonDev is `noon dev` (-noon-dev): not a noonbench child.
	roleNoonDev = "noon-dev"
)

const (
	// lflPayload is -payload's default for lfl: the Nakama comparison's.
	lflPayload = 64
	// clockTicks is the unit of /proc/<pid>/stat's utime and stime
	// (USER_HZ, 100 on Linux).
	clockTicks = 100
	// childReadyTimeout bounds a child's start (the broker's includes
	// discovering the echo instance through yellow).
	childReadyTimeout = 30 * time.Second
)

// nakamaRef are issue 15's Nakama v3.40.0 figures (WebSocket RPC echo, 64
// bytes, closed loop) by connection count: from another run, so a ratio to
// them holds only as far as the machine is the same; the relay rows of
// this run are there to rescale them.
var nakamaRef = map[int]float64{1: 8800, 16: 22000, 256: 21600}

// lflRow is one measured row: the load generator's view (bench.Result,
// whose CPU is this process's) and each server process's CPU.
type lflRow struct {
	bench.Result
	// Procs is each server process's CPU over the measured interval.
	Procs []procCPU `json:"procs"`
	// HopCPUPerRequestUs is the CPU per request of the hop alone: the
	// broker process (noon) or the relay process (relay).
	HopCPUPerRequestUs float64 `json:"hop_cpu_per_request_us"`
	// ServerCPUPerRequestUs is every server process's together.
	ServerCPUPerRequestUs float64 `json:"server_cpu_per_request_us"`
	// RestCPUPercent is the CPU the machine spent outside this process
	// and the row's server processes (other work competing for the
	// cores), in percent of one core; -1 if unknown.
	RestCPUPercent float64 `json:"rest_cpu_percent"`
}

// procCPU is one child process's CPU time in a measured interval.
type procCPU struct {
	Role            string  `json:"role"`
	PID             int     `json:"pid"`
	CPUSec          float64 `json:"cpu_s"`
	CPUPercent      float64 `json:"cpu_percent"`
	CPUPerRequestUs float64 `json:"cpu_per_request_us"`
	// SyscallsPerRequest is the process's read and write system calls
	// (/proc/<pid>/io's syscr + syscw: reads, writes, and their vector and
	// socket forms) per request; -1 where /proc/<pid>/io is unreadable.
	SyscallsPerRequest float64 `json:"syscalls_per_request"`
}

// lflRatio is a noon row over the relay row at one connection count.
type lflRatio struct {
	Conns  int     `json:"conns"`
	Row    string  `json:"row"`
	RPS    float64 `json:"rps"`
	P50    float64 `json:"p50"`
	P99    float64 `json:"p99"`
	HopCPU float64 `json:"hop_cpu_per_request"`
	// NakamaRPS is noon-ws's (dev-ws's) req/s over Nakama's: the nakama
	// row of this run (NakamaThisRun, -nakama) or else issue 15's figure
	// (0 where there is none).
	NakamaRPS     float64 `json:"nakama_rps,omitempty"`
	NakamaThisRun bool    `json:"nakama_this_run,omitempty"`
}

// lflReport is the like-for-like scenario's report and JSON file.
type lflReport struct {
	Started      time.Time `json:"started"`
	Finished     time.Time `json:"finished"`
	Command      string    `json:"command"`
	Environment  string    `json:"environment"`
	PayloadBytes int       `json:"payload_bytes"`
	TLSLinks     bool      `json:"tls_links"`
	Rounds       int       `json:"rounds"`
	// Results has one row per scenario and connection count: with several
	// rounds, the round of median req/s.
	Results    []lflRow   `json:"results"`
	AllResults []lflRow   `json:"all_results"`
	Ratios     []lflRatio `json:"ratios"`
	Notes      []string   `json:"notes,omitempty"`
}

// childProc is a running child process.
type childProc struct {
	role  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	ready []string // its addresses
	term  bool     // stopped by SIGTERM (noon dev, Nakama), not by closing stdin
	// cleanup, when set, runs once it has exited (its temporary files).
	cleanup func()
	mu      sync.Mutex
}

// startLFLChild re-executes this program as role with args and waits for
// its ready line.
func startLFLChild(ctx context.Context, role string, args []string, stderr io.Writer) (*childProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), lflChildEnv+"="+role)
	return startProc(ctx, role, cmd, stderr, readyLine)
}

// readyLine reads the "ready ..." line of a noonbench child.
func readyLine(out *bufio.Reader) ([]string, error) {
	line, err := out.ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) < 2 || fields[0] != "ready" {
		return nil, fmt.Errorf("said %q: %v", line, err)
	}
	return fields[1:], nil
}

// startNoonDev starts `noon dev` (the binary at path) with every listener on
// loopback port 0 and the benchmark's broker settings (no rate limit, no
// auth timeout), and reads its broker TCP address and WebSocket URL from
// its banner. It stops on SIGTERM, as from a terminal.
func startNoonDev(ctx context.Context, path string, cfg config, stderr io.Writer) (*childProc, error) {
	args := []string{"dev", "-admin", "off"}
	for _, kv := range []string{
		"broker.edge.tcp_addr=127.0.0.1:0", "broker.edge.ws_addr=127.0.0.1:0",
		"yellow.router_addr=tcp://127.0.0.1:0", "yellow.pub_addr=tcp://127.0.0.1:0",
		"brokerlist.addr=127.0.0.1:0", "services.login.http_addr=127.0.0.1:0", "services.pay.http_addr=127.0.0.1:0",
		"broker.edge.rate=0", "broker.edge.auth_timeout=0", "broker.edge.idle_timeout=10m",
		"services.echo.concurrency=" + strconv.Itoa(max(services.DefaultConcurrency, maxConns(cfg)*cfg.pipeline)),
		"log.level=" + cfg.logLevel,
	} {
		args = append(args, "-set", kv)
	}
	if cfg.lflPlain {
		args = append(args, "-set", "tls.insecure=true")
	}
	c, err := startProc(ctx, roleNoonDev, exec.Command(path, args...), stderr, devBanner)
	if err != nil {
		return nil, err
	}
	c.term = true
	go func() { _, _ = io.Copy(io.Discard, c.out) }() // the rest of its stdout
	return c, nil
}

// maxBannerLines bounds the lines devBanner reads before giving up.
const maxBannerLines = 100

// devBanner reads noon dev's banner up to its last line ("Ctrl-C stops
// everything.") and returns the broker's TCP address and WebSocket URL.
func devBanner(out *bufio.Reader) ([]string, error) {
	var tcp, ws string
	for range maxBannerLines {
		line, err := out.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("no banner (%v)", err)
		}
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && f[0] == "broker" && f[1] == "TCP":
			tcp = f[2]
		case len(f) >= 3 && f[0] == "broker" && f[1] == "WS":
			ws = f[2]
		case strings.HasPrefix(line, "Ctrl-C stops everything"):
			if tcp == "" || ws == "" {
				return nil, errors.New("its banner names no broker TCP and WS addresses (is the WebSocket listener on?)")
			}
			return []string{tcp, ws}, nil
		}
	}
	return nil, fmt.Errorf("no end of banner in %d lines", maxBannerLines)
}

// startProc starts cmd as role and waits (bounded) until ready reads its
// address(es) from its stdout.
func startProc(ctx context.Context, role string, cmd *exec.Cmd, stderr io.Writer, ready func(*bufio.Reader) ([]string, error)) (*childProc, error) {
	cmd.Stderr = stderr
	// Killed with this process, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the %s process: %w", role, err)
	}
	c := &childProc{role: role, cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	type lineErr struct {
		fields []string
		err    error
	}
	got := make(chan lineErr, 1)
	go func() {
		fields, err := ready(c.out)
		got <- lineErr{fields, err}
	}()
	t := time.NewTimer(childReadyTimeout)
	defer t.Stop()
	select {
	case le := <-got:
		if le.err != nil {
			c.stop()
			return nil, fmt.Errorf("the %s process did not start: %w", role, le.err)
		}
		c.ready = le.fields
		return c, nil
	case <-t.C:
		c.stop()
		return nil, fmt.Errorf("the %s process is not ready after %v", role, childReadyTimeout)
	case <-ctx.Done():
		c.stop()
		return nil, ctx.Err()
	}
}

// ask sends line to the child and returns its one-line answer.
func (c *childProc) ask(line string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		return "", err
	}
	ans, err := c.out.ReadString('\n')
	return strings.TrimSpace(ans), err
}

// command sends line to the child and wants "ok".
func (c *childProc) command(line string) (string, error) {
	ans, err := c.ask(line)
	if err == nil && ans != "ok" {
		err = fmt.Errorf("%s process: %s", c.role, ans)
	}
	return ans, err
}

// usage returns the child's CPU time so far (user + system, all threads)
// and its read and write system calls (-1 when unknown).
func (c *childProc) usage() (time.Duration, int64, error) {
	t, err := procCPUTime(c.cmd.Process.Pid)
	return t, procSyscalls(c.cmd.Process.Pid), err
}

// procSyscalls reads syscr + syscw of process pid from /proc/<pid>/io,
// or -1 when it cannot (another user's process, no /proc).
func procSyscalls(pid int) int64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "io"))
	if err != nil {
		return -1
	}
	return parseProcIO(string(b))
}

// parseProcIO returns syscr + syscw of a /proc/<pid>/io text, or -1.
func parseProcIO(s string) int64 {
	var n int64
	found := 0
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || (k != "syscr" && k != "syscw") {
			continue
		}
		x, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return -1
		}
		n += x
		found++
	}
	if found != 2 {
		return -1
	}
	return n
}

// stop closes the child's stdin (or sends it SIGTERM), waits for it, and
// kills it if it lingers.
func (c *childProc) stop() {
	_ = c.stdin.Close()
	if c.term {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * stopTimeout):
		_ = c.cmd.Process.Kill()
		<-done
	}
	if c.cleanup != nil {
		c.cleanup()
	}
}

// procCPUTime reads utime + stime of process pid from /proc/<pid>/stat.
func procCPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseProcStat(string(b))
}

// parseProcStat returns utime + stime of a /proc/<pid>/stat line: fields 14
// and 15, counted after the command name's closing parenthesis (the name
// may hold spaces and parentheses).
func parseProcStat(s string) (time.Duration, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the name, want 13+", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] { // utime, stime
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// lflStack is every child of the scenario.
type lflStack struct {
	echoSrv, relay, echo, broker *childProc
	dev                          *childProc // nil without -noon-dev
	nakama                       *childProc // nil without -nakama
	tlsDir                       string
	relayAddr, tcpAddr, wsURL    string
	nakamaURL                    string // Nakama's HTTP base
}

func (s *lflStack) close() {
	// The hops first, then what they call.
	for _, c := range []*childProc{s.nakama, s.dev, s.broker, s.relay, s.echo, s.echoSrv} {
		if c != nil {
			c.stop()
		}
	}
	if s.tlsDir != "" {
		_ = os.RemoveAll(s.tlsDir)
	}
}

// lflIdentities are the certificates the children use with TLS links.
var lflIdentities = map[string]pki.Identity{
	"yellow":         {Role: pki.RoleYellow},
	roleEchoInstance: {Role: pki.RoleService, Name: echo.Name},
	roleBroker:       {Role: pki.RoleBroker},
}

// startLFL starts the children: the echo server and the relay in front of
// it, the echo process (yellow and an echo instance) and the broker.
func startLFL(ctx context.Context, cfg config, prog *progress, stderr io.Writer) (_ *lflStack, err error) {
	s := &lflStack{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	common := []string{"-log", cfg.logLevel, "-concurrency", strconv.Itoa(max(1, maxConns(cfg)) * cfg.pipeline)}
	if !cfg.lflPlain {
		if s.tlsDir, err = writeLFLCerts(); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		common = append(common, "-tls", s.tlsDir)
	}
	common = slices.Clip(common) // each child appends its own flags to a copy
	if s.echoSrv, err = startLFLChild(ctx, roleEchoServer, common, stderr); err != nil {
		return nil, err
	}
	if s.relay, err = startLFLChild(ctx, roleRelay, append(common, "-upstream", s.echoSrv.ready[0]), stderr); err != nil {
		return nil, err
	}
	s.relayAddr = s.relay.ready[0]
	if s.echo, err = startLFLChild(ctx, roleEchoInstance, common, stderr); err != nil {
		return nil, err
	}
	if s.broker, err = startLFLChild(ctx, roleBroker, append(common, "-yellow", s.echo.ready[0]), stderr); err != nil {
		return nil, err
	}
	if len(s.broker.ready) < 2 {
		return nil, fmt.Errorf("the broker process said ready %q, want a TCP address and a WebSocket URL", s.broker.ready)
	}
	s.tcpAddr, s.wsURL = s.broker.ready[0], s.broker.ready[1]
	if cfg.noonDev != "" {
		if s.dev, err = startNoonDev(ctx, cfg.noonDev, cfg, stderr); err != nil {
			return nil, err
		}
		prog.logf("[lfl] noon dev pid %d: broker WS %s", s.dev.cmd.Process.Pid, s.dev.ready[1])
	}
	if cfg.nakama != "" {
		if s.nakama, s.nakamaURL, err = startNakama(ctx, cfg, stderr); err != nil {
			return nil, err
		}
		prog.logf("[lfl] Nakama pid %d: %s/ws", s.nakama.cmd.Process.Pid, s.nakamaURL)
	}
	links := "mutual TLS"
	if cfg.lflPlain {
		links = "plain"
	}
	prog.logf("[lfl] processes: echo server pid %d, relay pid %d (%s); echo+yellow pid %d, broker pid %d (TCP %s, %s), %s links",
		s.echoSrv.cmd.Process.Pid, s.relay.cmd.Process.Pid, s.relayAddr, s.echo.cmd.Process.Pid, s.broker.cmd.Process.Pid, s.tcpAddr, s.wsURL, links)
	return s, nil
}

func maxConns(cfg config) int {
	m := 0
	for _, c := range cfg.conns {
		m = max(m, c)
	}
	return m
}

// writeLFLCerts writes an ephemeral CA's certificate and one certificate
// per identity of lflIdentities to a new temporary directory (0700).
func writeLFLCerts() (string, error) {
	eph, err := pki.NewEphemeral()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "noonbench-lfl-tls-")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, pki.CACertFile), eph.CA().CertPEM(), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	for _, id := range lflIdentities {
		is, err := eph.Issue(id)
		if err == nil {
			_, _, err = is.Save(dir)
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

// runLFL runs the like-for-like scenario and prints its table.
func runLFL(ctx context.Context, cfg config, stdout, stderr io.Writer) error {
	prog := newProgress(stderr)
	rep := &lflReport{Started: time.Now(), Command: "noonbench " + strings.Join(os.Args[1:], " "), Environment: environment(),
		PayloadBytes: cfg.payload, TLSLinks: !cfg.lflPlain, Rounds: cfg.rounds}
	prog.logf("[lfl] starting the echo server, the relay, yellow with an echo instance, and the broker as separate processes")
	s, err := startLFL(ctx, cfg, prog, stderr)
	if err != nil {
		return fmt.Errorf("lfl: %w", err)
	}
	defer s.close()
	for _, pr := range []struct {
		flag, file string
		proc       *childProc
	}{{"-cpuprofile-broker", cfg.brokerProfile, s.broker}, {"-cpuprofile-echo", cfg.echoProfile, s.echo}} {
		if pr.file == "" {
			continue
		}
		path, err := filepath.Abs(pr.file)
		if err == nil {
			_, err = pr.proc.command("profile start " + path)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", pr.flag, err)
		}
		defer func() {
			if _, err := pr.proc.command("profile stop"); err != nil {
				prog.logf("%s: %v", pr.flag, err)
			} else {
				prog.logf("[lfl] %s CPU profile written to %s", pr.proc.role, path)
			}
		}()
	}

	total, i := cfg.rounds*len(cfg.lflRun)*len(cfg.conns), 0
	for range cfg.rounds {
		for _, conns := range cfg.conns {
			for _, row := range cfg.lflRun {
				i++
				var (
					addr  string
					procs []*childProc // the hop first
				)
				switch row {
				case lflRelay:
					addr, procs = s.relayAddr, []*childProc{s.relay, s.echoSrv}
				case lflNoonTCP:
					addr, procs = s.tcpAddr, []*childProc{s.broker, s.echo}
				case lflNoonWS:
					addr, procs = s.wsURL, []*childProc{s.broker, s.echo}
				case lflDevWS:
					addr, procs = s.dev.ready[1], []*childProc{s.dev}
				case lflNakama:
					addr, procs = s.nakamaURL, []*childProc{s.nakama}
				}
				r, err := lflRun(ctx, cfg, row, addr, conns, procs, prog.scenario(i, total, row, conns))
				if err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					prog.logf("[%d/%d] %s conns=%d: %v", i, total, row, conns, err)
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s at %d connections failed: %v", row, conns, err))
					continue
				}
				rep.AllResults = append(rep.AllResults, r)
				prog.logf("[%d/%d] %-8s conns=%-4d %9.0f req/s  p50 %s  p99 %s  hop CPU %.1f us/req  errors %d",
					i, total, row, conns, r.RPS, fmtUs(r.P50Us), fmtUs(r.P99Us), r.HopCPUPerRequestUs, r.Errors)
			}
		}
	}
	rep.Results = lflMedians(rep.AllResults)
	rep.Ratios = lflRatios(rep.Results)
	rep.Finished = time.Now()
	printLFL(stdout, rep)
	if cfg.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(cfg.jsonPath, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("-json: %w", err)
		}
		fmt.Fprintf(stdout, "\nresults written to %s\n", cfg.jsonPath)
	}
	return nil
}

// lflRowsToRun returns the rows of -lfl-rows (every row when empty) in
// lflRows' order, leaving out dev-ws without -noon-dev and nakama without
// -nakama.
func lflRowsToRun(only string, dev, nakama bool) ([]string, error) {
	want, err := splitNames("lfl-rows", only, func(r string) bool { return slices.Contains(lflRows, r) },
		"some of "+strings.Join(lflRows, ","))
	if err != nil {
		return nil, err
	}
	var run []string
	for _, r := range lflRows {
		switch {
		case len(want) > 0 && !slices.Contains(want, r):
		case r == lflDevWS && !dev, r == lflNakama && !nakama:
		default:
			run = append(run, r)
		}
	}
	if len(run) == 0 {
		return nil, errors.New("-lfl-rows: no row to run (dev-ws needs -noon-dev, nakama -nakama)")
	}
	return run, nil
}

// lflConn is one load connection: a noon client or a Nakama socket.
type lflConn interface {
	// Call sends payload to the echo and returns what came back.
	Call(ctx context.Context, payload []byte) ([]byte, error)
	// Broken reports that the connection cannot be used any more.
	Broken() bool
	Close() error
}

// noonConn is a noon client calling echo.Echo.
type noonConn struct{ c *client.Client }

func (n noonConn) Call(ctx context.Context, payload []byte) ([]byte, error) {
	return n.c.Call(ctx, bench.DefaultMethod, payload)
}
func (n noonConn) Broken() bool { return n.c.Err() != nil }
func (n noonConn) Close() error { return n.c.Close() }

// dialLFL opens one connection of row to addr (host:port, ws:// URL, or
// Nakama's HTTP base).
func dialLFL(ctx context.Context, row, addr string) (lflConn, error) {
	if row == lflNakama {
		return dialNakama(ctx, addr)
	}
	c, err := client.Dial(ctx, addr, client.Options{DialTimeout: bench.DefaultDialTimeout})
	if err != nil {
		return nil, err
	}
	return noonConn{c}, nil
}

// lflRun dials conns connections of row to addr and drives them
// closed-loop, reading procs' CPU time at the start and end of the
// measured interval.
func lflRun(ctx context.Context, cfg config, row, addr string, conns int, procs []*childProc, progress func(bench.Progress)) (lflRow, error) {
	clients := make([]lflConn, 0, conns)
	defer func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}()
	for n := range conns {
		c, err := dialLFL(ctx, row, addr)
		if err != nil {
			return lflRow{}, fmt.Errorf("connection %d of %d: %w", n+1, conns, err)
		}
		clients = append(clients, c)
	}
	payload := make([]byte, cfg.payload)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}

	type usage struct {
		cpu      time.Duration
		syscalls int64
	}
	var (
		start, end         []usage
		startWall, endWall time.Time
		readErr            error
	)
	read := func() []usage {
		out := make([]usage, len(procs))
		for i, p := range procs {
			t, n, err := p.usage()
			if err != nil && readErr == nil {
				readErr = err
			}
			out[i] = usage{t, n}
		}
		return out
	}
	res, err := bench.RunLoop(ctx, bench.LoopConfig{
		Scenario: row,
		Workers:  conns * cfg.pipeline,
		Rate:     cfg.lflRate,
		Warmup:   cfg.warmup,
		Duration: cfg.duration,
		Op: func(ctx context.Context, w int) error {
			c := clients[w/cfg.pipeline]
			resp, err := c.Call(ctx, payload)
			if err != nil {
				if c.Broken() {
					return fmt.Errorf("%w: %w", bench.ErrStopWorker, err)
				}
				return err
			}
			if string(resp) != string(payload) {
				return errors.New("the reply's payload differs from the request's")
			}
			return nil
		},
		Progress: func(p bench.Progress) {
			switch {
			case p.Phase == "measure" && start == nil:
				startWall, start = time.Now(), read()
			case p.Phase == "drain" && end == nil:
				endWall, end = time.Now(), read()
			}
			progress(p)
		},
	})
	if err != nil {
		return lflRow{}, err
	}
	if readErr != nil {
		return lflRow{}, fmt.Errorf("reading a server process's CPU: %w", readErr)
	}
	if start == nil || end == nil {
		return lflRow{}, errors.New("the run ended before its measured interval")
	}
	res.Conns, res.Pipeline, res.PayloadBytes = conns, cfg.pipeline, cfg.payload
	r := lflRow{Result: res}
	wall := endWall.Sub(startWall).Seconds()
	var all time.Duration
	for i, p := range procs {
		d := end[i].cpu - start[i].cpu
		all += d
		pc := procCPU{Role: p.role, PID: p.cmd.Process.Pid, CPUSec: d.Seconds(), SyscallsPerRequest: -1}
		if wall > 0 {
			pc.CPUPercent = 100 * d.Seconds() / wall
		}
		if res.Requests > 0 {
			pc.CPUPerRequestUs = float64(d.Microseconds()) / float64(res.Requests)
			if start[i].syscalls >= 0 && end[i].syscalls >= 0 {
				pc.SyscallsPerRequest = float64(end[i].syscalls-start[i].syscalls) / float64(res.Requests)
			}
		}
		r.Procs = append(r.Procs, pc)
	}
	r.HopCPUPerRequestUs = r.Procs[0].CPUPerRequestUs
	r.RestCPUPercent = -1
	if res.OthersCPUPercent >= 0 && wall > 0 {
		r.RestCPUPercent = max(0, res.OthersCPUPercent-100*all.Seconds()/wall)
	}
	if res.Requests > 0 {
		r.ServerCPUPerRequestUs = float64(all.Microseconds()) / float64(res.Requests)
	}
	return r, nil
}

// lflMedians keeps, per row and connection count, the round of median
// req/s, in first-seen order.
func lflMedians(all []lflRow) []lflRow {
	type key struct {
		row   string
		conns int
	}
	var order []key
	by := map[key][]lflRow{}
	for _, r := range all {
		k := key{r.Scenario, r.Conns}
		if _, ok := by[k]; !ok {
			order = append(order, k)
		}
		by[k] = append(by[k], r)
	}
	out := make([]lflRow, 0, len(order))
	for _, k := range order {
		rs := by[k]
		for i := 1; i < len(rs); i++ { // insertion sort by req/s: a few rounds
			for j := i; j > 0 && rs[j].RPS < rs[j-1].RPS; j-- {
				rs[j], rs[j-1] = rs[j-1], rs[j]
			}
		}
		out = append(out, rs[(len(rs)-1)/2])
	}
	return out
}

// lflRatios divides each noon row by the relay row of its connection
// count.
func lflRatios(rows []lflRow) []lflRatio {
	relay := map[int]lflRow{}
	nakama := map[int]float64{} // measured in this run (-nakama)
	for _, r := range rows {
		switch r.Scenario {
		case lflRelay:
			relay[r.Conns] = r
		case lflNakama:
			nakama[r.Conns] = r.RPS
		}
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	var out []lflRatio
	for _, r := range rows {
		base, ok := relay[r.Conns]
		if r.Scenario == lflRelay || !ok {
			continue
		}
		q := lflRatio{Conns: r.Conns, Row: r.Scenario, RPS: div(r.RPS, base.RPS), P50: div(r.P50Us, base.P50Us),
			P99: div(r.P99Us, base.P99Us), HopCPU: div(r.HopCPUPerRequestUs, base.HopCPUPerRequestUs)}
		if r.Scenario == lflNoonWS || r.Scenario == lflDevWS {
			if nk, ok := nakama[r.Conns]; ok {
				q.NakamaRPS, q.NakamaThisRun = div(r.RPS, nk), true
			} else {
				q.NakamaRPS = div(r.RPS, nakamaRef[r.Conns])
			}
		}
		out = append(out, q)
	}
	return out
}

// printLFL prints the like-for-like table and ratios.
func printLFL(w io.Writer, rep *lflReport) {
	links := "mutual TLS"
	if !rep.TLSLinks {
		links = "plain"
	}
	fmt.Fprintf(w, "noonbench like for like (issue 15): %s; %d-byte echo.Echo, closed loop, load from this process, servers in processes of their own; internal links %s\n",
		rep.Environment, rep.PayloadBytes, links)
	fmt.Fprintf(w, "relay: relay process -> echo server process (TCP frames); noon-tcp / noon-ws: broker process -> echo process (yellow + echo instance), clients over TCP frames / WebSocket\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "scenario\tconns\treq/s\tp50\tp99\thop CPU/req\thop syscalls/req\tservers CPU/req\thop CPU %%\tloadgen CPU/req\trest %%\terrors\t\n")
	for _, r := range rep.Results {
		hopPct, hopSys := 0.0, "-"
		if len(r.Procs) > 0 {
			hopPct = r.Procs[0].CPUPercent
			if r.Procs[0].SyscallsPerRequest >= 0 {
				hopSys = fmt.Sprintf("%.2f", r.Procs[0].SyscallsPerRequest)
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%.1f us\t%s\t%.1f us\t%.0f\t%.1f us\t%.0f\t%d\t\n", r.Scenario, r.Conns, r.RPS, fmtUs(r.P50Us), fmtUs(r.P99Us),
			r.HopCPUPerRequestUs, hopSys, r.ServerCPUPerRequestUs, hopPct, r.CPUPerRequestUs, r.RestCPUPercent, r.Errors)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nhop = the broker process alone (noon-tcp, noon-ws) or the relay process alone (relay); servers = hop + echo process (noon: yellow and the echo instance) or + echo server (relay).\n"+
		"dev-ws (-noon-dev): noon dev is one process (yellow, broker, every service): its hop is the whole process, the broker not alone.\n"+
		"nakama (-nakama): Nakama is one process: its hop is the whole server (RPC echo in Lua, on Postgres).\n"+
		"hop syscalls/req: the hop's reads and writes (/proc/<pid>/io syscr + syscw) per request.\n"+
		"CPU %% is of one core; rest %% is the machine's CPU outside this process and the row's servers (other work competing for the cores: where high, the row is unreliable).\n\n")
	if len(rep.Ratios) > 0 {
		fmt.Fprintf(w, "noon / relay of this run (req/s above 1: faster; latency and CPU above 1: slower):\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "row\tconns\treq/s\tp50\tp99\thop CPU/req\treq/s / Nakama's*\t\n")
		thisRun := false
		for _, q := range rep.Ratios {
			nk := ""
			if q.NakamaRPS > 0 {
				nk = fmt.Sprintf("%.2fx", q.NakamaRPS)
			}
			thisRun = thisRun || q.NakamaThisRun
			fmt.Fprintf(tw, "%s\t%d\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t%s\t\n", q.Row, q.Conns, q.RPS, q.P50, q.P99, q.HopCPU, nk)
		}
		_ = tw.Flush()
		if thisRun {
			fmt.Fprintf(w, "* against the nakama row of this run (Nakama's WebSocket RPC echo, a Lua function, JSON envelopes; -nakama).\n")
		} else {
			fmt.Fprintf(w, "* against issue 15's Nakama v3.40.0 figures (8.8k / 22.0k / 21.6k req/s at 1 / 16 / 256), measured in another run: rescale with this run's relay rows (or run -nakama).\n")
		}
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// lflChild runs one child process of the like-for-like scenario as role,
// and returns its exit code.
func lflChild(role string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("noonbench "+role, flag.ContinueOnError)
	fs.SetOutput(stderr)
	level := fs.String("log", "error", "log level")
	tlsDir := fs.String("tls", "", "directory of the certificates (none: plain links)")
	upstream := fs.String("upstream", "", "the relay's upstream")
	yellowEP := fs.String("yellow", "", "the broker's yellow")
	concurrency := fs.Int("concurrency", services.DefaultConcurrency, "the echo instance's concurrency")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := logging.New(logging.Options{Level: *level}, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "noonbench %s: %v\n", role, err)
		return 2
	}
	// The servers run with the daemons' GC policy (the relay's too: the
	// same for both sides of every ratio).
	gctune.Apply()
	creds := func(id pki.Identity) (*pki.Credentials, error) {
		if *tlsDir == "" {
			return nil, nil
		}
		cert, key := pki.CertFiles(*tlsDir, id)
		return pki.LoadCredentials(filepath.Join(*tlsDir, pki.CACertFile), cert, key)
	}
	ready, stop, err := startRole(role, log, creds, *upstream, *yellowEP, *concurrency)
	if err != nil {
		fmt.Fprintf(stderr, "noonbench %s: %v\n", role, err)
		return 1
	}
	defer stop()
	fmt.Fprintf(stdout, "ready %s\n", ready)
	serveChildCommands(stdin, stdout)
	return 0
}

// serveChildCommands answers "profile start FILE" and "profile stop" until
// stdin closes.
func serveChildCommands(stdin io.Reader, stdout io.Writer) {
	var prof *os.File
	defer func() {
		if prof != nil {
			pprof.StopCPUProfile()
			_ = prof.Close()
		}
	}()
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "profile" && f[1] == "start" && prof == nil:
			p, err := os.Create(f[2])
			if err == nil {
				if err = pprof.StartCPUProfile(p); err != nil {
					_ = p.Close()
				} else {
					prof = p
				}
			}
			answer(stdout, err)
		case len(f) == 2 && f[0] == "profile" && f[1] == "stop" && prof != nil:
			pprof.StopCPUProfile()
			err := prof.Close()
			prof = nil
			answer(stdout, err)
		default:
			fmt.Fprintf(stdout, "unknown command %q\n", sc.Text())
		}
	}
}

func answer(w io.Writer, err error) {
	if err != nil {
		fmt.Fprintf(w, "error: %s\n", errText(err))
		return
	}
	fmt.Fprintf(w, "ok\n")
}

// daemonMain is what a child runs: a daemon's Main and Exit.
type daemonMain interface {
	Main() error
	Exit()
}

// startRole starts role's servers and returns its ready line's fields and
// a function that stops them.
func startRole(role string, log *slog.Logger, creds func(pki.Identity) (*pki.Credentials, error), upstream, yellowEP string, concurrency int) (string, func(), error) {
	var daemons []daemonMain
	var mains []chan error
	run := func(d daemonMain) {
		daemons = append(daemons, d)
		done := make(chan error, 1)
		mains = append(mains, done)
		go func() { done <- d.Main() }()
	}
	stop := func() {
		for i := len(daemons) - 1; i >= 0; i-- {
			daemons[i].Exit()
		}
		for _, done := range mains {
			select {
			case <-done:
			case <-time.After(stopTimeout):
			}
		}
	}
	fail := func(err error) (string, func(), error) { stop(); return "", nil, err }
	switch role {
	case roleEchoServer:
		e, err := bench.NewEchoServer("127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		return e.Addr(), e.Close, nil
	case roleRelay:
		r, err := bench.NewRelay("127.0.0.1:0", upstream)
		if err != nil {
			return "", nil, err
		}
		return r.Addr(), r.Close, nil
	case roleEchoInstance:
		yo := yellow.NewOptions()
		yo.RouterAddr, yo.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
		var err error
		if yo.TLS, err = creds(lflIdentities["yellow"]); err != nil {
			return fail(err)
		}
		y, err := yellow.New(yo, log.With("daemon", "yellow"))
		if err != nil {
			return fail(err)
		}
		run(y)
		env := services.Env{Log: log, Metrics: metrics.Nop(), Yellows: []string{y.RouterEndpoint()}}
		if env.TLS, err = creds(lflIdentities[roleEchoInstance]); err != nil {
			return fail(err)
		}
		sec := echo.Module.NewSection()
		sec.Runtime().Concurrency = max(services.DefaultConcurrency, concurrency)
		sec.Runtime().Yellows = env.Yellows
		inst, err := echo.Module.Start(context.Background(), env, sec)
		if err != nil {
			return fail(err)
		}
		run(inst)
		return y.RouterEndpoint(), stop, nil
	case roleBroker:
		bo := broker.NewOptions()
		bo.Edge.TCPAddr, bo.Edge.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
		bo.Edge.Rate, bo.Edge.AuthTimeout, bo.Edge.IdleTimeout = 0, 0, benchIdleTimeout
		bo.Yellows = []string{yellowEP}
		var err error
		if bo.TLS, err = creds(lflIdentities[roleBroker]); err != nil {
			return fail(err)
		}
		b, err := broker.New(bo, log.With("daemon", "broker"), metrics.Nop())
		if err != nil {
			return fail(err)
		}
		run(b)
		ctx, cancel := context.WithTimeout(context.Background(), routableTimeout)
		defer cancel()
		if err := b.WaitRoutable(ctx, echo.Name); err != nil {
			return fail(fmt.Errorf("the broker does not route %s after %v: %w", echo.Name, routableTimeout, err))
		}
		return fmt.Sprintf("%s ws://%s%s", b.TCPAddr(), b.WSAddr(), bo.Edge.WSPath), stop, nil
	}
	return "", nil, fmt.Errorf("unknown role %q", role)
}

// errLFLAlone is the error of -only naming lfl with other scenarios.
var errLFLAlone = errors.New("-only lfl runs alone (its servers are processes of their own)")
