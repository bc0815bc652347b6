package wire

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Limits of names, shared by yellow, the route table, the service kit and
// the edge.
const (
	// MaxNameLen bounds a service name or a binding key: short words
	// ("login", "room") that also appear in method names and metric labels.
	MaxNameLen = 64
	// MaxMethodLen bounds a method name ("<service>.<Method>"): the edge's
	// default limit on a frame's method (frame.DefaultMaxMethod), so a
	// longer one could never arrive.
	MaxMethodLen = 128
	// MaxEndpointLen bounds an endpoint: "tcp://" + a 253-byte DNS name +
	// ":65535".
	MaxEndpointLen = 6 + 253 + 6
	// maxHostLen is a DNS name's limit.
	maxHostLen = 253
)

// NameRule is the grammar of service names and binding keys, for messages.
const NameRule = "[a-z][a-z0-9_-]{0,63}"

// ValidName reports whether s is a service name or binding key: NameRule.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateName checks a service name or binding key against NameRule.
func ValidateName(s string) error {
	if s == "" {
		return errors.New("required")
	}
	if !ValidName(s) {
		return fmt.Errorf("must match %s, got %q", NameRule, Snippet(s))
	}
	return nil
}

// ValidMethod reports whether s is "<service>.<Method>": a valid service
// name, a dot, and a non-empty method of printable ASCII, at most
// MaxMethodLen bytes in all.
func ValidMethod(s string) bool {
	svc, m, ok := strings.Cut(s, ".")
	if !ok || !ValidName(svc) || m == "" || len(s) > MaxMethodLen {
		return false
	}
	for i := 0; i < len(m); i++ {
		if m[i] <= ' ' || m[i] > '~' {
			return false
		}
	}
	return true
}

// ServiceOf returns the service of a method name (the part before the
// first dot), or "" when there is none.
func ServiceOf(method string) string {
	svc, _, ok := strings.Cut(method, ".")
	if !ok {
		return ""
	}
	return svc
}

// IsWildcard reports whether host means every interface: "", "*",
// 0.0.0.0 or ::.
func IsWildcard(host string) bool {
	if host == "" || host == "*" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// ValidHost reports whether host is a host another process can dial: an IP
// address or a DNS-style name, not a wildcard.
func ValidHost(host string) bool {
	if IsWildcard(host) {
		return false
	}
	if net.ParseIP(host) != nil {
		return true
	}
	if len(host) > maxHostLen {
		return false
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// SplitEndpoint splits a ZeroMQ endpoint "tcp://host:port" (the only
// transport noon uses) and checks its grammar: at most MaxEndpointLen
// bytes, a host that is a wildcard ("*", 0.0.0.0, ::), an IP or a DNS-style
// name, and a port 0..65535 or "*" (which is returned as "0").
func SplitEndpoint(ep string) (host string, port int, err error) {
	if ep == "" {
		return "", 0, errors.New("required")
	}
	if len(ep) > MaxEndpointLen {
		return "", 0, fmt.Errorf("at most %d bytes, got %d", MaxEndpointLen, len(ep))
	}
	rest, ok := strings.CutPrefix(ep, "tcp://")
	if !ok {
		return "", 0, fmt.Errorf("must be tcp://host:port, got %q", Snippet(ep))
	}
	h, p, err := net.SplitHostPort(rest)
	if err != nil || h == "" {
		return "", 0, fmt.Errorf("must be tcp://host:port, got %q", Snippet(ep))
	}
	if !IsWildcard(h) && !ValidHost(h) {
		return "", 0, fmt.Errorf("bad host in %q", Snippet(ep))
	}
	if p == "*" {
		p = "0"
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || len(p) > 5 {
		return "", 0, fmt.Errorf("port must be a number from 0 to 65535 or *, got %q", Snippet(ep))
	}
	return h, int(n), nil
}

// ValidateListenEndpoint checks an endpoint a socket binds: SplitEndpoint's
// grammar; a wildcard host and port 0 (a free port) are allowed.
func ValidateListenEndpoint(ep string) error {
	_, _, err := SplitEndpoint(ep)
	return err
}

// ValidateDialEndpoint checks an endpoint another process dials:
// SplitEndpoint's grammar with a real host and a port 1..65535.
func ValidateDialEndpoint(ep string) error {
	h, p, err := SplitEndpoint(ep)
	switch {
	case err != nil:
		return err
	case IsWildcard(h):
		return fmt.Errorf("host must not be a wildcard, got %q", Snippet(ep))
	case p == 0:
		return fmt.Errorf("port must be 1..65535, got %q", Snippet(ep))
	}
	return nil
}

// ValidateDialAddr checks "host:port" another process dials (a broker's
// client address): a real host and a port 1..65535.
func ValidateDialAddr(addr string) error {
	if len(addr) > MaxEndpointLen {
		return fmt.Errorf("at most %d bytes, got %d", MaxEndpointLen, len(addr))
	}
	h, p, err := net.SplitHostPort(addr)
	if err != nil || !ValidHost(h) {
		return fmt.Errorf("must be host:port, got %q", Snippet(addr))
	}
	if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 || len(p) > 5 {
		return fmt.Errorf("port must be 1..65535, got %q", Snippet(addr))
	}
	return nil
}

// Advertised returns the endpoint others dial for a bound endpoint
// ("tcp://host:port"): a given advertise host always replaces the bound
// one; a wildcard host becomes the hostname.
func Advertised(bound, advertise string) (string, error) {
	rest, ok := strings.CutPrefix(bound, "tcp://")
	if !ok {
		return bound, nil
	}
	host, port, err := net.SplitHostPort(rest)
	if err != nil {
		return "", fmt.Errorf("bound endpoint %q: %w", bound, err)
	}
	switch {
	case advertise != "":
		host = advertise
	case IsWildcard(host):
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("bound to a wildcard and no advertise host: %w", err)
		}
	}
	return "tcp://" + net.JoinHostPort(host, port), nil
}

// DialAddr turns a listen address (":8081", "0.0.0.0:1055") into one a
// client on this machine dials: a wildcard host becomes 127.0.0.1.
func DialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if IsWildcard(host) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
