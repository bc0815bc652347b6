package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/logging"
	"github.com/noonhq/noon/internal/metrics"
)

// shutdownGrace bounds a graceful shutdown after the first signal: long
// enough for in-flight requests to finish (their default deadline is 5 s)
// and for services to drain; a second signal skips it.
const shutdownGrace = 30 * time.Second

// runtime is what every daemon command sets up: a logger and the admin
// endpoint.
type runtime struct {
	log   *slog.Logger
	admin *metrics.Admin
	// started, when set, runs in its own goroutine once every daemon's
	// Main has been started (noon dev waits there for the platform to be ready
	// and prints its banner).
	started func()
}

// Default admin addresses of the commands.
const (
	adminDev        = "127.0.0.1:1051"
	adminBroker     = "127.0.0.1:1052"
	adminYellow     = "127.0.0.1:1062"
	adminService    = "127.0.0.1:0"
	adminBrokerList = "127.0.0.1:1053"
)

// newRuntime sets up logging and the admin endpoint (on defaultAdmin unless
// the config names one).
func newRuntime(cfg *Config, defaultAdmin string, stderr io.Writer) (*runtime, error) {
	log, err := logging.New(cfg.Log, stderr)
	if err != nil {
		return nil, err
	}
	rt := &runtime{log: log}
	addr := cfg.Admin.Addr
	if addr == "" {
		addr = defaultAdmin
	}
	if addr != "off" {
		adm, err := metrics.NewAdmin(addr, nil, nil, log.With("component", "admin"))
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		rt.admin = adm
	}
	return rt, nil
}

// registry returns a metrics registry for the named daemon, served on the
// admin endpoint.
func (rt *runtime) registry(daemon string) *metrics.Registry {
	reg := metrics.NewRegistry(daemon)
	if rt.admin != nil {
		rt.admin.AddRegistry(reg)
	}
	return reg
}

// adminAddr returns the admin endpoint's address, "" without one: what
// instances publish as their wire.MetaAdmin label.
func (rt *runtime) adminAddr() string {
	if rt.admin == nil {
		return ""
	}
	return rt.admin.Addr()
}

// health adds a /healthz check.
func (rt *runtime) health(name string, check func() error) {
	if rt.admin != nil {
		rt.admin.AddHealth(name, check)
	}
}

// run runs daemons (the admin endpoint first): it starts their Main in
// order, waits for ctx to end or one of them to stop, then drains and exits
// them in reverse order within shutdownGrace.
func (rt *runtime) run(ctx context.Context, daemons ...daemon.Named) error {
	if rt.admin != nil {
		daemons = append([]daemon.Named{{Name: "admin", Daemon: rt.admin}}, daemons...)
	}
	type result struct {
		name string
		err  error
	}
	done := make(chan result, len(daemons))
	for _, d := range daemons {
		go func() { done <- result{d.Name, d.Main()} }()
	}
	if rt.started != nil {
		go rt.started()
	}
	var first error
	running := len(daemons)
	select {
	case <-ctx.Done():
		rt.log.Info("shutting down", "grace", shutdownGrace)
	case r := <-done:
		running--
		if r.err != nil {
			first = fmt.Errorf("%s: %w", r.name, r.err)
			rt.log.Error("daemon failed, shutting down", "daemon", r.name, "err", r.err)
		} else {
			rt.log.Info("daemon stopped, shutting down", "daemon", r.name)
		}
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for i := len(daemons) - 1; i >= 0; i-- {
		d := daemons[i]
		if err := d.Drain(stopCtx); err != nil {
			rt.log.Warn("drain", "daemon", d.Name, "err", err)
		}
		d.Exit()
	}
	for ; running > 0; running-- {
		select {
		case r := <-done:
			if r.err != nil && first == nil {
				first = fmt.Errorf("%s: %w", r.name, r.err)
			}
		case <-stopCtx.Done():
			return fmt.Errorf("shutdown: %d daemons still running after %v", running, shutdownGrace)
		}
	}
	rt.log.Info("stopped")
	return first
}
