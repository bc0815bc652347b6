package services

import (
	"context"
	"log/slog"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// HandlerFunc serves one method: it gets the request's context (carrying
// the deadline), the caller's session and the request payload (the Thrift
// compact encoding of the request struct), and returns the reply payload or
// an error. An *Error replies with its code; other errors are mapped by
// CodeOf, and an internal error's text is logged, not sent.
type HandlerFunc func(ctx context.Context, s *Session, payload []byte) ([]byte, error)

// Typed adapts a handler of Thrift structs to a HandlerFunc: the payload is
// decoded into newReq() with thriftx (a payload that does not decode is
// answered bad_request without calling fn), and fn's reply is encoded. A nil
// reply encodes as an empty payload.
func Typed[Req, Resp thrift.TStruct](newReq func() Req, fn func(ctx context.Context, s *Session, req Req) (Resp, error)) HandlerFunc {
	return func(ctx context.Context, s *Session, payload []byte) ([]byte, error) {
		req := newReq()
		if err := thriftx.Unmarshal(payload, req); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		resp, err := fn(ctx, s, req)
		if err != nil {
			return nil, err
		}
		if any(resp) == nil {
			return nil, nil
		}
		out, err := thriftx.Marshal(resp)
		if err != nil {
			return nil, wire.Errorf(wire.CodeInternal, "encoding reply: %v", err)
		}
		return out, nil
	}
}

type loggerKey struct{}

// Logger returns the request's logger (with the method, request id and
// session) inside a handler, or slog.Default() elsewhere.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}
