package stores_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/stores/storestest"
)

func TestIsOutage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("syntax error"), false},
		{redis.Nil, false},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "08006"}, true},
		{&pgconn.PgError{Code: "57P01"}, true},
		{fmt.Errorf("x: %w", io.EOF), true},
		{io.ErrUnexpectedEOF, true},
		{redis.ErrClosed, true},
		{redis.ErrPoolTimeout, true},
		{fmt.Errorf("store: %w", context.DeadlineExceeded), true},
		{context.Canceled, false},
	} {
		if got := stores.IsOutage(tc.err); got != tc.want {
			t.Errorf("IsOutage(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// A real refused dial, from each client.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc := redis.NewUniversalClient(stores.RedisClientOptions(stores.RedisOptions{Addrs: []string{"127.0.0.1:1"}}))
	defer rc.Close()
	if err := rc.Ping(ctx).Err(); !stores.IsOutage(err) {
		t.Errorf("redis PING of a closed port: IsOutage(%v) = false", err)
	}
	pool, err := pgxpool.New(ctx, "postgres://x@127.0.0.1:1/x")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := pool.Ping(ctx); !stores.IsOutage(err) {
		t.Errorf("postgres ping of a closed port: IsOutage(%v) = false", err)
	}
}

// TestRedisReconnect: after Redis comes back, the client's first command
// succeeds within a few tries. go-redis's own dialing, after PoolSize
// failed dials, stops dialing and fails every command for up to a second
// (until its once-a-second probe succeeds).
func TestRedisReconnect(t *testing.T) {
	r := storestest.StartRedis(t)
	ctx := context.Background()
	c, err := stores.OpenRedis(ctx, stores.RedisOptions{Addrs: []string{r.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		r.Stop()
		// More failed commands than the pool has connections (PoolSize,
		// 10 per core): enough to
		// open go-redis's dial breaker.
		for i := range 25 {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Get(cctx, "k").Err()
			cancel()
			if !stores.IsOutage(err) {
				t.Fatalf("round %d: GET %d with Redis down: %v, want an outage", round, i, err)
			}
		}
		r.Start()
		const maxTries = 5
		tries := 0
		for {
			tries++
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := c.Set(cctx, "k", "v", 0).Err()
			cancel()
			if err == nil {
				break
			}
			if tries == maxTries {
				t.Fatalf("round %d: %d commands after Redis came back failed, the last with %v", round, tries, err)
			}
			// Tries are spaced by more than the redial gap, far less
			// than go-redis's one-second probe.
			time.Sleep(25 * time.Millisecond)
		}
		t.Logf("round %d: first command after restart succeeded on try %d", round, tries)
	}
}
