package realip

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	src4 = netip.MustParseAddrPort("192.0.2.7:4711")
	dst4 = netip.MustParseAddrPort("198.51.100.1:1055")
	src6 = netip.MustParseAddrPort("[2001:db8::7]:4711")
	dst6 = netip.MustParseAddrPort("[2001:db8::1]:1055")
)

// v2 builds a v2 header from its fields, for malformed ones.
func v2(verCmd, famTrans byte, length int, body []byte) []byte {
	b := append([]byte(nil), sigV2...)
	b = append(b, verCmd, famTrans)
	b = binary.BigEndian.AppendUint16(b, uint16(length))
	return append(b, body...)
}

// validHeaders are headers Parse accepts, with what it must return: the
// fuzz seeds too.
var validHeaders = []struct {
	name   string
	in     []byte
	source netip.AddrPort
	dest   netip.AddrPort
	ver    int
}{
	{"v1 tcp4", AppendV1(nil, src4, dst4), src4, dst4, 1},
	{"v1 tcp6", AppendV1(nil, src6, dst6), src6, dst6, 1},
	{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), netip.AddrPort{}, netip.AddrPort{}, 1},
	{"v1 unknown with addresses", []byte("PROXY UNKNOWN ffff:f::ffff ffff:f::ffff 65535 65535\r\n"), netip.AddrPort{}, netip.AddrPort{}, 1},
	{"v1 longest", []byte("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
		netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), 1},
	{"v2 inet", AppendV2(nil, src4, dst4, nil), src4, dst4, 2},
	{"v2 inet6", AppendV2(nil, src6, dst6, nil), src6, dst6, 2},
	{"v2 inet with tlvs", AppendV2(nil, src4, dst4, []byte{0x04, 0x00, 0x03, 'v', 'p', 'c'}), src4, dst4, 2},
	{"v2 local", AppendV2(nil, netip.AddrPort{}, netip.AddrPort{}, nil), netip.AddrPort{}, netip.AddrPort{}, 2},
	{"v2 local ignores the family", v2(0x20, 0x12, 3, []byte("abc")), netip.AddrPort{}, netip.AddrPort{}, 2},
	{"v2 unspec", v2(0x21, 0x00, 0, nil), netip.AddrPort{}, netip.AddrPort{}, 2},
	{"v2 unix", v2(0x21, 0x31, lenUnix, make([]byte, lenUnix)), netip.AddrPort{}, netip.AddrPort{}, 2},
	{"v2 largest", v2(0x21, 0x11, MaxHeader-v2Fixed, append(AppendV2(nil, src4, dst4, nil)[v2Fixed:], make([]byte, MaxHeader-v2Fixed-lenInet)...)), src4, dst4, 2},
}

