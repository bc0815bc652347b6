package link

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"sync"

	"github.com/noonhq/noon/internal/pki"
)

type callerKey struct{}

// CallerFrom returns the verified identity of the connection a request came
// from, from the context a Server gives its Handler (and anything derived
// from it). It reports false on a Server without TLS: there, nobody is
// verified.
func CallerFrom(ctx context.Context) (pki.Identity, bool) {
	id, ok := ctx.Value(callerKey{}).(pki.Identity)
	return id, ok
}

// callerTable maps the routing identities of a TLS ROUTER's live
// connections to the verified identities of their certificates.
//
// zmq4's ROUTER prefixes every message with the routing id the DEALER chose
// in its READY (its Identity property), and sends a reply to every
// connection holding that id. The guard reads the READY before zmq4 does:
// it binds the id to the connection's certificate here, refuses a READY
// without one, and refuses an id that a live connection with another
// certificate holds, so a routing id names one certificate for as long as
// any connection uses it. A connection's binding goes when it closes.
type callerTable struct {
	mu sync.RWMutex // guards m
	m  map[string]*callerEntry
}

type callerEntry struct {
	id    pki.Identity
	cert  [sha256.Size]byte // fingerprint of the certificate
	conns int               // live connections holding the id
}

func newCallerTable() *callerTable {
	return &callerTable{m: make(map[string]*callerEntry)}
}

// bind records that a connection presenting cert as id uses routing id rid.
func (t *callerTable) bind(rid string, id pki.Identity, cert [sha256.Size]byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[rid]; e != nil {
		if e.cert != cert {
			return fmt.Errorf("routing identity already held by a connection of %s", e.id)
		}
		e.conns++
		return nil
	}
	t.m[rid] = &callerEntry{id: id, cert: cert, conns: 1}
	return nil
}

// release drops one connection's hold on rid.
func (t *callerTable) release(rid string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.m[rid]; e != nil {
		if e.conns--; e.conns <= 0 {
			delete(t.m, rid)
		}
	}
}

// lookup returns the identity behind routing id rid.
func (t *callerTable) lookup(rid []byte) (pki.Identity, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	e := t.m[string(rid)]
	if e == nil {
		return pki.Identity{}, false
	}
	return e.id, true
}

// peerOf returns the verified identity and certificate fingerprint of a
// TLS connection whose handshake is done.
func peerOf(tc *tls.Conn) (pki.Identity, [sha256.Size]byte, error) {
	cs := tc.ConnectionState()
	id, err := pki.PeerIdentity(cs)
	if err != nil {
		return pki.Identity{}, [sha256.Size]byte{}, err
	}
	return id, sha256.Sum256(cs.PeerCertificates[0].Raw), nil
}
