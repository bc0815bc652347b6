package yellow

import (
	"errors"
	"fmt"
)

// Wire error codes yellow puts in an Envelope's error_code (the platform's
// small stable set, see DESIGN.md).
const (
	// CodeBadRequest: the request could not be decoded, named an unknown
	// method, or carried an invalid record.
	CodeBadRequest = "bad_request"
	// CodeOverloaded: yellow holds MaxInstances records already.
	CodeOverloaded = "overloaded"
	// CodeUnavailable: yellow is shutting down.
	CodeUnavailable = "unavailable"
	// CodeInternal: a bug in yellow.
	CodeInternal = "internal"
)

var (
	// ErrInvalidRecord is wrapped by every [FieldError]: a record or request
	// broke one of the validation rules.
	ErrInvalidRecord = errors.New("invalid record")
	// ErrTooManyInstances is returned when a registration of a new instance
	// would take yellow beyond its MaxInstances bound.
	ErrTooManyInstances = errors.New("too many instances")
	// ErrClosed is returned by a Yellow, Registration or Watcher that has
	// been closed.
	ErrClosed = errors.New("yellow: closed")
	// ErrBadRequest is wrapped by errors about requests that cannot be
	// decoded or name an unknown method or operation.
	ErrBadRequest = errors.New("bad request")
	// ErrBadDelta is wrapped by errors about events from a yellow's PUB
	// socket that are not a valid Delta.
	ErrBadDelta = errors.New("bad delta")
)

// FieldError says which field of a record or request broke which rule.
// Its text is "invalid record: <field>: <reason>".
type FieldError struct {
	// Field is the record's field name as in the proto ("router", "meta").
	Field string
	// Reason is the human text of the broken rule.
	Reason string
}

// Error implements error.
func (e *FieldError) Error() string {
	return ErrInvalidRecord.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap makes errors.Is(err, ErrInvalidRecord) true.
func (e *FieldError) Unwrap() error { return ErrInvalidRecord }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// RemoteError is an error a yellow answered with.
type RemoteError struct {
	// Code is the wire code (bad_request, overloaded, ...).
	Code string
	// Message is the human text.
	Message string
}

// Error implements error as "<code>: <message>".
func (e *RemoteError) Error() string { return e.Code + ": " + e.Message }

// snippetLen bounds how much of a bad input goes into a log line or error
// text: enough to recognise it, never a whole payload.
const snippetLen = 64

// snippet returns at most snippetLen bytes of b, for logging with %q.
func snippet[T string | []byte](b T) string {
	if len(b) > snippetLen {
		return string(b[:snippetLen]) + "..."
	}
	return string(b)
}
