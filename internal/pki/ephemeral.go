package pki

import (
	"fmt"
	"sync"
	"time"
)

// ephemeralValidity is how long an ephemeral CA and its certificates live
// (30 days): they exist only in the memory (or the temporary directory) of
// one noon dev, noon cluster or test run.
const ephemeralValidity = 30 * 24 * time.Hour

// Ephemeral is an in-memory CA that issues, on demand and once per
// identity, the certificates of a platform running on this machine: noon
// dev, noon cluster and tests turn TLS on with it and nobody sees a
// certificate. Its certificates name loopback only (DefaultHosts). It is
// safe for concurrent use.
type Ephemeral struct {
	ca *CA

	mu    sync.Mutex // guards creds
	creds map[Identity]*Credentials
}

// NewEphemeral makes a fresh CA.
func NewEphemeral() (*Ephemeral, error) {
	ca, err := NewCA("noon ephemeral CA", ephemeralValidity)
	if err != nil {
		return nil, err
	}
	return &Ephemeral{ca: ca, creds: make(map[Identity]*Credentials)}, nil
}

// CA returns the ephemeral CA (noon cluster writes it and the certificates
// it issues to a temporary directory for its child processes).
func (e *Ephemeral) CA() *CA { return e.ca }

// Issue issues a new certificate for id.
func (e *Ephemeral) Issue(id Identity) (*Issued, error) {
	return e.ca.Issue(id, IssueOptions{Validity: ephemeralValidity})
}

// Credentials returns the credentials of id, issued on first use and the
// same afterwards.
func (e *Ephemeral) Credentials(id Identity) (*Credentials, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.creds[id]; c != nil {
		return c, nil
	}
	is, err := e.Issue(id)
	if err != nil {
		return nil, err
	}
	c, err := e.ca.Credentials(is)
	if err != nil {
		return nil, fmt.Errorf("pki: ephemeral %s: %w", id, err)
	}
	e.creds[id] = c
	return c, nil
}
