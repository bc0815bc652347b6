package testenv

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// OwnRedis is a redis-server of a test's own, without persistence, on a
// free loopback port: a test that restarts Redis or flushes it (a Redis
// that lost its data) uses one, never the shared server.
type OwnRedis struct {
	t    testing.TB
	Addr string
	cmd  *exec.Cmd
}

// StartRedis starts a redis-server of the test's own (stopped when the
// test ends), or skips (or fails, see Required) when there is no
// redis-server binary.
func StartRedis(t testing.TB) *OwnRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		unavailable(t, "Redis", "redis-server in PATH", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := &OwnRedis{t: t, Addr: addr}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start starts the server (again, after Stop: empty, as a Redis restarted
// without persistence is) and waits until it answers.
func (r *OwnRedis) Start() {
	r.t.Helper()
	_, port, _ := net.SplitHostPort(r.Addr)
	r.cmd = exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--protected-mode", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("redis-server: %v", err)
	}
	c := r.Client()
	defer c.Close()
	CheckFor(r.t, 10*time.Second, "own redis-server answers", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return c.Ping(ctx).Err() == nil
	})
}

// Stop kills the server (its data is lost) and waits for it to exit.
func (r *OwnRedis) Stop() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	r.cmd = nil
}

// Client returns a new client of the server; the caller closes it.
func (r *OwnRedis) Client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
}

// URL is the server's redis:// URL.
func (r *OwnRedis) URL() string { return fmt.Sprintf("redis://%s/0", r.Addr) }
