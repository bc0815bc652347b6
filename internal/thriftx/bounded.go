package thriftx

import (
	"context"
	"fmt"

	"github.com/apache/thrift/lib/go/thrift"
)

// boundedProtocol wraps the compact protocol to check what the configuration
// alone does not: a container may not announce more elements than the bytes
// left could hold (every compact element takes at least one byte, a map entry
// at least two), so generated code never pre-allocates for elements that are
// not there; and structs may nest at most MaxDepth deep.
type boundedProtocol struct {
	thrift.TProtocol
	buf   *thrift.TMemoryBuffer
	depth int
}

func (p *boundedProtocol) ReadStructBegin(ctx context.Context) (string, error) {
	p.depth++
	if p.depth > MaxDepth {
		return "", thrift.NewTProtocolExceptionWithType(thrift.DEPTH_LIMIT,
			fmt.Errorf("structs nested deeper than %d", MaxDepth))
	}
	return p.TProtocol.ReadStructBegin(ctx)
}

func (p *boundedProtocol) ReadStructEnd(ctx context.Context) error {
	p.depth--
	return p.TProtocol.ReadStructEnd(ctx)
}

func (p *boundedProtocol) checkElems(kind string, size, perElem int) error {
	if left := p.buf.Len(); size > left/perElem {
		return thrift.NewTProtocolExceptionWithType(thrift.SIZE_LIMIT,
			fmt.Errorf("%s of %d elements in %d remaining bytes", kind, size, left))
	}
	return nil
}

func (p *boundedProtocol) ReadListBegin(ctx context.Context) (thrift.TType, int, error) {
	t, n, err := p.TProtocol.ReadListBegin(ctx)
	if err == nil {
		err = p.checkElems("list", n, 1)
	}
	return t, n, err
}

func (p *boundedProtocol) ReadSetBegin(ctx context.Context) (thrift.TType, int, error) {
	t, n, err := p.TProtocol.ReadSetBegin(ctx)
	if err == nil {
		err = p.checkElems("set", n, 1)
	}
	return t, n, err
}

func (p *boundedProtocol) ReadMapBegin(ctx context.Context) (thrift.TType, thrift.TType, int, error) {
	k, v, n, err := p.TProtocol.ReadMapBegin(ctx)
	if err == nil {
		err = p.checkElems("map", n, 2)
	}
	return k, v, n, err
}

// Skip skips an unknown field through this wrapper, so skipped containers
// and structs are bounded too.
func (p *boundedProtocol) Skip(ctx context.Context, t thrift.TType) error {
	return thrift.Skip(ctx, p, t, MaxDepth-p.depth)
}
