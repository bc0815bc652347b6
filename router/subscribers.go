package router

import (
	"context"
	"log/slog"
	"sync"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
)

// Feed says how to follow one instance's PUB socket: what a Subscribers'
// spec function returns for each record it is given.
type Feed struct {
	// Deliver receives the instance's events, as link.NewSubscriber's
	// deliver: in order, one at a time per instance; it must not block for
	// long.
	Deliver func(topic string, ev *platformpb.Event)
	// Topics are subscribed on this instance's socket only, beside the
	// topics of the whole set (Subscribers.Subscribe): the platform's feeds
	// that only some publishers may send (login's revocations).
	Topics []string
	// Class tells apart the ways one instance may be followed: when the
	// spec gives an instance another class than its subscriber was made
	// with (its Deliver or Topics would differ), the subscriber is
	// replaced.
	Class string
}

// Subscribers follows the PUB sockets of a changing set of instances: one
// link.Subscriber per instance record with a pub endpoint that the spec
// function accepts, created and closed as the records given to Sync change
// (an instance that moved to another endpoint, or whose Feed.Class
// changed, gets a new one). Over TLS each subscriber expects the publisher
// to hold the certificate its record calls for (ExpectedIdentity), so a
// record cannot make a follower believe events from a process certified
// for something else. The broker's push hub and services.Follower follow
// publishers through it. It is safe for concurrent use.
//
// Lock order: mu is taken under the caller's locks (the hub takes it under
// its own to add a topic); a link.Subscriber's lock is taken under it
// (Subscribe and Unsubscribe never block). Subscriber.Close, which waits
// for the delivering goroutine, is never called under mu.
type Subscribers struct {
	opts link.SubOptions
	spec func(*platformpb.Instance) (Feed, bool)
	log  *slog.Logger

	mu     sync.RWMutex        // guards the fields below
	subs   map[string]*feedSub // by instance id
	topics map[string]struct{} // subscribed on every socket
	closed bool

	changes changes // notified at every change
}

// feedSub is the subscription to one instance's PUB socket.
type feedSub struct {
	sub   *link.Subscriber
	inst  *platformpb.Instance // the record it was made for
	class string
}

// NewSubscribers returns an empty set: Sync fills it. spec says whether
// and how to follow an instance (records without a pub endpoint are never
// followed); opts configure every subscriber, except ExpectIdentity (from
// the record) and OnUp (the set's own).
func NewSubscribers(opts link.SubOptions, spec func(*platformpb.Instance) (Feed, bool)) *Subscribers {
	s := &Subscribers{
		spec:   spec,
		log:    opts.Logger,
		subs:   make(map[string]*feedSub),
		topics: make(map[string]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	opts.OnUp = s.notify
	s.opts = opts
	return s
}

// Sync brings the subscribers in line with insts, the records of yellow's
// current view: one per accepted record with a pub endpoint. Subscribers
// of instances that left are closed before it returns. The caller
// serializes its calls, so that an older view never replaces a newer one.
func (s *Subscribers) Sync(insts []*platformpb.Instance) {
	type wanted struct {
		inst *platformpb.Instance
		feed Feed
	}
	want := make(map[string]wanted)
	for _, inst := range insts {
		if inst.GetPub() == "" {
			continue
		}
		if feed, ok := s.spec(inst); ok {
			want[inst.GetId()] = wanted{inst, feed}
		}
	}
	var gone []*link.Subscriber
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	for id, fs := range s.subs {
		if w, ok := want[id]; !ok || w.inst.GetPub() != fs.inst.GetPub() || w.feed.Class != fs.class {
			gone = append(gone, fs.sub)
			delete(s.subs, id)
		}
	}
	added := 0
	for id, w := range want {
		if s.subs[id] != nil {
			continue
		}
		opts := s.opts
		opts.ExpectIdentity = ExpectedIdentity(w.inst) // over TLS: the publisher is who its record says
		sub := link.NewSubscriber(w.inst.GetPub(), opts, w.feed.Deliver)
		for _, t := range w.feed.Topics {
			if err := sub.Subscribe(t); err != nil {
				s.log.Warn("router: subscribe", "topic", t, "pub", w.inst.GetPub(), "err", err)
			}
		}
		for t := range s.topics {
			_ = sub.Subscribe(t) // checked by Subscribe
		}
		s.subs[id] = &feedSub{sub: sub, inst: w.inst, class: w.feed.Class}
		added++
		s.log.Debug("router: following publisher", "service", w.inst.GetService(), "instance", id, "pub", w.inst.GetPub())
	}
	s.mu.Unlock()
	for _, sub := range gone {
		_ = sub.Close()
	}
	if added > 0 || len(gone) > 0 {
		s.notify()
	}
}

// Subscribe subscribes topic on every socket, now and as they come; a
// topic subscribed already is left as it is (no count is kept). It returns
// link.ErrBadTopic for a topic no socket can take.
func (s *Subscribers) Subscribe(topic string) error {
	if err := link.CheckTopic(topic); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[topic]; ok || s.closed {
		return nil
	}
	s.topics[topic] = struct{}{}
	for _, fs := range s.subs {
		if err := fs.sub.Subscribe(topic); err != nil {
			s.log.Warn("router: subscribe", "topic", topic, "pub", fs.inst.GetPub(), "err", err)
		}
	}
	return nil
}

// Synced waits until every socket has written the subscription changes
// made before the call (see link.Subscriber.Synced), or ctx ends.
func (s *Subscribers) Synced(ctx context.Context) {
	s.mu.RLock()
	chans := make([]<-chan struct{}, 0, len(s.subs))
	for _, fs := range s.subs {
		chans = append(chans, fs.sub.Synced())
	}
	s.mu.RUnlock()
	for _, ch := range chans {
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// Unsubscribe drops topic from every socket.
func (s *Subscribers) Unsubscribe(topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[topic]; !ok {
		return
	}
	delete(s.topics, topic)
	for _, fs := range s.subs {
		_ = fs.sub.Unsubscribe(topic)
	}
}

// Len returns the number of instances followed, live or not.
func (s *Subscribers) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.subs)
}

// Topics returns the number of topics subscribed on every socket.
func (s *Subscribers) Topics() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.topics)
}

// Live returns the number of instances followed with a live link (see
// link.Subscriber.Alive) whose record match accepts (nil: every one).
func (s *Subscribers) Live(match func(*platformpb.Instance) bool) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, fs := range s.subs {
		if (match == nil || match(fs.inst)) && fs.sub.Alive() {
			n++
		}
	}
	return n
}

// Changed returns a channel closed at the next change of the set: an
// instance followed or dropped, a link that came up. Take it before
// looking at the set (Live), then wait on it.
func (s *Subscribers) Changed() <-chan struct{} { return s.changes.wait() }

// notify wakes everyone waiting on Changed; it is also every subscriber's
// OnUp, so it must not block.
func (s *Subscribers) notify() { s.changes.notify() }

// Close closes every subscriber and waits for their deliveries to end;
// later calls of Sync and Subscribe do nothing. It is idempotent.
func (s *Subscribers) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	subs := s.subs
	s.subs = make(map[string]*feedSub)
	s.mu.Unlock()
	for _, fs := range subs {
		_ = fs.sub.Close()
	}
	s.notify()
}
