package friends

import (
	"context"
	"embed"
	"strconv"
	"sync"

	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/services"
)

// Name is the friends service's name in yellow and the prefix of its
// methods.
const Name = friendsrpc.Service

// MigrationsTable is the table, in the service's schema, where
// golang-migrate records the schema's version (named for the service, so
// that services sharing a schema keep their versions and locks apart).
const MigrationsTable = "friends_schema_migrations"

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations are the service's embedded Postgres migrations.
var Migrations = &services.Migrations{FS: migrationFS, Dir: "migrations", Table: MigrationsTable}

// Module is the friends service as a module: stateless (any number of
// instances share Postgres and Redis), relations in Postgres (in memory
// without one), presence in Redis from the brokers' presence events,
// pushes on its PUB socket.
var Module = services.NewModule(services.Def[Options]{
	Name:       Name,
	Kind:       services.KindStateless,
	Summary:    "friend lists (requests, blocks, limits as pandaparty's) with live presence across brokers, room invites",
	Example:    `friends.List '{}'`,
	Options:    NewOptions,
	Needs:      services.Needs{Postgres: true, Redis: true, Pub: true},
	Migrations: Migrations,
	Schema:     func(o Options) string { return o.PostgresSchema },
	Build:      build,
})

// MetaPresenceFeeds is the yellow meta key under which a friends instance
// says how many brokers it hears presence from.
const MetaPresenceFeeds = "presence_feeds"

// build makes the friends service over env's stores, finding users through
// login and following the brokers' presence.
func build(_ context.Context, env *services.Env, opts Options) (*services.Impl, error) {
	var store Store = NewMemoryStore()
	if env.Postgres != nil {
		pg, err := NewPostgresStore(env.Postgres, opts.PostgresSchema)
		if err != nil {
			return nil, err
		}
		store = pg
	}
	client := env.Client()
	pub := &serverPublisher{}
	svc, err := New(opts, Deps{
		Store:     store,
		Redis:     env.Redis,
		Users:     loginDirectory{c: client},
		Publisher: pub,
		Brokers:   poolBrokers{c: client},
		Logger:    env.Log,
		Metrics:   env.Metrics,
	})
	if err != nil {
		return nil, err
	}
	presence, err := env.FollowPresence(func(seq uint64, p *platformpb.Presence) { svc.HandlePresence(p.GetBroker(), seq, p) })
	if err != nil {
		svc.Close()
		return nil, err
	}
	var once sync.Once
	stop := func() { once.Do(func() { _ = presence.Close() }) }
	return &services.Impl{
		Handlers: svc.Handlers(),
		Attach: func(srv *services.Server) {
			pub.srv.Store(srv)
			svc.Run()
		},
		Drain: func(ctx context.Context) error {
			stop()
			return svc.Drain(ctx)
		},
		Close: func() {
			stop()
			svc.Close()
		},
		Meta: func() map[string]string {
			return map[string]string{MetaPresenceFeeds: strconv.Itoa(presence.Feeds())}
		},
	}, nil
}
