package login_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/yellow"
)

// testLogger and checkFor are the shared test helpers (internal/testenv).
var (
	testLogger = testenv.Logger
	checkFor   = testenv.CheckFor
)

// hb is the heartbeat of the test yellow, service and client: short, so
// that registration takes milliseconds.
const hb = 100 * time.Millisecond

var uniq atomic.Int64

// unique returns a lowercase token no other test or run uses, usable in
// usernames, Redis prefixes and schema names.
func unique(t testing.TB) string {
	return fmt.Sprintf("%s_%d", strings.ToLower(testenv.UniqueID(t)), uniq.Add(1))
}

// username returns a fresh valid username (at most 32 characters).
func username(t testing.TB) string {
	u := "u" + strings.TrimPrefix(unique(t), "t")
	if len(u) > 32 {
		u = u[len(u)-32:]
	}
	return u
}

// testOptions are options with cheap argon2 parameters (t=1, m=1 MiB:
// about a millisecond), no HTTP address, and a Redis prefix of their own,
// so that tests sharing a Redis never see each other's counters.
func testOptions(t testing.TB) login.Options {
	o := login.NewOptions()
	o.HTTPAddr = ""
	o.Argon2.Time, o.Argon2.MemoryKiB = 1, 1024
	o.RedisPrefix = "noontest:" + unique(t) + ":"
	return o
}

// redisKind picks the Redis of a test.
type redisKind string

const (
	realRedis redisKind = "redis"
	miniRedis redisKind = "miniredis"
)

// newRedis returns a client of the real test Redis (skipping without one,
// see testenv) or of a fresh miniredis.
func newRedis(t testing.TB, kind redisKind) (redis.UniversalClient, *miniredis.Miniredis) {
	t.Helper()
	if kind == realRedis {
		return testenv.Redis(t), nil
	}
	mr := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { c.Close() })
	return c, mr
}

// pgSchema migrates a fresh schema in the test Postgres (skipping without
// one) and drops it when the test ends.
func pgSchema(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	pool := testenv.Postgres(t)
	schema := "login_" + unique(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := login.MigrateSchema(ctx, pool, schema); err != nil {
		t.Fatalf("MigrateSchema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return pool, schema
}

// pgStore returns a Postgres store in a fresh schema.
func pgStore(t testing.TB) login.Store {
	t.Helper()
	pool, schema := pgSchema(t)
	s, err := login.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newService returns a login service over store and rdb with opts.
func newService(t testing.TB, opts login.Options, store login.Store, rdb redis.UniversalClient) *login.Service {
	t.Helper()
	svc, err := login.New(opts, store, rdb, testLogger(t))
	if err != nil {
		t.Fatalf("login.New: %v", err)
	}
	return svc
}

// platform is a yellow, a login instance registered with it, and a
// client calling through yellow: the real wire.
type platform struct {
	svc    *login.Service
	srv    *services.Server
	client *services.Client
}

// startPlatform starts yellow and a login instance of svc, and returns a
// client that has seen the instance.
func startPlatform(t testing.TB, svc *login.Service) *platform {
	t.Helper()
	return startPlatformHB(t, svc, hb)
}

// startPlatformHB is startPlatform with heartbeat hb: benchmarks that keep
// both cores busy hashing use the default second, so that a stalled
// heartbeat does not expire the instance.
func startPlatformHB(t testing.TB, svc *login.Service, hb time.Duration) *platform {
	t.Helper()
	log := testLogger(t)
	yo := yellow.NewOptions()
	yo.RouterAddr, yo.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	yo.Heartbeat, yo.TickInterval, yo.ExpireAfter = hb, hb, 5
	y, err := yellow.New(yo, log.With("yellow", ""))
	if err != nil {
		t.Fatalf("yellow.New: %v", err)
	}
	ydone := make(chan error, 1)
	go func() { ydone <- y.Main() }()
	t.Cleanup(func() { y.Exit(); <-ydone })

	so := services.NewOptions()
	so.Heartbeat = hb
	so.DrainTimeout = 5 * time.Second
	so.Yellows = []string{y.RouterEndpoint()}
	srv, err := login.NewServer(so, svc, log.With("server", "login"))
	if err != nil {
		t.Fatalf("login.NewServer: %v", err)
	}
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Main() }()
	t.Cleanup(func() { srv.Exit(); <-sdone })

	c := services.NewClient(services.ClientOptions{
		Yellows:   []string{y.RouterEndpoint()},
		Heartbeat: hb,
		Peer:      link.PeerOptions{HeartbeatInterval: hb, DeadAfter: 5 * hb, BackoffMax: hb, Logger: log},
		Logger:    log,
	})
	t.Cleanup(c.Close)
	checkFor(t, 5*time.Second, "login instance visible to the client", func() bool {
		for _, inst := range c.Pool().Instances(login.Name) {
			if inst.GetId() == srv.InstanceID() {
				return true
			}
		}
		return false
	})
	return &platform{svc: svc, srv: srv, client: c}
}
