package edge

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/internal/testenv"
)

var (
	player = netip.MustParseAddrPort("198.51.100.7:40123")
	lbAddr = netip.MustParseAddrPort("203.0.113.1:1055")
)

// dialProxied dials s's TCP listener as a load balancer would: it writes
// hdr in two writes (a split read for the server), then, with tlsConf,
// starts TLS over the connection.
func dialProxied(t *testing.T, s *Server, hdr []byte, tlsConf *tls.Config) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", s.TCPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	for _, part := range [][]byte{hdr[:len(hdr)/2], hdr[len(hdr)/2:]} {
		if _, err := nc.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	var conn net.Conn = nc
	if tlsConf != nil {
		conn = tls.Client(nc, tlsConf)
	}
	c := &rawConn{t: t, tcp: conn, r: frame.NewReader(conn, frame.Limits{MaxFrame: 4 << 20})}
	t.Cleanup(c.close)
	return c
}

// TestProxyProtocol: a connection from a trusted proxy starts with a PROXY
// header, and the connection's remote address is the player's.
func TestProxyProtocol(t *testing.T) {
	certFile, keyFile, pool := testenv.SelfSigned(t)
	for _, withTLS := range []bool{false, true} {
		name := "plain"
		if withTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) {
			var tlsConf *tls.Config
			s, _ := mustStart(t, func(o *Options) {
				o.TrustedProxies = []string{"127.0.0.0/8"}
				if withTLS {
					o.TLS = TLSOptions{CertFile: certFile, KeyFile: keyFile}
					tlsConf = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
				}
			})
			for _, tc := range []struct {
				name string
				hdr  []byte
				want string
			}{
				{"v1", realip.AppendV1(nil, player, lbAddr), player.String()},
				{"v2", realip.AppendV2(nil, player, lbAddr, nil), player.String()},
				{"v2 with tlvs", realip.AppendV2(nil, player, lbAddr, []byte{0x04, 0x00, 0x02, 'i', 'd'}), player.String()},
				{"v2 ipv6", realip.AppendV2(nil, netip.MustParseAddrPort("[2001:db8::7]:40123"), netip.MustParseAddrPort("[2001:db8::1]:1055"), nil), "[2001:db8::7]:40123"},
				{"v1 unknown", []byte("PROXY UNKNOWN\r\n"), "127.0.0.1:"},
				{"v2 local", realip.AppendV2(nil, netip.AddrPort{}, netip.AddrPort{}, nil), "127.0.0.1:"},
			} {
				t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
					c := dialProxied(t, s, tc.hdr, tlsConf)
					f, got := c.call("remote", "")
					if f != "" || !strings.HasPrefix(got, tc.want) {
						t.Fatalf("remote = %q %q, want %s", f, got, tc.want)
					}
					c.mustCall("echo", "after", "after")
				})
			}
		})
	}
}

// TestProxyProtocolBad: a trusted proxy's connection without a whole,
// valid PROXY header within proxy_timeout is closed without a reply (a
// misconfigured load balancer: logged, counted); others go on.
func TestProxyProtocolBad(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) {
		o.TrustedProxies = []string{"127.0.0.1"}
		o.ProxyTimeout = 200 * time.Millisecond
	})
	for _, tc := range []struct {
		name string
		hdr  []byte
	}{
		{"no header", frame.AppendRequest(nil, "echo", []byte("x"))},
		{"bad v1", []byte("PROXY TCP4 1.2.3.4 nope 1 2\r\n")},
		{"v1 without end", []byte("PROXY UNKNOWN " + strings.Repeat("x", 200))},
		{"v2 over the limit", append(realip.AppendV2(nil, netip.AddrPort{}, netip.AddrPort{}, nil)[:14], 0xff, 0xff)},
		{"late", []byte("PROXY TCP4 198.51.100.7 ")},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			c := dialProxied(t, s, tc.hdr, nil)
			c.expectClosed(5 * time.Second)
		})
	}
	checkFor(t, 5*time.Second, func() bool { return s.Stats().BadProxyHeaders == 5 },
		"Stats.BadProxyHeaders = %d, want 5", s.Stats().BadProxyHeaders)
	c := dialProxied(t, s, realip.AppendV1(nil, player, lbAddr), nil)
	c.mustCall("remote", "", player.String())
}

