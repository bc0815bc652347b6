package stores

import (
	"context"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/testenv"
)

func TestOpen(t *testing.T) {
	testenv.Postgres(t) // skips or fails the same way as every integration test
	testenv.Redis(t)
	ctx := context.Background()
	pool, err := OpenPostgres(ctx, PostgresOptions{URL: testenv.PostgresURL(), MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rc, err := OpenRedis(ctx, RedisOptions{Addrs: []string{"127.0.0.1:6379"}})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	if _, err := OpenPostgres(ctx, PostgresOptions{URL: "postgres://nobody@127.0.0.1:1/x?connect_timeout=1"}); err == nil {
		t.Fatal("OpenPostgres of a closed port succeeded")
	}
	emb, _, stop, err := EmbeddedRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := emb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Its keys expire in real time, as on a real Redis.
	if err := emb.Set(ctx, "ttl", "v", 100*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.CheckFor(t, 5*time.Second, "a key with a 100ms TTL to expire in the embedded Redis", func() bool {
		n, err := emb.Exists(ctx, "ttl").Result()
		return err == nil && n == 0
	})
}

func TestValidate(t *testing.T) {
	if err := (RedisOptions{Addrs: []string{"nope"}}).Validate(); err == nil {
		t.Fatal("bad addr accepted")
	}
	if err := (PostgresOptions{URL: "::bad"}).Validate(); err == nil {
		t.Fatal("bad url accepted")
	}
}
