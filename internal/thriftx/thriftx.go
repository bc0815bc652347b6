// Package thriftx encodes and decodes Thrift structs with the compact
// protocol, the encoding of every payload on the client wire and inside the
// platform's envelopes.
//
// Payloads come from the network, so decoding is bounded: the input size, every
// string, binary, list, set and map length, and the struct nesting depth are
// checked before anything is allocated, and a malformed payload returns an
// error; it never panics. Marshal and Unmarshal are safe for concurrent use:
// they take a protocol from a pool and put it back when done.
package thriftx

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/thrift/lib/go/thrift"
)

// MaxMessageSize is the largest encoding Marshal produces and Unmarshal
// accepts, in bytes. It is the client wire's default maximum frame (1 MiB):
// a payload larger than a frame can never reach a service, so nothing needs
// to decode one.
const MaxMessageSize = 1 << 20

// MaxDepth is how deeply structs (and containers of structs) may nest. The
// platform's IDL nests a few levels; 64 leaves room for that and keeps a
// hostile payload from recursing the decoder into a huge stack.
const MaxDepth = 64

// maxPooledBuffer is the largest buffer kept in the pools: an occasional
// large payload must not pin its buffer for the life of the process.
const maxPooledBuffer = 64 << 10

var (
	// ErrTooLarge is returned for an encoding over MaxMessageSize.
	ErrTooLarge = errors.New("thriftx: message too large")
	// ErrTrailingBytes is returned by Unmarshal when bytes follow the end of
	// the struct: the payload is not one encoding.
	ErrTrailingBytes = errors.New("thriftx: trailing bytes after struct")
	// ErrNilStruct is returned when Marshal or Unmarshal is given no struct.
	ErrNilStruct = errors.New("thriftx: nil struct")
)

// conf bounds what the compact protocol accepts: no single length may exceed
// MaxMessageSize.
var conf = &thrift.TConfiguration{
	MaxMessageSize: MaxMessageSize,
	MaxFrameSize:   MaxMessageSize,
}

// codec is one memory buffer and the bounded compact protocol over it. It is
// used by one goroutine at a time (the pools hand it out).
type codec struct {
	buf   *thrift.TMemoryBuffer
	proto *boundedProtocol
}

func newCodec() *codec {
	buf := thrift.NewTMemoryBufferLen(256)
	return &codec{
		buf:   buf,
		proto: &boundedProtocol{TProtocol: thrift.NewTCompactProtocolConf(buf, conf), buf: buf},
	}
}

// The compact protocol keeps per-message state (the field-id stack, pending
// booleans) and has no Reset, so a codec that failed mid-message is dropped
// instead of being put back.
var (
	encoders = sync.Pool{New: func() any { return newCodec() }}
	decoders = sync.Pool{New: func() any { return newCodec() }}
)

func put(p *sync.Pool, c *codec) {
	if c.buf.Cap() > maxPooledBuffer {
		return
	}
	c.buf.Reset()
	c.proto.depth = 0
	p.Put(c)
}

// Marshal returns the compact encoding of s.
func Marshal(s thrift.TStruct) (b []byte, err error) {
	if s == nil {
		return nil, ErrNilStruct
	}
	c := encoders.Get().(*codec)
	c.buf.Reset()
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("thriftx: encode %T: panic: %v", s, r)
		}
	}()
	ctx := context.Background()
	if err := s.Write(ctx, c.proto); err != nil {
		return nil, fmt.Errorf("thriftx: encode %T: %w", s, err)
	}
	if err := c.proto.Flush(ctx); err != nil {
		return nil, fmt.Errorf("thriftx: encode %T: %w", s, err)
	}
	if c.buf.Len() > MaxMessageSize {
		put(&encoders, c)
		return nil, fmt.Errorf("%w: %T encodes to %d bytes, max %d", ErrTooLarge, s, c.buf.Len(), MaxMessageSize)
	}
	b = append([]byte(nil), c.buf.Bytes()...)
	put(&encoders, c)
	return b, nil
}

// Unmarshal decodes the compact encoding b into s. It fails on a truncated,
// oversized or malformed encoding and on bytes after the end of the struct.
// Fields of s that b does not carry keep their values, as with any Thrift
// decoder, so pass a fresh struct.
func Unmarshal(b []byte, s thrift.TStruct) (err error) {
	if s == nil {
		return ErrNilStruct
	}
	if len(b) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, max %d", ErrTooLarge, len(b), MaxMessageSize)
	}
	c := decoders.Get().(*codec)
	c.buf.Reset()
	c.proto.depth = 0
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("thriftx: decode %T: panic: %v", s, r)
		}
	}()
	if _, err := c.buf.Write(b); err != nil {
		return fmt.Errorf("thriftx: decode %T: %w", s, err)
	}
	if err := s.Read(context.Background(), c.proto); err != nil {
		return fmt.Errorf("thriftx: decode %T: %w", s, err)
	}
	if n := c.buf.Len(); n != 0 {
		put(&decoders, c)
		return fmt.Errorf("%w: %d bytes left decoding %T", ErrTrailingBytes, n, s)
	}
	put(&decoders, c)
	return nil
}
