package stores

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/testenv"
	"github.com/redis/go-redis/v9"
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
	emb, embOpts, stop, err := EmbeddedRedis()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := emb.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// It listens on loopback and wants its password: a client without it
	// gets nothing, one with the options it returned gets in.
	if host, _, _ := strings.Cut(embOpts.Addrs[0], ":"); host != "127.0.0.1" || len(embOpts.Password) != 2*embeddedPasswordBytes {
		t.Fatalf("embedded redis options %+v: want a loopback address and a random password", embOpts)
	}
	anon := redis.NewClient(&redis.Options{Addr: embOpts.Addrs[0]})
	defer anon.Close()
	if err := anon.Get(ctx, "k").Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("GET without the password: %v, want NOAUTH", err)
	}
	wrong := redis.NewClient(&redis.Options{Addr: embOpts.Addrs[0], Password: "guess"})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Fatal("PING with a wrong password succeeded")
	}
	other, err := OpenRedis(ctx, embOpts)
	if err != nil {
		t.Fatalf("OpenRedis(%+v): %v", embOpts, err)
	}
	defer other.Close()
	if v, err := other.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET with the password: %q, %v", v, err)
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
