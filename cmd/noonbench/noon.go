package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/yellow"
)

// Timeouts of the in-process platform.
const (
	// routableTimeout bounds the wait until the broker routes echo.Echo:
	// registration and discovery take a heartbeat or two.
	routableTimeout = 15 * time.Second
	// stopTimeout bounds the wait for a daemon's Main to return after
	// Exit.
	stopTimeout = 5 * time.Second
	// benchIdleTimeout is the broker's idle timeout here: long enough that
	// the idle test's connections, which send nothing after their hello,
	// outlive the test on a slow machine.
	benchIdleTimeout = 10 * time.Minute
)

// errBrokerUnavailable marks a failure to start the in-process platform.
var errBrokerUnavailable = errors.New("broker unavailable")

// noonStack is the platform in this process (package platform, as `noon
// dev` runs it): one yellow, one echo instance, the BrokerList and one
// broker, each on loopback port 0, with mutual TLS on every internal link
// (tls) or plain links.
type noonStack struct {
	p     *platform.Platform
	y     *yellow.Yellow
	echo  *services.Server
	b     *broker.Broker
	tls   *pki.Ephemeral // nil: plain links
	mains []chan error
}

// startNoon starts the platform with an echo instance able to run
// concurrency requests at once and a broker with rate limiting and the auth
// timeout off (the benchmark calls only the public echo route and holds
// idle connections without logging in), with TLS on every internal link
// (an ephemeral CA, as noon dev) when tls is set, and waits until it is
// ready (by event: the broker routes echo).
func startNoon(ctx context.Context, log *slog.Logger, concurrency int, tls bool) (_ *noonStack, err error) {
	return startNoonWith(ctx, log, concurrency, tls, nil)
}

// startNoonWith is startNoon with the broker's options edited by edit
// (when not nil) after the benchmark's own settings.
func startNoonWith(ctx context.Context, log *slog.Logger, concurrency int, tls bool, edit func(*broker.Options)) (_ *noonStack, err error) {
	n := &noonStack{}
	defer func() {
		if err != nil {
			n.close()
			err = fmt.Errorf("%w: %w", errBrokerUnavailable, err)
		}
	}()
	yopts := yellow.NewOptions()
	yopts.RouterAddr, yopts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	bopts := broker.NewOptions()
	bopts.Edge.TCPAddr = "127.0.0.1:0"
	bopts.Edge.WSAddr = ""
	bopts.Edge.Rate = 0
	bopts.Edge.AuthTimeout = 0
	bopts.Edge.IdleTimeout = benchIdleTimeout
	if edit != nil {
		edit(&bopts)
	}
	blopts := brokerlist.NewOptions()
	blopts.Addr = "127.0.0.1:0"
	sec := echo.Module.NewSection()
	sec.Runtime().Concurrency = max(services.DefaultConcurrency, concurrency)
	if tls {
		if n.tls, err = pki.NewEphemeral(); err != nil {
			return nil, err
		}
	}
	if n.p, err = platform.New(ctx, platform.Options{
		Yellow:     yopts,
		Broker:     bopts,
		BrokerList: blopts,
		Modules:    []services.Module{echo.Module},
		Sections:   map[string]services.Section{echo.Name: sec},
		Log:        log,
		TLS:        n.tls,
	}); err != nil {
		return nil, err
	}
	n.y, n.echo, n.b = n.p.Yellow, n.p.Instances[0].Server(), n.p.Broker
	for _, d := range n.p.Daemons {
		done := make(chan error, 1)
		n.mains = append(n.mains, done)
		go func() { done <- d.Main() }()
	}
	rctx, cancel := context.WithTimeout(ctx, routableTimeout)
	defer cancel()
	if err := n.p.Ready(rctx); err != nil {
		return nil, fmt.Errorf("the platform is not ready after %v: %w", routableTimeout, err)
	}
	return n, nil
}

// credentials returns the credentials of id from the stack's CA, or nil
// with plain links: for more daemons joining it (the login scenario's).
func (n *noonStack) credentials(id pki.Identity) (*pki.Credentials, error) {
	if n.tls == nil {
		return nil, nil
	}
	return n.tls.Credentials(id)
}

// addr returns the broker's client TCP address.
func (n *noonStack) addr() string { return n.b.TCPAddr().String() }

// held returns the number of client connections the broker holds.
func (n *noonStack) held() int { return int(n.b.Edge().Stats().Conns) }

// close stops the platform's daemons in reverse order and waits (briefly)
// for their Mains.
func (n *noonStack) close() {
	if n.p != nil {
		n.p.Exit()
	}
	for _, done := range n.mains {
		select {
		case <-done:
		case <-time.After(stopTimeout):
		}
	}
}
