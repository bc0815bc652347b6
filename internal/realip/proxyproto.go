package realip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/noonhq/noon/wire"
)

// Limits of a PROXY header (haproxy.org/download/3.0/doc/proxy-protocol.txt).
const (
	// MaxV1Header is the longest v1 header, CRLF included: the spec's
	// bound ("PROXY UNKNOWN" with two full IPv6 addresses and ports).
	MaxV1Header = 107
	// MaxHeader bounds a v2 header, TLVs included: the 16-byte fixed part,
	// the largest address block (UNIX, 216 bytes) and the TLVs load
	// balancers add (AWS's VPC endpoint id, GCP's connection id, TLS
	// details) fit many times over; nginx reads at most as much. The spec
	// allows 16+65535 bytes, which a peer must not make us buffer.
	MaxHeader = 4096
	// v2Fixed is the fixed part of a v2 header: signature, version and
	// command, family and transport, length.
	v2Fixed = 16
	// readChunk is the first read buffer: any v1 header and a v2 header
	// without TLVs fit.
	readChunk = 256
)

// The two signatures a PROXY header starts with.
var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// Errors of Parse and Read.
var (
	// ErrIncomplete says that the bytes given are a valid start of a PROXY
	// header, but not all of it.
	ErrIncomplete = errors.New("realip: incomplete PROXY header")
	// ErrBadHeader is in the chain of every error about a malformed PROXY
	// header, or bytes that do not start with one.
	ErrBadHeader = errors.New("realip: bad PROXY header")
)

// Header is a decoded PROXY header.
type Header struct {
	// Version is 1 (text) or 2 (binary).
	Version int
	// Source is the client's address and port, and Dest the address it
	// connected to, as the proxy saw them. Both are invalid when the header
	// carries no address: v1 "UNKNOWN", v2 LOCAL (the proxy's own health
	// check), or an unspecified or UNIX family. The connection's own
	// addresses then stand.
	Source, Dest netip.AddrPort
}

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadHeader}, args...)...)
}

// Parse decodes the PROXY header at the start of b and returns it with its
// length in bytes. It returns ErrIncomplete while b is a valid beginning of
// a header, and an error matching ErrBadHeader as soon as b cannot be one:
// a prefix of b is ErrIncomplete where b is, or a whole header, and
// ErrIncomplete or bad where b is bad. It never looks past MaxHeader bytes.
func Parse(b []byte) (Header, int, error) {
	switch {
	case len(b) == 0:
		return Header{}, 0, ErrIncomplete
	case startsWith(b, sigV1):
		return parseV1(b)
	case startsWith(b, sigV2):
		return parseV2(b)
	}
	return Header{}, 0, bad("no PROXY header: the connection starts with %q", wire.Snippet(b[:min(len(b), len(sigV2))]))
}

// startsWith reports whether b and sig agree on their common length.
func startsWith(b, sig []byte) bool {
	n := min(len(b), len(sig))
	return bytes.Equal(b[:n], sig[:n])
}

// parseV1 decodes "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" or
// "PROXY UNKNOWN[ <anything>]\r\n".
func parseV1(b []byte) (Header, int, error) {
	end := bytes.Index(b[:min(len(b), MaxV1Header)], []byte("\r\n"))
	if end < 0 {
		if len(b) >= MaxV1Header {
			return Header{}, 0, bad("v1 header without CRLF in its first %d bytes", MaxV1Header)
		}
		return Header{}, 0, ErrIncomplete
	}
	line := b[:end]
	fields := bytes.Split(line[len(sigV1):], []byte(" "))
	proto := string(fields[0])
	switch {
	case proto == "UNKNOWN":
		return Header{Version: 1}, end + 2, nil
	case proto != "TCP4" && proto != "TCP6":
		return Header{}, 0, bad("v1 header %q: protocol must be TCP4, TCP6 or UNKNOWN", wire.Snippet(line))
	case len(fields) != 5:
		return Header{}, 0, bad("v1 header %q: want \"PROXY %s <src> <dst> <sport> <dport>\"", wire.Snippet(line), proto)
	}
	src, err1 := parseV1Addr(fields[1], proto)
	dst, err2 := parseV1Addr(fields[2], proto)
	sport, err3 := parsePort(fields[3])
	dport, err4 := parsePort(fields[4])
	for _, err := range []error{err1, err2, err3, err4} {
		if err != nil {
			return Header{}, 0, bad("v1 header %q: %v", wire.Snippet(line), err)
		}
	}
	return Header{
		Version: 1,
		Source:  netip.AddrPortFrom(src, sport),
		Dest:    netip.AddrPortFrom(dst, dport),
	}, end + 2, nil
}