// TestProxyHeaderUntrusted: a PROXY header from a peer that is not a
// trusted proxy is not read as one: it is the start of a frame too large,
// answered bad_frame, and the connection is closed.
func TestProxyHeaderUntrusted(t *testing.T) {
	s, _ := mustStart(t, func(o *Options) { o.TrustedProxies = []string{"192.0.2.0/24"} })
	for _, tc := range []struct {
		name, want string
		hdr        []byte
	}{
		{"v1", "bad_frame: frame length 1347571544 exceeds maximum 1048576", realip.AppendV1(nil, player, lbAddr)},
		{"v2", "bad_frame: frame length 218762506 exceeds maximum 1048576", realip.AppendV2(nil, player, lbAddr, nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialProxied(t, s, tc.hdr, nil)
			c.mustRecv(tc.want, "")
			c.expectClosed(5 * time.Second)
		})
	}
	c := dial(t, s, "tcp")
	f, got := c.call("remote", "")
	if f != "" || !strings.HasPrefix(got, "127.0.0.1:") {
		t.Fatalf("remote = %q %q, want the peer's own address", f, got)
	}
}

// dialWSWith dials s's WebSocket with extra request headers.
func dialWSWith(t *testing.T, s *Server, h http.Header) (*rawConn, *http.Response, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws://"+s.WSAddr().String()+s.opts.WSPath, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	c := &rawConn{t: t, ws: ws}
	t.Cleanup(c.close)
	return c, resp, nil
}

// TestWebSocketForwardedFor: behind a trusted proxy the WebSocket
// connection's address is the right-most untrusted X-Forwarded-For entry;
// from anyone else the header is ignored.
func TestWebSocketForwardedFor(t *testing.T) {
	xff := http.Header{realip.HeaderForwardedFor: {"10.9.9.9, 198.51.100.7, 127.0.0.2"}}
	for _, tc := range []struct {
		name    string
		trusted []string
		want    string
	}{
		{"trusted", []string{"127.0.0.0/8"}, "198.51.100.7:0"},
		{"untrusted", []string{"192.0.2.0/24"}, "127.0.0.1:"},
		{"nobody trusted", nil, "127.0.0.1:"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			s, _ := mustStart(t, func(o *Options) { o.TrustedProxies = tc.trusted })
			c, _, err := dialWSWith(t, s, xff)
			if err != nil {
				t.Fatal(err)
			}
			if f, got := c.call("remote", ""); f != "" || !strings.HasPrefix(got, tc.want) || tc.want == "127.0.0.1:" && got == "127.0.0.1:0" {
				t.Fatalf("remote = %q %q, want %s", f, got, tc.want)
			}
		})
	}
}

// TestWebSocketOrigins: only pages of the listed origins may open a
// WebSocket; non-browsers (no Origin) always may.
func TestWebSocketOrigins(t *testing.T) {
	for _, tc := range []struct {
		name    string
		origins []string // nil: the defaults
		allowed map[string]bool
	}{
		{"defaults", nil, map[string]bool{
			"": true, "http://localhost:3000": true, "http://localhost": true, "http://127.0.0.1:8080": true,
			"https://evil.example": false, "http://localhost.evil.example": false, "null": false,
		}},
		{"listed", []string{"game.example.com", "https://*.example.org"}, map[string]bool{
			"https://game.example.com": true, "https://www.example.org": true,
			"http://www.example.org": false, "http://localhost:3000": false, "https://evil.example": false,
		}},
		{"any", []string{AnyOrigin}, map[string]bool{"https://evil.example": true, "null": true, "": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := mustStart(t, func(o *Options) {
				if tc.origins != nil {
					o.WSOrigins = tc.origins
				}
			})
			for origin, want := range tc.allowed {
				h := http.Header{}
				if origin != "" {
					h.Set("Origin", origin)
				}
				c, resp, err := dialWSWith(t, s, h)
				if want {
					if err != nil {
						t.Fatalf("Origin %q refused: %v", origin, err)
					}
					c.mustCall("echo", "hi", "hi")
					continue
				}
				if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Fatalf("Origin %q: %v (response %v), want 403", origin, err, resp)
				}
			}
		})
	}
}
