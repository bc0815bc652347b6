package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/noonhq/noon/internal/cutproxy"
	"github.com/noonhq/noon/internal/freeport"
)

// proc is one process the suite started, in a process group of its own.
type proc struct {
	name   string
	cmd    *exec.Cmd
	done   chan struct{}
	killed atomic.Bool // the suite signalled it
}

// cluster is the multi-process platform under test: its own Redis, a fault
// proxy in front of the shared Postgres (a fresh database per run), yellow,
// two brokers and two instances each of login, echo and room, every
// internal link mutual TLS with certificates of a CA made for the run.
type cluster struct {
	bin, config, dir string
	logw             io.Writer // progress lines

	pgAdmin string // URL of the shared server's admin database
	db      string // the run's database
	proxy   *cutproxy.Proxy

	redisPort int
	redisDir  string

	yellowEP, yellowPub string
	brokers             []string // host:port of each broker's TCP listener

	args map[string][]string // each process's arguments, by name

	mu    sync.Mutex
	procs map[string]*proc // by name, the live one
	all   []*proc          // every process ever started (for cleanup)
	seq   map[string]int   // starts per name (log file suffix)
}

// freePort returns a TCP port for a daemon of the cluster: below the
// ephemeral range, where a port bound as 0 by another daemon (an admin
// listener) cannot take it first, and never the same twice.
func freePort() (int, error) { return freeport.Pick("127.0.0.1") }

func newCluster(ctx context.Context, bin, config, pgURL, dir string, logw io.Writer) (*cluster, error) {
	c := &cluster{bin: bin, config: config, dir: dir, logw: logw, pgAdmin: pgURL,
		procs: map[string]*proc{}, seq: map[string]int{}}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	// A fresh database, dropped at the end: every service migrates its
	// schemas into it on start.
	c.db = fmt.Sprintf("noonchaos_%d_%d", time.Now().Unix(), os.Getpid())
	if err := c.adminExec(ctx, "CREATE DATABASE "+pgx.Identifier{c.db}.Sanitize()); err != nil {
		return nil, fmt.Errorf("create database: %w", err)
	}
	var err error
	if c.proxy, _, err = cutproxy.Postgres(pgURL); err != nil {
		return nil, err
	}
	return c, nil
}

// adminExec runs sql on the shared server's admin database.
func (c *cluster) adminExec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.pgAdmin)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// dbURL is the run's database on the shared server (direct), or through
// the fault proxy.
func (c *cluster) dbURL(viaProxy bool) string {
	u, _ := url.Parse(c.pgAdmin)
	if viaProxy {
		u.Host = c.proxy.Addr()
	}
	u.Path = "/" + c.db
	q := u.Query()
	if q.Get("sslmode") == "" {
		q.Set("sslmode", "disable")
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// startRedis starts (or restarts, on the same port and directory, so the
// append-only file brings the data back) the run's redis-server.
func (c *cluster) startRedis(ctx context.Context) error {
	if c.redisPort == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		c.redisPort = p
		c.redisDir = filepath.Join(c.dir, "redis")
		if err := os.MkdirAll(c.redisDir, 0o755); err != nil {
			return err
		}
	}
	if _, err := c.start("redis", "redis-server", "--port", strconv.Itoa(c.redisPort), "--bind", "127.0.0.1",
		"--dir", c.redisDir, "--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--daemonize", "no", "--protected-mode", "yes"); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if redisPing(c.redisAddr()) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("redis-server on %s did not answer PING within 20s", c.redisAddr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) redisAddr() string { return fmt.Sprintf("127.0.0.1:%d", c.redisPort) }

// redisPing reports whether Redis at addr answers PING with PONG (not
// LOADING).
func redisPing(addr string) bool {
	nc, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(time.Second))
	if _, err := nc.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

// certs makes the run's CA and a certificate per identity with `noon
// certs`, and returns each identity's -set flags.
func (c *cluster) certs(ctx context.Context, ids [][2]string) (map[string][]string, error) {
	dir := filepath.Join(c.dir, "tls")
	if out, err := exec.CommandContext(ctx, c.bin, "certs", "ca", "-out", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("noon certs ca: %v\n%s", err, out)
	}
	sets := map[string][]string{}
	for _, id := range ids {
		role, name := id[0], id[1]
		args := []string{"certs", "issue", "-ca", dir, "-role", role}
		base := role
		if name != "" {
			args = append(args, "-name", name)
			base += "-" + name
		}
		if out, err := exec.CommandContext(ctx, c.bin, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("noon %v: %v\n%s", args, err, out)
		}
		sets[base] = []string{"-set", "tls.ca=" + filepath.Join(dir, "ca.crt"),
			"-set", "tls.cert=" + filepath.Join(dir, base+".crt"), "-set", "tls.key=" + filepath.Join(dir, base+".key")}
	}
	return sets, nil
}

// start runs a process in its own process group, its output to
// logs/<name>.<n>.log; it dies with the suite (SIGKILL on the parent's
// death) and is killed with its group by stopAll.
func (c *cluster) start(name, path string, args ...string) (*proc, error) {
	c.mu.Lock()
	c.seq[name]++
	n := c.seq[name]
	c.mu.Unlock()
	lf, err := os.Create(filepath.Join(c.dir, "logs", fmt.Sprintf("%s.%d.log", name, n)))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(p.done) }()
	c.mu.Lock()
	c.procs[name] = p
	c.all = append(c.all, p)
	c.mu.Unlock()
	fmt.Fprintf(c.logw, "  started %s (pid %d)\n", name, cmd.Process.Pid)
	return p, nil
}

// get returns the live process called name, or nil.
func (c *cluster) get(name string) *proc {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.procs[name]
}

// kill sends sig to name's process group and, for SIGKILL, waits for it
// to end; for SIGTERM it waits up to wait, then kills the group.
func (c *cluster) kill(name string, sig syscall.Signal, wait time.Duration) error {
	p := c.get(name)
	if p == nil {
		return fmt.Errorf("no process %s", name)
	}
	p.killed.Store(true)
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if sig != syscall.SIGKILL {
			return fmt.Errorf("%s did not exit within %v of %v", name, wait, sig)
		}
	}
	return nil
}

// exitedByThemselves lists the processes that ended without the suite
// signalling them (a crash, a fatal error: see their logs).
func (c *cluster) exitedByThemselves() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.all {
		select {
		case <-p.done:
			if !p.killed.Load() {
				out = append(out, fmt.Sprintf("%s (pid %d): %v", p.name, p.cmd.Process.Pid, p.cmd.ProcessState))
			}
		default:
		}
	}
	return out
}

// stopAll kills every process group the suite started and waits for them.
func (c *cluster) stopAll() {
	c.mu.Lock()
	all := append([]*proc(nil), c.all...)
	c.mu.Unlock()
	for _, p := range all {
		p.killed.Store(true)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	for _, p := range all {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// close stops everything and removes the run's database (unless keepDB).
func (c *cluster) close(keepDB bool) {
	c.stopAll()
	if c.proxy != nil {
		c.proxy.Close()
	}
	if keepDB {
		fmt.Fprintf(c.logw, "database kept: %s\n", c.dbURL(false))
		return
	}
	if c.db != "" {
		err := c.adminExec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{c.db}.Sanitize()+" WITH (FORCE)")
		if err != nil {
			fmt.Fprintf(c.logw, "drop database %s: %v\n", c.db, err)
		}
	}
}

// noon starts `noon <args>` as name.
func (c *cluster) noon(name string, args ...string) (*proc, error) {
	return c.start(name, c.bin, args...)
}
