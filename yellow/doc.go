// Package yellow is noon's presence and discovery service.
//
// Every service instance (and every broker) registers a record with every
// configured yellow and heartbeats it with its load (and, with WithMeta, its
// meta labels whenever they changed: a heartbeat's meta replaces the
// record's and emits a delta); yellow expires a record after ExpireAfter
// missed beats. Consumers take a snapshot of the records
// and follow numbered changes (deltas) that yellow publishes on its PUB
// socket under the topic "delta"; a TICK delta every TickInterval lets them
// notice lost deltas and yellow restarts (a new epoch) and re-sync. Several
// yellows run side by side with no coordination between them, as NSQ's
// nsqlookupd does: providers register with all of them and consumers merge
// what they see.
//
// The package holds the server ([Yellow]), the provider side
// ([Register] / [Registration]) and the consumer side ([Watch] / [Watcher]).
//
// # Wire
//
// Requests are link Envelopes with method "yellow.Register",
// "yellow.Heartbeat", "yellow.Deregister", "yellow.Query" or
// "yellow.Snapshot" and a protobuf YellowRequest payload; the reply payload
// is a YellowReply that always carries yellow's epoch, its current seq, the
// heartbeat interval and its PUB endpoint. A rejected request also sets the
// Envelope's error_code (bad_request, overloaded, ...) and error_message.
// Deltas travel as Event{type: "yellow.Delta", payload: Delta}.
//
// # Lock order
//
// Registry.mu guards the records and the seq. The registry's emit function
// (Yellow.enqueue) runs with it held, so deltas enter the publish queue in
// seq order; it only does a non-blocking channel send. Yellow.grMu guards the
// start of goroutines against Exit and is never held with Registry.mu.
// Watcher.mu guards the merged view and each follower's view state; a
// follower's other state belongs to its goroutine, which takes Watcher.mu
// only to change its view. No lock is held while calling the link layer.
// Registration has no lock beyond atomics, and metaMu, a leaf guarding
// the last meta error logged.
package yellow
