package login

import (
	"context"
	"net"
	"strconv"

	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/services"
)

// Name is the login service's name in yellow and the prefix of its
// methods.
const Name = loginrpc.Service

// Module is the login service as a module: accounts in Postgres (in memory
// without one), sessions and throttles in Redis, revoked sessions published
// on its PUB socket (for the brokers), and the HTTP/JSON API as an extra
// daemon (unless http_addr is ""). Instance n of several on one
// host serves the API on http_addr's port + n - 1 (8081, 8082, ...).
var Module = services.NewModule(services.Def[Options]{
	Name:    Name,
	Kind:    services.KindStateless,
	Summary: "accounts (argon2id) and sessions (Redis tokens); the pandaparty HTTP/JSON API on :8081",
	Options: NewOptions,
	Needs:   services.Needs{Postgres: true, Redis: true, Pub: true},
	Migrations: &services.Migrations{
		FS:    migrationFS,
		Dir:   "migrations",
		Table: MigrationsTable,
	},
	Schema:      func(o Options) string { return o.PostgresSchema },
	ForInstance: httpPortForInstance,
	Build:       build,
})

// httpPortForInstance moves instance n's HTTP API to http_addr's port +
// n - 1; a free port (0) and a disabled API stay as they are.
func httpPortForInstance(o *Options, n int) {
	host, port, err := net.SplitHostPort(o.HTTPAddr)
	if o.HTTPAddr == "" || err != nil {
		return
	}
	if p, err := strconv.Atoi(port); err == nil && p != 0 {
		o.HTTPAddr = net.JoinHostPort(host, strconv.Itoa(p+n-1))
	}
}

// build makes the login service over env's stores, with its HTTP API.
func build(_ context.Context, env *services.Env, opts Options) (*services.Impl, error) {
	var store Store = NewMemoryStore()
	if env.Postgres != nil {
		pg, err := NewPostgresStore(env.Postgres, opts.PostgresSchema)
		if err != nil {
			return nil, err
		}
		store = pg
	}
	opts.Metrics = env.Metrics
	svc, err := New(opts, store, env.Redis, env.Log)
	if err != nil {
		return nil, err
	}
	if opts.BanCheck != "" {
		svc.SetBanChecker(NewClientBanChecker(env.Client(), opts.BanCheck))
	}
	impl := &services.Impl{Handlers: svc.Handlers(), Attach: svc.attach}
	if opts.HTTPAddr != "" {
		api, err := NewHTTPServer(opts.HTTPAddr, svc, env.Log)
		if err != nil {
			return nil, err
		}
		env.Log.Info("login API listening", "url", api.URL())
		impl.Daemons = []daemon.Named{{Name: "login API", Daemon: api}}
		impl.Banner = []string{"login API    " + api.URL() + "/api/login (POST /api/register, /api/validate_session, /api/logout, /api/logout_all)"}
	}
	return impl, nil
}
