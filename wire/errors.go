package wire

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Wire error codes. An error on the wire is "<code>: <human text>" with the
// code from this small, stable set: clients and brokers switch on the code,
// people read the text.
const (
	// CodeBadFrame: the client frame was malformed (edge only); the
	// connection is closed after it.
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
	// bound to; the message is the owner's instance id and the router
	// re-routes.
	CodeMoved = "moved"
	// CodeConflict: a concurrent change won (a stale version, a taken name).
	CodeConflict = "conflict"
)

// Messages of unavailable replies that guarantee the request was not run,
// so a caller may send it to another instance.
const (
	// DrainingMessage: the instance is draining.
	DrainingMessage = "draining"
	// ClosingMessage: the instance is closing.
	ClosingMessage = "closing"
)

var knownCodes = map[string]bool{
	CodeBadFrame: true, CodeUnknownMethod: true, CodeUnauthenticated: true,
	CodeBadRequest: true, CodeNotFound: true, CodeUnavailable: true,
	CodeTimeout: true, CodeRateLimited: true, CodeOverloaded: true,
	CodeInternal: true, CodeMoved: true, CodeConflict: true,
}

// KnownCode reports whether code is one of the wire codes above.
func KnownCode(code string) bool { return knownCodes[code] }

// Coder is implemented by errors that carry a wire code: *Error, and the
// link layer's sentinel errors. CodeOf finds one anywhere in an error's
// chain.
type Coder interface {
	WireCode() string
}

// Error is an error with a wire code: what a handler returns to reply with
// a specific code, what a client returns for an error reply, and what the
// edge sends as "<code>: <message>".
type Error struct {
	// Code is one of the wire codes (CodeNotFound, ...); "" means internal.
	Code string
	// Message is the human text.
	Message string
}

// Error returns "<code>: <message>", the form errors take on the wire.
// An Error without a code whose text came from elsewhere (Parse of a
// string with no code) is its Message alone.
func (e *Error) Error() string {
	switch {
	case e.Message == "":
		return e.WireCode()
	case e.Code == "":
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// WireCode returns the error's code (internal when unset).
func (e *Error) WireCode() string {
	if e.Code == "" {
		return CodeInternal
	}
	return e.Code
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

// CodeOf returns the wire code of err: the code of the first Coder in its
// chain (an *Error, a link error) when it is a known code, else internal;
// timeout for context.DeadlineExceeded;
// unavailable for context.Canceled; internal for anything else; "" for nil.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var c Coder
	if errors.As(err, &c) {
		if code := c.WireCode(); KnownCode(code) {
			return code
		}
		return CodeInternal
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
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

// Text returns the Err string of a client reply for err: err's own text
// when it already starts with its wire code ("<code>: <text>"), else
// "<code>: <text>"; never starting with the push prefix "@"; at most maxLen
// bytes (0: no limit).
func Text(err error, maxLen int) string {
	code, text := CodeOf(err), err.Error()
	s := text
	if text != code && !strings.HasPrefix(text, code+": ") {
		s = code + ": " + text
	}
	if maxLen > 0 {
		s = Cut(s, maxLen)
	}
	return s
}

// Parse splits an Err string "<code>: <message>" of a reply into an *Error.
// A string without a code (no lower-case identifier before ": ") is all
// Message, with Code "". Parse is what a client does with a reply's error;
// a server never parses error text.
func Parse(s string) *Error {
	code, msg, found := strings.Cut(s, ": ")
	if !found {
		code, msg = s, ""
	}
	if !isCode(code) {
		return &Error{Message: s}
	}
	return &Error{Code: code, Message: msg}
}

// isCode reports whether s looks like a wire code: [a-z0-9_]+, so that a
// code this version does not know still parses.
func isCode(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
