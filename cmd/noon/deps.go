package main

import (
	"context"
	"fmt"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/services"
)

// openStores opens the configured stores that needs asks for, as the
// stores of a services.Env. A missing Postgres leaves Env.Postgres nil (the
// in-memory stores); with embedded set (noon dev), a missing Redis is
// replaced by an in-process one.
func openStores(ctx context.Context, cfg *Config, needs services.Needs, embedded bool) (services.Env, func(), error) {
	var env services.Env
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if needs.Postgres && cfg.Postgres.URL != "" {
		pool, err := stores.OpenPostgres(ctx, cfg.Postgres)
		if err != nil {
			return env, nil, err
		}
		env.Postgres = pool
		closers = append(closers, pool.Close)
	}
	switch {
	case !needs.Redis:
	case len(cfg.Redis.Addrs) > 0:
		rc, err := stores.OpenRedis(ctx, cfg.Redis)
		if err != nil {
			closeAll()
			return env, nil, err
		}
		env.Redis = rc
		closers = append(closers, func() { rc.Close() })
	case embedded:
		rc, _, stop, err := stores.EmbeddedRedis()
		if err != nil {
			closeAll()
			return env, nil, fmt.Errorf("embedded redis: %w", err)
		}
		env.Redis = rc
		closers = append(closers, stop)
	}
	return env, closeAll, nil
}
