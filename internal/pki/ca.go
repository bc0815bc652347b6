package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Validity defaults.
const (
	// DefaultCAValidity is how long a CA made by NewCA is valid (10 years):
	// rotating a CA means shipping a bundle to every process first, so it
	// should be rare.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// DefaultCertValidity is how long an issued certificate is valid (1
	// year): long enough not to surprise an operator, short enough that a
	// leaked key does not work forever. Re-issue from the same CA and
	// restart instances one at a time.
	DefaultCertValidity = 365 * 24 * time.Hour
	// clockSkew backdates NotBefore (5 minutes), so that a host whose clock
	// is a little behind the issuer's accepts a fresh certificate.
	clockSkew = 5 * time.Minute
)

// DefaultHosts are the DNS and IP SANs of a certificate issued without any:
// loopback, where noon dev and noon cluster run.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// CA is a cluster certificate authority: a self-signed ECDSA P-256
// certificate and its key, which issue the certificates of every process.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA makes a new CA whose subject is name (default "noon cluster CA"),
// valid for validity (default DefaultCAValidity).
func NewCA(name string, validity time.Duration) (*CA, error) {
	if name == "" {
		name = "noon cluster CA"
	}
	if validity <= 0 {
		validity = DefaultCAValidity
	}
	key, tmpl, err := newTemplate(name, validity)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	// The CA signs only end-entity certificates.
	tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{cert: cert, certPEM: encodePEM("CERTIFICATE", der), key: key}, nil
}

// newTemplate returns a fresh ECDSA P-256 key and the template of a
// certificate for common name cn, valid for validity from now (backdated
// by clockSkew), with a random serial number.
func newTemplate(cn string, validity time.Duration) (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: key: %w", err)
	}
	now := time.Now()
	return key, &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"noon"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(validity),
	}, nil
}

// serial returns a random 128-bit serial number (RFC 5280 allows 20
// octets; randomness makes collisions between CAs and runs irrelevant).
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)) // never fails (crypto/rand)
	return n
}

func encodePEM(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

// Certificate returns the CA's certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA's certificate in PEM: the content of a ca file.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// IssueOptions configures Issue.
type IssueOptions struct {
	// Hosts are the DNS names and IP addresses put in the certificate
	// (default DefaultHosts). noon does not verify them (see the package
	// documentation); they let ordinary TLS tools check the certificate.
	Hosts []string
	// Validity is how long the certificate is valid (default
	// DefaultCertValidity).
	Validity time.Duration
}

// Issued is a certificate issued by a CA, with its key, in PEM.
type Issued struct {
	Identity Identity
	CertPEM  []byte
	KeyPEM   []byte
}

// Issue issues a certificate for id, usable as a TLS server and client
// certificate (every process both accepts and dials), with a fresh ECDSA
// P-256 key.
func (ca *CA) Issue(id Identity, opts IssueOptions) (*Issued, error) {
	if err := id.Validate(); err != nil {
		return nil, err
	}
	if opts.Validity <= 0 {
		opts.Validity = DefaultCertValidity
	}
	hosts := opts.Hosts
	if len(hosts) == 0 {
		hosts = DefaultHosts
	}
	key, tmpl, err := newTemplate(id.String(), opts.Validity)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	tmpl.URIs = []*url.URL{id.URI()}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if tmpl.NotAfter.After(ca.cert.NotAfter) {
		tmpl.NotAfter = ca.cert.NotAfter // never outlive the issuer
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("pki: certificate for %s: %w", id, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &Issued{Identity: id, CertPEM: encodePEM("CERTIFICATE", der), KeyPEM: encodePEM("PRIVATE KEY", keyDER)}, nil
}

// Credentials returns the credentials of an issued certificate, trusting
// this CA.
func (ca *CA) Credentials(is *Issued) (*Credentials, error) {
	pair, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		return nil, err
	}
	return NewCredentials(ca.Pool(), pair)
}

// File names in a certificate directory (noon certs, noon cluster).
const (
	// CACertFile is the CA's certificate (the "ca" of the tls block).
	CACertFile = "ca.crt"
	// CAKeyFile is the CA's key; keep it off the hosts that run noon.
	CAKeyFile = "ca.key"
)

// CertFiles returns the paths of id's certificate and key in dir:
// <role>.crt / .key, or <role>-<name>.crt / .key.
func CertFiles(dir string, id Identity) (cert, key string) {
	base := string(id.Role)
	if id.Name != "" {
		base += "-" + id.Name
	}
	return filepath.Join(dir, base+".crt"), filepath.Join(dir, base+".key")
}

// Save writes the CA's certificate (0644) and key (0600) to dir
// (CACertFile, CAKeyFile), creating dir (0700) if needed. It refuses to
// overwrite an existing CA key.
func (ca *CA) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, CAKeyFile), encodePEM("PRIVATE KEY", keyDER), 0o600, false); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, CACertFile), ca.certPEM, 0o644, true)
}

// Save writes the certificate (0644) and key (0600) to dir under
// CertFiles' names, creating dir (0700) if needed, and returns their paths.
// Existing files are replaced (rotation).
func (is *Issued) Save(dir string) (certFile, keyFile string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	certFile, keyFile = CertFiles(dir, is.Identity)
	if err := writeFile(keyFile, is.KeyPEM, 0o600, true); err != nil {
		return "", "", err
	}
	if err := writeFile(certFile, is.CertPEM, 0o644, true); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// writeFile writes data to path with perm, atomically (a temporary file
// renamed over it), so that a process restarting meanwhile never reads half
// a key. Without replace an existing file is an error.
func writeFile(path string, data []byte, perm os.FileMode, replace bool) error {
	if !replace {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("pki: %s exists; not overwriting it", path)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing there
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// LoadCA reads a CA saved by Save (dir/CACertFile and dir/CAKeyFile), to
// issue more certificates.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("pki: CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("pki: CA in %s: %w", dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("pki: the CA key is not an ECDSA key")
	}
	if !pair.Leaf.IsCA {
		return nil, fmt.Errorf("pki: %s is not a CA certificate", filepath.Join(dir, CACertFile))
	}
	// The file holds the CA first; a bundle (old and new CA) may follow.
	block, _ := pem.Decode(certPEM)
	return &CA{cert: pair.Leaf, certPEM: encodePEM("CERTIFICATE", block.Bytes), key: key}, nil
}
