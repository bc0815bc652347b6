package realip

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzParse feeds Parse and Read arbitrary bytes, whole and in two halves
// (split reads), and checks that they agree, never read past MaxHeader and
// never panic.
func FuzzParse(f *testing.F) {
	for _, tc := range validHeaders {
		f.Add(tc.in, uint16(len(tc.in)/2))
		f.Add(append(append([]byte(nil), tc.in...), "rest"...), uint16(3))
	}
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), uint16(10))
	f.Add(v2(0x21, 0x11, 0xffff, nil), uint16(8))
	f.Fuzz(func(t *testing.T, in []byte, cut uint16) {
		h, n, err := Parse(in)
		switch {
		case err == nil:
			if n <= 0 || n > len(in) || n > MaxHeader {
				t.Fatalf("Parse length %d of %d bytes", n, len(in))
			}
			// Every shorter prefix is incomplete.
			for _, k := range []int{0, n / 2, n - 1} {
				if _, _, err := Parse(in[:k]); !errors.Is(err, ErrIncomplete) {
					t.Fatalf("Parse of %d of a %d-byte header: %v", k, n, err)
				}
			}
			// Encoding what was decoded decodes the same.
			if h.Source.IsValid() {
				for _, enc := range [][]byte{AppendV1(nil, h.Source, h.Dest), AppendV2(nil, h.Source, h.Dest, nil)} {
					if h2, _, err := Parse(enc); err != nil || unmap(h2.Source) != unmap(h.Source) || unmap(h2.Dest) != unmap(h.Dest) {
						t.Fatalf("re-encoded %+v: %+v, %v", h, h2, err)
					}
				}
			}
		case errors.Is(err, ErrIncomplete):
			if len(in) >= MaxHeader {
				t.Fatalf("%d bytes still incomplete", len(in))
			}
		case !errors.Is(err, ErrBadHeader):
			t.Fatalf("Parse: %v, neither incomplete nor bad", err)
		}
		if k := int(cut) % (len(in) + 1); err != nil {
			if _, _, perr := Parse(in[:k]); perr != nil && !errors.Is(perr, ErrIncomplete) && errors.Is(err, ErrIncomplete) {
				t.Fatalf("a prefix of an incomplete header is bad: %v", perr)
			}
		}

		// Read over two reads agrees with Parse of the whole.
		k := int(cut) % (len(in) + 1)
		r := &chunkReader{[][]byte{in[:k], in[k:]}}
		rh, rest, rerr := Read(r)
		switch {
		case err == nil:
			tail, _ := io.ReadAll(r)
			if rerr != nil || rh != h || !bytes.Equal(append(rest, tail...), in[n:]) {
				t.Fatalf("Read = %+v, %q, %v; Parse = %+v, %d", rh, rest, rerr, h, n)
			}
		case errors.Is(err, ErrIncomplete):
			if len(in) > 0 && rerr != io.ErrUnexpectedEOF || len(in) == 0 && rerr != io.EOF {
				t.Fatalf("Read of an incomplete header: %v", rerr)
			}
		default:
			if !errors.Is(rerr, ErrBadHeader) {
				t.Fatalf("Read of a bad header: %v; Parse: %v", rerr, err)
			}
		}
	})
}
