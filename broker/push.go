package broker

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/wire"
)

// pushHub fans events from the service instances' PUB sockets out to the
// connections subscribed to their topics. It keeps one link.Subscriber per
// instance that has a pub endpoint in yellow, created and closed as
// instances come and go (sync), and, per topic, the sessions that want it.
// A topic is subscribed on every instance's socket while at least one
// session with pushes on wants it: any instance may publish to any topic
// (a room event from the room's owner, a "match found" to user/<id> from
// whichever match instance made it).
//
// The instances of the auth service (the service of the broker's
// AuthValidateMethod, login) are also followed on wire.TopicRevoked, for
// every connection: their events on it go to revoked, never to a client,
// and no other instance's are taken (see auth.go).
//
// Lock order: session.mu, then pushHub.mu; link.Subscriber's own lock is
// taken under pushHub.mu (Subscribe and Unsubscribe never block), and
// Subscriber.Close, which waits for the delivering goroutine, is never
// called under it.
type pushHub struct {
	log     *slog.Logger
	subOpts link.SubOptions
	self    string // the broker's service name, whose instances have no pub
	// auth is the auth service's name; revoked gets the payloads of its
	// instances' events on wire.TopicRevoked.
	auth    string
	revoked func(payload []byte)

	mu     sync.RWMutex                     // guards the fields below
	topics map[string]map[*session]struct{} // sessions with pushes on, by topic
	subs   map[string]*hubSub               // by instance id
	closed bool

	delivered atomic.Uint64 // push frames queued to a connection
	dropped   atomic.Uint64 // events with no connection taking them
}

// hubSub is the subscription to one instance's PUB socket.
type hubSub struct {
	sub      *link.Subscriber
	endpoint string
	auth     bool // an instance of the auth service: followed for revocations
}

func newPushHub(log *slog.Logger, subOpts link.SubOptions, self, auth string, revoked func([]byte)) *pushHub {
	return &pushHub{
		log:     log,
		subOpts: subOpts,
		self:    self,
		auth:    auth,
		revoked: revoked,
		topics:  make(map[string]map[*session]struct{}),
		subs:    make(map[string]*hubSub),
	}
}

// add registers s for topic, subscribing the topic on every socket when it
// is the first session to want it.
func (h *pushHub) add(s *session, topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	m := h.topics[topic]
	if m == nil {
		m = make(map[*session]struct{})
		h.topics[topic] = m
		for _, hs := range h.subs {
			if err := hs.sub.Subscribe(topic); err != nil {
				h.log.Warn("broker: subscribe", "topic", topic, "pub", hs.endpoint, "err", err)
			}
		}
	}
	m[s] = struct{}{}
}

// remove unregisters s from topic, unsubscribing the topic when no session
// wants it any more.
func (h *pushHub) remove(s *session, topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.topics[topic]
	if m == nil {
		return
	}
	delete(m, s)
	if len(m) > 0 {
		return
	}
	delete(h.topics, topic)
	for _, hs := range h.subs {
		_ = hs.sub.Unsubscribe(topic)
	}
}

// sync brings the subscribers in line with yellow's records: one per
// instance with a pub endpoint.
func (h *pushHub) sync(insts []*platformpb.Instance) {
	want := make(map[string]*platformpb.Instance)
	for _, inst := range insts {
		if inst.GetPub() != "" && inst.GetService() != h.self {
			want[inst.GetId()] = inst
		}
	}
	var gone []*link.Subscriber
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	for id, hs := range h.subs {
		if inst, ok := want[id]; !ok || inst.GetPub() != hs.endpoint || (inst.GetService() == h.auth) != hs.auth {
			gone = append(gone, hs.sub)
			delete(h.subs, id)
		}
	}
	for id, inst := range want {
		if h.subs[id] != nil {
			continue
		}
		ep := inst.GetPub()
		auth := inst.GetService() == h.auth
		opts := h.subOpts
		opts.ExpectIdentity = router.ExpectedIdentity(inst) // over TLS: the publisher is who its record says
		deliver := h.deliver
		if auth {
			deliver = h.deliverAuth
		}
		sub := link.NewSubscriber(ep, opts, deliver)
		if auth {
			_ = sub.Subscribe(wire.TopicRevoked)
		}
		for topic := range h.topics {
			_ = sub.Subscribe(topic)
		}
		h.subs[id] = &hubSub{sub: sub, endpoint: ep, auth: auth}
		h.log.Debug("broker: following publisher", "instance", id, "pub", ep)
	}
	h.mu.Unlock()
	for _, sub := range gone {
		_ = sub.Close()
	}
}

// deliver is every Subscriber's callback: it queues the event as a push
// frame "@<type>" on each session subscribed to topic. Conn.Push never
// blocks (a connection whose push queue is full is disconnected as a slow
// consumer), so one slow client cannot hold up the others.
func (h *pushHub) deliver(topic string, ev *platformpb.Event) {
	if ev.GetType() == "" {
		h.dropped.Add(1)
		return
	}
	h.mu.RLock()
	m := h.topics[topic]
	targets := make([]*session, 0, len(m))
	for s := range m {
		targets = append(targets, s)
	}
	h.mu.RUnlock()
	n := 0
	for _, s := range targets {
		if s.c.Push(ev.GetType(), ev.GetPayload()) {
			n++
		}
	}
	if n == 0 {
		h.dropped.Add(1)
	}
	h.delivered.Add(uint64(n))
}

// deliverAuth is the callback of the auth service's subscribers: its events
// on wire.TopicRevoked go to revoked, the others are delivered as any.
func (h *pushHub) deliverAuth(topic string, ev *platformpb.Event) {
	if topic != wire.TopicRevoked {
		h.deliver(topic, ev)
		return
	}
	if ev.GetType() == wire.EventRevoked && h.revoked != nil {
		h.revoked(ev.GetPayload())
	}
}

// revocationFeeds returns the number of the auth service's PUB sockets
// followed with a live link: where revocations are heard from.
func (h *pushHub) revocationFeeds() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, hs := range h.subs {
		if hs.auth && hs.sub.Alive() {
			n++
		}
	}
	return n
}

// publishers returns the number of PUB sockets followed.
func (h *pushHub) publishers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

// numTopics returns the number of topics subscribed.
func (h *pushHub) numTopics() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.topics)
}

// close closes every subscriber; later syncs do nothing.
func (h *pushHub) close() {
	h.mu.Lock()
	h.closed = true
	subs := h.subs
	h.subs = make(map[string]*hubSub)
	h.mu.Unlock()
	for _, hs := range subs {
		_ = hs.sub.Close()
	}
}
