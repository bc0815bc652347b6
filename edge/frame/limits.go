package frame

import (
	"fmt"
	"math"
)

const (
	// lenSize is the size of every length field on the wire: a big-endian int32.
	lenSize = 4

	// MinFrame is the smallest legal frame length (TotalLen): the two inner
	// length fields with an empty first string and an empty payload. Nothing
	// shorter can hold the headers.
	MinFrame = 8

	// MaxFrameLimit is the largest value Limits.MaxFrame may take: TotalLen is
	// an int32 on the wire, so no frame can declare more.
	MaxFrameLimit = math.MaxInt32

	// DefaultMaxFrame is the default Limits.MaxFrame, 1 MiB. Payloads are
	// Thrift compact encodings of the structs in idl/*.thrift, a few hundred
	// bytes each, so 1 MiB leaves a wide margin for bulk replies while keeping
	// the worst a single connection can make the edge buffer small: a peer can
	// force at most this much memory per connection, and only by sending it.
	DefaultMaxFrame = 1 << 20

	// DefaultMaxMethod is the default Limits.MaxMethod, 128 bytes. Methods are
	// "<service>.<Method>" (e.g. "login.Login"), well under 40 bytes; 128
	// leaves room for aliases and long names while a garbage length is
	// rejected before the name is looked at or logged.
	DefaultMaxMethod = 128

	// DefaultMaxErr is the default Limits.MaxErr, 1 KiB. An error string is
	// "<code>: <human text>" (a sentence, not a dump) and a push event type is
	// a short name like "@room.Event"; 1 KiB allows long explanations while a
	// garbage length is still caught before it is trusted.
	DefaultMaxErr = 1 << 10

	// DefaultBufferSize is the default size of the bufio buffers behind
	// NewReader and NewWriter, 4 KiB. Most frames are smaller, and a frame
	// that fits in the read buffer is parsed in place without a copy.
	DefaultBufferSize = 4 << 10
)

// Limits bounds what a decoder accepts. A zero field means its default (a
// defaulted MaxMethod or MaxErr is cut to MaxFrame-MinFrame if that is
// smaller); see Validate for the legal ranges.
type Limits struct {
	// MaxFrame is the largest accepted TotalLen: the whole frame excluding its
	// own 4-byte prefix. Default DefaultMaxFrame (1 MiB).
	MaxFrame int
	// MaxMethod is the longest accepted request method, in bytes. Default
	// DefaultMaxMethod (128).
	MaxMethod int
	// MaxErr is the longest accepted first string of a response (an error
	// string or an "@" event type), in bytes. Default DefaultMaxErr (1 KiB).
	MaxErr int
}

// DefaultLimits returns the default limits: 1 MiB frames, 128-byte methods,
// 1 KiB error strings.
func DefaultLimits() Limits {
	return Limits{MaxFrame: DefaultMaxFrame, MaxMethod: DefaultMaxMethod, MaxErr: DefaultMaxErr}
}

// withDefaults returns l with every zero field replaced by its default; a
// defaulted name limit is cut to what fits in MaxFrame.
func (l Limits) withDefaults() Limits {
	if l.MaxFrame == 0 {
		l.MaxFrame = DefaultMaxFrame
	}
	if l.MaxMethod == 0 {
		l.MaxMethod = min(DefaultMaxMethod, l.MaxFrame-MinFrame)
	}
	if l.MaxErr == 0 {
		l.MaxErr = min(DefaultMaxErr, l.MaxFrame-MinFrame)
	}
	return l
}

// Validate reports whether l, after zero fields take their defaults, is
// usable, naming the first bad field: MaxFrame must be in
// [MinFrame, MaxFrameLimit], and MaxMethod and MaxErr positive and small
// enough to fit in a frame of MaxFrame (at most MaxFrame-MinFrame).
func (l Limits) Validate() error {
	l = l.withDefaults()
	if l.MaxFrame < MinFrame || int64(l.MaxFrame) > MaxFrameLimit {
		return fmt.Errorf("frame: Limits.MaxFrame is %d, want %d..%d", l.MaxFrame, MinFrame, int64(MaxFrameLimit))
	}
	if l.MaxMethod < 0 || l.MaxMethod > l.MaxFrame-MinFrame {
		return fmt.Errorf("frame: Limits.MaxMethod is %d, want 1..%d (MaxFrame-%d)", l.MaxMethod, l.MaxFrame-MinFrame, MinFrame)
	}
	if l.MaxErr < 0 || l.MaxErr > l.MaxFrame-MinFrame {
		return fmt.Errorf("frame: Limits.MaxErr is %d, want 1..%d (MaxFrame-%d)", l.MaxErr, l.MaxFrame-MinFrame, MinFrame)
	}
	return nil
}

// mustValid returns l with defaults filled in, panicking if it is invalid.
func (l Limits) mustValid() Limits {
	if err := l.Validate(); err != nil {
		panic(err.Error())
	}
	return l.withDefaults()
}
