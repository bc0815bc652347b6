package broker

import (
	"maps"
	"slices"
	"sync"

	"github.com/noonhq/noon/edge"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// Limits of one session.
const (
	// maxBindings bounds the keys bound on one session: a client is in a
	// room and perhaps a match, a party, a guild; 32 keys is far beyond
	// that, and every request carries them all.
	maxBindings = 32
	// maxBindingValue bounds a bound value (a room id): ids are a few dozen
	// bytes; 256 leaves room for composite ids while keeping the session
	// every request carries small.
	maxBindingValue = 256
	// maxTopics bounds the push topics of one session: its user, one topic
	// per binding and a few more a service asked for; 64 keeps a buggy
	// service from subscribing a connection to everything.
	maxTopics = 64
	// maxTopicLen is the link layer's bound on a topic (1 KiB).
	maxTopicLen = 1024
	// maxUserID bounds the user id a login reply may bind: yellow's bound
	// on ids, which user ids (UUIDs, numbers) are far below.
	maxUserID = 128
)

// session is the broker's state of one client connection: its bindings
// and push topics. It is the edge.Conn's data.
//
// Lock order: session.mu, then pushHub.mu. Nothing else is called under
// session.mu except the hub.
type session struct {
	c *edge.Conn

	mu       sync.Mutex        // guards the fields below
	bindings map[string]string // stateful keys bound (room = r42)
	user     string            // the user id the session is subscribed as
	topics   map[string]bool   // topics the session wants pushed
	pushOn   bool              // topics are registered with the hub
	closed   bool
}

func newSession(c *edge.Conn) *session {
	return &session{c: c, bindings: make(map[string]string), topics: make(map[string]bool)}
}

// binding returns the value bound to key, or "".
func (s *session) binding(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bindings[key]
}

// proto returns the session as services see it.
func (s *session) proto(brokerID string) *platformpb.Session {
	s.mu.Lock()
	var b map[string]string
	if len(s.bindings) > 0 {
		b = maps.Clone(s.bindings)
	}
	s.mu.Unlock()
	return &platformpb.Session{
		Id:         s.c.ID(),
		UserId:     s.c.UserID(),
		Bindings:   b,
		RemoteAddr: s.c.RemoteAddr().String(),
		Broker:     brokerID,
	}
}

// snapshot returns the bindings and topics, for tests and Info.
func (s *session) snapshot() (map[string]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	topics := make([]string, 0, len(s.topics))
	for t := range s.topics {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	return maps.Clone(s.bindings), topics
}

// bindingTopic is the push topic of a binding: "<key>/<value>", e.g.
// "room/r42".
func bindingTopic(key, value string) string { return key + "/" + value }

// userTopic is the push topic of a user: "user/<id>".
func userTopic(id string) string { return wire.KeyUser + "/" + id }

// addTopic makes the session want topic; caller holds s.mu. It reports
// false when the session has maxTopics already.
func (s *session) addTopic(h *pushHub, topic string) bool {
	if s.topics[topic] {
		return true
	}
	if len(s.topics) >= maxTopics {
		return false
	}
	s.topics[topic] = true
	if s.pushOn {
		h.add(s, topic)
	}
	return true
}

// dropTopic makes the session stop wanting topic; caller holds s.mu.
func (s *session) dropTopic(h *pushHub, topic string) {
	if !s.topics[topic] {
		return
	}
	delete(s.topics, topic)
	if s.pushOn {
		h.remove(s, topic)
	}
}

// setPush turns the session's pushes on or off: its topics join or leave
// the hub.
func (s *session) setPush(h *pushHub, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.SetPush(on)
	if s.closed || s.pushOn == on {
		return
	}
	s.pushOn = on
	for t := range s.topics {
		if on {
			h.add(s, t)
		} else {
			h.remove(s, t)
		}
	}
}

// setUser subscribes the session to its user's topic (dropping a previous
// user's); "" logs it out (no user topic).
func (s *session) setUser(h *pushHub, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.user == id {
		return
	}
	if s.user != "" {
		s.dropTopic(h, userTopic(s.user))
	}
	s.user = id
	if id != "" {
		s.addTopic(h, userTopic(id))
	}
}

// bind sets key = value and follows the binding's topic; it reports false
// when the session has too many bindings.
func (s *session) bind(h *pushHub, key, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	old, had := s.bindings[key]
	if had && old == value {
		return true
	}
	if !had && len(s.bindings) >= maxBindings {
		return false
	}
	if had {
		s.dropTopic(h, bindingTopic(key, old))
	}
	s.bindings[key] = value
	s.addTopic(h, bindingTopic(key, value))
	return true
}

// unbind clears key and its topic.
func (s *session) unbind(h *pushHub, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.bindings[key]
	if !had {
		return
	}
	delete(s.bindings, key)
	s.dropTopic(h, bindingTopic(key, old))
}

// subscribe adds topic; false when the session has too many.
func (s *session) subscribe(h *pushHub, topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return true
	}
	return s.addTopic(h, topic)
}

// unsubscribe drops topic.
func (s *session) unsubscribe(h *pushHub, topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropTopic(h, topic)
}

// close leaves the hub for good.
func (s *session) close(h *pushHub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.pushOn {
		for t := range s.topics {
			h.remove(s, t)
		}
	}
	s.pushOn = false
}
