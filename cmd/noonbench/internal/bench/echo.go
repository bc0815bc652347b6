package bench

import (
	"bufio"
	"net"

	"github.com/noonhq/noon/edge/frame"
)

// EchoServer is the raw TCP baseline: it answers every pandaparty request
// frame with a success response frame carrying the same payload, whatever
// the method. One goroutine per connection reads a frame, writes the reply
// into a buffered writer, and flushes when no more request bytes are
// already buffered, so pipelined requests are answered in batches.
type EchoServer struct {
	srv tcpServer
	lim frame.Limits
}

// NewEchoServer listens on addr, a loopback host:port ("127.0.0.1:0" picks
// a free port), and serves until Close.
func NewEchoServer(addr string) (*EchoServer, error) {
	e := &EchoServer{lim: frame.DefaultLimits()}
	if err := e.srv.listen(addr, e.serve); err != nil {
		return nil, err
	}
	return e, nil
}

// Addr returns the address the server listens on.
func (e *EchoServer) Addr() string { return e.srv.ln.Addr().String() }

// NumConns returns the number of open connections.
func (e *EchoServer) NumConns() int { return e.srv.numConns() }

// Close closes the listener and every connection and waits for them.
func (e *EchoServer) Close() { e.srv.close() }

func (e *EchoServer) serve(nc net.Conn) {
	// frame.NewReaderSize reuses br (it is a big enough bufio.Reader), so
	// br.Buffered tells whether another request is already here.
	br := bufio.NewReaderSize(nc, bufSize)
	r := frame.NewReaderSize(br, e.lim, bufSize)
	w := frame.NewWriterSize(nc, e.lim, bufSize)
	for {
		_, payload, err := r.ReadRequest()
		if err != nil {
			return
		}
		if err := w.WriteResponse("", payload); err != nil {
			return
		}
		if br.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}
