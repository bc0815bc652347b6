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

// session is the broker's state of one client connection: its bindings,
// push topics and login. It is the edge.Conn's data.
//
// Lock order: session.mu, then pushHub.mu, authIndex.mu or stateSaver.mu.
// Nothing else is called under session.mu except the hub, the index, the
// state saver's mark (which never blocks), the presence
// publisher's queue (which never blocks) and the edge.Conn's own state
// (Authenticate, Deauthenticate, SetPush, Push: none calls back).
type session struct {
	c *edge.Conn

	mu       sync.Mutex        // guards the fields below
	bindings map[string]string // stateful keys bound (room = r42)
	user     string            // the user id the session is subscribed as
	topics   map[string]bool   // topics the session wants pushed
	pushOn   bool              // topics are registered with the hub
	closed   bool
	// login is the login session the connection authenticated with ("" if
	// unknown): wire.SessionID of its token, the key of authIndex.
	login string
	// expiry logs the connection out when its login session expires.
	expiry *expiryTimer
	// gen counts the changes of the user (login as another, logout): a
	// reply changes the bindings and topics only if the user is still the
	// one its request was sent for.
	gen uint64
	// saver saves the bindings and topics when they change (state.go);
	// nil when saving is off. Set before the session is shared.
	saver *stateSaver
	// cached is what proto last built, for cachedUser: every request
	// carries the session, which changes rarely (nil after a change of
	// the bindings). Read-only once built: the link encodes it, services
	// decode their own copy.
	cached     *platformpb.Session
	cachedUser string
}

func newSession(c *edge.Conn) *session {
	return &session{c: c, bindings: make(map[string]string), topics: make(map[string]bool)}
}

// proto returns the session as services see it, and its gen. The user
// and the bindings are read together (the user changes under s.mu), so a
// request never carries one user's id with another's bindings.
func (s *session) proto(brokerID string) (*platformpb.Session, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, gen := s.c.UserID(), s.gen
	if p := s.cached; p != nil && s.cachedUser == user && p.GetBroker() == brokerID {
		return p, gen
	}
	var b map[string]string
	if len(s.bindings) > 0 {
		b = maps.Clone(s.bindings)
	}
	p := &platformpb.Session{
		Id:         s.c.ID(),
		UserId:     user,
		Bindings:   b,
		RemoteAddr: s.c.RemoteAddr().String(),
		Broker:     brokerID,
	}
	s.cached, s.cachedUser = p, user
	return p, gen
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

// reset drops every binding and topic and counts a change of user; caller
// holds s.mu.
func (s *session) reset(h *pushHub) {
	for t := range s.topics {
		s.dropTopic(h, t)
	}
	clear(s.bindings)
	s.cached = nil
	s.gen++
}

// bind sets key = value and follows the binding's topic, unless the user
// changed since gen; it reports false when the session has too many
// bindings.
func (s *session) bind(h *pushHub, gen uint64, key, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen != gen {
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
	s.cached = nil
	s.addTopic(h, bindingTopic(key, value))
	s.stateChanged()
	return true
}

// unbind clears key and its topic, unless the user changed since gen.
func (s *session) unbind(h *pushHub, gen uint64, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		return
	}
	old, had := s.bindings[key]
	if !had {
		return
	}
	delete(s.bindings, key)
	s.cached = nil
	s.dropTopic(h, bindingTopic(key, old))
	s.stateChanged()
}

// current returns the session's user ("" when logged out), its gen, and
// whether the connection closed.
func (s *session) current() (user string, gen uint64, closed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.user, s.gen, s.closed
}

// pushIf queues the push "@<typ>" (none when typ is "") if the user is
// still the one of gen and the connection open, so a push for one user
// never reaches the next user of the connection; it reports false, queuing
// nothing, when not. A push queued (the client takes pushes) counts in
// h's delivered pushes.
func (s *session) pushIf(h *pushHub, gen uint64, typ string, payload []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen != gen {
		return false
	}
	if typ != "" && s.c.Push(typ, payload) {
		h.delivered.Add(1)
	}
	return true
}

// subscribe adds topic, unless the user changed since gen; false when the
// session has too many.
func (s *session) subscribe(h *pushHub, gen uint64, topic string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.gen != gen {
		return true
	}
	if s.topics[topic] {
		return true
	}
	if !s.addTopic(h, topic) {
		return false
	}
	s.stateChanged()
	return true
}

// unsubscribe drops topic, unless the user changed since gen.
func (s *session) unsubscribe(h *pushHub, gen uint64, topic string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen && s.topics[topic] {
		s.dropTopic(h, topic)
		s.stateChanged()
	}
}

// close leaves the hub and the login index for good, and publishes the
// leave of a logged-in connection.
func (s *session) close(h *pushHub, x *authIndex, p *presence) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	s.dropLogin(x)
	p.publish(s.c.ID(), s.user, false)
	if s.pushOn {
		for t := range s.topics {
			h.remove(s, t)
		}
	}
	s.pushOn = false
}
