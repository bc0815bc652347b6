package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPick: picks are below the ephemeral range, bindable, never repeated,
// never reserved.
func TestPick(t *testing.T) {
	Reserve(20000, 20999)
	seen := map[int]bool{}
	for range 200 {
		p, err := Pick("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if p < 21000 || p >= 32000 || seen[p] {
			t.Fatalf("picked %d (reserved, out of range or twice)", p)
		}
		seen[p] = true
	}
	p, err := Pick("")
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("the picked port %d does not bind: %v", p, err)
	}
	l.Close()
}
