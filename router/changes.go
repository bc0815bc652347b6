package router

import "sync"

// changes broadcasts "something changed" to any number of waiters: wait
// returns a channel that the next notify closes. The zero value is ready
// to use; notify never blocks. Pool and Subscribers wake their waiters
// with it, so waiting for a view or a link is an event, not a poll.
type changes struct {
	mu sync.Mutex    // a leaf
	ch chan struct{} // closed by the next notify; nil until someone waits
}

// wait returns a channel closed at the next notify. Take it before looking
// at what may change, then wait on it.
func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ch == nil {
		c.ch = make(chan struct{})
	}
	return c.ch
}

// notify wakes everyone waiting.
func (c *changes) notify() {
	c.mu.Lock()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
	c.mu.Unlock()
}
