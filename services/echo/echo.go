// Package echo is the echo service: a newcomer's first call, and what the
// runtime's tests and benchmarks use. echo.Echo returns its payload
// unchanged, echo.Sleep waits, echo.Fail returns the error it is asked for.
package echo

import (
	"context"
	"log/slog"
	"time"

	"github.com/noonhq/noon/wire"

	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/services"
)

// Name is the echo service's name in yellow and the prefix of its methods.
const Name = "echo"

// Module is the echo service as a module: stateless, no options, no
// stores; `noon service echo` and `noon dev` run it.
var Module = services.NewModule(services.Def[services.NoOptions]{
	Name:    Name,
	Kind:    services.KindStateless,
	Summary: "returns what it is sent (echo.Echo), sleeps (echo.Sleep), fails on request (echo.Fail)",
	Example: `echo.Echo '"hello"'`,
	Build: func(context.Context, *services.Env, services.NoOptions) (*services.Impl, error) {
		return &services.Impl{Handlers: Handlers()}, nil
	},
})

// The echo service's methods.
const (
	// MethodEcho replies with the request payload, raw bytes, unchanged.
	MethodEcho = "echo.Echo"
	// MethodSleep waits SleepRequest.ms milliseconds, then replies SleepReply.
	MethodSleep = "echo.Sleep"
	// MethodFail returns the error FailRequest asks for.
	MethodFail = "echo.Fail"
)

// MaxSleepMs bounds echo.Sleep: the runtime's default maximum request
// timeout (60 s); a longer sleep could only end in timeout.
const MaxSleepMs = 60_000

// Handlers returns the echo service's handlers, keyed by method.
func Handlers() map[string]services.HandlerFunc {
	return map[string]services.HandlerFunc{
		MethodEcho:  handleEcho,
		MethodSleep: wire.Typed(echopb.NewSleepRequest, handleSleep),
		MethodFail:  wire.Typed(echopb.NewFailRequest, handleFail),
	}
}

// NewServer returns a services.Server serving the echo handlers; an empty
// opts.Name becomes Name.
func NewServer(opts services.Options, log *slog.Logger) (*services.Server, error) {
	if opts.Name == "" {
		opts.Name = Name
	}
	return services.NewServer(opts, Handlers(), log)
}

func handleEcho(_ context.Context, _ *services.Session, payload []byte) ([]byte, error) {
	return payload, nil
}

func handleSleep(ctx context.Context, _ *services.Session, req *echopb.SleepRequest) (*echopb.SleepReply, error) {
	if req.Ms < 0 || req.Ms > MaxSleepMs {
		return nil, wire.Errorf(wire.CodeBadRequest, "ms must be in [0, %d], got %d", MaxSleepMs, req.Ms)
	}
	start := time.Now()
	t := time.NewTimer(time.Duration(req.Ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return &echopb.SleepReply{SleptMs: req.Ms}, nil
	case <-ctx.Done():
		return nil, wire.Errorf(wire.CodeTimeout, "slept %d of %d ms", time.Since(start).Milliseconds(), req.Ms)
	}
}

func handleFail(_ context.Context, _ *services.Session, req *echopb.FailRequest) (*echopb.SleepReply, error) {
	if !wire.KnownCode(req.Code) {
		return nil, wire.Errorf(wire.CodeBadRequest, "unknown error code %q", wire.Snippet(req.Code))
	}
	return nil, wire.NewError(req.Code, req.Message)
}
