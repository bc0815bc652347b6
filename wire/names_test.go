package wire_test

import (
	"testing"

	"github.com/noonhq/noon/wire"
)

func TestEndpointGrammar(t *testing.T) {
	for _, tt := range []struct {
		ep           string
		listen, dial string // "" = accepted, else the error
	}{
		{"tcp://127.0.0.1:1060", "", ""},
		{"tcp://yellow-1.example:1060", "", ""},
		{"tcp://[::1]:1060", "", ""},
		{"tcp://*:1060", "", `host must not be a wildcard, got "tcp://*:1060"`},
		{"tcp://0.0.0.0:0", "", `host must not be a wildcard, got "tcp://0.0.0.0:0"`},
		{"tcp://h:*", "", `port must be 1..65535, got "tcp://h:*"`},
		{"tcp://h:0", "", `port must be 1..65535, got "tcp://h:0"`},
		{"", "required", "required"},
		{"ipc:///tmp/x", `must be tcp://host:port, got "ipc:///tmp/x"`, `must be tcp://host:port, got "ipc:///tmp/x"`},
		{"tcp://a/b:1", `bad host in "tcp://a/b:1"`, `bad host in "tcp://a/b:1"`},
		{"tcp://h:65536", `port must be a number from 0 to 65535 or *, got "tcp://h:65536"`, `port must be a number from 0 to 65535 or *, got "tcp://h:65536"`},
	} {
		errText := func(err error) string {
			if err == nil {
				return ""
			}
			return err.Error()
		}
		if got := errText(wire.ValidateListenEndpoint(tt.ep)); got != tt.listen {
			t.Errorf("listen %q: %q, want %q", tt.ep, got, tt.listen)
		}
		if got := errText(wire.ValidateDialEndpoint(tt.ep)); got != tt.dial {
			t.Errorf("dial %q: %q, want %q", tt.ep, got, tt.dial)
		}
	}
}

func TestNames(t *testing.T) {
	for s, want := range map[string]bool{"room": true, "a": true, "a-b_9": true, "": false, "Room": false, "9a": false, "a.b": false} {
		if wire.ValidName(s) != want {
			t.Errorf("ValidName(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"room.Join": true, "room.": false, "room": false, "Room.Join": false, "room.J oin": false} {
		if wire.ValidMethod(s) != want {
			t.Errorf("ValidMethod(%q) = %v", s, !want)
		}
	}
	if got := wire.ServiceOf("room.Join"); got != "room" {
		t.Errorf("ServiceOf = %q", got)
	}
	if got := wire.DialAddr(":1055"); got != "127.0.0.1:1055" {
		t.Errorf("DialAddr = %q", got)
	}
	if got, err := wire.Advertised("tcp://127.0.0.1:5", "h"); err != nil || got != "tcp://h:5" {
		t.Errorf("Advertised = %q, %v", got, err)
	}
}
