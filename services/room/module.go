package room

import (
	"context"

	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/services"
)

// Name is the room service's name in yellow and the prefix of its methods.
const Name = roomrpc.Service

// Module is the room service as a module: stateful, rooms in Postgres (in
// memory without one), leases in Redis, room events on its PUB socket. On
// a drain it hands its rooms over (final snapshot, leases released) while
// its server drains.
var Module = services.NewModule(services.Def[Options]{
	Name:    Name,
	Kind:    services.KindStateful,
	Summary: "stateful rooms: one owner per room, a durable event log, failover; the sample game race31",
	Options: NewOptions,
	Needs:   services.Needs{Postgres: true, Redis: true, Pub: true},
	Migrations: &services.Migrations{
		FS:    migrationFS,
		Dir:   "migrations",
		Table: MigrationsTable,
	},
	Schema: func(o Options) string { return o.PostgresSchema },
	Build:  build,
})

// build makes the room service over env's stores, placing rooms by the
// instance's yellows.
func build(_ context.Context, env *services.Env, opts Options) (*services.Impl, error) {
	store := NewMemoryStore()
	if env.Postgres != nil {
		pg, err := NewPostgresStore(env.Postgres, opts.PostgresSchema)
		if err != nil {
			return nil, err
		}
		store = pg
	}
	var rewards Rewarder
	if opts.Rewards.OnWin != nil {
		rewards = NewClientRewarder(env.Client(), opts.Rewards.service())
	}
	svc, err := New(opts, Deps{
		Store:     store,
		Redis:     env.Redis,
		Yellows:   env.Options.Yellows,
		Heartbeat: env.Options.Heartbeat,
		TLS:       env.Options.TLS,
		Logger:    env.Log,
		Rewards:   rewards,
	})
	if err != nil {
		return nil, err
	}
	svc.RegisterMetrics(env.Metrics)
	return &services.Impl{
		Handlers: svc.Handlers(),
		Attach:   svc.Attach,
		Drain:    svc.Drain,
		Close:    svc.Close,
		Meta:     svc.Meta,
	}, nil
}
