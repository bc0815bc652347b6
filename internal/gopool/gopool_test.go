package gopool

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls cond (the pool's goroutines park and exit on their own
// schedule, which nothing signals).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRunsAndReuses(t *testing.T) {
	var p Pool
	defer p.Close()
	var ran atomic.Int32
	done := make(chan struct{})
	p.Go(func() { ran.Add(1); done <- struct{}{} })
	<-done
	waitFor(t, "first goroutine parked", func() bool { return p.Idle() == 1 })
	before := runtime.NumGoroutine()
	p.Go(func() { ran.Add(1); done <- struct{}{} })
	<-done
	if ran.Load() != 2 {
		t.Fatalf("ran %d, want 2", ran.Load())
	}
	// The second function ran on the parked goroutine: no new one.
	if n := runtime.NumGoroutine(); n > before {
		t.Fatalf("goroutines %d after reuse, %d before", n, before)
	}
}

func TestConcurrentNeverQueues(t *testing.T) {
	var p Pool
	defer p.Close()
	// Many functions blocked at once: each must get its own goroutine.
	const n = 200
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(n)
	var finished sync.WaitGroup
	finished.Add(n)
	for range n {
		p.Go(func() {
			started.Done()
			<-release
			finished.Done()
		})
	}
	started.Wait() // would hang if Go queued behind a busy goroutine
	close(release)
	finished.Wait()
	waitFor(t, "all parked", func() bool { return p.Idle() == n })
}

func TestMaxIdle(t *testing.T) {
	p := Pool{MaxIdle: 3}
	defer p.Close()
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(10)
	for range 10 {
		p.Go(func() { <-release; wg.Done() })
	}
	close(release)
	wg.Wait()
	// Past MaxIdle a finishing goroutine exits: never more than 3 park.
	waitFor(t, "3 parked", func() bool { return p.Idle() == 3 })
}

func TestIdleTimeout(t *testing.T) {
	p := Pool{IdleTimeout: 20 * time.Millisecond}
	defer p.Close()
	base := runtime.NumGoroutine()
	done := make(chan struct{})
	for range 5 {
		p.Go(func() { done <- struct{}{} })
	}
	for range 5 {
		<-done
	}
	waitFor(t, "parked goroutines to exit", func() bool {
		return p.Idle() == 0 && runtime.NumGoroutine() <= base
	})
	// The pool still works after its sweeper stopped.
	p.Go(func() { done <- struct{}{} })
	<-done
}

func TestClose(t *testing.T) {
	var p Pool
	base := runtime.NumGoroutine()
	done := make(chan struct{})
	for range 4 {
		p.Go(func() { done <- struct{}{} })
	}
	for range 4 {
		<-done
	}
	waitFor(t, "parked", func() bool { return p.Idle() == 4 })
	p.Close()
	waitFor(t, "goroutines gone", func() bool { return runtime.NumGoroutine() <= base })
	p.Go(func() { done <- struct{}{} }) // still runs, unpooled
	<-done
}

// BenchmarkGo against a goroutine per call, each running a function that
// needs a grown stack.
func BenchmarkGo(b *testing.B) {
	deep := func(n int) int {
		var buf [1024]byte
		buf[n%1024] = byte(n)
		return int(buf[(n*7)%1024])
	}
	var f func(int) int
	f = func(n int) int {
		if n == 0 {
			return 0
		}
		return deep(n) + f(n-1)
	}
	run := func(b *testing.B, spawn func(func())) {
		var wg sync.WaitGroup
		for b.Loop() {
			wg.Add(1)
			spawn(func() { f(8); wg.Done() })
			wg.Wait()
		}
	}
	b.Run("pool", func(b *testing.B) {
		var p Pool
		defer p.Close()
		run(b, p.Go)
	})
	b.Run("go", func(b *testing.B) { run(b, func(fn func()) { go fn() }) })
}
