package main

import (
	"context"
	"io"

	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/yellow"
)

func init() {
	register(command{
		name:    "yellow",
		summary: "run the yellow presence and discovery service",
		run:     runYellow,
	})
}

func runYellow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("yellow", "Runs yellow: services register with it, brokers and services discover each other through it.", stderr)
	var cf configFlags
	cf.register(fs, "")
	router := fs.String("router", "", "ROUTER `endpoint` (overrides yellow.router_addr)")
	pub := fs.String("pub", "", "PUB `endpoint` (overrides yellow.pub_addr)")
	admin := fs.String("admin", "", "admin HTTP `addr` for /metrics, /healthz, /readyz and /drain (overrides admin.addr)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.loadWith(func(c *Config) {
		setIf(&c.Yellow.RouterAddr, *router)
		setIf(&c.Yellow.PubAddr, *pub)
		setIf(&c.Admin.Addr, *admin)
	})
	if err != nil {
		return err
	}
	rt, err := newRuntime(cfg, adminYellow, stderr)
	if err != nil {
		return err
	}
	yo := cfg.Yellow
	if yo.TLS, err = cfg.credentials(); err != nil {
		return err
	}
	yo.Insecure = cfg.TLS.Insecure
	y, err := yellow.New(yo, rt.log.With("daemon", "yellow"))
	if err != nil {
		return err
	}
	y.RegisterMetrics(rt.registry("yellow"))
	// Serving (Main runs, the PUB socket publishes) is both its liveness
	// and its readiness: yellows do not coordinate, so there are no peers
	// to be synced with.
	rt.health("yellow", y.Health)
	rt.ready("yellow", y.Health)
	return rt.run(ctx, daemon.Named{Name: "yellow", Daemon: y})
}

// setIf sets *dst to v when v is not empty (an explicit flag).
func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}
