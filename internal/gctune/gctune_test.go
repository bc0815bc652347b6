package gctune

import (
	"bufio"
	"runtime/debug"
	"strings"
	"testing"
)

func TestParseMemTotal(t *testing.T) {
	for in, want := range map[string]int64{
		"MemTotal:       24576000 kB\nMemFree: 1 kB\n": 24576000 << 10,
		"MemFree: 1 kB\nMemTotal: 1024 kB\n":           1 << 20,
		"MemTotal: 12 MB\n":                            0,
		"MemTotal: x kB\n":                             0,
		"":                                             0,
	} {
		if got := parseMemTotal(bufio.NewScanner(strings.NewReader(in))); got != want {
			t.Errorf("parseMemTotal(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestParseCgroupMax(t *testing.T) {
	if n, ok := parseCgroupMax([]byte("max\n")); ok {
		t.Errorf("max: got %d, true", n)
	}
	if n, ok := parseCgroupMax([]byte("1073741824\n")); !ok || n != 1<<30 {
		t.Errorf("1 GiB: got %d, %v", n, ok)
	}
}

func TestApplyRespectsEnvironment(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	if s := Apply(); s != (Settings{}) {
		t.Fatalf("with GOGC and GOMEMLIMIT set, Apply set %+v", s)
	}
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	s := Apply()
	if s.GCPercent != Percent {
		t.Fatalf("GCPercent %d, want %d", s.GCPercent, Percent)
	}
	if got := debug.SetGCPercent(Percent); got != Percent {
		t.Fatalf("runtime GOGC %d, want %d", got, Percent)
	}
	if s.MemoryLimit <= 0 || debug.SetMemoryLimit(-1) != s.MemoryLimit {
		t.Fatalf("memory limit %d not applied", s.MemoryLimit)
	}
}
