package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
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
// endpoint (/metrics, /healthz, /readyz, /drain), and the graceful drain
// that SIGTERM, POST /drain and an admin's drain request (noonctl drain)
// all start.
type runtime struct {
	log   *slog.Logger
	admin *metrics.Admin
	// started, when set, runs in its own goroutine once every daemon's
	// Main has been started (noon dev waits there for the platform to be ready
	// and prints its banner).
	started func()

	drainOnce sync.Once
	drainReq  chan struct{} // closed by requestDrain
	drained   chan struct{} // closed once every daemon but the admin endpoint drained
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
	rt := &runtime{log: log, drainReq: make(chan struct{}), drained: make(chan struct{})}
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
		adm.OnDrain(rt.requestDrain, rt.drained)
	}
	return rt, nil
}

// requestDrain starts the graceful shutdown, as the first SIGTERM does:
// run drains every daemon in reverse order and returns. It returns at once
// and may be called more than once (POST /drain, an admin's drain request
// over the links).
func (rt *runtime) requestDrain() {
	if rt.admin != nil {
		rt.admin.SetDraining()
	}
	rt.drainOnce.Do(func() { close(rt.drainReq) })
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

// health adds a /healthz check: liveness (the daemon's goroutines run; a
// failing check asks to restart the process), not dependency health.
func (rt *runtime) health(name string, check func() error) {
	if rt.admin != nil {
		rt.admin.AddHealth(name, check)
	}
}

// ready adds a /readyz check: the daemon can take work (registered in
// yellow, routes synced). /readyz also answers 503 "draining" once the
// shutdown began.
func (rt *runtime) ready(name string, check func() error) {
	if rt.admin != nil {
		rt.admin.AddReady(name, check)
	}
}

// run runs daemons (the admin endpoint first): it starts their Main in
// order, waits for ctx to end (SIGTERM), a drain request (requestDrain) or
// one of them to stop, then drains and exits them in reverse order within
// shutdownGrace. /readyz answers "draining" from the start of the
// shutdown, and GET /drain waiters are answered once every daemon but the
// admin endpoint (drained last) has drained.
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
	case <-rt.drainReq:
		rt.log.Info("drain requested, shutting down", "grace", shutdownGrace)
	case r := <-done:
		running--
		if r.err != nil {
			first = fmt.Errorf("%s: %w", r.name, r.err)
			rt.log.Error("daemon failed, shutting down", "daemon", r.name, "err", r.err)
		} else {
			rt.log.Info("daemon stopped, shutting down", "daemon", r.name)
		}
	}
	if rt.admin != nil {
		rt.admin.SetDraining()
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for i := len(daemons) - 1; i >= 0; i-- {
		d := daemons[i]
		if i == 0 && rt.admin != nil {
			// Everything but the admin endpoint has drained: answer the
			// waiters of GET /drain before it shuts down.
			close(rt.drained)
		}
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
