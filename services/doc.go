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
// Errors on the wire are "<code>: <text>" with the code from a small stable
// set (CodeNotFound, CodeUnavailable, ...); handlers return them as *Error,
// and a Client returns every failure as one.
package services
