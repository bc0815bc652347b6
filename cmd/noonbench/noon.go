package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/idl/gen/echo/echorpc"
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

// noonStack is the platform in this process: one yellow, one echo
// instance, one broker, each on loopback port 0.
type noonStack struct {
	y     *yellow.Yellow
	echo  *services.Server
	b     *broker.Broker
	mains []chan error
}

// startNoon starts yellow, an echo instance able to run concurrency
// requests at once, and a broker with rate limiting and the auth timeout
// off (the benchmark calls only the public echo route and holds idle
// connections without logging in), and waits until the broker routes
// echo.Echo.
func startNoon(ctx context.Context, log *slog.Logger, concurrency int) (_ *noonStack, err error) {
	n := &noonStack{}
	defer func() {
		if err != nil {
			n.close()
			err = fmt.Errorf("%w: %w", errBrokerUnavailable, err)
		}
	}()

	yopts := yellow.NewOptions()
	yopts.RouterAddr, yopts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	if n.y, err = yellow.New(yopts, log.With("daemon", "yellow")); err != nil {
		return nil, err
	}
	n.run(n.y.Main)

	eopts := services.NewOptions()
	eopts.Yellows = []string{n.y.RouterEndpoint()}
	eopts.Concurrency = max(services.DefaultConcurrency, concurrency)
	if n.echo, err = echo.NewServer(eopts, log.With("daemon", "echo")); err != nil {
		return nil, err
	}
	n.run(n.echo.Main)

	bopts := broker.NewOptions()
	bopts.Edge.TCPAddr = "127.0.0.1:0"
	bopts.Edge.WSAddr = ""
	bopts.Edge.Rate = 0
	bopts.Edge.AuthTimeout = 0
	bopts.Edge.IdleTimeout = benchIdleTimeout
	bopts.Yellows = []string{n.y.RouterEndpoint()}
	if n.b, err = broker.New(bopts, log.With("daemon", "broker"), nil); err != nil {
		return nil, err
	}
	n.run(n.b.Main)

	if err := n.waitRoutable(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// run runs main in a goroutine, keeping its result for close.
func (n *noonStack) run(main func() error) {
	done := make(chan error, 1)
	n.mains = append(n.mains, done)
	go func() { done <- main() }()
}

// waitRoutable calls echo.Echo through the broker until it succeeds.
func (n *noonStack) waitRoutable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, routableTimeout)
	defer cancel()
	c, err := client.Dial(ctx, n.addr(), client.Options{DialTimeout: routableTimeout})
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		_, err := c.Call(ctx, echorpc.MethodEcho, []byte("ping"))
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the broker does not route %s after %v: %w", echorpc.MethodEcho, routableTimeout, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// addr returns the broker's client TCP address.
func (n *noonStack) addr() string { return n.b.TCPAddr().String() }

// held returns the number of client connections the broker holds.
func (n *noonStack) held() int { return int(n.b.Edge().Stats().Conns) }

// close stops the broker, the echo instance and yellow, in that order,
// and waits (briefly) for their Mains.
func (n *noonStack) close() {
	if n.b != nil {
		n.b.Exit()
	}
	if n.echo != nil {
		n.echo.Exit()
	}
	if n.y != nil {
		n.y.Exit()
	}
	for _, done := range n.mains {
		select {
		case <-done:
		case <-time.After(stopTimeout):
		}
	}
}
