package edge

import (
	"os"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/wire"
)

// errRateLimited is the reply to a request over the connection's rate.
const errRateLimited = wire.CodeRateLimited + ": too many requests on this connection"

// errTruncated is the text of a frame cut off by the end of the stream.
var errTruncated = &badFrameError{"connection closed inside a frame"}

// errTextMessage is the text of a WebSocket text message.
var errTextMessage = &badFrameError{"text message, want one binary message per frame"}

// badFrameError is a bad frame the frame package does not describe (a
// truncated stream, a WebSocket text message). It matches frame.ErrBadFrame.
type badFrameError struct{ msg string }

func (e *badFrameError) Error() string { return e.msg }
func (e *badFrameError) Unwrap() error { return frame.ErrBadFrame }

// errFrameTimeout is the read error of a frame not complete within
// FrameTimeout of its first byte. It matches os.ErrDeadlineExceeded.
var errFrameTimeout error = &frameTimeoutError{}

type frameTimeoutError struct{}

func (*frameTimeoutError) Error() string { return "frame not complete within frame_timeout" }
func (*frameTimeoutError) Unwrap() error { return os.ErrDeadlineExceeded }
