// Package platform assembles the whole noon platform in one process:
// yellow, one instance of every service module, the BrokerList and a
// broker, all finding each other through that yellow, with mutual TLS on
// every internal link when given an ephemeral CA (noon dev always is). It is the one
// in-process platform: `noon dev` runs it on the configured ports,
// noonbench measures it, and tests start it on port 0 through
// platform/platformtest.
//
// New binds everything (so the real addresses are known at once) and
// returns the daemons in start order; the caller runs their Main. Ready
// waits, by event, until the broker routes every service and the
// BrokerList lists the broker.
package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/yellow"
)

// Options configures a Platform.
type Options struct {
	// Yellow, BrokerList and Broker configure the platform daemons; their
	// yellows are set to the platform's own yellow.
	Yellow     yellow.Options
	BrokerList brokerlist.Options
	Broker     broker.Options
	// Modules are the services to run, one instance each, in this order.
	Modules []services.Module
	// Sections holds a module's config section by service name; a module
	// without one runs on its defaults (NewSection).
	Sections map[string]services.Section
	// Instances runs more than one instance of a service (by name; absent
	// or below 1: one), each on a copy of its section adjusted by the
	// module's ForInstance, all in this process: two matchmakers placing
	// on two room instances, in a test or a benchmark.
	Instances map[string]int
	// Env gives the modules their stores (Postgres nil: in-memory; Redis
	// for the modules that need it). Log, Metrics and Yellows are set per
	// module.
	Env services.Env
	// Log receives every daemon's logs; nil discards them.
	Log *slog.Logger
	// Sink returns the metrics sink of a daemon ("yellow", "broker",
	// "service_<name>"); nil exports none.
	Sink func(daemon string) metrics.Sink
	// Health, when set, is given each daemon's health check (liveness).
	Health func(name string, check func() error)
	// Ready, when set, is given each daemon's readiness check: yellow
	// serves, an instance is registered in yellow, the BrokerList has a
	// view of the brokers, the broker's routes are synced and it is
	// registered.
	Ready func(name string, check func() error)
	// TLS, when set, turns on mutual TLS on every internal link: each
	// daemon gets its own certificate from this CA (yellow, broker,
	// broker:brokerlist, service:<name>). Nil: plain links, which the
	// daemons allow on loopback addresses only, unless Insecure.
	TLS *pki.Ephemeral
	// Insecure allows plain links on addresses other than loopback.
	Insecure bool
	// AdminAddr, when set, is the host:port of the admin HTTP serving the
	// daemons' metrics (noon dev's): every instance and the broker publish
	// it in yellow as the meta label wire.MetaAdmin.
	AdminAddr string
	// InProcess lets the broker (and every service) reach the services'
	// instances of this process without a socket (link.ServerOptions.
	// InProcess), under the same checks: `noon dev`. Instances of other
	// processes are reached over their links as always.
	InProcess bool
}

// BrokerListIdentity is the BrokerList's identity: part of the edge, it
// holds a broker certificate.
var BrokerListIdentity = pki.Identity{Role: pki.RoleBroker, Name: "brokerlist"}

// credentials returns id's credentials from opts.TLS, or nil without TLS.
func (opts *Options) credentials(id pki.Identity) (*pki.Credentials, error) {
	if opts.TLS == nil {
		return nil, nil
	}
	return opts.TLS.Credentials(id)
}

// Platform is a running (or ready to run) in-process platform.
type Platform struct {
	Yellow     *yellow.Yellow
	Instances  []*services.Instance // one per module, in Options.Modules order
	BrokerList *brokerlist.Server
	Broker     *broker.Broker
	// Daemons are every daemon in start order: yellow, the instances, the
	// BrokerList, the broker. Stop them in reverse order.
	Daemons []daemon.Named
	// Services are the modules' names.
	Services []string
	// Banner are the lines the modules want `noon dev` to print.
	Banner []string
}

