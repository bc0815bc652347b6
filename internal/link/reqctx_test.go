package link

import (
	"context"
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/pki"
)

// testKey is a context key of these tests.
type testKey struct{}

// releaseFunc is a releaser for tests.
type releaseFunc func()

func (f releaseFunc) release() { f() }

// newReqCtx returns a reqCtx calling onEnd when it ends.
func newReqCtx(deadline time.Time, caller pki.Identity, hasCaller bool, onEnd func()) *reqCtx {
	c := new(reqCtx)
	c.init(deadline, caller, hasCaller, releaseFunc(onEnd))
	return c
}

// TestReqCtx: a request's context ends once, with DeadlineExceeded at its
// deadline or Canceled when ended, closes Done whenever it was asked for,
// ends the contexts derived from it (through AfterFunc, no goroutine per
// derived context) and carries the caller.
func TestReqCtx(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		var ends atomic.Int32
		c := newReqCtx(time.Now().Add(20*time.Millisecond), pki.Identity{}, false, func() { ends.Add(1) })
		child, cancel := context.WithCancel(context.WithValue(c, testKey{}, 1))
		defer cancel()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("derived context not ended at the deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err: %v, derived %v", c.Err(), child.Err())
		}
		if c.end(context.Canceled) || ends.Load() != 1 {
			t.Fatalf("ended again, or onEnd called %d times", ends.Load())
		}
		if d, ok := c.Deadline(); !ok || d.IsZero() {
			t.Fatal("no deadline")
		}
	})
	t.Run("end before Done", func(t *testing.T) {
		var ends atomic.Int32
		c := newReqCtx(time.Now().Add(time.Hour), pki.Identity{}, false, func() { ends.Add(1) })
		if !c.end(context.Canceled) || c.end(context.Canceled) {
			t.Fatal("end did not report the first end only")
		}
		select {
		case <-c.Done():
		default:
			t.Fatal("Done not closed after the end")
		}
		if !errors.Is(context.Cause(c), context.Canceled) || ends.Load() != 1 {
			t.Fatalf("Cause %v, onEnd %d", context.Cause(c), ends.Load())
		}
		// Deriving from an ended context ends the child at once.
		child, cancel := context.WithTimeout(c, time.Hour)
		defer cancel()
		<-child.Done()
	})
	t.Run("AfterFunc stop", func(t *testing.T) {
		c := newReqCtx(time.Now().Add(time.Hour), pki.Identity{}, false, func() {})
		ran := make(chan struct{}, 1)
		stop := context.AfterFunc(c, func() { ran <- struct{}{} })
		if !stop() || stop() {
			t.Fatal("stop did not report the first stop only")
		}
		fired := make(chan struct{})
		context.AfterFunc(c, func() { close(fired) })
		c.end(context.Canceled)
		<-fired
		select {
		case <-ran:
			t.Fatal("a stopped AfterFunc ran")
		default:
		}
	})
	t.Run("caller", func(t *testing.T) {
		id := pki.Identity{Role: "broker", Name: "b1"}
		c := newReqCtx(time.Now().Add(time.Hour), id, true, func() {})
		defer c.end(context.Canceled)
		if got, ok := CallerFrom(context.WithValue(c, testKey{}, 2)); !ok || got != id {
			t.Fatalf("CallerFrom = %v, %v", got, ok)
		}
		c2 := newReqCtx(time.Now().Add(time.Hour), pki.Identity{}, false, func() {})
		defer c2.end(context.Canceled)
		if _, ok := CallerFrom(c2); ok {
			t.Fatal("a caller without TLS")
		}
	})
}

// TestReqCtxDerivedNoGoroutines: contexts derived from a request's context
// are ended through its AfterFunc, not by a goroutine each (what the
// context package falls back to for a parent it does not know).
func TestReqCtxDerivedNoGoroutines(t *testing.T) {
	c := newReqCtx(time.Now().Add(time.Hour), pki.Identity{}, false, func() {})
	before := runtime.NumGoroutine()
	const n = 1000
	children := make([]context.Context, n)
	for i := range children {
		var cancel context.CancelFunc
		children[i], cancel = context.WithCancel(c)
		defer cancel()
	}
	if grew := runtime.NumGoroutine() - before; grew > n/10 {
		t.Fatalf("%d goroutines for %d derived contexts", grew, n)
	}
	c.end(context.Canceled)
	for _, ch := range children {
		<-ch.Done()
	}
}
