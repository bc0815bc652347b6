package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/services"
)

func init() {
	register(command{
		name:    "service",
		summary: "run one instance of a service: noon service <name> [flags]",
		run:     runService,
	})
}

func runService(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("service <name>", "Runs one instance of a service; start as many as you need: each registers with yellow and takes its share of the load.\n\n"+moduleList(), stderr)
	var cf configFlags
	cf.register(fs, "")
	bind := fs.String("bind", "", "ROUTER `endpoint` (overrides services.<name>.bind; port 0 = any free port)")
	pub := fs.String("pub", "", "PUB `endpoint` (overrides services.<name>.pub_bind)")
	yellows := fs.String("yellows", "", "comma-separated yellow ROUTER `endpoints` (overrides yellows)")
	admin := fs.String("admin", "", "admin HTTP `addr` for /metrics, /healthz, /readyz and /drain (overrides admin.addr)")
	instance := fs.Int("instance", 0, "this is instance `n` (1, 2, ...) of several on one host: the service may vary its options (an HTTP API moves to its port + n - 1); 0 = none")
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if err := parse(fs, args); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "noon service: name the service to run (%s)\n", moduleNames())
		return errUsage
	}
	name := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	m, ok := findModule(name)
	if !ok {
		fmt.Fprintf(stderr, "noon service: unknown service %q (known: %s)\n", name, moduleNames())
		return errUsage
	}
	cfg, err := cf.loadWith(func(c *Config) {
		sec := c.Services[name]
		setIf(&sec.Runtime().Bind, *bind)
		setIf(&sec.Runtime().PubBind, *pub)
		if *instance > 0 {
			m.ForInstance(sec, *instance)
		}
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
	env, closeStores, err := openStores(ctx, cfg, m.Needs(), false)
	if err != nil {
		return err
	}
	defer closeStores()
	d, _, err := rt.startService(ctx, cfg, env, m)
	if err != nil {
		return err
	}
	return rt.run(ctx, d)
}

// startService starts one instance of module m over the stores of env, as
// a daemon that drains on stop, and returns its banner lines.
func (rt *runtime) startService(ctx context.Context, cfg *Config, env services.Env, m services.Module) (daemon.Named, []string, error) {
	env.Log = rt.log
	env.Metrics = rt.registry("service_" + m.Name())
	env.Yellows = cfg.Yellows
	creds, err := cfg.credentials()
	if err != nil {
		return daemon.Named{}, nil, err
	}
	env.TLS, env.Insecure = creds, cfg.TLS.Insecure
	sec := cfg.Services[m.Name()]
	sec.Runtime().AdminAddr = rt.adminAddr()
	inst, err := m.Start(ctx, env, sec)
	if err != nil {
		return daemon.Named{}, nil, err
	}
	// Ready once registered in yellow; an admin's drain request (noonctl
	// drain) drains the process, as SIGTERM does.
	rt.ready("service "+m.Name(), inst.Ready)
	inst.OnDrainRequest(rt.requestDrain)
	return daemon.Named{Name: "service " + m.Name(), Daemon: inst}, inst.Banner(), nil
}
