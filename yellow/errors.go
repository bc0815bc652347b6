package yellow

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidRecord is wrapped by every [FieldError]: a record or request
	// broke one of the validation rules.
	ErrInvalidRecord = errors.New("invalid record")
	// ErrTooManyInstances is returned when a registration of a new instance
	// would take yellow beyond its MaxInstances bound.
	ErrTooManyInstances = errors.New("too many instances")
	// ErrNotOwner is returned for a register, heartbeat or deregister of
	// a record that another identity registered, and for a registration
	// under a service name the caller's identity may not use.
	ErrNotOwner = errors.New("not the record's owner")
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
