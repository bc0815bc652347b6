package frame

import (
	"fmt"
	"io"
	"testing"
)

// benchSizes are the payload sizes of every benchmark: a small Thrift
// struct, a typical bulk reply, and a big one past the read buffer.
var benchSizes = []int{16, 1 << 10, 64 << 10}

func sizeName(n int) string {
	if n >= 1<<10 {
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

func BenchmarkEncodeRequest(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			payload := make([]byte, n)
			w := NewWriter(io.Discard, Limits{})
			b.SetBytes(int64(len(AppendRequest(nil, "room.Join", payload))))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteRequest("room.Join", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeResponse(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			payload := make([]byte, n)
			w := NewWriter(io.Discard, Limits{})
			b.SetBytes(int64(len(AppendResponse(nil, "", payload))))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.WriteResponse("", payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchStream returns an endless in-memory stream of copies of frame, at
// least 256 KiB before it repeats.
func benchStream(frame []byte) io.Reader {
	var data []byte
	for len(data) < 256<<10 {
		data = append(data, frame...)
	}
	return &loopReader{data: data}
}

func BenchmarkDecodeRequest(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			frame := AppendRequest(nil, "room.Join", make([]byte, n))
			r := NewReader(benchStream(frame), Limits{})
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.ReadRequest(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeResponse(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			frame := AppendResponse(nil, "", make([]byte, n))
			r := NewReader(benchStream(frame), Limits{})
			b.SetBytes(int64(len(frame)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.ReadResponse(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
