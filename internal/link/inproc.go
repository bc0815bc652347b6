package link

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// In-process links. A Server made with ServerOptions.InProcess is also
// reachable without a socket by the Peers of its own process (`noon dev`
// runs every daemon in one process): a Peer whose endpoint is such a
// Server's bound endpoint hands its messages to the Server's onMessage,
// and the Server hands its replies to the link's onMessage, on the
// goroutine that sends them. The messages are the same encoded envelopes,
// under the same limits, deadlines, in-flight bound, inline rule, PING and
// CANCEL as over a socket; what is skipped is zmq4, TLS records, system
// calls and the reader goroutines' wake-ups. With TLS the link is made
// only when each side's certificate verifies as the handshake would
// verify it (pki.Credentials.VerifyInProcess), and the handler sees the
// caller's verified identity as on a socket. When the Server closes, its
// in-process links die (their calls fail unavailable) and the Peers
// redial: over TCP, as the registry no longer names the endpoint.

// inproc is the process's registry of in-process Servers by bound
// endpoint.
var inproc struct {
	mu      sync.Mutex
	servers map[string]*Server
}

// registerInProcess makes s reachable in-process at its endpoint.
func registerInProcess(s *Server) {
	inproc.mu.Lock()
	defer inproc.mu.Unlock()
	if inproc.servers == nil {
		inproc.servers = make(map[string]*Server)
	}
	inproc.servers[s.endpoint] = s
}

// unregisterInProcess ends s's registration.
func unregisterInProcess(s *Server) {
	inproc.mu.Lock()
	defer inproc.mu.Unlock()
	if inproc.servers[s.endpoint] == s {
		delete(inproc.servers, s.endpoint)
	}
}

// inProcessServer returns the in-process Server bound at endpoint, if any.
func inProcessServer(endpoint string) *Server {
	inproc.mu.Lock()
	defer inproc.mu.Unlock()
	return inproc.servers[endpoint]
}

// localConn is one in-process link as its Server sees it.
type localConn struct {
	rid  string
	ridB []byte
	l    *link
	s    *Server
}

// errServerClosed is the cause of death of an in-process link whose
// Server closed.
var errServerClosed = errors.New("the in-process server closed")

// attach admits l (routing identity rid) as an in-process connection,
// after the checks a TLS handshake makes.
func (s *Server) attach(l *link, rid string) (*localConn, error) {
	p := l.p
	lc := &localConn{rid: rid, ridB: []byte(rid), l: l, s: s}
	switch {
	case s.opts.TLS == nil && p.opts.TLS == nil:
	case s.opts.TLS == nil:
		return nil, errors.New("link: in-process: the server has no TLS and the peer requires it")
	case p.opts.TLS == nil:
		return nil, errors.New("link: in-process: the server requires TLS and the peer has no certificate")
	default:
		id, cert, err := s.opts.TLS.VerifyInProcess(p.opts.TLS, p.opts.ExpectIdentity)
		if err != nil {
			s.gstats.rejected.Add(1)
			return nil, fmt.Errorf("link: in-process: %w", err)
		}
		if err := s.callers.bind(rid, id, cert); err != nil {
			s.gstats.rejected.Add(1)
			return nil, fmt.Errorf("link: in-process: %w", err)
		}
	}
	s.localMu.Lock()
	if s.closed.Load() {
		s.localMu.Unlock()
		s.detach(lc)
		return nil, errServerClosed
	}
	if s.locals == nil {
		s.locals = make(map[string]*localConn)
	}
	s.locals[rid] = lc
	s.localMu.Unlock()
	s.stats.inproc.Add(1)
	return lc, nil
}

// detach removes an in-process connection.
func (s *Server) detach(lc *localConn) {
	s.localMu.Lock()
	if s.locals[lc.rid] == lc {
		delete(s.locals, lc.rid)
	}
	s.localMu.Unlock()
	if s.callers != nil {
		s.callers.release(lc.rid)
	}
}

// local returns the in-process connection of routing identity peer.
func (s *Server) local(peer []byte) *localConn {
	s.localMu.RLock()
	defer s.localMu.RUnlock()
	return s.locals[string(peer)]
}

// closeLocals kills every in-process link (Close).
func (s *Server) closeLocals() {
	s.localMu.Lock()
	conns := make([]*localConn, 0, len(s.locals))
	for _, lc := range s.locals {
		conns = append(conns, lc)
	}
	s.localMu.Unlock()
	for _, lc := range conns {
		lc.l.kill(errServerClosed)
	}
}

// connectInProcess makes a link to the in-process Server s.
func (p *Peer) connectInProcess(s *Server) (*link, error) {
	id := newIdentity(p.opts.IdentityPrefix)
	l := &link{
		p:        p,
		identity: id,
		dead:     make(chan struct{}),
		pending:  make(map[uint64]waiter),
	}
	lc, err := s.attach(l, id)
	if err != nil {
		return nil, err
	}
	l.local = lc
	l.lastRecv.Store(time.Now().UnixNano())
	return l, nil
}

// sendLocal hands b to the link's in-process Server, which answers (a
// reply, a PONG) through deliver, possibly before sendLocal returns.
func (l *link) sendLocal(b []byte) bool {
	if l.isDead() {
		return true // lost with the link, as a socket's queued messages are
	}
	lc := l.local
	if n := len(b); n > lc.s.opts.MaxMessage {
		// Over the server's limit: its guard would close the connection.
		lc.s.gstats.rejected.Add(1)
		go l.kill(fmt.Errorf("a %d-byte message over the server's limit of %d bytes", n, lc.s.opts.MaxMessage))
		return true
	}
	lc.s.onMessage(lc.ridB, lc.rid, b, true, inlineAlways, nil)
	putBuf(b) // decoded: the envelope holds copies
	return true
}

// deliverLocal hands an in-process connection's message to its link.
func (lc *localConn) deliver(body []byte) {
	if !lc.l.isDead() {
		lc.l.onMessage(body, true)
	}
	putBuf(body) // decoded: the envelope holds copies
}

// closeLocal ends an in-process link (the Peer's side of a socket's
// Close).
func (l *link) closeLocal() {
	l.kill(ErrClosed)
	l.local.s.detach(l.local)
}
