package frame

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// AppendRequest appends a request frame for method and payload to dst and
// returns the extended slice. It panics if the frame length would overflow
// the int32 TotalLen; it does not check Limits (Writer does).
func AppendRequest(dst []byte, method string, payload []byte) []byte {
	return appendFrame(dst, "", method, payload)
}

// AppendResponse appends a response frame to dst and returns the extended
// slice. errStr is empty on success, otherwise "<code>: <human text>"; it
// must not start with "@", which would make the frame read as a push. It
// panics if the frame length would overflow the int32 TotalLen.
func AppendResponse(dst []byte, errStr string, payload []byte) []byte {
	return appendFrame(dst, "", errStr, payload)
}

// AppendPush appends a push frame, whose first string is "@" + eventType
// (e.g. "@room.Event"), to dst and returns the extended slice. It panics if
// the frame length would overflow the int32 TotalLen.
func AppendPush(dst []byte, eventType string, payload []byte) []byte {
	return appendFrame(dst, "@", eventType, payload)
}

// frameLen returns TotalLen for a frame whose first string is prefix+first.
func frameLen(prefix, first string, payload []byte) int64 {
	return int64(MinFrame) + int64(len(prefix)) + int64(len(first)) + int64(len(payload))
}

func appendFrame(dst []byte, prefix, first string, payload []byte) []byte {
	total := frameLen(prefix, first, payload)
	if total > MaxFrameLimit {
		panic(fmt.Sprintf("frame: frame length %d does not fit in an int32", total))
	}
	dst = slices.Grow(dst, lenSize+int(total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(total))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(prefix)+len(first)))
	dst = append(dst, prefix...)
	dst = append(dst, first...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// Writer writes frames to a stream through a bufio.Writer; nothing reaches
// the stream until the buffer fills or Flush is called. Its Write methods do
// not allocate. A frame that breaks the Writer's Limits (a total over
// MaxFrame, a method over MaxMethod, an error string or "@" event type over
// MaxErr) is refused with an *Error and nothing is written, since the peer
// would reject it. After a stream error every later call returns that error.
//
// A Writer is not safe for concurrent use; a connection has one writing
// goroutine, fed by a queue of frames built with the Append functions in
// buffers from GetBuffer, or of values it encodes itself.
type Writer struct {
	bw  *bufio.Writer
	lim Limits
	hdr [lenSize]byte
}

// NewWriter returns a Writer to dst with a DefaultBufferSize buffer. Zero
// fields of lim take their defaults; it panics if lim is invalid (check
// configuration with Limits.Validate first).
func NewWriter(dst io.Writer, lim Limits) *Writer {
	return NewWriterSize(dst, lim, DefaultBufferSize)
}

// NewWriterSize is NewWriter with a buffer of size bytes.
func NewWriterSize(dst io.Writer, lim Limits, size int) *Writer {
	return &Writer{bw: bufio.NewWriterSize(dst, size), lim: lim.mustValid()}
}

// Reset discards unflushed data and makes w write to dst, keeping its
// buffer, so Writers can be pooled.
func (w *Writer) Reset(dst io.Writer) { w.bw.Reset(dst) }

// WriteRequest writes a request frame for method and payload.
func (w *Writer) WriteRequest(method string, payload []byte) error {
	return w.write("", method, payload, w.lim.MaxMethod, fieldMethod)
}

// WriteResponse writes a response frame. errStr is empty on success,
// otherwise "<code>: <human text>"; it must not start with "@", which would
// make the frame read as a push.
func (w *Writer) WriteResponse(errStr string, payload []byte) error {
	return w.write("", errStr, payload, w.lim.MaxErr, fieldErr)
}

// WritePush writes a push frame whose first string is "@" + eventType.
func (w *Writer) WritePush(eventType string, payload []byte) error {
	return w.write("@", eventType, payload, w.lim.MaxErr, fieldErr)
}

// WriteFrame writes frame, one whole already-encoded frame (TotalLen
// included) such as one built with AppendPush, as is. It does not check it.
func (w *Writer) WriteFrame(frame []byte) error {
	_, err := w.bw.Write(frame)
	return err
}

// Flush writes any buffered frames to the underlying stream.
func (w *Writer) Flush() error { return w.bw.Flush() }

// Buffered returns the number of bytes written but not yet flushed.
func (w *Writer) Buffered() int { return w.bw.Buffered() }

func (w *Writer) write(prefix, first string, payload []byte, maxName int, field string) error {
	if n := len(prefix) + len(first); n > maxName {
		return newErr(ErrNameTooLong, field, int64(n), int64(maxName))
	}
	total := frameLen(prefix, first, payload)
	if total > int64(w.lim.MaxFrame) {
		return newErr(ErrTooLarge, fieldFrame, total, int64(w.lim.MaxFrame))
	}
	w.writeLen(int(total))
	w.writeLen(len(prefix) + len(first))
	_, _ = w.bw.WriteString(prefix)
	_, _ = w.bw.WriteString(first)
	w.writeLen(len(payload))
	_, err := w.bw.Write(payload)
	return err
}

// writeLen writes n as a big-endian int32. Errors are sticky in the
// bufio.Writer and reported by the last write of the frame.
func (w *Writer) writeLen(n int) {
	binary.BigEndian.PutUint32(w.hdr[:], uint32(n))
	_, _ = w.bw.Write(w.hdr[:])
}
