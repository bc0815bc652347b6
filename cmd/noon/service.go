package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
)

// serviceFactory builds the handlers of one service. cleanup, when not nil,
// runs after the service has stopped.
type serviceFactory func(ctx context.Context, cfg *Config, log *slog.Logger) (handlers map[string]services.HandlerFunc, cleanup func(), err error)

// knownServices are the services `noon service <name>` can run.
var knownServices = map[string]serviceFactory{
	echo.Service: func(context.Context, *Config, *slog.Logger) (map[string]services.HandlerFunc, func(), error) {
		return echo.Handlers(), nil, nil
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
			o = services.NewOptions()
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
	proc, err := rt.serviceProc(ctx, cfg, name, factory)
	if err != nil {
		return err
	}
	return rt.run(ctx, proc)
}

// serviceProc builds one service instance as a proc: it drains on stop.
func (rt *runtime) serviceProc(ctx context.Context, cfg *Config, name string, factory serviceFactory) (proc, error) {
	opts, err := cfg.service(name)
	if err != nil {
		return proc{}, fmt.Errorf("services.%s: %w", name, err)
	}
	log := rt.log
	handlers, cleanup, err := factory(ctx, cfg, log)
	if err != nil {
		return proc{}, fmt.Errorf("service %s: %w", name, err)
	}
	srv, err := services.NewServer(opts, handlers, log)
	if err != nil {
		if cleanup != nil {
			cleanup()
		}
		return proc{}, err
	}
	srv.RegisterMetrics(rt.registry("service_" + name))
	rt.health("service_"+name, func() error { return nil })
	return proc{
		name: "service " + name,
		main: srv.Main,
		stop: func(ctx context.Context) {
			if err := srv.Drain(ctx); err != nil {
				log.Warn("drain", "err", err)
			}
			srv.Exit()
			if cleanup != nil {
				cleanup()
			}
		},
	}, nil
}
