package wire_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/noonhq/noon/wire"
)

// FuzzParse: a client parses every reply's error string; whatever a server
// sends, Parse never panics and its result prints back to the input.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "timeout", "moved: r1", "not_found: no such room", "a b: c", ": x", "x:", "\xff: \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := wire.Parse(s)
		if e.Code == "" && e.Message != s {
			t.Fatalf("Parse(%q) lost text: %#v", s, e)
		}
		if e.Code != "" && s != e.Code && s != e.Code+": "+e.Message {
			t.Fatalf("Parse(%q) = %#v does not print back", s, e)
		}
	})
}

// FuzzSplitEndpoint: endpoints come from the network (yellow records);
// the one grammar never panics, bounds its input and accepts only what
// prints back as tcp://host:port.
func FuzzSplitEndpoint(f *testing.F) {
	for _, s := range []string{"tcp://127.0.0.1:1060", "tcp://*:0", "tcp://[::1]:1", "tcp://h:*", "udp://x:1", "tcp://:1", "tcp://h:99999", "tcp://" + strings.Repeat("a", 300) + ":1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		host, port, err := wire.SplitEndpoint(s)
		if err != nil {
			// The input is quoted from a snippet: %q writes a byte of
			// invalid UTF-8 as four.
			if len(err.Error()) > 100+4*(wire.SnippetLen+3) {
				t.Fatalf("error text of %d bytes for a %d-byte input", len(err.Error()), len(s))
			}
			return
		}
		if len(s) > wire.MaxEndpointLen || port < 0 || port > 65535 || host == "" || !strings.HasPrefix(s, "tcp://") {
			t.Fatalf("SplitEndpoint(%q) = %q, %d accepted", s, host, port)
		}
		_ = wire.ValidateDialEndpoint(s)
	})
}

// FuzzSnippet: Snippet never returns more than SnippetLen+3 bytes and
// never splits a rune of valid UTF-8.
func FuzzSnippet(f *testing.F) {
	f.Add(strings.Repeat("é", 40))
	f.Add("short")
	f.Fuzz(func(t *testing.T, s string) {
		out := wire.Snippet(s)
		if len(out) > wire.SnippetLen+3 {
			t.Fatalf("Snippet: %d bytes", len(out))
		}
		if utf8.ValidString(s) && !utf8.ValidString(out) {
			t.Fatalf("Snippet(%q) = %q split a rune", s, out)
		}
	})
}
