package yellow

import (
	"log/slog"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
)

// snapshotMaxMessage bounds a reply a client accepts from a yellow: a
// snapshot of a full default table (DefaultMaxInstances records of
// DefaultMaxRecordBytes) is 16 MiB; twice that leaves room for larger
// configured tables of ordinary (~200-byte) records.
const snapshotMaxMessage = 32 << 20

// serverTransport makes yellow's own sockets.
type serverTransport interface {
	listen(endpoint string, maxMessage int, h link.Handler) (server, error)
	publish(endpoint string) (publisher, error)
}

// linkTransport is the transport over internal/link.
type linkTransport struct {
	log       *slog.Logger
	heartbeat time.Duration    // the platform heartbeat the links use
	tls       *pki.Credentials // nil: plain links
}

// yellowIdentity is who a client expects at the other end of its links.
var yellowIdentity = pki.Identity{Role: pki.RoleYellow}

var (
	_ transport       = linkTransport{}
	_ serverTransport = linkTransport{}
	_ peer            = (*link.Peer)(nil)
	_ subscription    = (*link.Subscriber)(nil)
	_ server          = (*link.Server)(nil)
	_ publisher       = (*link.Publisher)(nil)
)

func (t linkTransport) logger() *slog.Logger {
	if t.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return t.log
}

func (t linkTransport) dial(endpoint string) peer {
	return link.Dial(endpoint, link.PeerOptions{
		IdentityPrefix:    "yellow-client-",
		HeartbeatInterval: t.heartbeat,
		BackoffMin:        min(link.DefaultBackoffMin, t.heartbeat/2),
		BackoffMax:        max(2*t.heartbeat, link.DefaultBackoffMin),
		MaxMessage:        snapshotMaxMessage,
		TLS:               t.tls,
		ExpectIdentity:    yellowIdentity,
		Logger:            t.logger(),
	})
}

func (t linkTransport) subscribe(endpoint, topic string, deliver func(string, *platformpb.Event)) (subscription, error) {
	s := link.NewSubscriber(endpoint, link.SubOptions{
		IdentityPrefix: "yellow-watch-",
		// Yellow's ticks may come slower than our heartbeat: never call a
		// connection dead before the link default. (The watcher's own
		// silence check re-syncs sooner.)
		DeadAfter:      max(silentTicks*t.heartbeat, silentTicks*link.DefaultPubHeartbeat),
		BackoffMin:     min(link.DefaultBackoffMin, t.heartbeat/2),
		BackoffMax:     max(2*t.heartbeat, link.DefaultBackoffMin),
		MaxMessage:     maxDeltaBytes + requestOverhead,
		TLS:            t.tls,
		ExpectIdentity: yellowIdentity,
		Logger:         t.logger(),
	}, deliver)
	if err := s.Subscribe(topic); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (t linkTransport) listen(endpoint string, maxMessage int, h link.Handler) (server, error) {
	return link.Listen(endpoint, link.ServerOptions{
		InstanceID: "yellow",
		MaxMessage: max(maxMessage, link.DefaultMaxMessage),
		TLS:        t.tls,
		Logger:     t.logger(),
	}, h)
}

func (t linkTransport) publish(endpoint string) (publisher, error) {
	return link.NewPublisher(endpoint, link.PubOptions{
		// Deltas are small; a queue as long as the publish queue never
		// drops a burst the registry already let through.
		QueueSize:         publishQueueLen,
		HWM:               publishQueueLen,
		HeartbeatInterval: t.heartbeat,
		// Everyone the CA certified follows yellow.
		TLS:             t.tls,
		SubscriberRoles: pki.Roles,
		Logger:          t.logger(),
	})
}
