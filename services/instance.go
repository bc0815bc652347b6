package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/noonhq/noon/internal/daemon"
)

var _ daemon.Daemon = (*Instance)(nil)

// Instance is one running instance of a service module (Module.Start): its
// Server with the module's hooks, and the module's own daemons (login's
// HTTP API), as one daemon.Daemon.
type Instance struct {
	name string
	srv  *Server
	impl *Impl
	env  *Env
	log  *slog.Logger

	releaseOnce sync.Once
	drainReq    atomic.Pointer[func()] // OnDrainRequest
}

// Server returns the instance's Server.
func (i *Instance) Server() *Server { return i.srv }

// Banner returns the lines `noon dev` prints about the service.
func (i *Instance) Banner() []string { return i.impl.Banner }

// Ready returns nil once the instance is registered in yellow and takes
// requests (Server.Ready): its /readyz check.
func (i *Instance) Ready() error { return i.srv.Ready() }

// OnDrainRequest makes f what runs when an admin asks the instance to
// drain (wire.MethodDrain, noonctl drain): `noon service` passes its
// runtime's graceful shutdown, so the process drains as on SIGTERM. f must
// return at once and may run more than once. Without one the instance
// drains itself (Drain, bounded by its drain_timeout) and its Main
// returns: what `noon dev` does, where one process runs every service.
func (i *Instance) OnDrainRequest(f func()) {
	if f == nil {
		i.drainReq.Store(nil)
		return
	}
	i.drainReq.Store(&f)
}

// requestDrain is the Server's drain request: OnDrainRequest's function,
// else a Drain of the instance.
func (i *Instance) requestDrain() {
	if f := i.drainReq.Load(); f != nil {
		(*f)()
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), i.srv.Options().DrainTimeout)
		defer cancel()
		if err := i.Drain(ctx); err != nil {
			i.log.Warn("services: drain", "err", err)
		}
	}()
}

// Main registers the instance with yellow and runs the module's daemons
// until Exit (or Drain, which ends in Exit). It returns nil then, or the
// first fatal error of one of them, after calling Exit.
func (i *Instance) Main() error {
	errc := make(chan error, len(i.impl.Daemons)+1)
	for _, d := range i.impl.Daemons {
		go func() {
			if err := d.Main(); err != nil {
				errc <- fmt.Errorf("%s: %w", d.Name, err)
				return
			}
			errc <- nil
		}()
	}
	go func() { errc <- i.srv.Main() }()
	var first error
	for range cap(errc) {
		if err := <-errc; err != nil && first == nil {
			first = err
			i.log.Error("services: instance failed, exiting", "err", err)
			i.Exit()
		}
	}
	return first
}

// Drain shuts the instance down without failing requests: the module's
// daemons drain, then the module's Drain hook runs (the room service hands
// its rooms over), then the Server drains (see Server.Drain); then it
// exits. It returns what went wrong, joined.
func (i *Instance) Drain(ctx context.Context) error {
	var errs []error
	for _, d := range i.impl.Daemons {
		if err := d.Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.Name, err))
		}
	}
	if i.impl.Drain != nil {
		if err := i.impl.Drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := i.srv.Drain(ctx); err != nil {
		errs = append(errs, err)
	}
	i.Exit()
	return errors.Join(errs...)
}

// Exit stops the instance at once: the module's daemons and the Server
// exit, then the module's Close runs. It is idempotent.
func (i *Instance) Exit() {
	i.srv.Exit()
	i.release()
}

// release exits the module's daemons, runs its Close and closes the Env's
// Client, once.
func (i *Instance) release() {
	i.releaseOnce.Do(func() {
		for _, d := range i.impl.Daemons {
			d.Exit()
		}
		if i.impl.Close != nil {
			i.impl.Close()
		}
		i.env.closeClient()
	})
}