// parseV1Addr parses an address of the family proto names.
func parseV1Addr(s []byte, proto string) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(s))
	if err != nil || a.Zone() != "" || a.Is4() != (proto == "TCP4") {
		return netip.Addr{}, fmt.Errorf("bad %s address %q", proto, s)
	}
	return a, nil
}

// parsePort parses a decimal port, 0 to 65535.
func parsePort(s []byte) (uint16, error) {
	if len(s) == 0 || len(s) > 5 {
		return 0, fmt.Errorf("bad port %q", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("bad port %q", s)
		}
	}
	n, err := strconv.ParseUint(string(s), 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint16(n), nil
}

// Fields of a v2 header.
const (
	v2Version = 0x2
	cmdLocal  = 0x0
	cmdProxy  = 0x1

	famUnspec = 0x0
	famInet   = 0x1
	famInet6  = 0x2
	famUnix   = 0x3

	transUnspec = 0x0
	transStream = 0x1

	lenInet  = 12  // 2 IPv4 addresses, 2 ports
	lenInet6 = 36  // 2 IPv6 addresses, 2 ports
	lenUnix  = 216 // 2 108-byte paths
)

// parseV2 decodes the binary header: everything the fixed 16 bytes say is
// checked before the rest is waited for.
func parseV2(b []byte) (Header, int, error) {
	if len(b) < v2Fixed {
		return Header{}, 0, ErrIncomplete
	}
	ver, cmd := b[12]>>4, b[12]&0xf
	fam, trans := b[13]>>4, b[13]&0xf
	n := int(binary.BigEndian.Uint16(b[14:16]))
	total := v2Fixed + n
	switch {
	case ver != v2Version:
		return Header{}, 0, bad("v2 header of version %d", ver)
	case cmd != cmdLocal && cmd != cmdProxy:
		return Header{}, 0, bad("v2 header with command %#x (LOCAL 0x0 or PROXY 0x1)", cmd)
	case total > MaxHeader:
		return Header{}, 0, bad("v2 header of %d bytes, over the limit of %d", total, MaxHeader)
	}
	// LOCAL (the proxy's own health check): the family is ignored.
	if cmd == cmdProxy {
		switch {
		case fam > famUnix:
			return Header{}, 0, bad("v2 header with address family %#x", fam)
		case trans > transStream:
			return Header{}, 0, bad("v2 header with transport %#x: not a stream", trans)
		case trans == transStream && n < addrLen(fam):
			return Header{}, 0, bad("v2 header with %d address bytes for family %#x, want at least %d", n, fam, addrLen(fam))
		}
	}
	if len(b) < total {
		return Header{}, 0, ErrIncomplete
	}
	h := Header{Version: 2}
	if cmd == cmdLocal || trans == transUnspec {
		return h, total, nil // no address: the connection's own stand
	}
	a := b[v2Fixed:total]
	switch fam {
	case famInet:
		src, dst := netip.AddrFrom4([4]byte(a[0:4])), netip.AddrFrom4([4]byte(a[4:8]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(a[8:10]))
		h.Dest = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(a[10:12]))
	case famInet6:
		src, dst := netip.AddrFrom16([16]byte(a[0:16])), netip.AddrFrom16([16]byte(a[16:32]))
		h.Source = netip.AddrPortFrom(src, binary.BigEndian.Uint16(a[32:34]))
		h.Dest = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(a[34:36]))
	}
	// famUnspec and famUnix carry no IP address; TLVs are skipped.
	return h, total, nil
}

// addrLen is the size of the address block of a v2 family.
func addrLen(fam byte) int {
	switch fam {
	case famInet:
		return lenInet
	case famInet6:
		return lenInet6
	case famUnix:
		return lenUnix
	}
	return 0
}

