// Package realip finds a client's own address behind the load balancers and
// reverse proxies an operator trusts: from X-Forwarded-For for HTTP (the
// login API, the broker's WebSocket) and from the PROXY protocol (v1 text,
// v2 binary) for raw TCP (the broker's pandaparty listener).
//
// Only a direct peer in the trusted list is believed; everyone else's
// headers are ignored, so a client cannot pick the address that throttles
// and logs see.
package realip

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/wire"
)

// Trusted is a set of trusted proxies: the CIDRs of trusted_proxies. The
// zero value trusts nobody.
type Trusted struct {
	prefixes []netip.Prefix
}

// ParseTrusted parses a trusted_proxies list: CIDRs ("10.0.0.0/8",
// "2001:db8::/32") or single addresses ("192.0.2.7"). An error is a
// config.Errors naming each bad entry by its index ("[1]"); put the option's
// name in front with config.Nested.
func ParseTrusted(list []string) (Trusted, error) {
	var t Trusted
	var errs config.Errors
	for i, s := range list {
		p, err := parsePrefix(s)
		if err != nil {
			errs.Addf(fmt.Sprintf("[%d]", i), "must be a CIDR (10.0.0.0/8) or an address, got %q", wire.Snippet(s))
			continue
		}
		t.prefixes = append(t.prefixes, p)
	}
	if err := errs.Err(); err != nil {
		return Trusted{}, err
	}
	return t, nil
}

// ValidateTrusted checks a trusted_proxies list found at field.
func ValidateTrusted(field string, list []string) error {
	_, err := ParseTrusted(list)
	return config.Nested(field, err)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Empty reports whether t trusts nobody.
func (t Trusted) Empty() bool { return len(t.prefixes) == 0 }

// Contains reports whether a is a trusted proxy. An IPv4-mapped IPv6
// address counts as its IPv4 address.
func (t Trusted) Contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ContainsAddr reports whether the host of a TCP address (a net.Addr of a
// connection) is a trusted proxy.
func (t Trusted) ContainsAddr(a net.Addr) bool {
	if t.Empty() || a == nil {
		return false
	}
	ap, ok := addrPort(a)
	return ok && t.Contains(ap.Addr())
}

// addrPort returns the address and port of a TCP address.
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort(), true
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap, err == nil
}

// Forwarded returns the client's address for a request that peer sent
// with the X-Forwarded-For values xff (every header line, in order): peer
// itself unless it is trusted; then the right-most address of the list that
// is not itself trusted. An entry that is not an address ends the walk at
// the trusted hop that wrote it, as does the start of the list. Entries may
// carry a port ("192.0.2.1:4711", "[2001:db8::1]:4711"); it is dropped.
func (t Trusted) Forwarded(peer netip.Addr, xff []string) netip.Addr {
	client := peer.Unmap()
	if !t.Contains(client) {
		return client
	}
	for i := len(xff) - 1; i >= 0; i-- {
		list := xff[i]
		for list != "" {
			var entry string
			if j := strings.LastIndexByte(list, ','); j >= 0 {
				list, entry = list[:j], list[j+1:]
			} else {
				list, entry = "", list
			}
			a, ok := parseForwarded(strings.TrimSpace(entry))
			if !ok {
				return client
			}
			client = a
			if !t.Contains(a) {
				return a
			}
		}
	}
	return client
}

// parseForwarded parses one X-Forwarded-For entry: an address, with or
// without a port.
func parseForwarded(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// HeaderForwardedFor is the header Forwarded reads.
const HeaderForwardedFor = "X-Forwarded-For"

// Request returns the client's address of an HTTP request as host:port:
// r.RemoteAddr when the peer is not trusted (or r.RemoteAddr does not
// parse), else the address X-Forwarded-For names, with port 0 (the header
// carries none) unless it is the peer's own.
func (t Trusted) Request(r *http.Request) netip.AddrPort {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.AddrPort{}
	}
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	if t.Empty() {
		return peer
	}
	client := t.Forwarded(peer.Addr(), r.Header.Values(HeaderForwardedFor))
	if client == peer.Addr() {
		return peer
	}
	return netip.AddrPortFrom(client, 0)
}

// RemoteAddr is Request as the string a handler would take from
// r.RemoteAddr: r.RemoteAddr itself when it does not parse.
func (t Trusted) RemoteAddr(r *http.Request) string {
	if ap := t.Request(r); ap.IsValid() {
		return ap.String()
	}
	return r.RemoteAddr
}

// Masked returns the prefix of ip that per-client limits count it by:
// its first v4 bits for IPv4 (an IPv4-mapped IPv6 address counts as IPv4),
// its first v6 bits for IPv6, without a zone. The edge's per-address
// limits count (32, 64): one IPv4 address, or the /64 a host or home gets
// and picks any address in; login remembers an account's known addresses
// as (24, 64).
func Masked(ip netip.Addr, v4, v6 int) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	p, _ := ip.Prefix(bits)
	return p
}
