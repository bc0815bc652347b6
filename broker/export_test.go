package broker

import (
	"github.com/noonhq/noon/edge"
)

// Hooks for the external tests.

// ForgetOwners empties b's owner cache, so the next stateful request is
// placed by rendezvous hashing alone.
func ForgetOwners(b *Broker) { b.router.ForgetOwners() }

// IsLive reports whether b's view lists id as a ready instance of service.
func IsLive(b *Broker, service, id string) bool { return b.pool.Ready(service, id) }

// SessionState returns the bindings and push topics of the session of the
// connection with id connID, or false.
func SessionState(b *Broker, connID string) (map[string]string, []string, bool) {
	var (
		bindings map[string]string
		topics   []string
		found    bool
	)
	b.edge.Range(func(c *edge.Conn) bool {
		if c.ID() != connID {
			return true
		}
		if s := sessionOf(c); s != nil {
			bindings, topics = s.snapshot()
			found = true
		}
		return false
	})
	return bindings, topics, found
}
