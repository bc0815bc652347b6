package frame

import (
	"bufio"
	"io"
)

// growChunk is the first size of the buffer for a body too big for the
// bufio buffer, 64 KiB: big enough that an honest large frame needs only a
// few growth steps, small enough that declaring a MaxFrame-sized frame
// without sending it gains a peer little.
const growChunk = 64 << 10

// Reader reads frames one at a time from a stream such as a TCP connection.
// It checks TotalLen against Limits.MaxFrame before sizing anything, and
// grows its buffer only as a frame's bytes arrive: a peer can make it hold
// at most MaxFrame bytes beside the bufio buffer, and only by sending them.
//
// The slices a Read method returns alias the Reader's buffers and are valid
// only until the next call on the Reader; copy what must outlive it. A
// method name can be looked up without a copy: m[string(method)] does not
// allocate.
//
// After any error the Reader's position in the stream is unspecified: a bad
// frame or a read error should end the connection. A Reader is not safe for
// concurrent use; a connection has one reading goroutine.
type Reader struct {
	br  *bufio.Reader
	lim Limits
	// buf holds a body too big for br's buffer. It grows only as bytes
	// arrive and never beyond lim.MaxFrame.
	buf []byte
}

// NewReader returns a Reader over src with a DefaultBufferSize read buffer.
// Zero fields of lim take their defaults; it panics if lim is invalid (check
// configuration with Limits.Validate first).
func NewReader(src io.Reader, lim Limits) *Reader {
	return NewReaderSize(src, lim, DefaultBufferSize)
}

// NewReaderSize is NewReader with a read buffer of size bytes (at least 16).
// A frame whose TotalLen+4 fits in it is parsed in place with no copy;
// bigger frames are copied into a separate buffer, kept for reuse, that
// grows up to MaxFrame.
func NewReaderSize(src io.Reader, lim Limits, size int) *Reader {
	return &Reader{br: bufio.NewReaderSize(src, size), lim: lim.mustValid()}
}

// Reset makes r read from src, discarding buffered data but keeping its
// buffers, so Readers can be pooled.
func (r *Reader) Reset(src io.Reader) {
	r.br.Reset(src)
}

// Limits returns the limits r enforces, with defaults filled in.
func (r *Reader) Limits() Limits { return r.lim }

// ReadRequest reads one request frame and returns its method and payload.
// It returns io.EOF if the stream ends cleanly before a frame,
// io.ErrUnexpectedEOF if it ends inside one, an *Error matching ErrBadFrame
// if the frame is malformed, or the stream's own error.
func (r *Reader) ReadRequest() (method, payload []byte, err error) {
	body, err := r.readBody()
	if err != nil {
		return nil, nil, err
	}
	return parseBody(body, r.lim.MaxMethod, fieldMethod)
}

// ReadResponse reads one response or push frame and returns its first string
// (an error, empty on success, or "@" + event type; see IsPush) and payload.
// Errors are as for ReadRequest.
func (r *Reader) ReadResponse() (first, payload []byte, err error) {
	body, err := r.readBody()
	if err != nil {
		return nil, nil, err
	}
	return parseBody(body, r.lim.MaxErr, fieldErr)
}

// readBody reads TotalLen, checks it, and returns the body after it.
func (r *Reader) readBody() ([]byte, error) {
	hdr, err := r.br.Peek(lenSize)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	total := readLen(hdr)
	if err := checkTotal(total, r.lim); err != nil {
		_, _ = r.br.Discard(lenSize)
		return nil, err
	}
	n := int(total)
	if lenSize+n <= r.br.Size() {
		// The whole frame fits in the bufio buffer: parse it in place.
		b, err := r.br.Peek(lenSize + n)
		if err != nil {
			return nil, unexpected(err)
		}
		_, _ = r.br.Discard(lenSize + n)
		return b[lenSize:], nil
	}
	_, _ = r.br.Discard(lenSize)
	return r.readLarge(n)
}

// readLarge reads a body of n bytes, too big for the bufio buffer, into
// r.buf. n <= MaxFrame was checked. The buffer grows only as bytes arrive:
// first to growChunk, then doubling, never beyond n, so a peer that declares
// a big frame and stalls makes the Reader hold at most growChunk, or twice
// what it actually sent.
func (r *Reader) readLarge(n int) ([]byte, error) {
	body := r.buf[:0]
	for len(body) < n {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(n, max(2*cap(body), growChunk)))
			copy(grown, body)
			body = grown
			r.buf = grown
		}
		m, err := io.ReadFull(r.br, body[len(body):min(n, cap(body))])
		body = body[:len(body)+m]
		if err != nil {
			return nil, unexpected(err)
		}
	}
	return body, nil
}

// unexpected turns io.EOF, met after a frame has begun, into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
