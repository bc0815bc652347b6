package frame

import (
	"bytes"
	"errors"
	"hash/crc32"
	"io"
	"slices"
	"testing"
	"testing/iotest"
)

// fuzzLimits are small so the fuzzer reaches every limit and both read
// paths (in place in the bufio buffer, and the separate body buffer).
var fuzzLimits = Limits{MaxFrame: 300, MaxMethod: 24, MaxErr: 40}

// fuzzSeeds are valid and bad streams shared by the fuzz targets.
func fuzzSeeds() [][]byte {
	return [][]byte{
		ping,
		cat(ping, ping),
		hexb("00 00 00 08  00 00 00 00  00 00 00 00"),
		AppendResponse(nil, "", []byte{1}),
		AppendResponse(nil, "timeout: slow", nil),
		AppendPush(nil, "room.Event", []byte{1, 2}),
		AppendRequest(AppendRequest(nil, "room.Join", make([]byte, 200)), "Ping", nil),
		AppendRequest(nil, "login.Login", make([]byte, 400)), // over fuzzLimits.MaxFrame
		hexb("7f ff ff ff"),
		hexb("ff ff ff ff"),
		hexb("00 00 00 07  00 00 00 00  00 00 00"),
		hexb("00 00 00 08  ff ff ff ff  00 00 00 00"),
		hexb("00 00 00 0c  00 00 00 04  50 69 6e 67  ff ff ff ff"),
		hexb("00 00 00 0c  00 00 00 10  50 69 6e 67  00 00 00 00"),
		hexb("00 00 00 10  00 00 00 04  50 69 6e 67  00 00 00 02  0a 02 68 69"),
		longMethod,
		ping[:10],
		ping[:2],
		nil,
	}
}

// readResult is what one Read call returned, compared across read patterns.
type readResult struct {
	first, payload string
	err            string
}

// readStream reads frames from src until an error and returns every result,
// failing t if the Reader ever holds a body buffer over MaxFrame or returns
// an error that is neither a bad frame nor EOF.
func readStream(t *testing.T, src io.Reader, size int, resp bool) []readResult {
	t.Helper()
	r := NewReaderSize(src, fuzzLimits, size)
	read := r.ReadRequest
	if resp {
		read = r.ReadResponse
	}
	var out []readResult
	for {
		first, payload, err := read()
		if cap(r.buf) > fuzzLimits.MaxFrame {
			t.Fatalf("body buffer is %d bytes, over MaxFrame %d", cap(r.buf), fuzzLimits.MaxFrame)
		}
		if err != nil {
			var fe *Error
			if err != io.EOF && err != io.ErrUnexpectedEOF && !(errors.As(err, &fe) && errors.Is(err, ErrBadFrame)) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return append(out, readResult{err: err.Error()})
		}
		out = append(out, readResult{first: string(first), payload: string(payload)})
	}
}

// checkStream reads data as a stream of requests (or responses) through
// several read patterns and buffer sizes, requires identical results, and
// checks them against re-encoding and against the bytes decoders.
func checkStream(t *testing.T, data []byte, resp bool) {
	// A split point derived from the input, so the fuzzer controls it.
	k := 0
	if len(data) > 0 {
		k = int(crc32.ChecksumIEEE(data) % uint32(len(data)+1))
	}
	want := readStream(t, bytes.NewReader(data), 16, resp)
	for _, size := range []int{16, 1024} {
		for _, src := range []struct {
			name string
			r    io.Reader
		}{
			{"whole", bytes.NewReader(data)},
			{"split", &splitReader{data: data, k: k}},
			{"one byte", iotest.OneByteReader(bytes.NewReader(data))},
			{"data+EOF", iotest.DataErrReader(bytes.NewReader(data))},
		} {
			if got := readStream(t, src.r, size, resp); !slices.Equal(got, want) {
				t.Fatalf("size %d, %s (split at %d):\n got %q\nwant %q", size, src.name, k, got, want)
			}
		}
	}

	parse, appendFn := ParseRequest, AppendRequest
	if resp {
		parse, appendFn = ParseResponse, AppendResponse
	}
	off := 0
	for _, res := range want {
		if res.err != "" {
			// A bad frame whose bytes are all present is rejected the same
			// way from bytes.
			if res.err == io.EOF.Error() || res.err == io.ErrUnexpectedEOF.Error() {
				if res.err == io.EOF.Error() && off != len(data) {
					t.Fatalf("io.EOF with %d bytes unread", len(data)-off)
				}
				break
			}
			total := readLen(data[off:])
			var err error
			if err = checkTotal(total, fuzzLimits); err == nil {
				if off+4+int(total) > len(data) {
					t.Fatalf("bad frame %q reported before its %d bytes arrived", res.err, total)
				}
				_, _, err = parse(data[off+4:off+4+int(total)], fuzzLimits)
			}
			if err == nil || err.Error() != res.err {
				t.Fatalf("Reader said %q, bytes decoder %v", res.err, err)
			}
			break
		}
		// A decoded frame re-encodes to exactly the bytes it came from.
		enc := appendFn(nil, res.first, []byte(res.payload))
		if !bytes.HasPrefix(data[off:], enc) {
			t.Fatalf("frame %q, %q re-encodes to % x, stream has % x", res.first, res.payload, enc, data[off:min(len(data), off+len(enc))])
		}
		first, payload, err := parse(data[off+4:off+len(enc)], fuzzLimits)
		if err != nil || string(first) != res.first || string(payload) != res.payload {
			t.Fatalf("bytes decoder = %q, %q, %v; Reader %q, %q", first, payload, err, res.first, res.payload)
		}
		off += len(enc)
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkStream(t, data, false) })
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkStream(t, data, true) })
}

// FuzzDecodeFrame feeds data as one WebSocket message to DecodeRequestFrame
// and DecodeResponseFrame and checks them against the stream Reader: a
// message decodes if and only if it is exactly one good frame.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, resp := range []bool{false, true} {
			decode, appendFn := DecodeRequestFrame, AppendRequest
			if resp {
				decode, appendFn = DecodeResponseFrame, AppendResponse
			}
			first, payload, err := decode(data, fuzzLimits)
			if err != nil && !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v is not a bad frame", err)
			}
			r := NewReaderSize(bytes.NewReader(data), fuzzLimits, 16)
			read := r.ReadRequest
			if resp {
				read = r.ReadResponse
			}
			rFirst, rPayload, rErr := read()
			_, _, rNext := read()
			whole := rErr == nil && rNext == io.EOF
			if (err == nil) != whole {
				t.Fatalf("decode err %v, but Reader err %v then %v", err, rErr, rNext)
			}
			if err == nil {
				if !bytes.Equal(first, rFirst) || !bytes.Equal(payload, rPayload) {
					t.Fatalf("decode = %q, %q; Reader %q, %q", first, payload, rFirst, rPayload)
				}
				if enc := appendFn(nil, string(first), payload); !bytes.Equal(enc, data) {
					t.Fatalf("re-encodes to % x, message % x", enc, data)
				}
			}
			// A bad frame that the Reader reports from the TotalLen alone, or
			// from a body that is exactly the message, is reported alike.
			var fe *Error
			if errors.As(rErr, &fe) && len(data) >= 4 {
				total := readLen(data)
				if checkTotal(total, fuzzLimits) != nil || total == int64(len(data)-4) {
					if err == nil || err.Error() != rErr.Error() {
						t.Fatalf("decode err %v, Reader err %v", err, rErr)
					}
				}
			}
		}
	})
}
