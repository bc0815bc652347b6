package frame

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBackToBack(t *testing.T) {
	type req struct {
		method  string
		payload []byte
	}
	big := bytes.Repeat([]byte{0xab}, 5000) // more than DefaultBufferSize
	huge := bytes.Repeat([]byte{0xcd}, 200<<10)
	frames := []req{
		{"Ping", hexb("0a 02 68 69")},
		{"", nil},
		{strings.Repeat("m", 128), []byte{1}},
		{"room.Join", big},
		{"login.Login", huge},
		{"Ping", hexb("0a 02 68 69")},
		{"room.Join", big},
	}
	var stream []byte
	for _, f := range frames {
		stream = AppendRequest(stream, f.method, f.payload)
	}
	for _, size := range []int{16, DefaultBufferSize, 1 << 20} {
		for _, src := range []struct {
			name string
			r    func() io.Reader
		}{
			{"whole", func() io.Reader { return bytes.NewReader(stream) }},
			{"one byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) }},
			{"half", func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) }},
			{"split", func() io.Reader { return &splitReader{data: stream, k: 13} }},
		} {
			r := NewReaderSize(src.r(), Limits{}, size)
			for i, f := range frames {
				method, payload, err := r.ReadRequest()
				if err != nil {
					t.Fatalf("size %d, %s, frame %d: %v", size, src.name, i, err)
				}
				if string(method) != f.method || !bytes.Equal(payload, f.payload) {
					t.Fatalf("size %d, %s, frame %d = %q (%d bytes), want %q (%d bytes)",
						size, src.name, i, method, len(payload), f.method, len(f.payload))
				}
			}
			if _, _, err := r.ReadRequest(); err != io.EOF {
				t.Fatalf("size %d, %s: after last frame err = %v, want io.EOF", size, src.name, err)
			}
			if cap(r.buf) > len(huge)+len("login.Login")+8 {
				t.Errorf("size %d, %s: buffer grew to %d", size, src.name, cap(r.buf))
			}
		}
	}
}

func TestReadResponsesBackToBack(t *testing.T) {
	var stream []byte
	stream = AppendResponse(stream, "", []byte{1})
	stream = AppendPush(stream, "room.Event", []byte{2})
	stream = AppendResponse(stream, "not_found: no such room", nil)
	r := NewReader(bytes.NewReader(stream), Limits{})
	for _, want := range []struct{ first, payload string }{
		{"", "\x01"}, {"@room.Event", "\x02"}, {"not_found: no such room", ""},
	} {
		first, payload, err := r.ReadResponse()
		if err != nil || string(first) != want.first || string(payload) != want.payload {
			t.Fatalf("ReadResponse = %q, %q, %v; want %q, %q", first, payload, err, want.first, want.payload)
		}
	}
	if _, _, err := r.ReadResponse(); err != io.EOF {
		t.Fatalf("err = %v, want io.EOF", err)
	}
}

// TestHugeLengthDoesNotAllocate declares 0x7fffffff-byte frames and checks
// that rejecting them allocates only the error, never a body.
func TestHugeLengthDoesNotAllocate(t *testing.T) {
	r := NewReader(&loopReader{data: hexb("7f ff ff ff")}, Limits{})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, err := r.ReadRequest(); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("err = %v, want ErrTooLarge", err)
		}
	})
	runtime.ReadMemStats(&after)
	if allocs > 1 {
		t.Errorf("%v allocations per rejected frame, want at most 1 (the error)", allocs)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("allocated %d bytes rejecting 1001 frames", n)
	}
	if r.buf != nil {
		t.Errorf("body buffer allocated: cap %d", cap(r.buf))
	}
}

// TestStalledBigFrameHoldsLittle declares a MaxFrame-sized frame, sends a
// little of it, and checks the Reader did not size its buffer by the
// declared length.
func TestStalledBigFrameHoldsLittle(t *testing.T) {
	stream := cat(hexb("00 10 00 00  00 00 00 04"), []byte("Ping"), make([]byte, 1000))
	r := NewReader(bytes.NewReader(stream), Limits{})
	if _, _, err := r.ReadRequest(); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if cap(r.buf) > growChunk {
		t.Errorf("buffer is %d bytes after receiving 1 KiB, want at most %d", cap(r.buf), growChunk)
	}
}

