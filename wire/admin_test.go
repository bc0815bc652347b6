package wire

import "testing"

func TestAdminLabel(t *testing.T) {
	for _, tc := range []struct{ addr, host, want string }{
		{"127.0.0.1:1051", "", "127.0.0.1:1051"},
		{"0.0.0.0:1051", "10.0.0.7", "10.0.0.7:1051"},
		{"[::]:1051", "node-3.internal", "node-3.internal:1051"},
		{":1051", "", "127.0.0.1:1051"},
		{"0.0.0.0:1051", "0.0.0.0", "127.0.0.1:1051"},
		{"", "h", ""},
		{"no-port", "h", ""},
	} {
		if got := AdminLabel(tc.addr, tc.host); got != tc.want {
			t.Errorf("AdminLabel(%q, %q) = %q, want %q", tc.addr, tc.host, got, tc.want)
		}
	}
	if h := EndpointHost("tcp://10.1.2.3:5000"); h != "10.1.2.3" {
		t.Errorf("EndpointHost = %q", h)
	}
}
