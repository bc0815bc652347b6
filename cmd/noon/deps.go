package main

import (
	"context"
	"fmt"

	"github.com/noonhq/noon/internal/stores"
)

// openDeps opens the configured stores. With embedded set (noon dev), a
// missing Redis is replaced by an in-process one; a missing Postgres means
// the in-memory stores.
func openDeps(ctx context.Context, cfg *Config, embedded bool) (*deps, func(), error) {
	d := &deps{}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	if cfg.Postgres.URL != "" {
		pool, err := stores.OpenPostgres(ctx, cfg.Postgres)
		if err != nil {
			return nil, nil, err
		}
		d.pg = pool
		closers = append(closers, pool.Close)
	}
	switch {
	case len(cfg.Redis.Addrs) > 0:
		rc, err := stores.OpenRedis(ctx, cfg.Redis)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		d.redis = rc
		closers = append(closers, func() { rc.Close() })
	case embedded:
		rc, _, stop, err := stores.EmbeddedRedis()
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("embedded redis: %w", err)
		}
		d.redis = rc
		closers = append(closers, stop)
	}
	return d, closeAll, nil
}
