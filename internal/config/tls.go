package config

import (
	"crypto/tls"
	"fmt"
)

// TLSFiles are a server's certificate chain and private key, as PEM files:
// both or neither. The client edge of the broker and the login HTTP API
// take them.
type TLSFiles struct {
	// CertFile is the PEM certificate chain.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key.
	KeyFile string `yaml:"key_file"`
}

// Enabled reports whether TLS is configured.
func (o TLSFiles) Enabled() bool { return o.CertFile != "" || o.KeyFile != "" }

// Validate checks that both files or neither are set.
func (o TLSFiles) Validate() error {
	var errs Errors
	if o.CertFile == "" && o.KeyFile != "" {
		errs.Addf("cert_file", "must be set when key_file is")
	}
	if o.KeyFile == "" && o.CertFile != "" {
		errs.Addf("key_file", "must be set when cert_file is")
	}
	return errs.Err()
}

// ServerConfig loads the files into a server configuration that accepts
// TLS 1.2 and later (1.0 and 1.1 are deprecated by RFC 8996); nil when TLS
// is not configured.
func (o TLSFiles) ServerConfig() (*tls.Config, error) {
	if !o.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
