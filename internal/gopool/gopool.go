// Package gopool runs functions on reused goroutines.
//
// A goroutine starts with a small stack that grows (by copying) as a
// request goes deep: through the edge, the broker, the router and a link,
// or through a service's runtime, handler and codec. A goroutine per
// request pays that growth on every request (runtime.copystack was 7-12%
// of the broker's CPU). A Pool keeps the goroutines that finished a
// function parked, most recently used first, with their stacks, and hands
// the next function to one of them; it starts a new goroutine only when
// none is idle, so it never queues: Go never waits for a goroutine and
// never bounds how many run (callers bound their requests themselves).
//
// Idle goroutines cost their stacks: past MaxIdle a finishing goroutine
// exits rather than park, and one that stayed idle for IdleTimeout exits
// (checked every IdleTimeout/2 by a sweeper that runs only while some
// goroutine is idle).
package gopool

import (
	"sync"
	"time"
)

// Defaults of a zero Pool.
const (
	DefaultMaxIdle     = 1024
	DefaultIdleTimeout = 10 * time.Second
)

// Pool runs functions on reused goroutines. The zero Pool is ready to use
// with the defaults; a Pool must not be copied after first use.
type Pool struct {
	// MaxIdle bounds the parked goroutines (default DefaultMaxIdle).
	MaxIdle int
	// IdleTimeout is how long a goroutine stays parked before it exits
	// (default DefaultIdleTimeout).
	IdleTimeout time.Duration

	mu       sync.Mutex
	idle     []*worker // parked, the most recently parked last
	sweeping bool      // a sweeper goroutine runs
	closed   bool
}

type worker struct {
	ch     chan func() // nil: exit
	parked time.Time
}

// Go runs f on a parked goroutine, or on a new one if none is parked.
func (p *Pool) Go(f func()) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.ch <- f // never blocks: a parked worker's buffer is empty
		return
	}
	p.mu.Unlock()
	go p.run(&worker{ch: make(chan func(), 1)}, f)
}

// Idle returns how many goroutines are parked.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Close makes every parked goroutine exit, and those still running exit
// when they finish. Go still works after Close, without reuse.
func (p *Pool) Close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, w := range idle {
		w.ch <- nil
	}
}

func (p *Pool) run(w *worker, f func()) {
	for f != nil {
		f()
		f = nil // not kept alive while parked
		if !p.park(w) {
			return
		}
		f = <-w.ch
	}
}

// park puts w on the idle stack, unless the pool is closed or full.
func (p *Pool) park(w *worker) bool {
	maxIdle := p.MaxIdle
	if maxIdle <= 0 {
		maxIdle = DefaultMaxIdle
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= maxIdle {
		return false
	}
	w.parked = time.Now()
	p.idle = append(p.idle, w)
	if !p.sweeping {
		p.sweeping = true
		go p.sweep()
	}
	return true
}

// sweep makes goroutines parked for longer than IdleTimeout exit, while any
// is parked.
func (p *Pool) sweep() {
	timeout := p.IdleTimeout
	if timeout <= 0 {
		timeout = DefaultIdleTimeout
	}
	t := time.NewTicker(timeout / 2)
	defer t.Stop()
	var stale []*worker
	for range t.C {
		now := time.Now()
		p.mu.Lock()
		// The stack's bottom was parked first: the stale ones are there.
		n := 0
		for n < len(p.idle) && now.Sub(p.idle[n].parked) >= timeout {
			n++
		}
		stale = append(stale[:0], p.idle[:n]...)
		m := copy(p.idle, p.idle[n:])
		clear(p.idle[m:])
		p.idle = p.idle[:m]
		done := len(p.idle) == 0
		if done {
			p.sweeping = false
		}
		p.mu.Unlock()
		for i, w := range stale {
			w.ch <- nil
			stale[i] = nil
		}
		if done {
			return
		}
	}
}
