// Package testenv gives integration tests their real Postgres and Redis.
//
// The servers come from NOON_TEST_POSTGRES and NOON_TEST_REDIS, defaulting to
// the local servers. Where no server answers the test is skipped with a
// message saying so, unless NOON_REQUIRE_SERVICES=1 (CI sets it), which turns
// a missing server into a failure.
package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// Default addresses of the local test servers.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedis    = "redis://127.0.0.1:6379/0"
)

// probeTimeout bounds how long a test waits to learn that a server is not
// there: long enough for a loaded CI machine, short enough not to stall a
// newcomer's `make test`.
const probeTimeout = 3 * time.Second

// Required reports whether NOON_REQUIRE_SERVICES=1 is set.
func Required() bool { return os.Getenv("NOON_REQUIRE_SERVICES") == "1" }

// PostgresURL is the Postgres URL integration tests use.
func PostgresURL() string {
	if u := os.Getenv("NOON_TEST_POSTGRES"); u != "" {
		return u
	}
	return DefaultPostgres
}

// RedisURL is the Redis URL integration tests use.
func RedisURL() string {
	if u := os.Getenv("NOON_TEST_REDIS"); u != "" {
		return u
	}
	return DefaultRedis
}

func unavailable(t testing.TB, what, addr string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s not available at %s: %v", what, addr, err)
	if Required() {
		t.Fatalf("%s (NOON_REQUIRE_SERVICES=1)", msg)
	}
	t.Skipf("%s; skipping (set NOON_TEST_%s to point at one; NOON_REQUIRE_SERVICES=1 makes this a failure)", msg, map[string]string{"Postgres": "POSTGRES", "Redis": "REDIS"}[what])
}

// Redis returns a client of the test Redis, closed when the test ends, or
// skips (or fails, see Required) when none answers.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("NOON_TEST_REDIS: %v", err)
	}
	c := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		unavailable(t, "Redis", RedisURL(), err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Postgres returns a pool of the test Postgres, closed when the test ends, or
// skips (or fails, see Required) when none answers.
func Postgres(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(PostgresURL())
	if err != nil {
		t.Fatalf("NOON_TEST_POSTGRES: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		unavailable(t, "Postgres", PostgresURL(), err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// UniqueID returns an id no other test run uses, for keys and rows.
func UniqueID(t testing.TB) string {
	return fmt.Sprintf("t%d%04d", time.Now().UnixNano(), os.Getpid()%10000)
}
