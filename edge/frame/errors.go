package frame

import (
	"errors"
	"fmt"
)

// ErrBadFrame matches, with errors.Is, every error that means the peer sent a
// malformed frame. The edge answers such a frame with
// "bad_frame: " + err.Error() and closes the connection. Errors from the
// underlying stream, including io.EOF and io.ErrUnexpectedEOF, do not match
// it.
var ErrBadFrame = errors.New("bad frame")

// The kinds of bad frame. Each wraps ErrBadFrame and is the Kind of an
// *Error, so errors.Is(err, ErrTooLarge) and errors.Is(err, ErrBadFrame) both
// hold for a frame that is too large.
var (
	// ErrTooLarge: TotalLen is over Limits.MaxFrame.
	ErrTooLarge = fmt.Errorf("%w: frame too large", ErrBadFrame)
	// ErrNegativeLength: a length field is negative.
	ErrNegativeLength = fmt.Errorf("%w: negative length", ErrBadFrame)
	// ErrTooShort: TotalLen is under MinFrame, too short to hold the two inner
	// length fields, or a WebSocket message is too short to hold TotalLen.
	ErrTooShort = fmt.Errorf("%w: frame too short", ErrBadFrame)
	// ErrInconsistent: the inner lengths do not add up to TotalLen (or a
	// WebSocket message's TotalLen does not match the message size).
	ErrInconsistent = fmt.Errorf("%w: inconsistent lengths", ErrBadFrame)
	// ErrNameTooLong: the method is over Limits.MaxMethod, or a response's
	// error string or event type is over Limits.MaxErr.
	ErrNameTooLong = fmt.Errorf("%w: method or error string too long", ErrBadFrame)
)

// Field names used in Error.Field.
const (
	fieldFrame   = "frame"   // TotalLen
	fieldMessage = "message" // a whole WebSocket message
	fieldMethod  = "method"  // MethodLen
	fieldErr     = "error"   // ErrLen (an error string or a push event type)
	fieldPayload = "payload" // PayloadLen
)

// Error is a bad frame: which length was wrong and by how much. Its text is
// short, human and carries the numbers, e.g. "frame length 2147483647 exceeds
// maximum 1048576"; it does not repeat "bad frame", so the edge can reply
// "bad_frame: " + err.Error().
type Error struct {
	// Kind is ErrTooLarge, ErrNegativeLength, ErrTooShort, ErrInconsistent
	// or ErrNameTooLong; Unwrap returns it.
	Kind error
	// Field is the length at fault: "frame" (TotalLen), "message" (a whole
	// WebSocket message), "method", "error" or "payload".
	Field string
	// Len is the offending length as declared on the wire (or, for
	// "message", the message size).
	Len int64
	// Bound is what Len was checked against: the maximum for ErrTooLarge and
	// ErrNameTooLong, the minimum for ErrTooShort, and the bytes actually
	// left for the field for ErrInconsistent. It is unused for
	// ErrNegativeLength.
	Bound int64
}

// Error returns the human text, without a "bad frame" prefix.
func (e *Error) Error() string {
	switch e.Kind {
	case ErrTooLarge, ErrNameTooLong:
		return fmt.Sprintf("%s length %d exceeds maximum %d", e.Field, e.Len, e.Bound)
	case ErrNegativeLength:
		return fmt.Sprintf("negative %s length %d", e.Field, e.Len)
	case ErrTooShort:
		if e.Field == fieldMessage {
			return fmt.Sprintf("message of %d bytes is shorter than the %d-byte frame length", e.Len, e.Bound)
		}
		return fmt.Sprintf("%s length %d is below minimum %d", e.Field, e.Len, e.Bound)
	case ErrInconsistent:
		switch {
		case e.Field == fieldFrame:
			return fmt.Sprintf("frame length %d does not match the %d bytes after it in the message", e.Len, e.Bound)
		case e.Len < e.Bound:
			return fmt.Sprintf("%s length %d leaves %d trailing bytes in the frame", e.Field, e.Len, e.Bound-e.Len)
		default:
			return fmt.Sprintf("%s length %d exceeds the %d bytes left in the frame", e.Field, e.Len, e.Bound)
		}
	}
	return fmt.Sprintf("bad %s length %d", e.Field, e.Len)
}

// Unwrap returns e.Kind, which in turn wraps ErrBadFrame.
func (e *Error) Unwrap() error { return e.Kind }

func newErr(kind error, field string, n, bound int64) *Error {
	return &Error{Kind: kind, Field: field, Len: n, Bound: bound}
}
