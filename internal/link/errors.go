package link

import (
	"context"
	"errors"
	"fmt"

	"github.com/noonhq/noon/wire"
)

var (
	// ErrUnavailable means the call could not be delivered or answered because
	// the link is not usable: not connected yet, declared dead (heartbeats
	// stopped, a send got stuck, the remote closed the connection), or its send
	// queue is full (see ErrOverloaded). The request may or may not have run;
	// callers that retry on another instance must only do so for idempotent
	// methods or methods that the remote deduplicates by request id.
	ErrUnavailable error = &codedError{"link: peer unavailable", wire.CodeUnavailable}

	// ErrOverloaded means the Peer's send queue was full, so the request was not
	// sent at all. It wraps ErrUnavailable: errors.Is(err, ErrUnavailable) holds,
	// and the request certainly did not run, so retrying elsewhere is safe.
	// Publisher.Publish also returns it when its queue is full and the event
	// was dropped.
	ErrOverloaded = fmt.Errorf("link: send queue full: %w", ErrUnavailable)

	// ErrNotConnected means the Peer's link was not up, so the request was
	// not sent at all; it is returned together with ErrUnavailable
	// (errors.Is holds for both), and retrying elsewhere is safe.
	ErrNotConnected = errors.New("not connected")

	// ErrTimeout means the caller's deadline passed before a reply arrived.
	// Errors returned for it also match context.DeadlineExceeded.
	ErrTimeout error = &codedError{"link: deadline exceeded", wire.CodeTimeout}

	// ErrClosed means the Server, Peer, Publisher or Subscriber was closed.
	ErrClosed error = &codedError{"link: closed", wire.CodeUnavailable}

	// ErrTooLarge means an outgoing message is bigger than the configured
	// MaxMessage; it was not sent.
	ErrTooLarge = errors.New("link: message too large")

	// ErrBadTopic means a pub/sub topic is empty, too long or contains a NUL
	// byte (NUL terminates topics on the wire).
	ErrBadTopic = errors.New("link: invalid topic")
)

// codedError is a sentinel error with a wire code (wire.Coder): CodeOf maps
// a link failure to the code a caller answers with.
type codedError struct{ msg, code string }

func (e *codedError) Error() string    { return e.msg }
func (e *codedError) WireCode() string { return e.code }

// errCallTimeout is what Call returns when its context's deadline passes: it
// matches both ErrTimeout and context.DeadlineExceeded.
var errCallTimeout = fmt.Errorf("%w (%w)", ErrTimeout, context.DeadlineExceeded)

// ctxError turns a done context's error into what Call returns.
func ctxError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errCallTimeout
	}
	return fmt.Errorf("link: call canceled: %w", err)
}
