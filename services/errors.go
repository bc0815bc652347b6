package services

import (
	"context"
	"errors"
	"fmt"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
)

// Wire error codes. An error on the wire is "<code>: <human text>" with the
// code from this small, stable set: clients and brokers switch on the code,
// people read the text.
const (
	// CodeBadFrame: the client frame was malformed (edge only).
	CodeBadFrame = "bad_frame"
	// CodeUnknownMethod: no handler for the method, or no route to a service.
	CodeUnknownMethod = "unknown_method"
	// CodeUnauthenticated: the method needs a logged-in session.
	CodeUnauthenticated = "unauthenticated"
	// CodeBadRequest: the payload did not decode or failed validation.
	CodeBadRequest = "bad_request"
	// CodeNotFound: the thing asked about does not exist.
	CodeNotFound = "not_found"
	// CodeUnavailable: no instance could take the request (none live, link
	// down, draining); the request was not run and may be retried.
	CodeUnavailable = "unavailable"
	// CodeTimeout: the deadline passed before a reply.
	CodeTimeout = "timeout"
	// CodeRateLimited: the caller is sending too fast.
	CodeRateLimited = "rate_limited"
	// CodeOverloaded: the instance is at capacity; the request was not run.
	CodeOverloaded = "overloaded"
	// CodeInternal: a bug or an unexpected failure on the serving side.
	CodeInternal = "internal"
	// CodeMoved: a stateful instance does not own the key the request is
	// bound to; the broker re-routes.
	CodeMoved = "moved"
	// CodeConflict: a concurrent change won (a stale version, a taken name).
	CodeConflict = "conflict"
)

// DrainingMessage is the text of the unavailable reply a draining instance
// gives instead of running a request: the request was not run, so a caller
// may send it to another instance.
const DrainingMessage = "draining"

var knownCodes = map[string]bool{
	CodeBadFrame: true, CodeUnknownMethod: true, CodeUnauthenticated: true,
	CodeBadRequest: true, CodeNotFound: true, CodeUnavailable: true,
	CodeTimeout: true, CodeRateLimited: true, CodeOverloaded: true,
	CodeInternal: true, CodeMoved: true, CodeConflict: true,
}

// KnownCode reports whether code is one of the wire codes above.
func KnownCode(code string) bool { return knownCodes[code] }

// Error is an error with a wire code, what a handler returns to reply with a
// specific code, and what a Client returns for an error reply.
type Error struct {
	// Code is one of the wire codes (CodeNotFound, ...).
	Code string
	// Message is the human text.
	Message string
}

// Error returns "<code>: <message>", the form errors take on the wire.
func (e *Error) Error() string {
	code := e.Code
	if code == "" {
		code = CodeInternal
	}
	if e.Message == "" {
		return code
	}
	return code + ": " + e.Message
}

// Is makes errors.Is(err, &Error{Code: c}) match any *Error with code c; a
// target with a Message matches only that message too.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// NewError returns an *Error with code and message, taken as is.
func NewError(code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// CodeOf returns the wire code of err: the code of an *Error in its chain;
// unavailable for link.ErrUnavailable (and ErrOverloaded, which wraps it),
// link.ErrClosed and context.Canceled; timeout for
// link.ErrTimeout and context.DeadlineExceeded; internal for anything else;
// "" for nil.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		if e.Code == "" {
			return CodeInternal
		}
		return e.Code
	}
	switch {
	case errors.Is(err, link.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, link.ErrUnavailable), errors.Is(err, link.ErrClosed), errors.Is(err, context.Canceled):
		return CodeUnavailable
	}
	return CodeInternal
}

// AsError converts err to an *Error: itself if it is one (or wraps one),
// otherwise an *Error with CodeOf(err) and err's text. nil stays nil.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeOf(err), Message: err.Error()}
}

// FromEnvelope returns the error an envelope carries as an *Error, or nil
// when its error code is empty.
func FromEnvelope(env *platformpb.Envelope) error {
	if env.GetErrorCode() == "" {
		return nil
	}
	return &Error{Code: env.GetErrorCode(), Message: env.GetErrorMessage()}
}

// ToEnvelope writes err into env's error code and message (clearing both for
// nil), with the code from CodeOf and the text from an *Error's Message or
// else err.Error().
func ToEnvelope(env *platformpb.Envelope, err error) {
	if err == nil {
		env.ErrorCode, env.ErrorMessage = "", ""
		return
	}
	e := AsError(err)
	env.ErrorCode = CodeOf(e)
	env.ErrorMessage = e.Message
}