// New binds yellow, starts one instance of each module (serving at once,
// discoverable once its Main runs), and binds the BrokerList and the
// broker. On error everything already made is closed.
func New(ctx context.Context, opts Options) (_ *Platform, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sink := func(name string) metrics.Sink {
		if opts.Sink == nil {
			return metrics.Nop()
		}
		return opts.Sink(name)
	}
	health := func(name string, check func() error) {
		if opts.Health != nil {
			opts.Health(name, check)
		}
	}
	ready := func(name string, check func() error) {
		if opts.Ready != nil {
			opts.Ready(name, check)
		}
	}
	p := &Platform{} // not the result: "return nil, err" must not hide it from the cleanup
	defer func() {
		if err != nil {
			p.Exit()
		}
	}()

	yo := opts.Yellow
	yo.Insecure = opts.Insecure
	if yo.TLS, err = opts.credentials(pki.Identity{Role: pki.RoleYellow}); err != nil {
		return nil, err
	}
	y, err := yellow.New(yo, log.With("daemon", "yellow"))
	if err != nil {
		return nil, err
	}
	y.RegisterMetrics(sink("yellow"))
	health("yellow", y.Health)
	ready("yellow", y.Health)
	p.Yellow = y
	p.Daemons = append(p.Daemons, daemon.Named{Name: "yellow", Daemon: y})
	yellows := []string{y.RouterEndpoint()}

	for _, m := range opts.Modules {
		env := opts.Env
		env.Log = log
		env.Metrics = sink("service_" + m.Name())
		env.Yellows = yellows
		env.Insecure = opts.Insecure
		if env.TLS, err = opts.credentials(pki.Identity{Role: pki.RoleService, Name: m.Name()}); err != nil {
			return nil, err
		}
		sec := opts.Sections[m.Name()]
		if sec == nil {
			sec = m.NewSection()
		}
		sec.Runtime().Yellows = yellows
		sec.Runtime().AdminAddr = opts.AdminAddr
		sec.Runtime().InProcess = opts.InProcess
		count := max(1, opts.Instances[m.Name()])
		for n := 1; n <= count; n++ {
			isec := sec
			name := "service " + m.Name()
			if count > 1 {
				if isec, err = copySection(m, sec); err != nil {
					return nil, fmt.Errorf("service %s: %w", m.Name(), err)
				}
				m.ForInstance(isec, n)
				name = fmt.Sprintf("service %s %d", m.Name(), n)
			}
			inst, err := m.Start(ctx, env, isec)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			ready(name, inst.Ready)
			p.Instances = append(p.Instances, inst)
			p.Daemons = append(p.Daemons, daemon.Named{Name: name, Daemon: inst})
			p.Banner = append(p.Banner, inst.Banner()...)
		}
		p.Services = append(p.Services, m.Name())
	}

	blo := opts.BrokerList
	blo.Yellows = yellows
	if blo.TLS, err = opts.credentials(BrokerListIdentity); err != nil {
		return nil, err
	}
	bl, err := brokerlist.New(blo, log.With("daemon", "brokerlist"))
	if err != nil {
		return nil, err
	}
	ready("brokerlist", BrokerListReady(bl))
	p.BrokerList = bl
	p.Daemons = append(p.Daemons, daemon.Named{Name: "brokerlist", Daemon: bl})

	bo := opts.Broker
	bo.Yellows = yellows
	bo.Insecure = opts.Insecure
	bo.AdminAddr = opts.AdminAddr
	if bo.TLS, err = opts.credentials(pki.Identity{Role: pki.RoleBroker}); err != nil {
		return nil, err
	}
	b, err := broker.New(bo, log.With("daemon", "broker"), sink("broker"))
	if err != nil {
		return nil, err
	}
	health("broker", b.Health)
	ready("broker", b.Ready)
	p.Broker = b
	p.Daemons = append(p.Daemons, daemon.Named{Name: "broker", Daemon: b})
	return p, nil
}

// Ready waits until the broker has a live link to every service and the
// BrokerList lists the broker, or ctx ends. It wakes on changes (the
// router's pool, yellow's view); it does not poll. Call it once the
// daemons' Main run.
func (p *Platform) Ready(ctx context.Context) error {
	if err := p.Broker.WaitRoutable(ctx, p.Services...); err != nil {
		return err
	}
	w := p.BrokerList.Watcher()
	if err := w.WaitFor(ctx, func() bool { return len(brokerlist.Brokers(w).Brokers) > 0 }); err != nil {
		return fmt.Errorf("platform: the BrokerList does not list the broker: %w", err)
	}
	return nil
}

// BrokerListReady is a BrokerList's readiness check: it has had a view of
// the brokers from yellow. A later outage of yellow does not make it
// unready (it serves its last view), and is not a liveness failure either,
// so the BrokerList has no health check beyond its process's.
func BrokerListReady(s *brokerlist.Server) func() error {
	return func() error {
		if s.Watcher().Stats().Syncs == 0 {
			return errors.New("brokerlist: no view of the brokers from yellow yet")
		}
		return nil
	}
}

// Exit closes every daemon at once, in reverse start order.
func (p *Platform) Exit() {
	for i := len(p.Daemons) - 1; i >= 0; i-- {
		p.Daemons[i].Exit()
	}
}

// Drain drains every daemon in reverse start order (the broker first, so
// clients move before the services go), within ctx.
func (p *Platform) Drain(ctx context.Context) error {
	var errs []error
	for i := len(p.Daemons) - 1; i >= 0; i-- {
		if err := p.Daemons[i].Drain(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", p.Daemons[i].Name, err))
		}
	}
	return errors.Join(errs...)
}

// copySection returns a shallow copy of sec, a section of m (a pointer to
// its Config): what ForInstance changes (ports, addresses) is its own,
// and Go-only hooks (a clock, a metrics sink) carry over.
func copySection(m services.Module, sec services.Section) (services.Section, error) {
	v := reflect.ValueOf(sec)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Type() != reflect.TypeOf(m.NewSection()) {
		return nil, fmt.Errorf("section of %T is not the module's", sec)
	}
	cp := reflect.New(v.Type().Elem())
	cp.Elem().Set(v.Elem())
	return cp.Interface().(services.Section), nil
}
