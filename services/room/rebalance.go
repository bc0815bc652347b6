package room

import (
	"time"

	"github.com/noonhq/noon/internal/placement"
)

// Rebalance: when a room instance joins, the rooms whose rendezvous owner
// among the ready instances it is now stay where they are (their lease
// holder is their owner while it lives) until their holder hands them
// over. Each instance looks, whenever yellow's view changes and every
// rebalanceEvery, for rooms it holds that another ready instance owns,
// and moves them there at Options.RebalanceRate: the room's controller
// stops between two events, handles what is queued, writes a final
// snapshot and releases the lease (what a drain does for every room);
// requests arriving meanwhile wait for it and are answered moved to the
// new owner, which takes the lease at once and loads the snapshot.
// Nothing is lost and nothing is handled twice: the lease and the store's
// fencing epoch still make one writer at a time.

// rebalanceEvery is how often an instance looks for rooms to move without
// a change in yellow's view (a move skipped while a view was settling).
const rebalanceEvery = 2 * time.Second

// rebalanceLoop moves rooms to the instances that own them now, until the
// service stops.
func (s *Service) rebalanceLoop(a *attachment) {
	defer s.wg.Done()
	if s.opts.RebalanceRate <= 0 {
		return
	}
	changes, cancel := s.watcher.Subscribe()
	defer cancel()
	t := time.NewTicker(rebalanceEvery)
	defer t.Stop()
	for {
		select {
		case <-changes:
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		s.rebalance(a)
	}
}

// rebalance moves the rooms held here whose rendezvous owner among the
// ready instances is another, one every 1/RebalanceRate, each checked
// again against the current view just before it moves.
func (s *Service) rebalance(a *attachment) {
	if s.draining.Load() {
		return
	}
	ids := s.readyIDs(a)
	if len(ids) < 2 {
		return
	}
	s.mu.Lock()
	var list []*controller
	for id, c := range s.rooms {
		if o := placement.Owner(id, ids); o != "" && o != a.self {
			list = append(list, c)
		}
	}
	s.mu.Unlock()
	pace := time.NewTicker(time.Duration(float64(time.Second) / s.opts.RebalanceRate))
	defer pace.Stop()
	for i, c := range list {
		if i > 0 {
			select {
			case <-pace.C:
			case <-s.ctx.Done():
				return
			}
		}
		if s.draining.Load() {
			return
		}
		if o := placement.Owner(c.id, s.readyIDs(a)); o != "" && o != a.self {
			s.move(c, o)
		}
	}
}

// move hands room c over to instance to: c stops between two events, as
// for a drain; requests for the room wait for it meanwhile.
func (s *Service) move(c *controller, to string) {
	s.mu.Lock()
	if s.rooms[c.id] != c || s.moving[c.id] == c.done {
		s.mu.Unlock()
		return // evicted or stopped meanwhile, or already moving (a second look while it stops)
	}
	s.moving[c.id] = c.done
	s.mu.Unlock()
	s.st.rebalanced.Add(1)
	s.log.Debug("room: moving to its owner", "room", c.id, "to", to)
	c.signal(stopMove)
}
