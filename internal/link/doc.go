// Package link is noon's internal messaging layer over ZeroMQ
// (github.com/go-zeromq/zmq4 v0.17.0, pure Go).
//
// It offers four things:
//
//   - Server: a ROUTER that every service instance binds; it decodes
//     platformpb.Envelope requests, runs a Handler per request, answers the
//     platform's own PING with PONG and routes replies back to the caller's
//     socket identity.
//   - Peer: a consumer's link to ONE remote instance (one DEALER socket with a
//     unique identity). Call sends a request with an id and an absolute
//     deadline and waits for the matching reply; heartbeats detect a dead
//     link, which is closed and redialled with a fresh socket.
//   - Publisher: a PUB socket with a bounded queue in front and a per-subscriber
//     high-water mark behind; events are framed so that topic matching is exact.
//   - Subscriber: one SUB socket per remote PUB endpoint, with refcounted
//     subscriptions that survive reconnects.
//
// # Why it looks like this
//
// zmq4 v0.17.0 has defects that shape the design (see DESIGN.md):
// DEALER and PUSH copy to every peer instead of balancing, so a consumer holds
// one DEALER per remote instance and picks the instance itself; REQ/REP do not
// recover after a restart, so they are not used; zmq4 answers no ZMTP PING, so
// heartbeats are Envelope PING/PONG; zmq4's own reconnect is unreliable, so a
// dead link's socket is closed and a new socket (new identity) is dialled.
//
// Every tcp:// socket this package opens also goes through a guarded transport
// (guard.go) registered with zmq4 as "noon+tcp". It parses the ZMTP stream as
// it passes and fixes what cannot be fixed from the socket API:
//
//   - zmq4 allocates whatever frame length the peer announces (a 9-byte header
//     makes it panic with "makeslice: len out of range", killing the process);
//     the guard refuses frames over the configured maximum before zmq4 sees
//     the length.
//   - zmq4 panics on a malformed READY command (slice out of range in
//     Metadata.UnmarshalZMTP); the guard validates the handshake first.
//   - zmq4 runs every handshake inline in its single accept loop with no
//     deadline, so one silent TCP connection stops all new connections, and it
//     never closes a connection whose handshake failed; the guard puts a
//     deadline on the handshake and closes such connections.
//   - zmq4 writes with no deadline while holding the socket's writer lock, so
//     one peer that stops reading blocks every send; the guard puts a deadline
//     on each write and closes the connection when it passes.
//   - zmq4's PUB high-water mark is a single queue shared by all subscribers,
//     drained by one goroutine that writes to each subscriber in turn, and it
//     drops silently; the guard gives each PUB connection its own bounded
//     queue and writer, and counts what it drops.
//
// It also coalesces each ZMTP message into one write (zmq4 issues two or four
// small writes per frame) and buffers reads (zmq4 reads 2-byte headers with
// separate syscalls).
//
// # zmq4 off the hot path
//
// zmq4 v0.17.0 starts a goroutine per message per connection on Send, and
// on receive hands each message from a goroutine per connection through a
// channel to the socket's Recv: two goroutine switches and several
// allocations per message, and a write per message. Once a connection's
// handshake is over, Peers and Servers bypass both (batch.go):
//
//   - Writing: the socket's writer drains everything queued when it wakes,
//     yields once (runtime.Gosched, so that goroutines about to queue a
//     message run first; no timer, and no wait when nothing else is
//     runnable), and writes the lot as one batch straight to the guarded
//     connection, with one syscall (one TLS record per 16 KiB), as NATS
//     and NSQ flush when their queue is empty. A Server's writer finds a
//     reply's connection by the routing identity the guard read in its
//     READY (connTable), and writes each connection's replies in queue
//     order. A sender writes its message itself, under the writer's lock,
//     when nothing is queued and nobody writes, if it is alone in flight
//     or the writer's batches have been small (writeTurn.smallBatches).
//   - Reading: the first Read zmq4 makes after the handshake never
//     returns data: the guard reads every message itself in that
//     goroutine (serveReads, under the same rules as its parser) and hands
//     it to the Peer or Server, which decode it and never block; zmq4
//     sees the connection's end as before.
//
// The guard reads and writes its TCP connection (under TLS, when on)
// with raw system calls (internal/rawio): a non-blocking socket never
// blocks, and Go's ordinary calls woke the runtime's sleeping sysmon
// thread on nearly every message at low load.
//
// zmq4 still dials, accepts, handshakes and tracks connections; a ROUTER
// connection whose READY named no identity (not one of ours) goes through
// zmq4 both ways as before.
//
// # Mutual TLS
//
// With the TLS option (*pki.Credentials) of ServerOptions, PeerOptions,
// PubOptions or SubOptions, the guard runs TLS 1.3 on each connection before
// ZMTP, within the same handshake deadline, and parses the plaintext: every
// protection above holds over TLS. Both sides present a certificate of the
// cluster CA; a failed handshake is counted as rejected, logged once, and
// closes only that connection. A Peer or Subscriber may name the identity
// it expects of the server (ExpectIdentity); a Publisher admits only the
// roles of SubscriberRoles (brokers by default).
//
// A Server tells its Handler who called: CallerFrom(ctx) is the verified
// identity of the request's connection. zmq4's ROUTER knows a connection
// only by the routing identity the DEALER chose in its READY, so the guard,
// which reads the READY first, binds that identity to the connection's
// certificate (callerTable): a READY without one, or with one that a live
// connection of another certificate holds, is refused, and a message whose
// routing identity is bound to nothing is answered "unauthenticated" and
// never reaches the Handler.
//
// # Goroutines and locks
//
// Each connection has one reading goroutine (zmq4's, which the guard takes
// over) and each socket one writing goroutine fed by a bounded queue.
// A lone message is written by the goroutine that sends it instead: a
// Peer's call when no other call is in flight, a Server's reply when no
// other request is running, and in both cases only when nothing is queued
// and the writer's lock is free (TryLock). The writer holds that lock
// from its first message to the end of its write, and a counter of
// queued messages keeps direct writes off while anything is queued, so no
// message overtakes one queued before it. At low load this saves each
// side a goroutine switch (a futex wake of another thread) per message;
// under load everything still goes through the writer's batches. Two
// batches form without the writer: a Peer's direct sender with other
// calls in flight yields once holding the lock, and the direct sends of
// the goroutines that run meanwhile are handed to it (combine); an inline
// handler's reply joins its connection's read burst, written when the
// reader goes back to the socket (burst.go). zmq4's
// Send is never called from a caller or handler. Handlers run on reused
// goroutines (internal/gopool), whose stacks have already grown.
// Locks are leaves but two: a socket's writer lock (a Peer link's or a
// Server's) is held while writing to a connection, which takes that
// connection's write lock, never the other way round, and while a
// combining sender takes its hand-overs' lock; a connection's burst lock
// is held while its batch is written or queued (taking the writer lock
// with TryLock only); a Server's writer
// also holds it over zmq4's Send for a connection the guard does not
// know. No lock is held while calling user code.
package link
