package link

import (
	"sync"
	"sync/atomic"
	"time"
)

// Replies of a read burst.
//
// A Server's connection reader hands each message it reads to the Server
// in turn (serveReads, onMessage). One socket read often brings several
// requests: a Peer writes what its callers queued together in one write.
// An inline handler (ServerOptions.Inline) runs on the reader; its reply
// joins the connection's burst batch instead of being written at once, and
// the batch leaves in one write when the reader goes back to the socket
// (guardConfig.beforeRead) or fills up. So a burst of n inline requests
// costs one write instead of n, and the Peer one read: the flush happens
// when the reader has nothing left to do, never on a timer, and a reply
// waits at most for the burst's other inline runs, which
// burstInlineBudget bounds. Replies of handlers that run on goroutines of
// their own are written as before (enqueue).

// burstInlineBudget is how long the inline runs of one read burst may
// hold up the burst's later messages: past it, the burst's messages but
// its last run on goroutines of their own, as every message with more
// behind it did before bursts were batched.
const burstInlineBudget = 250 * time.Microsecond

// burst is one guarded connection's read burst (a Server's connection).
type burst struct {
	mu sync.Mutex
	// inline is set while an inline handler of the connection runs: a
	// reply sent meanwhile joins pending (under mu, so that no reply joins
	// after the reader's last flush before it reads again).
	inline  bool
	pending frameBatch
	// n is len(pending.bodies), for the reader's check without mu.
	n atomic.Int32
	// start is when the burst's first inline run began (zero: none yet).
	// Only the reader touches it.
	start time.Time
}

// rule is the inline rule of a message read in this burst: buffered says
// more of the burst follows it; budget is burstInlineBudget.
func (b *burst) rule(buffered bool, budget time.Duration) inlineRule {
	if !buffered || b.start.IsZero() || time.Since(b.start) < budget {
		return inlineAlone
	}
	return inlineNever
}

// runInline runs serve as an inline handler of the burst (on the reader),
// started at start.
func (b *burst) runInline(start time.Time, serve func()) {
	if b.start.IsZero() {
		b.start = start
	}
	b.mu.Lock()
	b.inline = true
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inline = false
		b.mu.Unlock()
	}()
	serve()
}

// addReply adds a reply to g's burst batch if an inline handler of g runs,
// and reports whether it did; a full batch is written at once.
func (s *Server) addReply(g *guardConn, body []byte) bool {
	b := &g.burst
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.inline {
		return false
	}
	s.stats.burst.Add(1)
	b.pending.add(body)
	b.n.Store(int32(len(b.pending.bodies)))
	if b.pending.full() {
		s.flushBurst(g)
	}
	return true
}

// endBurst is g's beforeRead: the reader is about to read from the socket,
// so the burst is over and its replies leave.
func (s *Server) endBurst(g *guardConn) {
	b := &g.burst
	b.start = time.Time{}
	if b.n.Load() == 0 {
		return
	}
	b.mu.Lock()
	s.flushBurst(g)
	b.mu.Unlock()
}

// flushBurst writes g's burst batch: in one write when the turn is free,
// otherwise through the writer's queue. Caller holds g.burst.mu.
func (s *Server) flushBurst(g *guardConn) {
	b := &g.burst
	defer b.n.Store(0)
	if b.pending.empty() {
		return
	}
	if !s.closed.Load() && s.writeDirect(g, &b.pending, nil) {
		return
	}
	for _, body := range b.pending.bodies {
		s.enqueue(g.ridB, body, true) // a drop is counted (Dropped), as a reply too
	}
	b.pending.reset(nil) // the writer recycles the bodies it took
}
