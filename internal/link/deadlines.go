package link

import (
	"container/heap"
	"time"
)

// deadlines orders a link's started calls (Peer.Start) by deadline, with one
// timer for the earliest, instead of a runtime timer per call (whose
// creation, reset and stop under the runtime's timer lock, and its closure,
// were a few percent of the broker's CPU at 16 connections). The link's mu
// guards it. The timer is not moved back when the earliest call ends: it
// may fire early, find nothing due, and re-arm for the next.
type deadlines struct {
	h     callHeap
	timer *time.Timer
	armed time.Time // when timer fires; zero: not armed
}

// startedCall is a started call's place in deadlines.
type startedCall struct {
	id  uint64
	at  time.Time // the call's deadline
	idx int       // in the heap; -1 when not in it
}

type callHeap []*startedCall

func (h callHeap) Len() int           { return len(h) }
func (h callHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h callHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *callHeap) Push(x any) {
	c := x.(*startedCall)
	c.idx = len(*h)
	*h = append(*h, c)
}
func (h *callHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.idx = -1
	return c
}

// addLocked adds c and arms the timer if c is due before it fires.
func (l *link) addDeadlineLocked(c *startedCall) {
	heap.Push(&l.dl.h, c)
	l.armLocked()
}

// removeDeadlineLocked takes c out (its call ended another way).
func (l *link) removeDeadlineLocked(c *startedCall) {
	if c != nil && c.idx >= 0 {
		heap.Remove(&l.dl.h, c.idx)
	}
}

// armLocked arms the timer for the earliest deadline unless it fires
// before that already.
func (l *link) armLocked() {
	if len(l.dl.h) == 0 || l.killed {
		return
	}
	at := l.dl.h[0].at
	if !l.dl.armed.IsZero() && !at.Before(l.dl.armed) {
		return
	}
	l.dl.armed = at
	if l.dl.timer == nil {
		l.dl.timer = time.AfterFunc(time.Until(at), l.expire)
		return
	}
	l.dl.timer.Reset(time.Until(at))
}

// expire times out every started call whose deadline has passed, and
// re-arms the timer for the next.
func (l *link) expire() {
	var due []waiter
	l.mu.Lock()
	l.dl.armed = time.Time{}
	now := time.Now()
	for len(l.dl.h) > 0 && !l.dl.h[0].at.After(now) {
		c := heap.Pop(&l.dl.h).(*startedCall)
		if w, ok := l.pending[c.id]; ok && w.sc == c {
			delete(l.pending, c.id)
			due = append(due, w)
		}
	}
	l.armLocked()
	l.mu.Unlock()
	p := l.p
	for _, w := range due {
		p.stats.timeouts.Add(1)
		l.cancelRemote(w.sc.id)
		p.endCall()
		w.fn(nil, errCallTimeout)
	}
}

// stopDeadlinesLocked drops every deadline (the link died: kill fails the
// calls).
func (l *link) stopDeadlinesLocked() {
	for _, c := range l.dl.h {
		c.idx = -1
	}
	clear(l.dl.h)
	l.dl.h = l.dl.h[:0]
	if l.dl.timer != nil {
		l.dl.timer.Stop()
	}
	l.dl.armed = time.Time{}
}
