package broker

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/wire"
)

// pushHub fans events from the service instances' PUB sockets out to the
// connections subscribed to their topics. It follows the PUB socket of
// every instance that has one in yellow (a router.Subscribers, created and
// closed as instances come and go: sync), except the brokers' own, and
// keeps, per topic, the sessions that want it. A topic is subscribed on
// every instance's socket while at least one session with pushes on wants
// it: any instance may publish to any topic (a room event from the room's
// owner, a "match found" to user/<id> from whichever match instance made
// it).
//
// Two of the platform's feeds are taken only from some publishers, never
// pushed to a client:
//   - the instances of the auth service (the service of the broker's
//     AuthValidateMethod, login) are also followed on wire.TopicRevoked, for
//     every connection: their events on it go to revoked (see auth.go);
//   - the instances of a service whose routes may bind keys
//     (RouteTable.BindKeys: a stateful route's Key, a route's Binds) are also followed on
//     wire.SessionTopic(<this broker's id>): their events on it go to
//     directives (see directives.go).
//
// Lock order: session.mu, then pushHub.mu, then the Subscribers' lock
// (Subscribe and Unsubscribe never block); Subscribers.Sync and Close,
// which wait for the delivering goroutines, are never called under
// pushHub.mu.
type pushHub struct {
	log  *slog.Logger
	self string // the broker's service name: brokers' pubs carry presence, not pushes
	// auth is the auth service's name; revoked gets the payloads of its
	// instances' events on wire.TopicRevoked.
	auth    string
	revoked func(payload []byte)
	// sessionTopic is wire.SessionTopic(broker id); directives gets the
	// events on it of the instances of the services mayBind accepts.
	sessionTopic string
	mayBind      func(service string) bool
	directives   func(service string, ev *platformpb.Event)

	feeds *router.Subscribers

	mu     sync.RWMutex                     // guards the fields below
	topics map[string]map[*session]struct{} // sessions with pushes on, by topic
	closed bool

	delivered atomic.Uint64 // push frames queued to a connection
	dropped   atomic.Uint64 // events with no connection taking them
}

// hubFeeds are the platform's feeds a pushHub takes from some publishers.
type hubFeeds struct {
	auth         string
	revoked      func(payload []byte)
	sessionTopic string
	mayBind      func(service string) bool
	directives   func(service string, ev *platformpb.Event)
}

func newPushHub(log *slog.Logger, subOpts link.SubOptions, self string, f hubFeeds) *pushHub {
	h := &pushHub{
		log:          log,
		self:         self,
		auth:         f.auth,
		revoked:      f.revoked,
		sessionTopic: f.sessionTopic,
		mayBind:      f.mayBind,
		directives:   f.directives,
		topics:       make(map[string]map[*session]struct{}),
	}
	h.feeds = router.NewSubscribers(subOpts, h.feed)
	return h
}

// feed says how the hub follows inst: every instance but a broker, with
// the platform's feeds its service may send.
func (h *pushHub) feed(inst *platformpb.Instance) (router.Feed, bool) {
	svc := inst.GetService()
	if svc == h.self {
		return router.Feed{}, false
	}
	auth := svc == h.auth
	binds := h.mayBind != nil && h.mayBind(svc)
	f := router.Feed{Class: fmt.Sprintf("auth=%t binds=%t", auth, binds)}
	if auth {
		f.Topics = append(f.Topics, wire.TopicRevoked)
	}
	if binds {
		f.Topics = append(f.Topics, h.sessionTopic)
	}
	f.Deliver = func(topic string, ev *platformpb.Event) {
		switch {
		case auth && topic == wire.TopicRevoked:
			if ev.GetType() == wire.EventRevoked && h.revoked != nil {
				h.revoked(ev.GetPayload())
			}
		case binds && topic == h.sessionTopic:
			h.directives(svc, ev)
		default:
			h.deliver(topic, ev)
		}
	}
	return f, true
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
		if err := h.feeds.Subscribe(topic); err != nil {
			h.log.Warn("broker: subscribe", "topic", wire.Snippet(topic), "err", err)
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
	h.feeds.Unsubscribe(topic)
}

// sync brings the subscribers in line with yellow's records. The caller
// serializes it (Broker.viewMu).
func (h *pushHub) sync(insts []*platformpb.Instance) { h.feeds.Sync(insts) }

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

// revocationFeeds returns the number of the auth service's PUB sockets
// followed with a live link: where revocations are heard from.
func (h *pushHub) revocationFeeds() int {
	return h.feeds.Live(func(inst *platformpb.Instance) bool { return inst.GetService() == h.auth })
}

// sessionFeeds returns the number of PUB sockets of service's instances
// followed on the session topic with a live link: where the service's
// session directives are heard from (0 when its routes may bind nothing).
func (h *pushHub) sessionFeeds(service string) int {
	if h.mayBind == nil || !h.mayBind(service) {
		return 0
	}
	return h.feeds.Live(func(inst *platformpb.Instance) bool { return inst.GetService() == service })
}

// allSessionFeeds returns the number of PUB sockets followed on the
// session topic with a live link, of every service that may bind.
func (h *pushHub) allSessionFeeds() int {
	if h.mayBind == nil {
		return 0
	}
	return h.feeds.Live(func(inst *platformpb.Instance) bool { return h.mayBind(inst.GetService()) })
}

// publishers returns the number of PUB sockets followed.
func (h *pushHub) publishers() int { return h.feeds.Len() }

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
	h.mu.Unlock()
	h.feeds.Close()
}
