package edge

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/noonhq/noon/edge/frame"
)

// chunkReader returns its bytes in reads of at most n.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

// FuzzWSMessage fuzzes the WebSocket message decoder (readWSMessage): it
// must agree with frame.DecodeRequestFrame on every input, whether the
// message arrives whole or in pieces, never hold a buffer much larger than
// what arrived (an announced length gains nothing), and never panic.
func FuzzWSMessage(f *testing.F) {
	lim := testOptions().limits()
	f.Add(frame.AppendRequest(nil, "echo", []byte("hello")), 3)
	f.Add(frame.AppendRequest(nil, "room.Get", nil), 1)
	f.Add(header(1<<20, 4), 2)
	f.Add(header(-1), 1)
	f.Add(header(12, 4, "echo", 0, "xx"), 5)
	f.Add([]byte{0, 0}, 1)
	f.Fuzz(func(t *testing.T, msg []byte, chunk int) {
		if chunk < 1 {
			chunk = 1
		}
		wantM, wantP, wantErr := frame.DecodeRequestFrame(msg, lim)
		for _, r := range []io.Reader{bytes.NewReader(msg), &chunkReader{b: msg, n: chunk}, &chunkReader{b: msg, n: max(1, len(msg)/2)}} {
			b := frame.GetBuffer()
			m, p, err := readWSMessage(r, b, lim)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("readWSMessage err %v, DecodeRequestFrame err %v", err, wantErr)
			}
			if err != nil && !errors.Is(err, frame.ErrBadFrame) {
				t.Fatalf("err %v does not match ErrBadFrame", err)
			}
			if err == nil && (!bytes.Equal(m, wantM) || !bytes.Equal(p, wantP)) {
				t.Fatalf("got %q %q, want %q %q", m, p, wantM, wantP)
			}
			if c := cap(b.B); c > max(2*len(msg), wsGrowChunk, 512) {
				t.Fatalf("buffer of %d bytes for a %d-byte message", c, len(msg))
			}
		}
	})
}
