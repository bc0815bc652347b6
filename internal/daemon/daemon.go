// Package daemon holds the one lifecycle every long-running part of noon
// shares: the broker, yellow, the BrokerList, a service instance, the login
// HTTP API and the admin endpoint. cmd/noon runs a list of them (STYLE.md,
// "Daemon lifecycle").
package daemon

import "context"

// Daemon is a long-running server. Its constructor (New) validates the
// options and binds the listeners; then:
//
//   - Main runs it until Exit (or a Drain, which ends in Exit) and returns
//     nil then, or the first fatal error. It never calls os.Exit. Call it
//     once, usually in its own goroutine.
//   - Drain stops it gracefully within ctx: it stops taking new work (a
//     registered daemon says so in yellow first), lets the work in flight
//     finish, then exits. It returns an error if ctx ended before the work
//     was done (the rest is cut short). A daemon with nothing to hand over
//     simply exits.
//   - Exit stops it at once: it closes the listeners, stops its goroutines
//     and waits for them. It is idempotent, may be called before or without
//     Main, and ends Main.
type Daemon interface {
	Main() error
	Drain(ctx context.Context) error
	Exit()
}

// Named is a daemon with the name its logs and errors use ("broker",
// "service login").
type Named struct {
	Name string
	Daemon
}
