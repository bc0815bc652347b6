package pay

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/apache/thrift/lib/go/thrift"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/pay/apple"
	"github.com/noonhq/noon/services/pay/provider"
	"github.com/noonhq/noon/services/pay/testprovider"
	"github.com/noonhq/noon/wire"
)

// Name is the pay service's name in yellow and the prefix of its methods.
const Name = payrpc.Service

// Module is the pay service as a module: stateless (instances share
// Postgres), purchases and the outbox in Postgres (in memory without
// one), grants through the game service, webhooks on its own HTTP port.
var Module = services.NewModule(services.Def[Options]{
	Name:    Name,
	Kind:    services.KindStateless,
	Summary: "store purchases verified, recorded once and granted exactly once through game (a durable outbox); webhooks, refunds",
	Example: `pay.List '{}'`,
	Options: NewOptions,
	Needs:   services.Needs{Postgres: true, Pub: true},
	Migrations: &services.Migrations{
		FS:    migrationFS,
		Dir:   "migrations",
		Table: MigrationsTable,
	},
	Schema: func(o Options) string { return o.PostgresSchema },
	Build:  build,
})

// build makes the pay service over env's stores, granting through the
// game service.
func build(_ context.Context, env *services.Env, opts Options) (*services.Impl, error) {
	var store Store = NewMemoryStore()
	if env.Postgres != nil {
		pg, err := NewPostgresStore(env.Postgres, opts.PostgresSchema)
		if err != nil {
			return nil, err
		}
		store = pg
	}
	var providers []provider.Provider
	if opts.TestProvider.Enabled {
		providers = append(providers, testprovider.New(opts.TestProvider.Secret, opts.WebhookTolerance, nil))
	}
	if a := opts.Apple; len(a.Roots) > 0 {
		roots, err := apple.LoadRoots(a.Roots...)
		if err != nil {
			return nil, fmt.Errorf("apple.roots: %w", err)
		}
		ap, err := apple.New(apple.Options{RootCerts: roots, BundleID: a.BundleID, Environment: a.Environment, MaxPayload: opts.MaxPayload})
		if err != nil {
			return nil, err
		}
		providers = append(providers, ap)
	}
	pub := &serverPublisher{}
	svc, err := New(opts, Deps{
		Store:     store,
		Game:      NewGameClient(env.Client(), opts.GameService),
		Publisher: pub,
		Providers: providers,
		Logger:    env.Log,
		Metrics:   env.Metrics,
	})
	if err != nil {
		return nil, err
	}
	impl := &services.Impl{
		Handlers: svc.Handlers(),
		Attach: func(srv *services.Server) {
			pub.srv.Store(srv)
			svc.Run()
		},
		Close: svc.Close,
	}
	if opts.HTTPAddr != "" {
		api, err := NewHTTPServer(opts.HTTPAddr, svc, env.Log)
		if err != nil {
			return nil, err
		}
		env.Log.Info("pay webhooks listening", "url", api.URL())
		impl.Daemons = []daemon.Named{{Name: "pay webhooks", Daemon: api}}
		impl.Banner = []string{"pay webhooks " + api.URL() + "/webhooks/<provider>"}
	}
	return impl, nil
}

// serverPublisher publishes on the instance's PUB socket once attached.
type serverPublisher struct {
	srv atomic.Pointer[services.Server]
}

// Publish implements Publisher.
func (p *serverPublisher) Publish(topic, eventType string, payload []byte) error {
	srv := p.srv.Load()
	if srv == nil {
		return errors.New("pay: not attached to a server yet")
	}
	return srv.Publish(topic, eventType, payload)
}

// gameClient calls the game service's Grant and Spend through a
// services.Client, without a client session (pay calls as itself: game
// lets the services of its trusted list).
type gameClient struct {
	c       *gamerpc.Client
	service string
}

// NewGameClient returns a Game calling service (the game service's name)
// through c.
func NewGameClient(c *services.Client, service string) Game {
	call := c.Call
	if service != gamerpc.Service {
		call = func(ctx context.Context, method string, req, resp thrift.TStruct) error {
			return c.Call(ctx, service+method[len(gamerpc.Service):], req, resp)
		}
	}
	return gameClient{c: gamerpc.NewClient(wire.CallFunc(call)), service: service}
}

// Grant implements Game.
func (g gameClient) Grant(ctx context.Context, req *gamepb.GrantRequest) (*gamepb.ChangeReply, error) {
	return g.c.Grant(services.ContextWithSession(ctx, nil), req)
}

// Spend implements Game.
func (g gameClient) Spend(ctx context.Context, req *gamepb.SpendRequest) (*gamepb.ChangeReply, error) {
	return g.c.Spend(services.ContextWithSession(ctx, nil), req)
}
