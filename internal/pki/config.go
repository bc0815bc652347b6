package pki

import (
	"github.com/noonhq/noon/internal/config"
)

// Config is the tls block of a noon config file: the files of the
// process's mutual TLS on every internal link (ZeroMQ, yellow included).
type Config struct {
	// CA is the PEM file of the cluster CA certificate (or several: during a
	// CA rotation, the old and the new).
	CA string `yaml:"ca"`
	// Cert is the PEM file of this process's certificate, issued by the CA
	// for the role it runs as (noon certs issue).
	Cert string `yaml:"cert"`
	// Key is the PEM file of the certificate's private key.
	Key string `yaml:"key"`
	// Insecure allows plain internal links on addresses other than loopback
	// when no certificate is configured: for a network that is trusted as
	// a whole. Without it such a daemon refuses to start.
	Insecure bool `yaml:"insecure"`
}

// Enabled reports whether certificates are configured.
func (c Config) Enabled() bool { return c.CA != "" || c.Cert != "" || c.Key != "" }

// Validate checks that ca, cert and key are set together, and not with
// insecure.
func (c Config) Validate() error {
	var errs config.Errors
	if c.Enabled() {
		errs.Add(config.NonEmpty("ca", c.CA))
		errs.Add(config.NonEmpty("cert", c.Cert))
		errs.Add(config.NonEmpty("key", c.Key))
		if c.Insecure {
			errs.Addf("insecure", "must be false when certificates are configured")
		}
	}
	return errs.Err()
}

// Load reads the configured files; it returns nil credentials when none
// are configured (plain links).
func (c Config) Load() (*Credentials, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return LoadCredentials(c.CA, c.Cert, c.Key)
}
