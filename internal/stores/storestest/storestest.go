// Package storestest runs store outages for tests: a redis-server of the
// test's own, on a free port, that it can stop and start again, and a TCP
// proxy in front of the shared Postgres that it can cut and restore
// (stopping the shared Postgres would break every other test).
package storestest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/cutproxy"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server the test owns, on 127.0.0.1 at a fixed port for
// its whole life (a restart comes back on the same port).
type Redis struct {
	t    testing.TB
	Addr string // host:port
	dir  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// StartRedis starts a redis-server (from PATH; skipped, or failed under
// NOON_REQUIRE_SERVICES=1, when there is none) with no persistence on a
// free port, and stops it when the test ends.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if testenv.Required() {
			t.Fatalf("redis-server not in PATH (NOON_REQUIRE_SERVICES=1)")
		}
		t.Skip("redis-server not in PATH; skipping")
	}
	r := &Redis{t: t, Addr: freeAddr(t), dir: t.TempDir()}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// freeAddr returns a loopback address with a port free at the moment.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Start starts the server (if stopped) and waits until it answers PING.
func (r *Redis) Start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil {
		return
	}
	_, port, _ := net.SplitHostPort(r.Addr)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	testenv.CheckFor(r.t, 10*time.Second, "redis-server on "+r.Addr+" to answer PING", func() bool {
		return ping(r.Addr) == nil
	})
}

// Stop kills the server (SIGKILL: an outage, not a shutdown) and waits
// for it to exit; the port is then closed.
func (r *Redis) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd, r.done = nil, nil
}

// Restart stops and starts the server: an empty Redis on the same port.
func (r *Redis) Restart() {
	r.t.Helper()
	r.Stop()
	r.Start()
}

// Client returns a new client of the server; the caller closes it.
func (r *Redis) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
}

// URL is the server's redis:// URL.
func (r *Redis) URL() string { return fmt.Sprintf("redis://%s/0", r.Addr) }

// ping sends an inline PING and wants +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// Proxy is a cutproxy.Proxy a test owns.
type Proxy struct{ *cutproxy.Proxy }

// StartProxy starts a proxy to target (host:port), closed when the test
// ends.
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := cutproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return &Proxy{p}
}

// PostgresProxy starts a proxy in front of the test Postgres
// (testenv.PostgresURL, skipping without one), closed when the test ends,
// and returns it and the URL that connects through it.
func PostgresProxy(t testing.TB) (*Proxy, string) {
	t.Helper()
	testenv.Postgres(t)
	p, u, err := cutproxy.Postgres(testenv.PostgresURL())
	if err != nil {
		t.Fatalf("postgres proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return &Proxy{p}, u
}
