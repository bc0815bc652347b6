package bench

import (
	"errors"
	"net"
	"sync"
	"time"
)

// Accept back-off on temporary errors (running out of file descriptors):
// from 5 ms doubling to 1 s, as net/http does.
const (
	minAcceptBackoff = 5 * time.Millisecond
	maxAcceptBackoff = time.Second
)

// bufSize is the read and write buffer of every connection of the echo
// server and the relay: the edge's default (edge.DefaultReadBuffer), so
// the baselines buffer as the broker does.
const bufSize = 4 << 10

// tcpServer is what EchoServer and Relay share: a loopback listener, an
// accept loop, and the set of open connections, all closed by close.
type tcpServer struct {
	ln    net.Listener
	serve func(net.Conn) // runs a connection until it ends; the caller closes it

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// listen binds addr, which must be a loopback address ("127.0.0.1:0" picks
// a free port), and starts accepting.
func (s *tcpServer) listen(addr string, serve func(net.Conn)) error {
	addr, err := checkLoopback(addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln, s.serve, s.conns = ln, serve, make(map[net.Conn]struct{})
	s.wg.Add(1)
	go s.acceptLoop()
	return nil
}

func (s *tcpServer) acceptLoop() {
	defer s.wg.Done()
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, minAcceptBackoff), maxAcceptBackoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !s.track(nc) {
			_ = nc.Close()
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.untrack(nc)
			s.serve(nc)
		}()
	}
}

// track adds nc to the set, or reports false once the server is closed.
// The WaitGroup is added to under mu, so close's Wait sees every goroutine.
func (s *tcpServer) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *tcpServer) untrack(nc net.Conn) {
	_ = nc.Close()
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// numConns returns the number of open connections.
func (s *tcpServer) numConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// close closes the listener and every connection and waits for their
// goroutines. It is idempotent.
func (s *tcpServer) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	_ = s.ln.Close()
	for nc := range s.conns {
		_ = nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
