package game

import (
	"context"

	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	"github.com/noonhq/noon/services"
)

// Name is the game service's name in yellow and the prefix of its methods.
const Name = gamerpc.Service

// Module is the game service as a module: stateless (any number of
// instances share Postgres and Redis), players in Postgres (in memory
// without one), leaderboards' ranks in Redis.
var Module = services.NewModule(services.Def[Options]{
	Name:    Name,
	Kind:    services.KindStateless,
	Summary: "player data: profiles, stats, inventory, wallet with a ledger, leaderboards; one writer per player, idempotent changes",
	Example: `game.GetWallet '{}'`,
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

// build makes the game service over env's stores.
func build(_ context.Context, env *services.Env, opts Options) (*services.Impl, error) {
	var store Store = NewMemoryStore()
	if env.Postgres != nil {
		pg, err := NewPostgresStore(env.Postgres, opts.PostgresSchema)
		if err != nil {
			return nil, err
		}
		store = pg
	}
	svc, err := New(opts, Deps{Store: store, Redis: env.Redis, Logger: env.Log, Metrics: env.Metrics})
	if err != nil {
		return nil, err
	}
	return &services.Impl{Handlers: svc.Handlers()}, nil
}
