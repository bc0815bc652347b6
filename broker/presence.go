package broker

import (
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/wire"
)

// Presence.
//
// The broker publishes on its own PUB socket (Options.PubBind, the "pub"
// of its yellow record), on wire.TopicPresence, one wire.EventPresence
// event (a platformpb.Presence) each time the user of a connection
// changes:
//
//   - online when the connection logs in (a login reply binding user) or
//     resumes (edge.Hello with a resume token) as a user;
//   - offline when a logged-in connection closes, is logged out (its logout
//     reply, a revocation, its session's expiry), or logs in as another
//     user (offline for the old user, then online for the new).
//
// An event names the user, the connection's session id (the Session.id
// services see, which session directives address), the broker and, on an
// offline, the broker's ResumeGrace (grace_ms): a follower such as the
// matchmaker treats a user with no connection online again within it as
// gone. A connection's events are published under its session.mu, so they
// leave in the order they happened; Event.seq numbers the broker's events.
//
// Publishing is best effort and never blocks a connection: Publish only
// queues, and drops (counted) what its queue cannot take; a subscriber too
// slow to read is dropped by the publisher alone. Over TLS only services
// may subscribe; brokers do not follow each other (pushHub skips them).
// A broker that drains publishes the leaves of the connections that go
// during its grace; at Exit (or a crash) the last ones may be lost, so a
// follower takes a broker that left yellow for the leave of all its
// connections (services.FollowOptions.OnLeave).
type presence struct {
	pub    *link.Publisher // nil: nothing is published
	broker string
	grace  time.Duration
	log    *slog.Logger

	seq       atomic.Uint64
	published atomic.Uint64 // events queued on the PUB socket
	dropped   atomic.Uint64 // events not published (queue full, closed)
}

// publish publishes that the connection with session id session is now
// online as user, or no longer is. The caller holds the connection's
// session.mu (Publish never blocks).
func (p *presence) publish(session, user string, online bool) {
	if p == nil || p.pub == nil || user == "" {
		return
	}
	now := time.Now()
	pr := &platformpb.Presence{
		UserId:   user,
		Session:  session,
		Broker:   p.broker,
		Online:   online,
		AtUnixMs: now.UnixMilli(),
	}
	if !online {
		pr.GraceMs = p.grace.Milliseconds()
	}
	payload, err := proto.Marshal(pr)
	if err == nil {
		err = p.pub.Publish(wire.TopicPresence, &platformpb.Event{
			Type:         wire.EventPresence,
			Payload:      payload,
			Seq:          p.seq.Add(1),
			TimeUnixNano: now.UnixNano(),
		})
	}
	if err != nil {
		p.dropped.Add(1)
		p.log.Debug("broker: presence not published", "conn", session, "online", online, "err", err)
		return
	}
	p.published.Add(1)
}
