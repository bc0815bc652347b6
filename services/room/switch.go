package room

import (
	"context"
	"errors"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/wire"
)

// The switch: every event of a room goes to the room's controller, created
// on first use. Handlers put events (ops) in the controller's queue, in
// arrival order, and wait for the controller's answer; the controller
// handles them one at a time (controller.go).

// opGet is the kind of an op that reads the room's state and logs nothing.
const opGet = "get"

// maxAttempts bounds how often one request is re-submitted when the
// controller it was queued on went away before handling it (evicted,
// lease lost, store failure): twice covers a controller replaced while the
// request waited, more would only hide a room that cannot load.
const maxAttempts = 3

// errRetry is a controller's answer to an op it did not handle because it
// is going away: the handler submits it again (to a new controller, or
// another instance).
var errRetry = errors.New("room: controller gone, retry")

// op is one event for a room's controller.
type op struct {
	ctx       context.Context
	kind      string // an entry kind, or opGet
	player    string
	body      []byte
	wantState bool          // reply with the room's state (as player sees it)
	since     *int64        // opGet: the events after this seq too
	res       chan opResult // cap 1, so the controller never blocks; nil for ticks
}

type opResult struct {
	state   *roompb.RoomState // when wantState
	seq     int64             // the room's last event seq after the op
	changed bool              // the op was logged (not a no-op)
	err     error
}

// reply answers o; only the first answer counts (a controller that
// panicked answers everything it held, some of it answered already).
func (o *op) reply(r opResult) {
	if o.res == nil {
		return
	}
	select {
	case o.res <- r:
	default:
	}
}

// submit hands o to room id's controller and waits for its answer (never
// past ctx). fresh marks a room being created here: its controller takes
// the lease without looking for an owner and loads nothing.
func (s *Service) submit(ctx context.Context, id string, o *op, fresh bool) (opResult, error) {
	a := s.att.Load()
	if a == nil {
		return opResult{}, wire.Errorf(wire.CodeUnavailable, "room service not attached to a server yet")
	}
	for attempt := 0; ; attempt++ {
		o.ctx = ctx
		o.res = make(chan opResult, 1)
		if err := s.enqueue(ctx, a, id, o, fresh); err != nil {
			return opResult{}, err
		}
		select {
		case r := <-o.res:
			if errors.Is(r.err, errRetry) {
				if attempt+1 < maxAttempts && ctx.Err() == nil {
					fresh = false
					continue
				}
				return opResult{}, wire.Errorf(wire.CodeUnavailable, "room %s is changing owner; retry", id)
			}
			return r, r.err
		case <-ctx.Done():
			return opResult{}, wire.Errorf(wire.CodeTimeout, "room %s did not answer in time", id)
		}
	}
}

// enqueue puts o in the queue of room id's controller, starting one if
// this instance owns the room and has none. It answers moved when another
// instance owns the room, overloaded when the queue is full or MaxRooms
// rooms are active, unavailable while draining.
func (s *Service) enqueue(ctx context.Context, a *attachment, id string, o *op, fresh bool) error {
	s.mu.Lock()
	if c := s.rooms[id]; c != nil {
		err := s.push(c, o)
		s.mu.Unlock()
		return err
	}
	moving := s.moving[id]
	s.mu.Unlock()
	if moving != nil {
		// The room is being handed over: once it is, resolve names the
		// instance that took it.
		select {
		case <-moving:
		case <-ctx.Done():
			return wire.Errorf(wire.CodeTimeout, "room %s is changing owner", id)
		}
	}
	if s.draining.Load() {
		return wire.NewError(wire.CodeUnavailable, wire.DrainingMessage)
	}
	if !fresh {
		if err := s.resolve(ctx, a, id); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.rooms[id]; c != nil {
		return s.push(c, o)
	}
	if s.closed || s.draining.Load() {
		return wire.NewError(wire.CodeUnavailable, wire.DrainingMessage)
	}
	if len(s.rooms) >= s.opts.MaxRooms {
		s.st.overloaded.Add(1)
		return wire.Errorf(wire.CodeOverloaded, "%s has %d rooms active (max_rooms)", a.self, len(s.rooms))
	}
	c := newController(s, a, id, fresh, s.exiting[id])
	c.orNew = o.kind == KindMatched
	s.rooms[id] = c
	_ = s.push(c, o) // an empty queue has room
	s.wg.Add(1)
	go c.run()
	return nil
}

// push queues o on c without blocking. Caller holds mu, which orders
// pushes against a controller's detach: once detached, nothing more
// arrives in its queue.
func (s *Service) push(c *controller, o *op) error {
	select {
	case c.q <- o:
		return nil
	default:
		s.st.overloaded.Add(1)
		return wire.Errorf(wire.CodeOverloaded, "room %s has %d events queued", c.id, cap(c.q))
	}
}

// detach removes c from the active rooms, so no more events reach it; a
// controller started later for the room waits for c.done. It reports
// false if c was not active (already detached).
func (s *Service) detach(c *controller) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[c.id] != c {
		return false
	}
	delete(s.rooms, c.id)
	s.exiting[c.id] = c.done
	return true
}

// tryEvict detaches c if its queue is empty: an idle room leaves memory.
func (s *Service) tryEvict(c *controller) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[c.id] != c || len(c.q) > 0 {
		return false
	}
	delete(s.rooms, c.id)
	s.exiting[c.id] = c.done
	return true
}

// exited forgets c's done channel once it is closed.
func (s *Service) exited(c *controller) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exiting[c.id] == c.done {
		delete(s.exiting, c.id)
	}
	if s.moving[c.id] == c.done {
		delete(s.moving, c.id)
	}
	if s.rooms[c.id] == c { // never detached (should not happen)
		delete(s.rooms, c.id)
	}
}
