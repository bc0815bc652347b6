package frame

import (
	"encoding/hex"
	"io"
	"strings"
)

// hexb decodes hex written with optional spaces, e.g. "00 00 00 10 0a 02".
func hexb(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// cat concatenates byte slices into a new one.
func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// splitReader delivers data in two parts: the first k bytes, then the rest,
// never returning bytes from both sides of k in one Read.
type splitReader struct {
	data []byte
	k    int
	off  int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if s.off >= len(s.data) {
		return 0, io.EOF
	}
	end := len(s.data)
	if s.off < s.k {
		end = s.k
	}
	n := copy(p, s.data[s.off:end])
	s.off += n
	return n, nil
}

// loopReader cycles over data forever: an endless in-memory stream of the
// same frames.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off += c
		if l.off == len(l.data) {
			l.off = 0
		}
	}
	return n, nil
}