// Read reads the PROXY header that r must start with and returns it with
// the bytes read past it (the start of the client's own stream). It
// buffers at most MaxHeader bytes: readChunk first, more only while a v2
// header's declared length (bounded by MaxHeader) needs it. A stream that
// ends inside the header is io.ErrUnexpectedEOF; one that ends before it,
// io.EOF.
func Read(r io.Reader) (Header, []byte, error) {
	buf := make([]byte, 0, readChunk)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= MaxHeader { // Parse decides before; a guard
				return Header{}, nil, bad("over %d bytes", MaxHeader)
			}
			size := min(2*cap(buf), MaxHeader)
			if len(buf) >= v2Fixed && startsWith(buf, sigV2) {
				// Parse checked the declared length against MaxHeader.
				size = v2Fixed + int(binary.BigEndian.Uint16(buf[14:16]))
			}
			buf = append(make([]byte, 0, size), buf...)
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			h, used, perr := Parse(buf)
			if perr == nil {
				return h, buf[used:], nil
			}
			if !errors.Is(perr, ErrIncomplete) {
				return Header{}, nil, perr
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Header{}, nil, err
		}
	}
}

// Conn is a connection that began with a PROXY header: it reads on from
// the end of the header and reports the addresses the header names.
type Conn struct {
	net.Conn
	rest   []byte
	remote net.Addr
	local  net.Addr
}

// Read returns the bytes read past the header first, then reads nc.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		if len(c.rest) == 0 {
			c.rest = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// RemoteAddr returns the client's address from the header (the proxy's
// when the header named none).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr returns the address the client connected to, from the header
// (the connection's own when the header named none).
func (c *Conn) LocalAddr() net.Addr { return c.local }

// Accept reads the PROXY header nc must start with, within timeout, and
// returns the connection to use from then on (reading past the header and
// reporting the client's address as RemoteAddr) and the header. The read
// deadline is cleared on success. On error nc is left open, for the caller
// to close and log; a header that is not whole within timeout is an error
// matching os.ErrDeadlineExceeded.
func Accept(nc net.Conn, timeout time.Duration) (*Conn, Header, error) {
	if err := nc.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, Header{}, err
	}
	h, rest, err := Read(nc)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("realip: no whole PROXY header within %v: %w", timeout, err)
		}
		return nil, Header{}, err
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		return nil, Header{}, err
	}
	c := &Conn{Conn: nc, rest: rest, remote: nc.RemoteAddr(), local: nc.LocalAddr()}
	if len(rest) == 0 {
		c.rest = nil
	}
	if h.Source.IsValid() {
		c.remote = net.TCPAddrFromAddrPort(unmap(h.Source))
		c.local = net.TCPAddrFromAddrPort(unmap(h.Dest))
	}
	return c, h, nil
}

// unmap turns an IPv4-mapped IPv6 address into its IPv4 address.
func unmap(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// AppendV1 appends the v1 header a proxy sends for a TCP connection from
// src to dst (TCP4 or TCP6 by src's family; UNKNOWN if src is invalid).
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	src, dst = unmap(src), unmap(dst)
	switch {
	case !src.IsValid() || !dst.IsValid() || src.Addr().Is4() != dst.Addr().Is4():
		return append(b, "PROXY UNKNOWN\r\n"...)
	case src.Addr().Is4():
		b = append(b, "PROXY TCP4 "...)
	default:
		b = append(b, "PROXY TCP6 "...)
	}
	b = src.Addr().AppendTo(b)
	b = append(b, ' ')
	b = dst.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, "\r\n"...)
}

// AppendV2 appends the v2 header a proxy sends for a TCP connection from
// src to dst (PROXY, INET or INET6 by src's family), followed by tlvs (raw
// type-length-value bytes, not checked); a LOCAL header if src is invalid.
func AppendV2(b []byte, src, dst netip.AddrPort, tlvs []byte) []byte {
	src, dst = unmap(src), unmap(dst)
	b = append(b, sigV2...)
	if !src.IsValid() || !dst.IsValid() || src.Addr().Is4() != dst.Addr().Is4() {
		b = append(b, v2Version<<4|cmdLocal, famUnspec<<4|transUnspec)
		b = binary.BigEndian.AppendUint16(b, uint16(len(tlvs)))
		return append(b, tlvs...)
	}
	fam, n := byte(famInet), lenInet
	if !src.Addr().Is4() {
		fam, n = famInet6, lenInet6
	}
	b = append(b, v2Version<<4|cmdProxy, fam<<4|transStream)
	b = binary.BigEndian.AppendUint16(b, uint16(n+len(tlvs)))
	b = append(b, src.Addr().AsSlice()...)
	b = append(b, dst.Addr().AsSlice()...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	return append(b, tlvs...)
}