func TestBufferNeverExceedsMaxFrame(t *testing.T) {
	lim := Limits{MaxFrame: 100}
	var stream []byte
	for _, n := range []int{10, 50, 91, 100, 101} {
		stream = AppendRequest(stream, "m", make([]byte, n-9))
	}
	r := NewReaderSize(bytes.NewReader(stream), lim, 16)
	for i := 0; i < 4; i++ {
		if _, _, err := r.ReadRequest(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if cap(r.buf) > lim.MaxFrame {
			t.Fatalf("frame %d: buffer %d exceeds MaxFrame %d", i, cap(r.buf), lim.MaxFrame)
		}
	}
	_, _, err := r.ReadRequest()
	if err == nil || err.Error() != "frame length 101 exceeds maximum 100" {
		t.Fatalf("err = %v", err)
	}
}

// TestReadErrorReturnedAsIs checks that a stream error other than EOF
// reaches the caller unchanged, at every point of a frame.
func TestReadErrorReturnedAsIs(t *testing.T) {
	boom := errors.New("boom")
	for k := 0; k < len(ping); k++ {
		for _, size := range []int{16, DefaultBufferSize} {
			src := io.MultiReader(bytes.NewReader(ping[:k]), iotest.ErrReader(boom))
			r := NewReaderSize(src, Limits{}, size)
			if _, _, err := r.ReadRequest(); err != boom {
				t.Errorf("cut at %d, size %d: err = %v, want boom", k, size, err)
			}
		}
	}
}

func TestReset(t *testing.T) {
	r := NewReader(bytes.NewReader(hexb("00 00")), Limits{})
	if _, _, err := r.ReadRequest(); err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v", err)
	}
	r.Reset(bytes.NewReader(ping))
	if m, _, err := r.ReadRequest(); err != nil || string(m) != "Ping" {
		t.Fatalf("after Reset: %q, %v", m, err)
	}

	var a, b bytes.Buffer
	w := NewWriter(&a, Limits{})
	_ = w.WriteRequest("lost", nil)
	w.Reset(&b)
	_ = w.WriteRequest("Ping", hexb("0a 02 68 69"))
	if err := w.Flush(); err != nil || a.Len() != 0 || !bytes.Equal(b.Bytes(), ping) {
		t.Fatalf("after Reset: a=% x b=% x err=%v", a.Bytes(), b.Bytes(), err)
	}
}

func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	for _, n := range []int{16, 1 << 10, 64 << 10} {
		payload := make([]byte, n)
		var stream []byte
		for i := 0; i < 4; i++ {
			stream = AppendRequest(stream, "room.Join", payload)
		}
		r := NewReader(&loopReader{data: stream}, Limits{})
		if a := testing.AllocsPerRun(100, func() {
			if _, _, err := r.ReadRequest(); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("ReadRequest, %d-byte payload: %v allocs per frame", n, a)
		}
		rr := NewReader(&loopReader{data: AppendPush(nil, "room.Event", payload)}, Limits{})
		if a := testing.AllocsPerRun(100, func() {
			if _, _, err := rr.ReadResponse(); err != nil {
				t.Fatal(err)
			}
		}); a != 0 {
			t.Errorf("ReadResponse, %d-byte payload: %v allocs per frame", n, a)
		}
		w := NewWriter(io.Discard, Limits{})
		if a := testing.AllocsPerRun(100, func() {
			_ = w.WriteRequest("room.Join", payload)
			_ = w.WriteResponse("", payload)
			_ = w.WritePush("room.Event", payload)
		}); a != 0 {
			t.Errorf("Writer, %d-byte payload: %v allocs per 3 frames", n, a)
		}
		buf := make([]byte, 0, 3*(n+64))
		if a := testing.AllocsPerRun(100, func() {
			b := AppendRequest(buf[:0], "room.Join", payload)
			b = AppendResponse(b, "", payload)
			_ = AppendPush(b, "room.Event", payload)
		}); a != 0 {
			t.Errorf("Append, %d-byte payload: %v allocs per 3 frames", n, a)
		}
	}
}

