// Package services is noon's service runtime: how a service serves its
// methods, and how anything calls a service.
//
// Serving: a Server binds a ZeroMQ ROUTER (internal/link), registers with
// every yellow, and runs one HandlerFunc per method ("<service>.<Method>").
// Each request runs with the caller's deadline (capped at MaxTimeout) in its
// context and the caller's Session; at most Concurrency run at once, and one
// more is answered "overloaded" at once; a panic becomes "internal"; Drain
// takes the instance out of rotation without failing a request.
//
//	s, err := services.NewServer(opts, map[string]services.HandlerFunc{
//		"echo.Sleep": wire.Typed(echo.NewSleepRequest, sleep),
//	}, log)
//	go s.Main()
//	defer s.Drain(ctx)
//
// Calling: a Client (over a Pool that follows yellow and keeps one link per
// instance) sends a request point-to-point to the least-loaded live instance
// of the method's service:
//
//	c := services.NewClient(services.ClientOptions{Yellows: yellows})
//	err := c.Call(ctx, "echo.Sleep", &echo.SleepRequest{Ms: 10}, &reply)
//
// Writing a service: a service package exports its Name and one Module,
// made by NewModule from a Def[O] (O is the service's own options type,
// NoOptions when it has none): name, kind, summary, options with defaults
// and validation, Needs (Postgres, Redis, a PUB socket), embedded
// Migrations with the schema its options name, and Build, which gets an Env
// (logger, metrics, the stores it asked for, a Client) and returns an Impl:
// its handlers and lifecycle hooks (Attach, Drain, extra Daemons, Close,
// Banner). Its config section, services.<name>, is a Config[O]: the
// runtime's Options and O inlined into one mapping. cmd/noon lists the
// modules and derives every command from the list; Module.Start returns an
// Instance, the Server with the hooks as one daemon.Daemon.
//
// Errors on the wire are "<code>: <text>" with the code from a small stable
// set (CodeNotFound, CodeUnavailable, ...); handlers return them as *Error,
// and a Client returns every failure as one.
package services