func TestParseValid(t *testing.T) {
	for _, tc := range validHeaders {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte(nil), tc.in...), "after"...)
			h, n, err := Parse(in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", in, err)
			}
			if n != len(tc.in) || h.Version != tc.ver || h.Source != tc.source || h.Dest != tc.dest {
				t.Fatalf("Parse = %+v, %d; want source %v dest %v version %d, length %d", h, n, tc.source, tc.dest, tc.ver, len(tc.in))
			}
			for i := range len(tc.in) {
				if _, _, err := Parse(tc.in[:i]); !errors.Is(err, ErrIncomplete) {
					t.Fatalf("Parse of the first %d bytes: %v, want ErrIncomplete", i, err)
				}
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		in         []byte
	}{
		{"not proxy", "no PROXY header: the connection starts with \"\\x00\\x00\\x00\\x10\"", []byte{0, 0, 0, 16}},
		{"a frame", "no PROXY header", []byte("GET / HTTP/1.1\r\n")},
		{"lower case", "no PROXY header", []byte("proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n")},
		{"no space", "no PROXY header", []byte("PROXY\r\n")},
		{"v1 without CRLF", "without CRLF in its first 107 bytes", []byte("PROXY UNKNOWN " + strings.Repeat("x", 100))},
		{"v1 LF only", "without CRLF", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" + strings.Repeat("x", 100))},
		{"v1 bad protocol", "protocol must be TCP4, TCP6 or UNKNOWN", []byte("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n")},
		{"v1 too few fields", `want "PROXY TCP4`, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n")},
		{"v1 double space", `want "PROXY TCP4`, []byte("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n")},
		{"v1 v6 in tcp4", "bad TCP4 address", []byte("PROXY TCP4 ::1 5.6.7.8 1 2\r\n")},
		{"v1 v4 in tcp6", "bad TCP6 address", []byte("PROXY TCP6 ::1 5.6.7.8 1 2\r\n")},
		{"v1 zone", "bad TCP6 address", []byte("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n")},
		{"v1 bad address", "bad TCP4 address", []byte("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n")},
		{"v1 port too big", `bad port "65536"`, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n")},
		{"v1 signed port", `bad port "+1"`, []byte("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n")},
		{"v1 empty port", "bad port", []byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n")},
		{"v2 version 1", "v2 header of version 1", v2(0x11, 0x11, lenInet, make([]byte, lenInet))},
		{"v2 command 2", "command 0x2", v2(0x22, 0x11, lenInet, make([]byte, lenInet))},
		{"v2 family 4", "address family 0x4", v2(0x21, 0x41, 0, nil)},
		{"v2 datagram", "transport 0x2: not a stream", v2(0x21, 0x12, lenInet, make([]byte, lenInet))},
		{"v2 short inet", "with 11 address bytes for family 0x1, want at least 12", v2(0x21, 0x11, 11, make([]byte, 11))},
		{"v2 short inet6", "want at least 36", v2(0x21, 0x21, 12, make([]byte, 12))},
		{"v2 short unix", "want at least 216", v2(0x21, 0x31, 12, make([]byte, 12))},
		{"v2 over the limit", "v2 header of 4097 bytes, over the limit of 4096", v2(0x21, 0x11, MaxHeader-v2Fixed+1, nil)},
		{"v2 largest length", "v2 header of 65551 bytes", v2(0x21, 0x11, 0xffff, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(tc.in)
			if !errors.Is(err, ErrBadHeader) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse(%q) = %v; want ErrBadHeader saying %q", tc.in, err, tc.want)
			}
		})
	}
}

// chunkReader returns its chunks one Read at a time, then EOF.
type chunkReader struct{ chunks [][]byte }

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// byteReader returns one byte per Read.
type byteReader struct{ b []byte }

func (r *byteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	p[0], r.b = r.b[0], r.b[1:]
	return 1, nil
}

func TestRead(t *testing.T) {
	for _, tc := range validHeaders {
		t.Run(tc.name, func(t *testing.T) {
			in := append(append([]byte(nil), tc.in...), "rest"...)
			for _, r := range []io.Reader{bytes.NewReader(in), &byteReader{in}, &chunkReader{[][]byte{in[:len(in)/2], in[len(in)/2:]}}} {
				h, rest, err := Read(r)
				if err != nil || h.Source != tc.source || h.Version != tc.ver {
					t.Fatalf("Read(%T) = %+v, %v", r, h, err)
				}
				// What was read past the header, and what is still to read,
				// is the stream after it.
				tail, _ := io.ReadAll(r)
				if got := string(rest) + string(tail); got != "rest" {
					t.Fatalf("Read(%T): after the header %q, want \"rest\"", r, got)
				}
			}
		})
	}
	if _, _, err := Read(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("Read of nothing: %v, want io.EOF", err)
	}
	if _, _, err := Read(bytes.NewReader([]byte("PROXY TCP4 1.2"))); err != io.ErrUnexpectedEOF {
		t.Fatalf("Read of a cut header: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, _, err := Read(&byteReader{[]byte("XPROXY")}); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("Read of no header: %v, want ErrBadHeader", err)
	}
}

// TestReadBounded checks that a peer cannot make Read buffer more than
// MaxHeader bytes however it declares or paces its header.
func TestReadBounded(t *testing.T) {
	huge := v2(0x21, 0x11, 0xffff, nil)
	r := &countingReader{r: io.MultiReader(bytes.NewReader(huge), zeros{})}
	if _, _, err := Read(r); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("Read: %v, want ErrBadHeader", err)
	}
	if r.n > v2Fixed+readChunk {
		t.Fatalf("Read took %d bytes of a header declaring 64 KiB; want it refused after the fixed part", r.n)
	}
	allocs := testing.AllocsPerRun(10, func() {
		_, _, _ = Read(bytes.NewReader(validHeaders[len(validHeaders)-1].in))
	})
	if allocs > 3 {
		t.Fatalf("Read of the largest header: %v allocations", allocs)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestAccept runs Accept over real TCP connections on 127.0.0.1.
func TestAccept(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept := func(send []byte, keepOpen bool, timeout time.Duration) (*Conn, error) {
		t.Helper()
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		if _, err := cc.Write(send); err != nil {
			t.Fatal(err)
		}
		if !keepOpen {
			_ = cc.(*net.TCPConn).CloseWrite()
		}
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sc.Close() })
		c, _, err := Accept(sc, timeout)
		return c, err
	}

	c, err := accept(append(AppendV1(nil, src4, dst4), "hello"...), false, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr().String() != src4.String() || c.LocalAddr().String() != dst4.String() {
		t.Fatalf("addresses %v -> %v, want %v -> %v", c.RemoteAddr(), c.LocalAddr(), src4, dst4)
	}
	if b, err := io.ReadAll(c); err != nil || string(b) != "hello" {
		t.Fatalf("after the header: %q, %v", b, err)
	}

	// LOCAL keeps the connection's own addresses.
	c, err = accept(AppendV2(nil, netip.AddrPort{}, netip.AddrPort{}, nil), false, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr().String() != c.Conn.RemoteAddr().String() {
		t.Fatalf("LOCAL: remote %v, want the connection's %v", c.RemoteAddr(), c.Conn.RemoteAddr())
	}

	// Half a header and silence: the deadline ends the wait.
	if _, err := accept([]byte("PROXY TCP4 1.2."), true, 50*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "no whole PROXY header within 50ms") {
		t.Fatalf("slow header: %v", err)
	}
}
