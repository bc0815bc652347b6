package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
)

// progressLineEvery is how often a progress line is printed when stderr is
// not a terminal (on a terminal the line is rewritten in place instead).
const progressLineEvery = time.Second

// progress shows on stderr what is running. On a terminal it rewrites one
// status line; elsewhere (a CI log, a file) it prints a line at each phase
// change and every second. Its methods are safe for concurrent use.
type progress struct {
	mu        sync.Mutex
	w         io.Writer
	tty       bool
	start     time.Time
	lastLine  time.Time
	lastPhase string
	dirty     bool // a status line is on screen (tty)
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// status shows a transient status line; phase changes force a line.
func (p *progress) status(phase, text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := fmt.Sprintf("noonbench %6.1fs  %s", time.Since(p.start).Seconds(), text)
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.dirty = true
		return
	}
	if phase == p.lastPhase && time.Since(p.lastLine) < progressLineEvery {
		return
	}
	p.lastPhase, p.lastLine = phase, time.Now()
	fmt.Fprintln(p.w, line)
}

// logf prints a line that stays.
func (p *progress) logf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dirty {
		fmt.Fprint(p.w, "\r\033[K")
		p.dirty = false
	}
	fmt.Fprintf(p.w, "noonbench %6.1fs  %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
	p.lastPhase = ""
}

// scenario returns the bench.Config.Progress of the i-th of n runs.
func (p *progress) scenario(i, n int, name string, conns int) func(bench.Progress) {
	label := fmt.Sprintf("[%d/%d] %-5s conns=%-4d", i, n, name, conns)
	return func(pr bench.Progress) {
		key := label + pr.Phase
		switch pr.Phase {
		case "warmup", "measure":
			p.status(key, fmt.Sprintf("%s %-7s %4.1fs/%.1fs  %d replies measured", label, pr.Phase,
				pr.Elapsed.Seconds(), pr.Total.Seconds(), pr.Requests))
		default:
			p.status(key, fmt.Sprintf("%s %s", label, pr.Phase))
		}
	}
}

// idle returns the bench.IdleConfig.Progress of the idle test.
func (p *progress) idle(total int) func(phase string, open int) {
	return func(phase string, open int) {
		what := "broker connections"
		if phase == "bare" {
			what = "bare socket pairs (baseline)"
		}
		p.status("idle "+phase, fmt.Sprintf("[idle] %s: %d/%d open", what, open, total))
	}
}
