package frame

import "sync"

const (
	// pooledBufferSize is the initial capacity of a pooled buffer: a typical
	// reply or push (a Thrift compact struct plus 12 bytes of framing) is a
	// few hundred bytes, so most frames never grow it.
	pooledBufferSize = 512

	// maxPooledBuffer is the largest buffer PutBuffer keeps, 64 KiB. A buffer
	// that grew past it for a rare big frame is dropped rather than pooled, so
	// the pool does not pin up to MaxFrame per idle entry.
	maxPooledBuffer = 64 << 10
)

// Buffer is a reusable byte slice for encoding a frame that is handed to
// another goroutine, e.g. a push queued for a connection's writer:
//
//	b := frame.GetBuffer()
//	b.B = frame.AppendPush(b.B, "room.Event", payload)
//	queue <- b // the writer calls w.WriteFrame(b.B), then frame.PutBuffer(b)
//
// It is a pointer to a struct so that pooling it does not allocate.
type Buffer struct {
	// B is the encoded bytes; GetBuffer returns it empty.
	B []byte
}

var bufferPool = sync.Pool{
	New: func() any { return &Buffer{B: make([]byte, 0, pooledBufferSize)} },
}

// GetBuffer returns an empty Buffer from a shared pool.
func GetBuffer() *Buffer {
	b := bufferPool.Get().(*Buffer)
	b.B = b.B[:0]
	return b
}

// PutBuffer returns b to the pool; b must not be used afterwards. Buffers
// that grew beyond 64 KiB are dropped instead. A nil b is ignored.
func PutBuffer(b *Buffer) {
	if b == nil || cap(b.B) > maxPooledBuffer {
		return
	}
	b.B = b.B[:0]
	bufferPool.Put(b)
}
