package link

import (
	"fmt"
	"net"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// CheckPlainBind enforces the platform's rule for plain links: a socket that
// binds endpoint without TLS (creds nil) must bind a loopback address
// (127.0.0.0/8, ::1, localhost), unless insecure says the network is
// trusted (the config's tls.insecure). It returns a config.FieldError naming
// field otherwise, and nil with TLS.
func CheckPlainBind(field, endpoint string, creds *pki.Credentials, insecure bool) error {
	if creds != nil || insecure {
		return nil
	}
	host, _, err := wire.SplitEndpoint(endpoint)
	if err == nil && isLoopback(host) {
		return nil
	}
	return config.FieldError{Field: field, Msg: fmt.Sprintf(
		"%s is not a loopback address and internal links have no TLS: set tls.ca, tls.cert and tls.key (noon certs), or tls.insecure: true on a network you trust",
		wire.Snippet(endpoint))}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
