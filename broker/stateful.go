package broker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Limits of stateful routing.
const (
	// maxCachedOwners bounds the owner cache: one entry per live key (room)
	// this broker's clients use; a broker with 100k connections in rooms of
	// a few players has well under 100k rooms. When full, an arbitrary
	// entry makes room: a miss only costs a placement guess and perhaps a
	// "moved".
	maxCachedOwners = 100_000
	// leaseWaitMin and leaseWaitMax bound the pause before asking again
	// while a dead owner's lease has to expire: the first retry comes soon
	// (the lease may be about to expire), later ones back off to a few per
	// second, so a wait of a lease TTL (seconds) costs a handful of calls.
	leaseWaitMin = 10 * time.Millisecond
	leaseWaitMax = 250 * time.Millisecond
)

// ownerCache remembers which instance owns a stateful key, learned from
// "moved" replies and from the sender of replies that bound the key. It is
// a hint: an entry is used only while its instance is live, and a wrong one
// costs one "moved".
type ownerCache struct {
	mu sync.Mutex // a leaf
	m  map[ownerKey]string
}

type ownerKey struct{ service, value string }

func newOwnerCache() *ownerCache { return &ownerCache{m: make(map[ownerKey]string)} }

func (c *ownerCache) get(service, value string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[ownerKey{service, value}]
}

func (c *ownerCache) put(service, value, owner string) {
	if value == "" || owner == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ownerKey{service, value}
	if _, ok := c.m[k]; !ok && len(c.m) >= maxCachedOwners {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = owner
}

func (c *ownerCache) forget(service, value, owner string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := ownerKey{service, value}
	if c.m[k] == owner {
		delete(c.m, k)
	}
}

func (c *ownerCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// callStateful sends r to the instance that owns the value of the session's
// binding r.route.Key: the cached owner while it is live, else the
// rendezvous owner among the live ready instances. Without a binding (the
// request that creates or joins a room names it in its payload) it goes to
// the least-loaded instance, which answers "moved" if the key is another's.
//
// A "moved" reply names the owner: the request follows it, at most MaxHops
// times. When the named owner is not live (it died and its lease has not
// expired yet) the request goes to the next owner by placement, and, while
// that instance still answers "moved" to the dead owner, waits and asks
// again until the lease expires or the deadline passes.
func (b *Broker) callStateful(ctx context.Context, r *request) (*platformpb.Envelope, error) {
	service, key := r.route.Service, r.route.Key
	value := r.s.binding(key)
	env := b.envelope(r)
	var (
		dead   []string // instances known not to be usable for this request
		target string   // the instance to ask next; "" = least-loaded
		hops   int
		wait   = leaseWaitMin
	)
	if value != "" {
		if target = b.ownerOf(service, value, nil); target == "" && b.waitSynced(ctx) {
			target = b.ownerOf(service, value, nil)
		}
		if target == "" {
			return nil, noInstance(service)
		}
	}
	for {
		var (
			peer *link.Peer
			inst *platformpb.Instance
			err  error
		)
		if target == "" {
			peer, inst, err = b.pick(ctx, service, dead)
			if err != nil {
				return nil, err
			}
		} else if peer, inst = b.livePeer(ctx, service, target); peer == nil {
			// The owner is gone: place the key among the others.
			dead = appendOnce(dead, target)
			b.owners.forget(service, value, target)
			if value != "" {
				if target = b.ownerOf(service, value, dead); target == "" {
					return nil, noInstance(service)
				}
			} else {
				target = ""
			}
			if ctx.Err() != nil {
				return nil, b.statefulDeadline(ctx, r, value)
			}
			continue
		}
		rep, err := peer.Call(ctx, env)
		if err != nil {
			if services.NotSent(err) && ctx.Err() == nil {
				dead = appendOnce(dead, inst.GetId())
				target = ""
				if value != "" {
					if target = b.ownerOf(service, value, dead); target == "" {
						return nil, noInstance(service)
					}
				}
				continue
			}
			return nil, b.transportError(ctx, r, inst, err)
		}
		switch {
		case rep.GetErrorCode() == wire.CodeUnavailable && rep.GetErrorMessage() == wire.DrainingMessage && ctx.Err() == nil:
			// A draining instance hands its keys over: ask the next one.
			b.pool.MarkDraining(inst.GetId())
			dead = appendOnce(dead, inst.GetId())
			target = ""
			if value != "" {
				if target = b.ownerOf(service, value, dead); target == "" {
					return nil, noInstance(service)
				}
			}
			continue
		case rep.GetErrorCode() != wire.CodeMoved:
			if rep.GetErrorCode() == "" && value != "" && rep.GetSender() != "" {
				b.owners.put(service, value, rep.GetSender())
			}
			return rep, nil
		}

		// moved: the error message is the owner's instance id.
		b.m.moved.Inc()
		owner := rep.GetErrorMessage()
		if owner == "" || owner == inst.GetId() {
			return nil, wire.Errorf(wire.CodeInternal, "%s: instance %s answered moved to %q", r.method, inst.GetId(), wire.Snippet(owner))
		}
		if !containsString(dead, owner) && b.isLive(service, owner) {
			hops++
			if hops > b.opts.MaxHops {
				return nil, wire.Errorf(wire.CodeUnavailable, "%s: moved more than %d times", r.method, b.opts.MaxHops)
			}
			b.owners.put(service, value, owner)
			target = owner
			continue
		}
		// The named owner is not live: its lease has to expire before
		// anyone else may take the key.
		b.owners.forget(service, value, owner)
		first := !containsString(dead, owner)
		dead = appendOnce(dead, owner)
		next := inst.GetId() // it will take the key once the lease expires
		if value != "" {
			if next = b.ownerOf(service, value, dead); next == "" {
				return nil, noInstance(service)
			}
		}
		if !first || next == inst.GetId() {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, b.statefulDeadline(ctx, r, value)
			case <-t.C:
			}
			wait = min(2*wait, leaseWaitMax)
		}
		target = next
	}
}

// statefulDeadline is the error of a stateful request whose deadline
// passed while its key had no reachable owner.
func (b *Broker) statefulDeadline(ctx context.Context, r *request, value string) error {
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return wire.Errorf(wire.CodeUnavailable, "%s cancelled: the connection is closing", r.method)
	}
	if value == "" {
		return wire.Errorf(wire.CodeTimeout, "%s: no owner reachable within %v", r.method, r.timeout)
	}
	return wire.Errorf(wire.CodeTimeout, "%s: no owner of %s %s reachable within %v", r.method, r.route.Key, wire.Snippet(value), r.timeout)
}

