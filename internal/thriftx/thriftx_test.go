package thriftx

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/echo"
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   thrift.TStruct
		out  thrift.TStruct
		eq   func(a, b thrift.TStruct) bool
	}{
		{"sleep", &echo.SleepRequest{Ms: 1234}, &echo.SleepRequest{}, func(a, b thrift.TStruct) bool {
			return a.(*echo.SleepRequest).Equals(b.(*echo.SleepRequest))
		}},
		{"sleep negative", &echo.SleepRequest{Ms: -7}, &echo.SleepRequest{}, func(a, b thrift.TStruct) bool {
			return a.(*echo.SleepRequest).Equals(b.(*echo.SleepRequest))
		}},
		{"reply", &echo.SleepReply{SleptMs: 60000}, &echo.SleepReply{}, func(a, b thrift.TStruct) bool {
			return a.(*echo.SleepReply).Equals(b.(*echo.SleepReply))
		}},
		{"fail", &echo.FailRequest{Code: "not_found", Message: "no such room: r42 ✓"}, &echo.FailRequest{}, func(a, b thrift.TStruct) bool {
			return a.(*echo.FailRequest).Equals(b.(*echo.FailRequest))
		}},
		{"empty", &echo.FailRequest{}, &echo.FailRequest{Code: "x"}, func(a, b thrift.TStruct) bool {
			// Default-requiredness fields are always written, so Code is overwritten.
			return a.(*echo.FailRequest).Equals(b.(*echo.FailRequest))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if err := Unmarshal(b, tt.out); err != nil {
				t.Fatalf("Unmarshal(%x): %v", b, err)
			}
			if !tt.eq(tt.in, tt.out) {
				t.Fatalf("round trip: got %v, want %v", tt.out, tt.in)
			}
		})
	}
}

// TestCompactEncoding pins the wire bytes: compact protocol, not binary.
func TestCompactEncoding(t *testing.T) {
	b, err := Marshal(&echo.SleepRequest{Ms: 5})
	if err != nil {
		t.Fatal(err)
	}
	// field 1 delta, type i32 (5) = 0x15; zigzag(5) = 10 = 0x0a; STOP.
	if want := []byte{0x15, 0x0a, 0x00}; string(b) != string(want) {
		t.Fatalf("Marshal = %x, want %x", b, want)
	}
}

func TestUnmarshalErrors(t *testing.T) {
	valid, _ := Marshal(&echo.FailRequest{Code: "bad_request", Message: "hello"})
	tests := []struct {
		name  string
		in    []byte
		want  error // nil: any error
		wantS string
	}{
		{name: "empty", in: nil},
		{name: "truncated", in: valid[:len(valid)-3]},
		{name: "no stop", in: valid[:len(valid)-1]},
		{name: "trailing", in: append(append([]byte{}, valid...), 0x00), want: ErrTrailingBytes},
		{name: "too large", in: make([]byte, MaxMessageSize+1), want: ErrTooLarge},
		// field 1, type binary (8), length varint 0x7fffffff: over the limit.
		{name: "huge string", in: []byte{0x18, 0xff, 0xff, 0xff, 0xff, 0x07}, wantS: "size exceeded"},
		// field 1, type binary, length -1 (varint of 0xffffffff).
		{name: "negative string", in: []byte{0x18, 0xff, 0xff, 0xff, 0xff, 0x0f}, wantS: "negative size"},
		// string of 1000 bytes announced, 2 present.
		{name: "short string", in: []byte{0x18, 0xe8, 0x07, 'h', 'i'}},
		// unknown field 2, a list (type 9) of 15+ i32 (5) elements: 0xf5, size
		// varint 100000, in 1 byte.
		{name: "skipped huge list", in: []byte{0x29, 0xf5, 0xa0, 0x8d, 0x06, 0x00}, wantS: "list of 100000 elements"},
		// unknown field 2, a map (type 11) of 1000 entries.
		{name: "skipped huge map", in: []byte{0x2b, 0xe8, 0x07, 0x55, 0x00}, wantS: "map of 1000 elements"},
		// unknown field 2, a struct (12) nesting structs forever.
		{name: "deep nesting", in: deepStructs(200), wantS: "epth"}, // "Depth limit exceeded" (Skip) or "nested deeper"
		{name: "bad type", in: []byte{0x1e, 0x00}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Unmarshal(tt.in, &echo.FailRequest{})
			if err == nil {
				t.Fatalf("Unmarshal(%q) succeeded", snippet(tt.in))
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.wantS != "" && !strings.Contains(err.Error(), tt.wantS) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantS)
			}
		})
	}
}

// A struct field of a known struct type nests through generated code rather
// than Skip; FailRequest has none, so the depth bound is also tested directly.
func TestDepthBound(t *testing.T) {
	var deep nester
	err := Unmarshal(append(bytesRepeat(0x1c, 100), bytesRepeat(0x00, 101)...), &deep)
	if err == nil || !strings.Contains(err.Error(), "nested deeper than 64") {
		t.Fatalf("err = %v", err)
	}
	var ok nester
	if err := Unmarshal(append(bytesRepeat(0x1c, 10), bytesRepeat(0x00, 11)...), &ok); err != nil {
		t.Fatalf("10 levels: %v", err)
	}
}

func bytesRepeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// nester is a self-recursive struct: field 1 is another nester.
type nester struct{ child *nester }

func (n *nester) Write(ctx context.Context, p thrift.TProtocol) error { return nil }
func (n *nester) Read(ctx context.Context, p thrift.TProtocol) error {
	if _, err := p.ReadStructBegin(ctx); err != nil {
		return err
	}
	for {
		_, typ, id, err := p.ReadFieldBegin(ctx)
		if err != nil {
			return err
		}
		if typ == thrift.STOP {
			break
		}
		if id == 1 && typ == thrift.STRUCT {
			n.child = &nester{}
			if err := n.child.Read(ctx, p); err != nil {
				return err
			}
		} else if err := p.Skip(ctx, typ); err != nil {
			return err
		}
	}
	return p.ReadStructEnd(ctx)
}

// deepStructs encodes field 2 as a struct holding field 1 as a struct ... n
// levels deep.
func deepStructs(n int) []byte {
	b := []byte{0x2c} // field 2, struct
	for i := 0; i < n; i++ {
		b = append(b, 0x1c) // field 1, struct
	}
	for i := 0; i <= n+1; i++ {
		b = append(b, 0x00)
	}
	return b
}

func snippet(b []byte) string {
	if len(b) > 32 {
		b = b[:32]
	}
	return string(b)
}

// listStruct reads a list<i64> directly, like generated code does.
type listStruct struct{ n int }

func (l *listStruct) Write(ctx context.Context, p thrift.TProtocol) error { return nil }
func (l *listStruct) Read(ctx context.Context, p thrift.TProtocol) error {
	_, n, err := p.ReadListBegin(ctx)
	if err != nil {
		return err
	}
	l.n = n
	for i := 0; i < n; i++ {
		if _, err := p.ReadI64(ctx); err != nil {
			return err
		}
	}
	return p.ReadListEnd(ctx)
}

func TestListSizeBound(t *testing.T) {
	// 3 elements of i64 (type 6): 0x36, then zigzag 1, 2, 3.
	var ok listStruct
	if err := Unmarshal([]byte{0x36, 0x02, 0x04, 0x06}, &ok); err != nil || ok.n != 3 {
		t.Fatalf("valid list: n=%d err=%v", ok.n, err)
	}
	var bad listStruct
	err := Unmarshal([]byte{0xf6, 0xff, 0xff, 0x3f, 0x02}, &bad)
	if err == nil || !strings.Contains(err.Error(), "remaining bytes") {
		t.Fatalf("huge list: n=%d err=%v", bad.n, err)
	}
}

type panicky struct{}

func (panicky) Write(context.Context, thrift.TProtocol) error { panic("boom") }
func (panicky) Read(context.Context, thrift.TProtocol) error  { panic("boom") }

func TestPanicsBecomeErrors(t *testing.T) {
	if _, err := Marshal(panicky{}); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("Marshal: %v", err)
	}
	if err := Unmarshal([]byte{0}, panicky{}); err == nil || !strings.Contains(err.Error(), "panic: boom") {
		t.Fatalf("Unmarshal: %v", err)
	}
	if _, err := Marshal(nil); !errors.Is(err, ErrNilStruct) {
		t.Fatalf("Marshal(nil): %v", err)
	}
	if err := Unmarshal([]byte{0}, nil); !errors.Is(err, ErrNilStruct) {
		t.Fatalf("Unmarshal(nil): %v", err)
	}
	var nilReq *echo.SleepRequest
	if err := Unmarshal([]byte{0x15, 0x0a, 0x00}, nilReq); err == nil {
		t.Fatal("Unmarshal into a nil pointer succeeded")
	}
	// The pools still work after the failures.
	var r echo.SleepRequest
	if err := Unmarshal([]byte{0x15, 0x0a, 0x00}, &r); err != nil || r.Ms != 5 {
		t.Fatalf("after panics: %v %v", r, err)
	}
}

func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				in := &echo.FailRequest{Code: "c", Message: strings.Repeat("x", (g*31+i)%300)}
				b, err := Marshal(in)
				if err != nil {
					t.Error(err)
					return
				}
				out := &echo.FailRequest{}
				if err := Unmarshal(b, out); err != nil || !out.Equals(in) {
					t.Errorf("got %v, %v; want %v", out, err, in)
					return
				}
				if i%50 == 0 {
					_ = Unmarshal(b[:len(b)/2], &echo.FailRequest{}) // fails; must not poison the pool
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestMarshalTooLarge(t *testing.T) {
	_, err := Marshal(&echo.FailRequest{Message: strings.Repeat("x", MaxMessageSize)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func BenchmarkMarshal(b *testing.B) {
	in := &echo.FailRequest{Code: "not_found", Message: "no such room"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshal(b *testing.B) {
	buf, _ := Marshal(&echo.FailRequest{Code: "not_found", Message: "no such room"})
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Unmarshal(buf, &echo.FailRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
