package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/noonhq/noon/services/login"
)

func init() {
	knownServices["login"] = newLoginService
	migrations = append(migrations, migration{"login", func(ctx context.Context, d *deps, cfg *Config) error {
		return login.MigrateSchema(ctx, d.pg, cfg.Login.PostgresSchema)
	}})
}

// newLoginService builds the login service: accounts in Postgres (or in
// memory without one), sessions and throttles in Redis, and its HTTP/JSON
// API as an extra daemon.
func newLoginService(ctx context.Context, cfg *Config, d *deps, log *slog.Logger) (*serviceImpl, error) {
	if d.redis == nil {
		return nil, fmt.Errorf("login needs Redis: set redis.addrs")
	}
	var store login.Store
	if d.pg != nil {
		if err := login.MigrateSchema(ctx, d.pg, cfg.Login.PostgresSchema); err != nil {
			return nil, err
		}
		pg, err := login.NewPostgresStore(d.pg, cfg.Login.PostgresSchema)
		if err != nil {
			return nil, err
		}
		store = pg
	} else {
		store = login.NewMemoryStore()
	}
	opts := cfg.Login
	opts.Metrics = d.metrics
	svc, err := login.New(opts, store, d.redis, log)
	if err != nil {
		return nil, err
	}
	impl := &serviceImpl{handlers: svc.Handlers()}
	if cfg.Login.HTTPAddr != "" {
		api, err := login.NewHTTPServer(cfg.Login.HTTPAddr, svc, log)
		if err != nil {
			return nil, err
		}
		log.Info("login API listening", "url", api.URL())
		impl.banner = append(impl.banner, "login API    "+api.URL()+"/api/login (POST /api/register, /api/validate_session, /api/logout)")
		impl.procs = append(impl.procs, proc{
			name: "login API",
			main: api.Main,
			stop: func(ctx context.Context) { _ = api.Drain(ctx) },
		})
	}
	return impl, nil
}

// migration brings one service's schema up to date.
type migration struct {
	service string
	run     func(ctx context.Context, d *deps, cfg *Config) error
}

// migrations are every service's, run by `noon migrate` in this order.
var migrations []migration

func init() {
	register(command{name: "migrate", summary: "run every service's embedded Postgres migrations", run: runMigrate})
}

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", "Brings every service's Postgres schema up to date with its embedded migrations (safe to run from many processes at once; services also migrate on start).", stderr)
	var cf configFlags
	cf.register(fs, "")
	pg := fs.String("postgres", "", "Postgres `URL` (overrides postgres.url)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.loadWith(func(c *Config) { setIf(&c.Postgres.URL, *pg) })
	if err != nil {
		return err
	}
	if cfg.Postgres.URL == "" {
		return fmt.Errorf("no Postgres: set postgres.url or -postgres")
	}
	d, closeDeps, err := openDeps(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer closeDeps()
	for _, m := range migrations {
		if err := m.run(ctx, d, cfg); err != nil {
			return fmt.Errorf("%s: %w", m.service, err)
		}
		fmt.Fprintf(stdout, "migrated %s\n", m.service)
	}
	return nil
}
