// Package stores opens the platform's data stores from config: a pgx pool
// for Postgres and a go-redis universal client for Redis (one node, Sentinel
// or Cluster), or, for `noon dev`, an in-process Redis (miniredis).
package stores

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/internal/config"
)

// connectTimeout bounds how long a daemon waits for a store at start: a
// store that does not answer in this time is reported as the start error
// rather than hanging the daemon.
const connectTimeout = 10 * time.Second

// PostgresOptions configures the Postgres pool.
type PostgresOptions struct {
	// URL is a pgx connection string, e.g.
	// postgres://user@127.0.0.1:5432/noon?sslmode=disable; "" = none (the
	// in-memory stores, noon dev only).
	URL string `yaml:"url"`
	// MaxConns bounds the pool; 0 = pgx's default (max(4, cores)).
	MaxConns int32 `yaml:"max_conns"`
}

// Validate checks the options.
func (o PostgresOptions) Validate() error {
	if o.URL != "" {
		if _, err := pgxpool.ParseConfig(o.URL); err != nil {
			return &config.FieldError{Field: "url", Msg: err.Error()}
		}
	}
	return config.NonNegative("max_conns", o.MaxConns)
}

// RedisOptions configures Redis through go-redis's universal client: one
// address = one node, several = Cluster, MasterName set = Sentinel.
type RedisOptions struct {
	// Addrs are host:port addresses; empty = none (noon dev runs an
	// in-process Redis instead).
	Addrs []string `yaml:"addrs"`
	// MasterName selects Sentinel mode (Addrs are then the sentinels).
	MasterName string `yaml:"master_name"`
	// DB is the database number (one node and Sentinel only).
	DB int `yaml:"db"`
	// Username and Password authenticate, when the server wants it.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// Validate checks the options.
func (o RedisOptions) Validate() error {
	var errs config.Errors
	for i, a := range o.Addrs {
		errs.Add(config.HostPort(fmt.Sprintf("addrs[%d]", i), a))
	}
	errs.Add(config.Range("db", o.DB, 0, 15))
	return errs.Err()
}

// OpenPostgres connects a pool and checks it answers.
func OpenPostgres(ctx context.Context, o PostgresOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	tunePostgres(cfg)
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// OpenRedis connects the universal client and checks it answers.
func OpenRedis(ctx context.Context, o RedisOptions) (redis.UniversalClient, error) {
	c := redis.NewUniversalClient(RedisClientOptions(o))
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis %v: %w", o.Addrs, err)
	}
	return c, nil
}

// RedisClientOptions are the go-redis options of o, with the dialing that
// reconnects promptly after an outage (see redisDialer): each dial fails
// at once (DialerRetries 1: go-redis's command retries, MaxRetries with
// MinRetryBackoff, already retry a failed dial), and a failed dial never
// trips go-redis's one-second dial breaker.
func RedisClientOptions(o RedisOptions) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:              o.Addrs,
		MasterName:         o.MasterName,
		DB:                 o.DB,
		Username:           o.Username,
		Password:           o.Password,
		Dialer:             newRedisDialer().Dial,
		DialTimeout:        redisDialTimeout,
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
		MinRetryBackoff:    redisMinRetryBackoff,
		MaxRetryBackoff:    redisMaxRetryBackoff,
	}
}

// tunePostgres sets the pool's connect timeout (unless the URL sets
// connect_timeout) and health check period for prompt recovery.
func tunePostgres(cfg *pgxpool.Config) {
	if cfg.ConnConfig.ConnectTimeout <= 0 {
		cfg.ConnConfig.ConnectTimeout = postgresConnectTimeout
	}
	cfg.HealthCheckPeriod = postgresHealthCheckPeriod
}

// embeddedTick is how often the embedded Redis's clock advances: keys
// expire at most this late (miniredis expires keys only when told that time
// has passed).
const embeddedTick = 50 * time.Millisecond

// embeddedPasswordBytes is the entropy of the embedded Redis's password:
// 128 bits, more than anyone guesses over a socket.
const embeddedPasswordBytes = 16

// EmbeddedRedis starts an in-process Redis (miniredis) and a client of it,
// for noon dev, with a clock that follows real time so that TTLs (sessions,
// throttles, leases) expire as on a real Redis. It listens on loopback with
// a random password, which the client uses: another local user or a web
// page cannot read the sessions it holds. opts are how another client
// connects (stores.OpenRedis). stop stops both.
func EmbeddedRedis() (c redis.UniversalClient, opts RedisOptions, stop func(), err error) {
	var pw [embeddedPasswordBytes]byte
	_, _ = rand.Read(pw[:]) // never fails (crypto/rand)
	password := hex.EncodeToString(pw[:])
	mr := miniredis.NewMiniRedis()
	mr.RequireAuth(password)
	if err := mr.Start(); err != nil {
		return nil, RedisOptions{}, nil, fmt.Errorf("embedded redis: %w", err)
	}
	opts = RedisOptions{Addrs: []string{mr.Addr()}, Password: password}
	rc := redis.NewClient(&redis.Options{Addr: mr.Addr(), Password: password})
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(embeddedTick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				mr.SetTime(now)
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return rc, opts, func() { close(quit); <-done; rc.Close(); mr.Close() }, nil
}
