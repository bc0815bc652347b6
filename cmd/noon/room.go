package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/room"
)

func init() {
	knownServices[room.Name] = newRoomService
	serviceDefaults[room.Name] = func(o *services.Options) { o.Kind = services.KindStateful }
	migrations = append(migrations, migration{room.Name, func(ctx context.Context, d *deps, cfg *Config) error {
		return room.Migrate(ctx, d.pg)
	}})
}

// newRoomService builds the stateful room service: rooms in Postgres (or in
// memory without one), leases in Redis, placement from yellow. On stop it
// hands its rooms over (final snapshot, leases released) while the runtime
// drains.
func newRoomService(ctx context.Context, cfg *Config, d *deps, log *slog.Logger) (*serviceImpl, error) {
	if d.redis == nil {
		return nil, fmt.Errorf("room needs Redis for its leases: set redis.addrs")
	}
	var store room.Store
	if d.pg != nil {
		if err := room.Migrate(ctx, d.pg); err != nil {
			return nil, err
		}
		pg, err := room.NewPGStore(d.pg, room.DefaultSchema)
		if err != nil {
			return nil, err
		}
		store = pg
	} else {
		store = room.NewMemStore()
	}
	opts, err := cfg.service(room.Name)
	if err != nil {
		return nil, err
	}
	svc, err := room.New(cfg.Room, room.Deps{
		Store:     store,
		Redis:     d.redis,
		Yellows:   opts.Yellows,
		Heartbeat: opts.Heartbeat,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	svc.RegisterMetrics(d.metrics)
	return &serviceImpl{
		handlers: svc.Handlers(),
		attach:   svc.Attach,
		beforeDrain: func(ctx context.Context) {
			if err := svc.Drain(ctx); err != nil {
				log.Warn("room drain", "err", err)
			}
		},
		cleanup: svc.Close,
	}, nil
}
