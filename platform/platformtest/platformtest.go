// Package platformtest starts the in-process platform (package platform)
// for a test: yellow, the given service modules, the BrokerList and a
// broker, all on loopback port 0 with a short heartbeat, mutual TLS on
// every internal link (the test binary's one ephemeral CA), in-memory
// stores and an in-process Redis unless the test gives its own; it waits
// until the platform is ready (by event) and stops it in t.Cleanup.
// StartBroker adds a second broker, for tests of what crosses brokers.
package platformtest

import (
	"context"
	"testing"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/yellow"
)

// Heartbeat is the heartbeat of every daemon the harness starts: short,
// so that expiry takes about half a second, yet long enough not to happen
// by accident on a busy 2-core machine running -race.
const Heartbeat = 100 * time.Millisecond

// readyTimeout bounds the wait for the platform to be ready: far more than
// it takes (milliseconds), so only a real failure trips it.
const readyTimeout = 20 * time.Second

// Options returns the harness's platform options for modules: every
// listener on 127.0.0.1 port 0, the test heartbeat, no rate limit, the
// test's logger, TLS on with testenv.PKI (set TLS to nil for plain
// links). A test changes what it needs before Start.
func Options(t testing.TB, modules ...services.Module) platform.Options {
	t.Helper()
	yo := yellow.NewOptions()
	yo.RouterAddr, yo.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	yo.Heartbeat, yo.TickInterval = Heartbeat, Heartbeat
	bo := broker.NewOptions()
	bo.Edge.TCPAddr, bo.Edge.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	bo.Edge.Rate = 0
	bo.Heartbeat = Heartbeat
	bo.DrainGrace = 300 * time.Millisecond
	blo := brokerlist.NewOptions()
	blo.Addr = "127.0.0.1:0"
	blo.Heartbeat = Heartbeat
	sections := map[string]services.Section{}
	for _, m := range modules {
		sec := m.NewSection()
		rt := sec.Runtime()
		rt.Bind, rt.PubBind = services.DefaultBind, services.DefaultPubBind
		rt.Heartbeat = Heartbeat
		sections[m.Name()] = sec
	}
	return platform.Options{
		Yellow:     yo,
		Broker:     bo,
		BrokerList: blo,
		Modules:    modules,
		Sections:   sections,
		Log:        testenv.Logger(t),
		TLS:        testenv.PKI(t),
	}
}

// StartBroker starts another broker for p, as a second broker of a
// cluster: p's broker options with a new id, fresh port-0 listeners and a
// control socket, against p's yellow. It waits until the broker routes every
// service of p and exits it when the test ends.
func StartBroker(t testing.TB, p *platform.Platform) *broker.Broker {
	t.Helper()
	bo := p.Broker.Options()
	bo.ID, bo.Advertise = "", ""
	bo.Edge.TCPAddr, bo.Edge.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	bo.Control = broker.DefaultControl
	b, err := broker.New(bo, testenv.Logger(t).With("daemon", "broker2"), nil)
	if err != nil {
		t.Fatalf("platformtest: broker: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Main() }()
	t.Cleanup(func() {
		b.Exit()
		if err := <-done; err != nil {
			t.Errorf("platformtest: broker Main: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := b.WaitRoutable(ctx, p.Services...); err != nil {
		t.Fatalf("platformtest: broker not ready after %v: %v", readyTimeout, err)
	}
	return b
}

// Start starts the platform of opts (see Options), waits until it is
// ready and stops it when the test ends. Without opts.Env.Redis, an
// in-process Redis serves the modules that need one.
func Start(t testing.TB, opts platform.Options) *platform.Platform {
	t.Helper()
	if opts.Env.Redis == nil {
		rc, _, stop, err := stores.EmbeddedRedis()
		if err != nil {
			t.Fatalf("platformtest: %v", err)
		}
		t.Cleanup(stop)
		opts.Env.Redis = rc
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	p, err := platform.New(ctx, opts)
	if err != nil {
		t.Fatalf("platformtest: %v", err)
	}
	done := make(chan error, len(p.Daemons))
	for _, d := range p.Daemons {
		go func() { done <- d.Main() }()
	}
	t.Cleanup(func() {
		p.Exit()
		for range p.Daemons {
			if err := <-done; err != nil {
				t.Errorf("platformtest: a daemon's Main: %v", err)
			}
		}
	})
	if err := p.Ready(ctx); err != nil {
		t.Fatalf("platformtest: not ready after %v: %v", readyTimeout, err)
	}
	return p
}

// Admin gives opts an admin HTTP endpoint on loopback port 0, as `noon dev`
// has: every daemon's metrics on its /metrics, and every instance and the
// broker publishing its address in yellow (the meta label wire.MetaAdmin).
// Call it before Start; the endpoint stops when the test ends.
func Admin(t testing.TB, opts *platform.Options) *metrics.Admin {
	t.Helper()
	adm, err := metrics.NewAdmin("127.0.0.1:0", nil, nil, testenv.Logger(t).With("component", "admin"))
	if err != nil {
		t.Fatalf("platformtest: admin: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- adm.Main() }()
	t.Cleanup(func() {
		adm.Exit()
		<-done
	})
	opts.Sink = func(daemon string) metrics.Sink {
		reg := metrics.NewRegistry(daemon)
		adm.AddRegistry(reg)
		return reg
	}
	opts.Health = adm.AddHealth
	opts.AdminAddr = adm.Addr()
	return adm
}