func TestWriterRefusesOverLimit(t *testing.T) {
	lim := Limits{MaxFrame: 64, MaxMethod: 8, MaxErr: 12}
	tests := []struct {
		name  string
		write func(w *Writer) error
		kind  error
		text  string
	}{
		{"long method", func(w *Writer) error { return w.WriteRequest("123456789", nil) }, ErrNameTooLong,
			"method length 9 exceeds maximum 8"},
		{"long error", func(w *Writer) error { return w.WriteResponse("internal: xyz", nil) }, ErrNameTooLong,
			"error length 13 exceeds maximum 12"},
		{"long event with @", func(w *Writer) error { return w.WritePush("room.Events1", nil) }, ErrNameTooLong,
			"error length 13 exceeds maximum 12"},
		{"big request", func(w *Writer) error { return w.WriteRequest("Ping", make([]byte, 53)) }, ErrTooLarge,
			"frame length 65 exceeds maximum 64"},
		{"big push", func(w *Writer) error { return w.WritePush("e", make([]byte, 55)) }, ErrTooLarge,
			"frame length 65 exceeds maximum 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(&out, lim)
			err := tt.write(w)
			if err == nil || err.Error() != tt.text || !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %q", err, tt.text)
			}
			if w.Buffered() != 0 {
				t.Errorf("%d bytes buffered after a refused frame", w.Buffered())
			}
		})
	}
	// Exactly at the limits is fine, and readable under the same limits.
	var out bytes.Buffer
	w := NewWriter(&out, lim)
	if err := w.WriteRequest("Ping", make([]byte, 52)); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePush("room.Events", nil); err != nil { // "@room.Events" is 12 bytes
		t.Fatal(err)
	}
	_ = w.Flush()
	r := NewReader(&out, lim)
	if _, _, err := r.ReadRequest(); err != nil {
		t.Fatal(err)
	}
	if first, _, err := r.ReadResponse(); err != nil || string(first) != "@room.Events" {
		t.Fatalf("push = %q, %v", first, err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestWriterErrorIsSticky(t *testing.T) {
	boom := errors.New("boom")
	w := NewWriterSize(failWriter{boom}, Limits{}, 16)
	if err := w.WriteRequest("Ping", make([]byte, 100)); err != boom {
		t.Fatalf("err = %v, want boom", err)
	}
	if err := w.WriteRequest("Ping", nil); err != boom {
		t.Fatalf("second write err = %v, want boom", err)
	}
	if err := w.Flush(); err != boom {
		t.Fatalf("Flush err = %v, want boom", err)
	}
}

func TestWriteFrame(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, Limits{})
	b := GetBuffer()
	b.B = AppendPush(b.B, "room.Event", []byte{1, 2})
	if err := w.WriteFrame(b.B); err != nil {
		t.Fatal(err)
	}
	PutBuffer(b)
	_ = w.Flush()
	want := hexb("00 00 00 15  00 00 00 0b  40 72 6f 6f 6d 2e 45 76 65 6e 74  00 00 00 02  01 02")
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("got % x\nwant % x", out.Bytes(), want)
	}
}

func TestBufferPool(t *testing.T) {
	b := GetBuffer()
	if len(b.B) != 0 {
		t.Fatalf("GetBuffer returned %d bytes", len(b.B))
	}
	b.B = append(b.B, "junk"...)
	PutBuffer(b)
	if b := GetBuffer(); len(b.B) != 0 {
		t.Fatalf("GetBuffer after Put returned %d bytes", len(b.B))
	}
	PutBuffer(nil)
	PutBuffer(&Buffer{B: make([]byte, 0, maxPooledBuffer+1)}) // dropped, not pooled
}

func TestLimits(t *testing.T) {
	if got, want := DefaultLimits(), (Limits{MaxFrame: 1 << 20, MaxMethod: 128, MaxErr: 1024}); got != want {
		t.Fatalf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{}).withDefaults(); got != DefaultLimits() {
		t.Fatalf("zero Limits = %+v, want defaults", got)
	}
	if got, want := (Limits{MaxFrame: 64}).withDefaults(), (Limits{MaxFrame: 64, MaxMethod: 56, MaxErr: 56}); got != want {
		t.Fatalf("small MaxFrame = %+v, want %+v", got, want)
	}
	tests := []struct {
		lim  Limits
		want string
	}{
		{DefaultLimits(), ""},
		{Limits{}, ""},
		{Limits{MaxFrame: 8}, ""},
		{Limits{MaxFrame: 1<<31 - 1}, ""},
		{Limits{MaxFrame: 7}, "frame: Limits.MaxFrame is 7, want 8..2147483647"},
		{Limits{MaxFrame: -1}, "frame: Limits.MaxFrame is -1, want 8..2147483647"},
		{Limits{MaxFrame: 1 << 31}, "frame: Limits.MaxFrame is 2147483648, want 8..2147483647"},
		{Limits{MaxMethod: -1}, "frame: Limits.MaxMethod is -1, want 1..1048568 (MaxFrame-8)"},
		{Limits{MaxFrame: 64, MaxMethod: 57}, "frame: Limits.MaxMethod is 57, want 1..56 (MaxFrame-8)"},
		{Limits{MaxErr: -5}, "frame: Limits.MaxErr is -5, want 1..1048568 (MaxFrame-8)"},
		{Limits{MaxFrame: 64, MaxErr: 100}, "frame: Limits.MaxErr is 100, want 1..56 (MaxFrame-8)"},
	}
	for _, tt := range tests {
		err := tt.lim.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%+v.Validate() = %q, want %q", tt.lim, got, tt.want)
		}
	}
}

func TestNewPanicsOnBadLimits(t *testing.T) {
	for _, f := range []func(){
		func() { NewReader(bytes.NewReader(nil), Limits{MaxFrame: 4}) },
		func() { NewWriter(io.Discard, Limits{MaxMethod: -1}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}
