package realip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func mustTrusted(t *testing.T, list ...string) Trusted {
	t.Helper()
	tr, err := ParseTrusted(list)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestParseTrusted(t *testing.T) {
	tr := mustTrusted(t, "10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::ffff:172.16.0.0/112", "10.1.2.3/8")
	for addr, want := range map[string]bool{
		"10.9.8.7": true, "::ffff:10.9.8.7": true, "11.0.0.1": false,
		"192.0.2.7": true, "192.0.2.8": false,
		"2001:db8:1::1": true, "2001:db9::1": false,
		"172.16.9.9": true, "172.17.0.1": false,
	} {
		if got := tr.Contains(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", addr, got, want)
		}
	}
	if !tr.ContainsAddr(&net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 9}) || tr.ContainsAddr(&net.TCPAddr{IP: net.ParseIP("11.0.0.1")}) {
		t.Error("ContainsAddr")
	}
	if (Trusted{}).ContainsAddr(&net.TCPAddr{IP: net.ParseIP("10.0.0.1")}) {
		t.Error("the zero Trusted trusts an address")
	}

	_, err := ParseTrusted([]string{"10.0.0.0/8", "10.0.0.0/33", "nope", ""})
	want := `config: [1]: must be a CIDR (10.0.0.0/8) or an address, got "10.0.0.0/33"; [2]: must be a CIDR (10.0.0.0/8) or an address, got "nope"; [3]: must be a CIDR (10.0.0.0/8) or an address, got ""`
	if err == nil || err.Error() != want {
		t.Fatalf("ParseTrusted: %v\nwant %s", err, want)
	}
	if err := ValidateTrusted("trusted_proxies", []string{"x"}); err == nil || !strings.Contains(err.Error(), "trusted_proxies[0]: must be a CIDR") {
		t.Fatalf("ValidateTrusted: %v", err)
	}
}

func TestForwarded(t *testing.T) {
	tr := mustTrusted(t, "10.0.0.0/8", "2001:db8::/32")
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer's header ignored", "203.0.113.9", []string{"198.51.100.1"}, "203.0.113.9"},
		{"no header", "10.0.0.1", nil, "10.0.0.1"},
		{"one hop", "10.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted", "10.0.0.1", []string{"1.1.1.1, 198.51.100.1, 10.0.0.2"}, "198.51.100.1"},
		{"spoofed left part ignored", "10.0.0.1", []string{"10.0.0.5, 198.51.100.1"}, "198.51.100.1"},
		{"several lines", "10.0.0.1", []string{"1.1.1.1", "198.51.100.1,10.0.0.3", "10.0.0.2"}, "198.51.100.1"},
		{"all trusted", "10.0.0.1", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"garbage stops at the hop that wrote it", "10.0.0.1", []string{"1.1.1.1, nope, 10.0.0.2"}, "10.0.0.2"},
		{"garbage from the peer", "10.0.0.1", []string{"1.1.1.1,"}, "10.0.0.1"},
		{"with ports", "10.0.0.1", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"v6 with port", "2001:db8::1", []string{"[2001:db9::7]:4711"}, "2001:db9::7"},
		{"v6", "2001:db8::1", []string{"2001:db9::7"}, "2001:db9::7"},
		{"mapped peer", "::ffff:10.0.0.1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"mapped entry", "10.0.0.1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tr.Forwarded(netip.MustParseAddr(tc.peer), tc.xff); got.String() != tc.want {
				t.Fatalf("Forwarded(%s, %q) = %v, want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

func TestRequest(t *testing.T) {
	tr := mustTrusted(t, "127.0.0.0/8")
	r := &http.Request{RemoteAddr: "127.0.0.1:5555", Header: http.Header{}}
	if got := tr.RemoteAddr(r); got != "127.0.0.1:5555" {
		t.Fatalf("no header: %s", got)
	}
	r.Header.Add(HeaderForwardedFor, "198.51.100.1")
	if got := tr.RemoteAddr(r); got != "198.51.100.1:0" {
		t.Fatalf("trusted peer: %s", got)
	}
	if got := (Trusted{}).RemoteAddr(r); got != "127.0.0.1:5555" {
		t.Fatalf("nobody trusted: %s", got)
	}
	r.RemoteAddr = "@pipe"
	if got := tr.RemoteAddr(r); got != "@pipe" {
		t.Fatalf("unparsable RemoteAddr: %s", got)
	}
}

func TestMasked(t *testing.T) {
	for _, c := range []struct {
		ip     string
		v4, v6 int
		want   string
	}{
		{"192.0.2.77", 32, 64, "192.0.2.77/32"},
		{"192.0.2.77", 24, 64, "192.0.2.0/24"},
		{"::ffff:192.0.2.77", 24, 64, "192.0.2.0/24"},
		{"2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"},
		{"fe80::1%eth0", 32, 64, "fe80::/64"},
	} {
		if got := Masked(netip.MustParseAddr(c.ip), c.v4, c.v6).String(); got != c.want {
			t.Errorf("Masked(%s, %d, %d) = %s, want %s", c.ip, c.v4, c.v6, got, c.want)
		}
	}
}
