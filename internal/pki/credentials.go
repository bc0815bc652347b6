package pki

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Credentials are what a process needs for mutual TLS on the platform's
// internal links: the CA pool it trusts, its own certificate and key, and
// the identity its certificate carries. They are immutable; share them.
type Credentials struct {
	roots *x509.CertPool
	cert  tls.Certificate
	leaf  *x509.Certificate
	id    Identity
}

// NewCredentials checks that cert carries one identity and was issued by a
// CA of roots (and has not expired), and returns the credentials.
func NewCredentials(roots *x509.CertPool, cert tls.Certificate) (*Credentials, error) {
	if roots == nil {
		return nil, errors.New("pki: no CA")
	}
	if len(cert.Certificate) == 0 {
		return nil, errors.New("pki: no certificate")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("pki: certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, err
	}
	if err := verifyChain(roots, leaf, parseChain(cert.Certificate[1:]), x509.ExtKeyUsageAny); err != nil {
		return nil, fmt.Errorf("pki: own certificate (%s): %w", id, err)
	}
	return &Credentials{roots: roots, cert: cert, leaf: leaf, id: id}, nil
}

// LoadCredentials reads the CA file (one or more PEM certificates: during a
// CA rotation it holds the old and the new CA), the certificate file (the
// certificate, optionally followed by intermediates) and the key file.
func LoadCredentials(caFile, certFile, keyFile string) (*Credentials, error) {
	roots, err := LoadPool(caFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("pki: %s, %s: %w", certFile, keyFile, err)
	}
	c, err := NewCredentials(roots, pair)
	if err != nil {
		return nil, fmt.Errorf("%w (cert %s, ca %s)", err, certFile, caFile)
	}
	return c, nil
}

// LoadPool reads a PEM file of one or more CA certificates.
func LoadPool(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("pki: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pki: CA file %s: %w", caFile, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("pki: CA file %s: %q is not a CA certificate", caFile, c.Subject.CommonName)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("pki: CA file %s: no PEM certificate", caFile)
	}
	return pool, nil
}

// Identity returns the identity of the credentials' certificate.
func (c *Credentials) Identity() Identity { return c.id }

// Roots returns the CA pool the credentials trust.
func (c *Credentials) Roots() *x509.CertPool { return c.roots }

// Certificate returns the credentials' own certificate chain and key.
func (c *Credentials) Certificate() tls.Certificate { return c.cert }

// Require checks that the certificate's identity satisfies want: what a
// daemon calls before it starts ("this is a yellow certificate").
func (c *Credentials) Require(want Identity) error {
	if !c.id.Satisfies(want) {
		return fmt.Errorf("the certificate says %s, but this process runs as %s: issue it a %s certificate (noon certs issue)", c.id, want, want)
	}
	return nil
}

// ServerConfig returns the TLS configuration of a listener: TLS 1.3 only,
// the credentials' certificate, a client certificate from the CA required.
// accept, when set, decides on the client's identity once its chain is
// verified (a Publisher admits only brokers); its error refuses the
// connection.
func (c *Credentials) ServerConfig(accept func(Identity) error) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		MaxVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    c.roots,
		// Every connection presents and is checked against its certificate:
		// no resumption that could outlive a certificate's rotation.
		SessionTicketsDisabled: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			// The chain was verified against ClientCAs (no host names are
			// involved for a client); the identity is what matters.
			id, err := PeerIdentity(cs)
			if err != nil {
				return err
			}
			if accept != nil {
				return accept(id)
			}
			return nil
		},
	}
}

