package link

import (
	"context"
	"sync"
	"time"

	"github.com/noonhq/noon/internal/pki"
)

// reqCtx is a Server request's context: it ends at the request's deadline,
// on the caller's CANCEL, when the handler replies, or when the Server
// closes, and carries the caller's verified identity (CallerFrom).
//
// It replaces context.WithDeadline on the Server's context plus
// context.AfterFunc for the request's release, which cost every request a
// registration under the Server context's one mutex (shared by all
// requests), a children map, and a goroutine when the reply ended the
// context. Here the deadline is one timer, the end releases the request
// in the goroutine that ends it, and the Done channel is made only if
// someone asks for it. It implements AfterFunc, which the context package
// uses to propagate its end to derived contexts without a goroutine.
type reqCtx struct {
	deadline  time.Time
	caller    pki.Identity
	hasCaller bool
	owner     releaser // released once, when the context ends
	timer     *time.Timer

	mu    sync.Mutex
	done  chan struct{} // made by the first Done; closed at the end
	err   error
	hooks map[*afterHook]struct{}
}

// releaser is what a reqCtx releases when it ends: its request.
type releaser interface{ release() }

// afterHook is one AfterFunc registration.
type afterHook struct{ f func() }

// init readies c to end at deadline and release owner once when it ends
// (for whatever reason). c is usually a field of its owner: one
// allocation for both.
func (c *reqCtx) init(deadline time.Time, caller pki.Identity, hasCaller bool, owner releaser) {
	c.deadline, c.caller, c.hasCaller, c.owner = deadline, caller, hasCaller, owner
	c.timer = time.AfterFunc(time.Until(deadline), c.expire)
}

func (c *reqCtx) expire() { c.end(context.DeadlineExceeded) }

func (c *reqCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *reqCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			c.done = closedChan
		} else {
			c.done = make(chan struct{})
		}
	}
	return c.done
}

func (c *reqCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *reqCtx) Value(key any) any {
	if _, ok := key.(callerKey); ok && c.hasCaller {
		return c.caller
	}
	return nil
}

// AfterFunc runs f in its own goroutine once c ends (at once if it has);
// stop unregisters it and reports whether it did so before f was started.
// The context package calls it to end contexts derived from c.
func (c *reqCtx) AfterFunc(f func()) (stop func() bool) {
	h := &afterHook{f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.hooks == nil {
		c.hooks = make(map[*afterHook]struct{})
	}
	c.hooks[h] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.hooks[h]; !ok {
			return false
		}
		delete(c.hooks, h)
		return true
	}
}

// end ends c with err (the first end wins) and reports whether this call
// ended it: it stops the timer, releases its owner, closes Done and
// starts the AfterFunc hooks, in the calling goroutine.
func (c *reqCtx) end(err error) bool {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return false
	}
	c.err = err
	done, hooks := c.done, c.hooks
	c.hooks = nil
	c.mu.Unlock()
	if err != context.DeadlineExceeded {
		c.timer.Stop()
	}
	// Released before anyone can see the end: whoever waits on Done (or
	// a derived context) finds the request's slot free already.
	c.owner.release()
	if done != nil {
		close(done)
	}
	for h := range hooks {
		go h.f()
	}
	return true
}
