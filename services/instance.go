package services

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

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
}

// Server returns the instance's Server.
func (i *Instance) Server() *Server { return i.srv }

// Banner returns the lines `noon dev` prints about the service.
func (i *Instance) Banner() []string { return i.impl.Banner }

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
