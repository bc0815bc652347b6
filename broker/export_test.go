package broker

import "sync"

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

// HoldRegistration delays b's registration in yellow, as if its routes
// were not synced, until release is called. Call it before Main.
func HoldRegistration(b *Broker) (release func()) {
	ch := make(chan struct{})
	b.holdRegistration = ch
	var once sync.Once
	return func() { once.Do(func() { close(ch) }) }
}

// PoolSynced reports whether b's pool has a first view from yellow.
func PoolSynced(b *Broker) bool { return b.pool.Synced() }