// ownerOf returns the instance that should own value: the cached owner if
// it is live and not excluded, else the rendezvous owner among the ready
// instances of service not excluded; "" when there is none.
func (b *Broker) ownerOf(service, value string, exclude []string) string {
	if o := b.owners.get(service, value); o != "" && !containsString(exclude, o) && b.isLive(service, o) {
		return o
	}
	insts := b.pool.Instances(service)
	ids := make([]string, 0, len(insts))
	for _, inst := range insts {
		if inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY && !containsString(exclude, inst.GetId()) {
			ids = append(ids, inst.GetId())
		}
	}
	return placement.Owner(value, ids)
}

// isLive reports whether yellow lists id as a ready instance of service.
func (b *Broker) isLive(service, id string) bool {
	for _, inst := range b.pool.Instances(service) {
		if inst.GetId() == id {
			return inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY
		}
	}
	return false
}

// livePeer returns the link to instance id of service when it is listed
// ready and its link is up, waiting up to connectWait (never past ctx) for a
// link that has never connected; nil otherwise.
func (b *Broker) livePeer(ctx context.Context, service, id string) (*link.Peer, *platformpb.Instance) {
	if !b.isLive(service, id) {
		return nil, nil
	}
	peer, inst, err := b.pool.Peer(id)
	if err != nil {
		return nil, nil
	}
	if peer.Alive() {
		return peer, inst
	}
	if peer.Stats().Connects > 0 {
		return nil, nil // it was up and died
	}
	wait := time.NewTimer(connectWait)
	defer wait.Stop()
	tick := time.NewTicker(pickPoll)
	defer tick.Stop()
	for !peer.Alive() {
		select {
		case <-ctx.Done():
			return nil, nil
		case <-wait.C:
			return nil, nil
		case <-tick.C:
		}
	}
	return peer, inst
}

// waitSynced waits, up to connectWait and never past ctx, for the first
// view from yellow; it reports whether it had to wait and got one.
func (b *Broker) waitSynced(ctx context.Context) bool {
	if b.pool.Synced() {
		return false
	}
	wait := time.NewTimer(connectWait)
	defer wait.Stop()
	tick := time.NewTicker(pickPoll)
	defer tick.Stop()
	for !b.pool.Synced() {
		select {
		case <-ctx.Done():
			return false
		case <-wait.C:
			return false
		case <-tick.C:
		}
	}
	return true
}

func appendOnce(list []string, s string) []string {
	if containsString(list, s) {
		return list
	}
	return append(list, s)
}
