package testenv

import (
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Logger returns a logger writing to t.Log at the NOON_TEST_LOG level
// (debug, info, warn, error; default warn, so a passing test stays quiet
// while a failing one shows what went wrong). What goroutines log after the
// test ended is dropped. For a *testing.F it discards: what a fuzz target
// runs may not log through the F (testing panics: "f.Log was called inside
// the fuzz target"), and a fuzzer's inputs reach every warning.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	if _, ok := t.(*testing.F); ok {
		return slog.New(slog.DiscardHandler)
	}
	level := slog.LevelWarn
	if v := os.Getenv("NOON_TEST_LOG"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	w := &tbWriter{t: t}
	t.Cleanup(w.stop) // registered first: runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// tbWriter writes to t.Log until stop.
type tbWriter struct {
	mu   sync.Mutex // guards done and orders Log calls against stop
	t    testing.TB
	done bool
}

func (w *tbWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func (w *tbWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// CheckFor polls cond every 5 ms until it holds, or fails the test naming
// what it waited for when timeout passes. Tests wait with it instead of
// sleeping.
func CheckFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