// ClientConfig returns the TLS configuration of a dialer: TLS 1.3 only, the
// credentials' certificate presented, and the server verified by chain to
// the CA and by identity: it must satisfy expect (the zero Identity accepts
// any identity the CA issued).
//
// The server's host name is not verified. Endpoints come from yellow, as
// bound or advertised (an IP, a container's name, a NAT address), and a
// certificate cannot list every name a process is reached by; what a caller
// needs to know is that the CA issued the certificate and for which role
// and service, which VerifyConnection checks. (Go's own verification would
// also check the name, so it is turned off with InsecureSkipVerify and done
// here instead.)
func (c *Credentials) ClientConfig(expect Identity) *tls.Config {
	cert := c.cert
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		// Always present the certificate, even when the server's list of
		// acceptable CAs does not name its issuer, so that the server
		// reports (and logs) why it refused it.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
		InsecureSkipVerify:   true, // see above: VerifyConnection verifies chain and identity
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("pki: the server sent no certificate")
			}
			if err := verifyChain(c.roots, cs.PeerCertificates[0], cs.PeerCertificates[1:], x509.ExtKeyUsageServerAuth); err != nil {
				return fmt.Errorf("pki: server certificate: %w", err)
			}
			id, err := IdentityOf(cs.PeerCertificates[0])
			if err != nil {
				return err
			}
			if !id.Satisfies(expect) {
				return fmt.Errorf("pki: the server is %s, expected %s", id, expect)
			}
			return nil
		},
	}
}

// PeerIdentity returns the identity of the peer's (verified) certificate
// of a TLS connection.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, errors.New("pki: the peer sent no certificate")
	}
	return IdentityOf(cs.PeerCertificates[0])
}

// verifyChain verifies leaf (with intermediates) against roots, for usage.
func verifyChain(roots *x509.CertPool, leaf *x509.Certificate, intermediates []*x509.Certificate, usage x509.ExtKeyUsage) error {
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}
	if len(intermediates) > 0 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range intermediates {
			opts.Intermediates.AddCert(c)
		}
	}
	_, err := leaf.Verify(opts)
	return err
}

// parseChain parses DER certificates, skipping what does not parse (the
// verification that follows then fails if it mattered).
func parseChain(ders [][]byte) []*x509.Certificate {
	var out []*x509.Certificate
	for _, d := range ders {
		if c, err := x509.ParseCertificate(d); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// VerifyInProcess is the mutual TLS handshake's verification for a link
// between two parts of one process that skips the socket (an in-process
// link: link.ServerOptions.InProcess), with c the server's credentials and
// client the caller's: the client's certificate must verify against the
// server's CA as a client certificate, and the server's against the
// client's CA as a server certificate whose identity satisfies expect,
// exactly as ServerConfig and ClientConfig decide for a connection. It
// returns the client's identity and the SHA-256 of its certificate.
func (c *Credentials) VerifyInProcess(client *Credentials, expect Identity) (Identity, [sha256.Size]byte, error) {
	var none [sha256.Size]byte
	id, leaf, err := verifiedIdentity(c.roots, client.cert, x509.ExtKeyUsageClientAuth)
	if err != nil {
		return Identity{}, none, fmt.Errorf("pki: client certificate: %w", err)
	}
	sid, _, err := verifiedIdentity(client.roots, c.cert, x509.ExtKeyUsageServerAuth)
	if err != nil {
		return Identity{}, none, fmt.Errorf("pki: server certificate: %w", err)
	}
	if !sid.Satisfies(expect) {
		return Identity{}, none, fmt.Errorf("pki: the server is %s, expected %s", sid, expect)
	}
	return id, sha256.Sum256(leaf.Raw), nil
}

// verifiedIdentity verifies cert's chain against roots for usage and
// returns the identity and the leaf.
func verifiedIdentity(roots *x509.CertPool, cert tls.Certificate, usage x509.ExtKeyUsage) (Identity, *x509.Certificate, error) {
	leaf, rest, err := chainOf(cert)
	if err != nil {
		return Identity{}, nil, err
	}
	if err := verifyChain(roots, leaf, rest, usage); err != nil {
		return Identity{}, nil, err
	}
	id, err := IdentityOf(leaf)
	return id, leaf, err
}

// chainOf parses a certificate chain's leaf and the certificates after it.
func chainOf(cert tls.Certificate) (*x509.Certificate, []*x509.Certificate, error) {
	if len(cert.Certificate) == 0 {
		return nil, nil, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, nil, err
	}
	return leaf, parseChain(cert.Certificate[1:]), nil
}
