package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/ops/console"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

func init() {
	register(command{
		name:    "dev",
		summary: "run the whole platform in one process (what `make run` starts)",
		run:     runDev,
	})
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dev", "Runs yellow, a broker, the BrokerList and every service in one process. Without postgres.url and redis.addrs it needs nothing else: in-memory stores and an in-process Redis.\n\n"+moduleList(), stderr)
	var cf configFlags
	cf.register(fs, "")
	pg := fs.String("postgres", "", "Postgres `URL` (overrides postgres.url; default: in-memory stores)")
	rd := fs.String("redis", "", "Redis `host:port` (overrides redis.addrs; default: in-process Redis)")
	admin := fs.String("admin", "", "admin HTTP `addr` for /metrics, /healthz, /readyz and /drain of every daemon (overrides admin.addr)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.loadWith(func(c *Config) {
		setIf(&c.Postgres.URL, *pg)
		if *rd != "" {
			c.Redis.Addrs = []string{*rd}
		}
		setIf(&c.Admin.Addr, *admin)
	})
	if err != nil {
		return err
	}
	rt, err := newRuntime(cfg, adminDev, stderr)
	if err != nil {
		return err
	}
	env, closeStores, err := openStores(ctx, cfg, needsOf(modules...), true)
	if err != nil {
		return err
	}
	defer closeStores()
	eph, tlsDir, err := devTLS(cfg, rt.log)
	if err != nil {
		return err
	}
	if tlsDir != "" {
		defer os.RemoveAll(tlsDir)
	}

	// Everything finds everything through this process's yellow.
	sections := make(map[string]services.Section, len(modules))
	for _, m := range modules {
		sections[m.Name()] = cfg.Services[m.Name()]
	}
	p, err := platform.New(ctx, platform.Options{
		Yellow:     cfg.Yellow,
		BrokerList: cfg.brokerListOptions(),
		Broker:     cfg.brokerOptions(),
		Modules:    modules,
		Sections:   sections,
		Env:        env,
		Log:        rt.log,
		Sink:       func(daemon string) metrics.Sink { return rt.registry(daemon) },
		Health:     rt.health,
		Ready:      rt.ready,
		TLS:        eph,
		Insecure:   cfg.TLS.Insecure,
		AdminAddr:  rt.adminAddr(),
		InProcess:  true,
	})
	if err != nil {
		return err
	}
	b, bl := p.Broker, p.BrokerList
	// The browser game, on the BrokerList's port: the page's own origin
	// serves the list it connects from.
	bl.Handle(PlayPath, playHandler())
	// An admin's drain request to any daemon of the process (noonctl
	// drain) drains the whole process, as SIGTERM does.
	for _, inst := range p.Instances {
		inst.OnDrainRequest(rt.requestDrain)
	}
	b.SetDrainRequest(rt.requestDrain)
	daemons := p.Daemons

	// The web console on the admin port, following this process's yellow
	// as an admin.
	var con *consoleDaemon
	if rt.admin != nil {
		var creds *pki.Credentials
		if eph != nil {
			if creds, err = eph.Credentials(adminIdentity); err != nil {
				p.Exit()
				return err
			}
		}
		c, err := newConsole(cfg, []string{p.Yellow.RouterEndpoint()}, creds, rt.log)
		if err != nil {
			p.Exit()
			return err
		}
		con = &c
		rt.admin.Handle(console.Path, c.Handler())
		daemons = append(daemons, daemon.Named{Name: "console", Daemon: c})
	}

	rt.started = func() {
		// Say "up" once the broker routes to every service and the
		// BrokerList lists it, so the first call a newcomer makes works.
		rctx, cancel := context.WithTimeout(ctx, devReadyTimeout)
		err := p.Ready(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			rt.log.Warn("noon dev: not every service is routable yet", "waited", devReadyTimeout, "err", err)
		}
		listURL := "http://" + hostPort(bl.Addr()) + brokerlist.Path
		fmt.Fprintf(stdout, "noon dev is up: yellow, broker, brokerlist, services %v\n", p.Services)
		fmt.Fprintf(stdout, "  BrokerList   %s\n", listURL)
		fmt.Fprintf(stdout, "  play         http://%s%s (race31 in the browser)\n", hostPort(bl.Addr()), PlayPath)
		fmt.Fprintf(stdout, "  broker TCP   %s (pandaparty frames)\n", hostPort(b.TCPAddr()))
		if b.WSAddr() != nil {
			fmt.Fprintf(stdout, "  broker WS    ws://%s%s\n", hostPort(b.WSAddr()), cfg.Broker.Edge.WSPath)
		}
		for _, l := range p.Banner {
			fmt.Fprintf(stdout, "  %s\n", l)
		}
		if rt.admin != nil {
			fmt.Fprintf(stdout, "  admin        http://%s/metrics (and /healthz, /readyz, /drain)\n", rt.admin.Addr())
		}
		if con != nil {
			token := con.Token()
			if cfg.Console.Token != "" {
				token = "(console.token)" // configured: not printed
			}
			fmt.Fprintf(stdout, "  console      http://%s%s token %s\n", hostPortString(rt.admin.Addr()), console.Path, token)
		}
		fmt.Fprintf(stdout, "  stores       %s\n", describeStores(cfg))
		if tlsDir != "" {
			fmt.Fprintf(stdout, "  links        mutual TLS, ephemeral CA; noonctl: bin/noonctl -tls %s instances\n", tlsDir)
		} else {
			fmt.Fprintf(stdout, "  links        plain (tls.insecure)\n")
		}
		if ex := firstExample(); ex != "" {
			fmt.Fprintf(stdout, "First call:    bin/noonctl -brokerlist %s call %s\n", listURL, ex)
		}
		fmt.Fprintf(stdout, "Ctrl-C stops everything.\n")
	}
	return rt.run(ctx, daemons...)
}

// devTLS returns noon dev's ephemeral CA, which gives every daemon of the
// process its certificate, and a temporary directory (0700, removed at
// exit) holding the CA certificate and an admin certificate for noonctl.
// With tls.insecure the links are plain: nil and "".
func devTLS(cfg *Config, log *slog.Logger) (*pki.Ephemeral, string, error) {
	if cfg.TLS.Insecure {
		return nil, "", nil
	}
	if cfg.TLS.Enabled() {
		log.Info("noon dev makes its own certificates; the files of the tls block are not used")
	}
	eph, err := pki.NewEphemeral()
	if err != nil {
		return nil, "", err
	}
	dir, err := os.MkdirTemp("", "noon-dev-tls-")
	if err != nil {
		return nil, "", err
	}
	if _, err := ephemeralFiles(eph, dir, adminIdentity); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("tls: %w", err)
	}
	return eph, dir, nil
}

func describeStores(cfg *Config) string {
	pg, rd := "in-memory stores", "in-process Redis (miniredis)"
	if cfg.Postgres.URL != "" {
		pg = "Postgres"
	}
	if len(cfg.Redis.Addrs) > 0 {
		rd = fmt.Sprintf("Redis %v", cfg.Redis.Addrs)
	}
	return pg + ", " + rd
}

// devReadyTimeout bounds how long noon dev waits for its services to be
// routable before printing its banner anyway (with a warning).
const devReadyTimeout = 15 * time.Second

// hostPortString is hostPort of an address string.
func hostPortString(a string) string { return wire.DialAddr(a) }

// hostPort prints a listener address as a client would dial it: a wildcard
// host becomes 127.0.0.1.
func hostPort(a net.Addr) string { return wire.DialAddr(a.String()) }
