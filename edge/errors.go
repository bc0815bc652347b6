package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/noonhq/noon/edge/frame"
)

// Wire error codes the edge itself answers with. The full set is in package
// services; the edge does not import it, so that the edge builds alone.
const (
	// CodeBadFrame: a malformed frame; the connection is closed after it.
	CodeBadFrame = "bad_frame"
	// CodeRateLimited: the connection sends faster than Options.Rate.
	CodeRateLimited = "rate_limited"
	// CodeInternal: the handler failed in a way that has no wire code.
	CodeInternal = "internal"
	// CodeBadRequest: a request payload did not decode (edge.Hello).
	CodeBadRequest = "bad_request"
	// CodeTimeout: the handler's deadline passed.
	CodeTimeout = "timeout"
	// CodeUnavailable: the request was cancelled or could not be served.
	CodeUnavailable = "unavailable"
)

// wireCodes are the codes an error's text may start with ("<code>: ") to be
// sent as it is. It mirrors the set in package services (DESIGN.md, The
// client wire).
var wireCodes = map[string]bool{
	"bad_frame": true, "unknown_method": true, "unauthenticated": true,
	"bad_request": true, "not_found": true, "unavailable": true,
	"timeout": true, "rate_limited": true, "overloaded": true,
	"internal": true, "moved": true, "conflict": true,
}

// WireCoder is implemented by errors that carry a wire code. An error from
// Handler.Request that implements it (anywhere in its chain) is sent as
// "<code>: <text>".
type WireCoder interface {
	WireCode() string
}

// codeError is an error the edge answers with a specific code (services.Error
// is the platform's; the edge does not import it). Its text is
// "<code>: <message>".
type codeError struct {
	code, msg string
}

func (e *codeError) Error() string    { return e.code + ": " + e.msg }
func (e *codeError) WireCode() string { return e.code }

func errorf(code, format string, args ...any) error {
	return &codeError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errRateLimited is the reply to a request over the connection's rate.
const errRateLimited = "rate_limited: too many requests on this connection"

// errTruncated is the text of a frame cut off by the end of the stream.
var errTruncated = &badFrameError{"connection closed inside a frame"}

// errTextMessage is the text of a WebSocket text message.
var errTextMessage = &badFrameError{"text message, want one binary message per frame"}

// badFrameError is a bad frame the frame package does not describe (a
// truncated stream, a WebSocket text message). It matches frame.ErrBadFrame.
type badFrameError struct{ msg string }

func (e *badFrameError) Error() string { return e.msg }
func (e *badFrameError) Unwrap() error { return frame.ErrBadFrame }

// wireError turns an error from a handler into the Err string of a reply:
// the error's own text when it already has the form "<code>: <text>" of a
// wire error (a WireCoder, a services.Error, or text starting with a known
// code); "timeout: ..." and "unavailable: ..." for context errors; and
// "internal: <text>" for anything else. The result never starts with "@" and
// is at most maxLen bytes.
func wireError(err error, maxLen int) string {
	text := err.Error()
	var s string
	var wc WireCoder
	switch {
	case errors.As(err, &wc) && wc.WireCode() != "":
		code := wc.WireCode()
		if text == code || strings.HasPrefix(text, code+": ") {
			s = text
		} else {
			s = code + ": " + text
		}
	case hasWireCode(text):
		s = text
	case errors.Is(err, context.DeadlineExceeded):
		s = CodeTimeout + ": " + text
	case errors.Is(err, context.Canceled):
		s = CodeUnavailable + ": " + text
	default:
		s = CodeInternal + ": " + text
	}
	if s == "" || s[0] == frame.PushPrefix {
		s = CodeInternal + ": " + s
	}
	return truncate(s, maxLen)
}

// hasWireCode reports whether text is "<code>" or starts with "<code>: " for
// a known wire code.
func hasWireCode(text string) bool {
	code, _, found := strings.Cut(text, ": ")
	if !found {
		code = text
	}
	return wireCodes[code]
}

// truncate cuts s to at most n bytes, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
