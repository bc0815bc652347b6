// Package pki is the platform's certificate authority and identities: one
// cluster CA (ECDSA P-256, self-signed) issues every process a certificate
// that names its role, and every internal link (package link: ZeroMQ, yellow
// included) runs mutual TLS 1.3 with those certificates.
//
// # Identities
//
// An Identity is a Role (broker, yellow, service, admin) and a Name: the
// service's name for a service (service:login), else an optional label. A
// certificate carries it as exactly one URI SAN, noon://<role>[/<name>],
// parsed back strictly (IdentityOf): a certificate with no such URI, with
// two, or with one that is not in canonical form has no identity and is
// refused. Certificates also list DNS names and IP addresses (loopback by
// default) so that ordinary TLS tools can inspect them.
//
// # Verification: by CA and identity, not by host name
//
// A listener requires a client certificate that chains to the CA
// (ServerConfig) and reads the client's identity from it; a dialer
// verifies the server's chain to the CA itself and checks the server's
// identity against the one it expects (ClientConfig), but not the host
// name: endpoints come from yellow as bound or advertised (IPs, container
// names, NAT addresses) and no certificate can list them all, while what a
// caller needs to know is who the CA says the peer is. Go's built-in
// verification always checks a server's name, so the dialer sets
// InsecureSkipVerify and verifies in VerifyConnection instead.
//
// # Files and rotation
//
// `noon certs` writes a CA (ca.crt, ca.key) and certificates
// (<role>[-<name>].crt and .key, keys 0600) with Save; daemons read theirs
// with the tls block of the config (Config, LoadCredentials). A CA file may
// hold several certificates: to rotate the CA, ship a bundle of the old and
// the new CA everywhere first, then certificates issued by the new one.
//
// Ephemeral is an in-memory CA for noon dev, noon cluster and tests.
//
// This package imports no daemon package.
package pki
