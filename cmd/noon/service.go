package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
)

// serviceImpl is what a service factory builds: the handlers, and the
// hooks the command runs around the service runtime.
type serviceImpl struct {
	handlers map[string]services.HandlerFunc
	// attach, when set, is called with the runtime server before it runs
	// (a stateful service learns its instance id and publisher).
	attach func(*services.Server)
	// beforeDrain, when set, runs before the server drains (the room
	// service hands its rooms over).
	beforeDrain func(ctx context.Context)
	// procs are extra daemons of the service (login's HTTP API).
	procs []proc
	// cleanup runs after the service has stopped.
	cleanup func()
	// banner are lines noon dev prints about the service (its HTTP API).
	banner []string
}

// deps are the stores a service may use.
type deps struct {
	// redis is nil when no Redis is configured (and none is embedded).
	redis redis.UniversalClient
	// pg is nil when no Postgres is configured: the in-memory stores.
	pg *pgxpool.Pool
	// metrics is the service's own registry (set per service).
	metrics metrics.Sink
}

// serviceFactory builds one service.
type serviceFactory func(ctx context.Context, cfg *Config, d *deps, log *slog.Logger) (*serviceImpl, error)

// knownServices are the services `noon service <name>` and `noon dev` run.
var knownServices = map[string]serviceFactory{
	echo.Service: func(context.Context, *Config, *deps, *slog.Logger) (*serviceImpl, error) {
		return &serviceImpl{handlers: echo.Handlers()}, nil
	},
}

func serviceNames() string {
	names := make([]string, 0, len(knownServices))
	for n := range knownServices {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func init() {
	register(command{
		name:    "service",
		summary: "run one instance of a service: noon service <name> [flags]",
		run:     runService,
	})
}

func runService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("service <name>", "Runs one instance of a service ("+serviceNames()+"); start as many as you need: each registers with yellow and takes its share of the load.", stderr)
	var cf configFlags
	cf.register(fs, "")
	bind := fs.String("bind", "", "ROUTER `endpoint` (overrides services.<name>.bind; port 0 = any free port)")
	pub := fs.String("pub", "", "PUB `endpoint` (overrides services.<name>.pub_bind)")
	yellows := fs.String("yellows", "", "comma-separated yellow ROUTER `endpoints` (overrides yellows)")
	admin := fs.String("admin", "", "admin HTTP `addr` for /metrics and /healthz (overrides admin.addr)")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := parse(fs, args); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "noon service: name the service to run (%s)\n", serviceNames())
		return errUsage
	}
	name := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	factory, ok := knownServices[name]
	if !ok {
		fmt.Fprintf(stderr, "noon service: unknown service %q (known: %s)\n", name, serviceNames())
		return errUsage
	}
	cfg, err := cf.loadWith(func(c *Config) {
		o, ok := c.Services[name]
		if !ok {
			o = newServiceOptions(name)
		}
		setIf(&o.Bind, *bind)
		setIf(&o.PubBind, *pub)
		c.Services[name] = o
		if *yellows != "" {
			c.Yellows = strings.Split(*yellows, ",")
		}
		setIf(&c.Admin.Addr, *admin)
	})
	if err != nil {
		return err
	}
	rt, err := newRuntime(cfg, adminService, stderr)
	if err != nil {
		return err
	}
	d, closeDeps, err := openDeps(ctx, cfg, false)
	if err != nil {
		return err
	}
	defer closeDeps()
	procs, _, err := rt.serviceProcs(ctx, cfg, d, name, factory)
	if err != nil {
		return err
	}
	return rt.run(ctx, procs...)
}

// serviceProcs builds one service instance (and its extra daemons) as
// procs; the instance drains on stop.
func (rt *runtime) serviceProcs(ctx context.Context, cfg *Config, d *deps, name string, factory serviceFactory) ([]proc, []string, error) {
	opts, err := cfg.service(name)
	if err != nil {
		return nil, nil, fmt.Errorf("services.%s: %w", name, err)
	}
	log := rt.log
	reg := rt.registry("service_" + name)
	sd := *d
	sd.metrics = reg
	impl, err := factory(ctx, cfg, &sd, log.With("service", name))
	if err != nil {
		return nil, nil, fmt.Errorf("service %s: %w", name, err)
	}
	srv, err := services.NewServer(opts, impl.handlers, log)
	if err != nil {
		if impl.cleanup != nil {
			impl.cleanup()
		}
		return nil, nil, err
	}
	if impl.attach != nil {
		impl.attach(srv)
	}
	srv.RegisterMetrics(reg)
	p := proc{
		name: "service " + name,
		main: srv.Main,
		stop: func(ctx context.Context) {
			if impl.beforeDrain != nil {
				impl.beforeDrain(ctx)
			}
			if err := srv.Drain(ctx); err != nil {
				log.Warn("drain", "service", name, "err", err)
			}
			srv.Exit()
			if impl.cleanup != nil {
				impl.cleanup()
			}
		},
	}
	return append([]proc{p}, impl.procs...), impl.banner, nil
}
