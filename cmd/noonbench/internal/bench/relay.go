package bench

import (
	"bufio"
	"net"
	"sync"
	"time"

	"github.com/noonhq/noon/edge/frame"
)

// relayDialTimeout bounds the relay's dial to its upstream: on loopback a
// dial takes microseconds; a second means the upstream is gone.
const relayDialTimeout = time.Second

// Relay is the two-hop baseline, the floor for any broker on the
// client -> broker -> service path: for each client connection it dials one
// upstream connection and copies frames both ways, requests up and
// responses down, each direction in its own goroutine that parses every
// frame (checking its lengths, as a broker must) and writes it through a
// buffered writer flushed when no more input is buffered. It does no
// routing, no ordering and no scheduling: everything a broker does beyond
// that is what noon costs over this floor.
type Relay struct {
	srv      tcpServer
	upstream string
	lim      frame.Limits
}

// NewRelay listens on addr (loopback, port 0 for a free one) and relays
// each connection to upstream, also a loopback address.
func NewRelay(addr, upstream string) (*Relay, error) {
	up, err := checkLoopback(upstream)
	if err != nil {
		return nil, err
	}
	r := &Relay{upstream: up, lim: frame.DefaultLimits()}
	if err := r.srv.listen(addr, r.serve); err != nil {
		return nil, err
	}
	return r, nil
}

// Addr returns the address the relay listens on.
func (r *Relay) Addr() string { return r.srv.ln.Addr().String() }

// NumConns returns the number of open client connections.
func (r *Relay) NumConns() int { return r.srv.numConns() }

// Close closes the listener and every connection (and so their upstream
// connections) and waits for them.
func (r *Relay) Close() { r.srv.close() }

func (r *Relay) serve(down net.Conn) {
	up, err := net.DialTimeout("tcp", r.upstream, relayDialTimeout)
	if err != nil {
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.copyFrames(up, down, false)
		_ = down.Close() // the upstream ended: end the client's side too
	}()
	r.copyFrames(down, up, true)
	_ = up.Close()
	wg.Wait()
}

// copyFrames reads frames from src and writes them to dst until either
// fails: requests if request is set, responses otherwise.
func (r *Relay) copyFrames(src, dst net.Conn, request bool) {
	br := bufio.NewReaderSize(src, bufSize)
	fr := frame.NewReaderSize(br, r.lim, bufSize)
	w := frame.NewWriterSize(dst, r.lim, bufSize)
	var buf []byte // the re-encoded frame, reused
	for {
		var first, payload []byte
		var err error
		if request {
			first, payload, err = fr.ReadRequest()
		} else {
			first, payload, err = fr.ReadResponse()
		}
		if err != nil {
			return
		}
		// A request and a response (or push) frame are laid out alike, a
		// length-prefixed string then the payload, so AppendRequest
		// re-encodes both; string(first) does not escape it, so a short
		// name costs no allocation.
		buf = frame.AppendRequest(buf[:0], string(first), payload)
		if err := w.WriteFrame(buf); err != nil {
			return
		}
		if cap(buf) > 64<<10 {
			buf = nil // do not hold a rare big frame's buffer
		}
		if br.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}
