package services

import (
	"context"
	"log/slog"

	"github.com/noonhq/noon/wire"
)

// HandlerFunc serves one method (wire.Handler with the runtime's Session):
// it gets the request's context (carrying the deadline), the caller's
// session and the request payload, and returns the reply payload or an
// error. An *wire.Error replies with its code; other errors are mapped by
// wire.CodeOf, and an internal error's text is logged, not sent. Generated
// registration helpers (idl/gen/<service>.Handlers) build them with
// wire.Typed.
type HandlerFunc = wire.Handler[*Session]

type loggerKey struct{}

// Logger returns the request's logger (with the method, request id and
// session) inside a handler, or slog.Default() elsewhere.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
