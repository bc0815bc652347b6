package room

import (
	"context"
	"errors"
	"fmt"
)

// Drain hands this instance's rooms over for a rolling deploy, losing
// nothing: the instance stops taking rooms, its server (if attached) starts
// draining at the same time (marked draining in yellow, new requests
// answered "unavailable: draining" so brokers send them to the rooms' next
// owners), and every room's controller handles what is already queued,
// writes a final snapshot and releases the lease, so the next owner takes
// the room at once and loads it without replaying. Drain returns when the
// rooms and the server are done, or ctx ends; call Close (or the server's
// Exit) afterwards.
func (s *Service) Drain(ctx context.Context) error {
	if !s.draining.CompareAndSwap(false, true) {
		return nil
	}
	srvDone := make(chan error, 1)
	if a := s.att.Load(); a != nil && a.srv != nil {
		go func() { srvDone <- a.srv.Drain(ctx) }()
	} else {
		srvDone <- nil
	}
	s.mu.Lock()
	list := s.controllersLocked()
	s.mu.Unlock()
	for _, c := range list {
		c.signal(stopDrain)
	}
	var err error
	for _, c := range list {
		select {
		case <-c.done:
		case <-ctx.Done():
			err = fmt.Errorf("room: drain: rooms still handing over: %w", ctx.Err())
		}
		if err != nil {
			break
		}
	}
	s.log.Info("room: drained", "rooms", len(list))
	return errors.Join(err, <-srvDone)
}

// Draining reports whether Drain was called.
func (s *Service) Draining() bool { return s.draining.Load() }
