package link

import (
	"fmt"
	"net"

	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// CheckPlainBind enforces the platform's rule for plain links: a socket that
// binds endpoint without TLS (creds nil) must bind a loopback address
// (127.0.0.0/8, ::1, localhost), unless insecure says the network is
// trusted (the config's tls.insecure). Otherwise it returns an error that
// starts with field; with TLS, nil.
func CheckPlainBind(field, endpoint string, creds *pki.Credentials, insecure bool) error {
	if creds != nil || insecure {
		return nil
	}
	host, _, err := wire.SplitEndpoint(endpoint)
	if err == nil && isLoopback(host) {
		return nil
	}
	return fmt.Errorf("%s: %s is not a loopback address and internal links have no TLS: "+
		"set tls.ca, tls.cert and tls.key (noon certs), or tls.insecure: true on a network you trust",
		field, wire.Snippet(endpoint))
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
