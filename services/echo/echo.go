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
	"github.com/noonhq/noon/idl/gen/echo/echorpc"
	"github.com/noonhq/noon/services"
)

// Name is the echo service's name in yellow and the prefix of its methods.
const Name = echorpc.Service

// Module is the echo service as a module: stateless, no options, no
// stores; `noon service echo` and `noon dev` run it.
var Module = services.NewModule(services.Def[services.NoOptions]{
	Name:    Name,
	Kind:    services.KindStateless,
	Summary: "returns what it is sent (echo.Echo), sleeps (echo.Sleep), fails on request (echo.Fail)",
	Example: `echo.Echo '"hello"'`,
	Build: func(context.Context, *services.Env, services.NoOptions) (*services.Impl, error) {
		return &services.Impl{Handlers: Handlers(), Inline: Inline()}, nil
	},
})

// The echo service's methods, from service Echo in idl/echo.thrift. They
// are the generated constants, named here for the service runtime's tests.
const (
	// MethodEcho replies with the request payload, raw bytes, unchanged.
	MethodEcho = echorpc.MethodEcho
	// MethodSleep waits SleepRequest.ms milliseconds, then replies SleepReply.
	MethodSleep = echorpc.MethodSleep
	// MethodFail returns the error FailRequest asks for.
	MethodFail = echorpc.MethodFail
)

// MaxSleepMs bounds echo.Sleep: the runtime's default maximum request
// timeout (60 s); a longer sleep could only end in timeout.
const MaxSleepMs = 60_000

// Handlers returns the echo service's handlers, keyed by method.
func Handlers() map[string]services.HandlerFunc {
	return echorpc.Handlers[*services.Session](api{})
}

// Inline returns the methods whose handlers never block (Echo and Fail;
// Sleep waits): see services.Options.Inline.
func Inline() []string { return []string{MethodEcho, MethodFail} }

// api serves service Echo (echorpc.Server).
type api struct{}

// NewServer returns a services.Server serving the echo handlers; an empty
// opts.Name becomes Name.
func NewServer(opts services.Options, log *slog.Logger) (*services.Server, error) {
	if opts.Name == "" {
		opts.Name = Name
	}
	if opts.Inline == nil {
		opts.Inline = Inline()
	}
	return services.NewServer(opts, Handlers(), log)
}

// Echo replies with payload.
func (api) Echo(_ context.Context, _ *services.Session, payload []byte) ([]byte, error) {
	return payload, nil
}

// Sleep waits req.Ms milliseconds, or until ctx ends.
func (api) Sleep(ctx context.Context, _ *services.Session, req *echopb.SleepRequest) (*echopb.SleepReply, error) {
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

// Fail returns the error req asks for.
func (api) Fail(_ context.Context, _ *services.Session, req *echopb.FailRequest) (*echopb.SleepReply, error) {
	if !wire.KnownCode(req.Code) {
		return nil, wire.Errorf(wire.CodeBadRequest, "unknown error code %q", wire.Snippet(req.Code))
	}
	return nil, wire.NewError(req.Code, req.Message)
}
