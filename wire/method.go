package wire

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/internal/thriftx"
)

// Method describes one method of an API: its name ("<service>.<Method>")
// and its request and reply structs. A nil constructor means the payload is
// raw bytes (echo.Echo), written in JSON as a string. `make gen` produces a
// table of them per service from the service blocks of idl/*.thrift.
type Method struct {
	Name     string
	NewReq   func() thrift.TStruct
	NewReply func() thrift.TStruct
}

// EncodeJSON turns a JSON request body into the method's wire payload.
func (m Method) EncodeJSON(body []byte) ([]byte, error) {
	if m.NewReq == nil {
		var s string
		if err := json.Unmarshal(body, &s); err != nil {
			return nil, fmt.Errorf("%s takes raw bytes: give a JSON string: %w", m.Name, err)
		}
		return []byte(s), nil
	}
	req := m.NewReq()
	if len(body) > 0 {
		if err := json.Unmarshal(body, req); err != nil {
			return nil, fmt.Errorf("%s: request JSON: %w", m.Name, err)
		}
	}
	return thriftx.Marshal(req)
}

// DecodeJSON turns the method's wire reply payload into JSON.
func (m Method) DecodeJSON(payload []byte) ([]byte, error) {
	if m.NewReply == nil {
		return json.Marshal(string(payload))
	}
	rep := m.NewReply()
	if err := thriftx.Unmarshal(payload, rep); err != nil {
		return nil, fmt.Errorf("%s: reply: %w", m.Name, err)
	}
	return json.Marshal(rep)
}

// CallFunc calls method with req encoded as Thrift compact and decodes the
// reply into reply: what a generated client stub calls through. The Go
// client's (*client.Client).CallThrift and the service runtime's
// (*services.Client).Call are CallFuncs.
type CallFunc func(ctx context.Context, method string, req, reply thrift.TStruct) error

// Handler serves one method: it gets the request's context (carrying the
// deadline), the caller's session (S is the runtime's session type,
// *services.Session) and the request payload (the Thrift compact encoding
// of the request struct), and returns the reply payload or an error. An
// *Error replies with its code; other errors are mapped by CodeOf, and an
// internal error's text is logged, not sent.
type Handler[S any] func(ctx context.Context, s S, payload []byte) ([]byte, error)

// Typed adapts a handler of Thrift structs to a Handler: the payload is
// decoded into newReq() with thriftx (a payload that does not decode is
// answered bad_request without calling fn), and fn's reply is encoded. A nil
// reply encodes as an empty payload. Generated registration helpers use it.
func Typed[S any, Req, Resp thrift.TStruct](newReq func() Req, fn func(ctx context.Context, s S, req Req) (Resp, error)) Handler[S] {
	return func(ctx context.Context, s S, payload []byte) ([]byte, error) {
		req := newReq()
		if err := thriftx.Unmarshal(payload, req); err != nil {
			return nil, Errorf(CodeBadRequest, "%v", err)
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
			return nil, Errorf(CodeInternal, "encoding reply: %v", err)
		}
		return out, nil
	}
}

// Call calls method through call with req and returns the reply, decoded
// into newReply(): the body of every generated client stub.
func Call[Resp thrift.TStruct](ctx context.Context, call CallFunc, method string, req thrift.TStruct, newReply func() Resp) (Resp, error) {
	reply := newReply()
	if err := call(ctx, method, req, reply); err != nil {
		var zero Resp
		return zero, err
	}
	return reply, nil
}
