package link

import "time"

// Defaults and limits. Every option that is left zero takes the default here.
const (
	// DefaultMaxMessage is the largest Envelope or Event frame accepted or sent
	// (4 MiB). Internal messages carry one Thrift struct each (a room snapshot
	// is the largest, well under 1 MiB); 4 MiB leaves headroom while bounding
	// what one peer can make us allocate per message.
	DefaultMaxMessage = 4 << 20

	// DefaultHeartbeatInterval is how often a Peer pings (1 s): long enough to
	// cost nothing (one small frame per link per second), short enough that a
	// dead instance is noticed within DefaultDeadIntervals seconds.
	DefaultHeartbeatInterval = time.Second

	// DefaultDeadIntervals is how many heartbeat intervals of silence declare a
	// link dead (3): one lost or late PONG (a GC pause, a busy writer) must not
	// fail every in-flight call, three in a row almost always means the remote
	// is gone.
	DefaultDeadIntervals = 3

	// DefaultSendTimeout bounds one socket write (1 s). A healthy peer drains a
	// 4 MiB message in milliseconds on a LAN; a write stuck for a second means
	// the remote stopped reading, and waiting longer only blocks other traffic.
	DefaultSendTimeout = time.Second

	// DefaultCallTimeout is the deadline of a Call whose context has none, and
	// of a request that arrives with deadline_unix_nano = 0 (5 s): route
	// timeouts are meant to be shorter, so this only catches callers that
	// forgot to set one, and keeps them from holding a slot forever.
	DefaultCallTimeout = 5 * time.Second

	// DefaultQueueSize is the bound of every send queue (1024 messages). A
	// writer drains 20k-40k messages/s even on a 2-core host (BenchmarkCall),
	// so a full queue is 25-50 ms of backlog: more means the socket is stuck
	// or the remote is overloaded, and queueing more would only turn a fast
	// failure into a timeout.
	DefaultQueueSize = 1024

	// DefaultBackoffMin is the first redial delay (50 ms): quick enough that a
	// restarted instance is found again within a heartbeat, slow enough not to
	// spin on a refused port.
	DefaultBackoffMin = 50 * time.Millisecond

	// DefaultBackoffMax caps the redial delay (2 s): an instance that comes back
	// is found within 2 s, and N consumers redialling a dead host cost at most
	// N/2 connection attempts per second.
	DefaultBackoffMax = 2 * time.Second

	// DefaultDialTimeout bounds a TCP connect (1 s): a connect on a LAN takes
	// well under a millisecond, so a second means the host drops SYNs.
	DefaultDialTimeout = time.Second

	// DefaultHandshakeTimeout bounds the TLS handshake (with TLS) and the ZMTP
	// greeting and READY exchange (2 s). Together they are three or four
	// round trips of a few KiB and two ECDSA signatures each way, a
	// millisecond on a LAN; the bound matters because zmq4 runs handshakes
	// one at a time in its accept loop, so a silent client holds up every
	// other connection until it passes.
	DefaultHandshakeTimeout = 2 * time.Second

	// DefaultIdleTimeout closes a Server connection that sent nothing for 30 s.
	// Peers ping every second, so 30 s of silence means the peer is gone (TCP
	// keepalive would take minutes). It must exceed every peer's
	// HeartbeatInterval.
	DefaultIdleTimeout = 30 * time.Second

	// DefaultMaxInFlight bounds the requests a Server runs at once (4096); past
	// it requests are answered "overloaded" at once. Each costs a goroutine
	// (~4 KiB) and a context, so 4096 is ~16 MiB, and a service that has 4096
	// requests running is overloaded anyway.
	DefaultMaxInFlight = 4096

	// DefaultReplyWait is how long a reply waits for room in a full writer
	// queue before it is dropped (5 ms): enough for the writer to drain 100 or
	// more messages, short enough that a handler is never held up noticeably.
	DefaultReplyWait = 5 * time.Millisecond

	// DefaultHWM is the per-subscriber queue of a Publisher, in messages (1000,
	// libzmq's default SNDHWM).
	DefaultHWM = 1000

	// DefaultHWMBytes caps the bytes queued for one subscriber (16 MiB), so that
	// a slow subscriber of large events cannot hold DefaultHWM x 4 MiB.
	DefaultHWMBytes = 16 << 20

	// DefaultPubHeartbeat is how often a Publisher publishes its heartbeat
	// (1 s), which lets a Subscriber notice a silent publisher.
	DefaultPubHeartbeat = time.Second

	// maxTopicLen bounds a topic (1 KiB): topics are "user/<id>" and
	// "room/<id>", and a bound keeps subscription frames tiny.
	maxTopicLen = 1024

	// maxIdentityPrefix bounds IdentityPrefix (200 bytes): a ZMTP identity is at
	// most 255 bytes and the random suffix takes 16.
	maxIdentityPrefix = 200

	// frameOverhead is what the guard allows on top of MaxMessage for the other
	// frames of a ZMTP message (a ROUTER identity of at most 255 bytes, a topic
	// of at most maxTopicLen + 1): 4 KiB.
	frameOverhead = 4 << 10

	// pubInboundLimit bounds what a subscriber may send a Publisher in one
	// message (8 KiB): subscriptions carry one topic of at most maxTopicLen.
	pubInboundLimit = 8 << 10

	// maxHandshakeFrame bounds the READY command (16 KiB): it carries the socket
	// type, an identity of at most 255 bytes and a few properties; libzmq sends
	// under 100 bytes.
	maxHandshakeFrame = 16 << 10

	// maxPendingHandshakes bounds the accepted connections of one listener
	// that have not sent their ZMTP signature yet (256): each holds a
	// goroutine and a descriptor for up to the handshake timeout; a burst of
	// more than 256 connects per handshake timeout is a flood, not peers.
	maxPendingHandshakes = 256

	// readBufferSize is the guard's read buffer per connection (16 KiB): it
	// turns zmq4's 2-byte header reads into one syscall per burst of small
	// messages; larger bodies bypass it.
	readBufferSize = 16 << 10

	// maxPooledBuffer is the largest encode buffer kept for reuse (64 KiB):
	// most envelopes are far smaller; pooling rare big ones would pin memory.
	maxPooledBuffer = 64 << 10

	// coalesceLimit is the most the guard buffers to merge a ZMTP message's
	// frames into one write (64 KiB); bigger messages are written in pieces.
	coalesceLimit = 64 << 10
)
