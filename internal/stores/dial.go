package stores

import (
	"context"
	"net"
	"sync"
	"time"
)

// Store client timeouts, chosen for prompt recovery after an outage.
const (
	// redisDialTimeout bounds one dial to Redis (go-redis's default is
	// 5 s, which a request during an outage of an unreachable host would
	// wait in full).
	redisDialTimeout = 2 * time.Second
	// redisRedialGap is how long after a failed dial to an address further
	// dials fail at once without touching the network: during an outage the
	// clients of one process dial each Redis address at most about 1/gap
	// times a second, and once it is back the next command within gap
	// reconnects.
	redisRedialGap = 20 * time.Millisecond
	// redisMinRetryBackoff and redisMaxRetryBackoff bound go-redis's
	// wait between its retries of a failed command (MaxRetries, 3): its
	// defaults (8 ms to 512 ms) made each command take about half a second
	// to fail during an outage, holding the request that much longer.
	redisMinRetryBackoff = 5 * time.Millisecond
	redisMaxRetryBackoff = 50 * time.Millisecond
	// postgresConnectTimeout bounds one connection attempt to Postgres
	// (pgxpool's default is 2 minutes when the URL says nothing).
	postgresConnectTimeout = 2 * time.Second
	// postgresHealthCheckPeriod is how often pgxpool checks its idle
	// connections (default a minute): connections broken by a restart are
	// dropped within this, rather than failing the requests that take them.
	postgresHealthCheckPeriod = 5 * time.Second
)

// redisDialer dials Redis for go-redis without go-redis's dial circuit
// breaker: once a pool has seen PoolSize failed dials it stops dialing
// and, until a background probe that runs once a second succeeds, fails
// every command with the last dial error, so commands kept failing for up
// to a second after Redis came back (issue 14). A failed dial here instead
// hands the pool a connection that fails its first read or write with the
// dial error: the command fails the same way (and go-redis retries it as a
// dial error), but the pool never counts a dial error, so the next command
// dials again. The breaker's job, not hammering a dead host, is done by
// redialGap: after a failure, dials to that address fail without a
// syscall for redisRedialGap.
type redisDialer struct {
	d net.Dialer
	// gap is redisRedialGap (tests shorten nothing; it is a field for
	// clarity).
	gap time.Duration
	mu  sync.Mutex
	// failed is each address's last dial failure.
	failed map[string]dialFailure
}

type dialFailure struct {
	at  time.Time
	err error
}

func newRedisDialer() *redisDialer {
	return &redisDialer{d: net.Dialer{Timeout: redisDialTimeout, KeepAlive: 30 * time.Second}, gap: redisRedialGap, failed: map[string]dialFailure{}}
}

// Dial is go-redis's Options.Dialer.
func (r *redisDialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	f, ok := r.failed[addr]
	r.mu.Unlock()
	if ok && time.Since(f.at) < r.gap {
		return failedConn{f.err}, nil
	}
	c, err := r.d.DialContext(ctx, network, addr)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed[addr] = dialFailure{at: time.Now(), err: err}
		return failedConn{err}, nil
	}
	delete(r.failed, addr)
	return c, nil
}

// failedConn is a connection that never was: every read and write fails
// with the dial's error.
type failedConn struct{ err error }

func (c failedConn) Read([]byte) (int, error)         { return 0, c.err }
func (c failedConn) Write([]byte) (int, error)        { return 0, c.err }
func (c failedConn) Close() error                     { return nil }
func (c failedConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c failedConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c failedConn) SetDeadline(time.Time) error      { return nil }
func (c failedConn) SetReadDeadline(time.Time) error  { return nil }
func (c failedConn) SetWriteDeadline(time.Time) error { return nil }
