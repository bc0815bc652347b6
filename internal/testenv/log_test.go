package testenv

import (
	"strings"
	"sync"
	"testing"
)

// fakeTB records Log calls and fails the test if Log is called after the
// test is over, as the real testing.T would panic.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	lines    []string
	cleanups []func()
	over     bool
}

func (f *fakeTB) Log(args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.over {
		panic("Log after test completed")
	}
	for _, a := range args {
		f.lines = append(f.lines, a.(string))
	}
}

func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func (f *fakeTB) finish() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.mu.Lock()
	f.over = true
	f.mu.Unlock()
}

func TestLogger(t *testing.T) {
	t.Setenv("NOON_TEST_LOG", "debug")
	ft := &fakeTB{TB: t}
	log := Logger(ft)
	log.Debug("debug shows", "k", "v")
	ft.finish()
	log.Info("after the end") // must not reach t.Log
	if len(ft.lines) != 1 || !strings.Contains(ft.lines[0], `level=DEBUG msg="debug shows" k=v`) || strings.HasSuffix(ft.lines[0], "\n") {
		t.Errorf("got %q", ft.lines)
	}

	// And with the real testing.T, from another goroutine.
	tlog := Logger(t)
	done := make(chan struct{})
	go func() { tlog.Info("from a goroutine"); close(done) }()
	<-done
}
