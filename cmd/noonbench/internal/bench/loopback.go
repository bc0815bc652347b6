package bench

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// ErrNotLoopback is returned for an address outside 127.0.0.0/8: noonbench
// generates load, and it only ever aims it at this machine.
var ErrNotLoopback = errors.New("bench: not a loopback address (127.0.0.0/8)")

// checkLoopback checks that addr is host:port with host an IPv4 loopback
// address (127.0.0.0/8) or "localhost" (taken as 127.0.0.1). It returns
// addr with the host as an IP.
func checkLoopback(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("bench: address %q: %w", addr, err)
	}
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() || !ip.IsLoopback() {
		return "", fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return net.JoinHostPort(ip.String(), port), nil
}
