package broker

// Hooks for the external tests.

// ForgetOwners empties b's owner cache, so the next stateful request is
// placed by rendezvous hashing alone.
func ForgetOwners(b *Broker) { b.router.ForgetOwners() }

// IsLive reports whether b's view lists id as a ready instance of service.
func IsLive(b *Broker, service, id string) bool { return b.pool.Ready(service, id) }

// SessionState returns the bindings and push topics of the session of the
// connection with id connID, or false.
func SessionState(b *Broker, connID string) (map[string]string, []string, bool) {
	s := b.conns.get(connID)
	if s == nil {
		return nil, nil, false
	}
	bindings, topics := s.snapshot()
	return bindings, topics, true
}

// PendingStates is b.PendingStateSaves.
func PendingStates(b *Broker) int { return b.PendingStateSaves() }
