package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// MethodInfo is the control socket's method: its reply payload is the
// broker's Info as JSON. noonctl calls it on the router endpoint the broker
// registered in yellow.
const MethodInfo = "broker.Info"

// Info is what broker.Info answers: the broker's state for operators.
type Info struct {
	// ID is the broker's instance id.
	ID string `json:"id"`
	// ClientAddr is the host:port clients dial.
	ClientAddr string `json:"client_addr"`
	// Control is the control endpoint.
	Control string `json:"control"`
	// Pub is the PUB endpoint presence is published on ("" without one).
	Pub string `json:"pub,omitempty"`
	// Draining is set once Drain was called.
	Draining bool `json:"draining"`
	// Load is the load reported to yellow.
	Load float64 `json:"load"`
	// UptimeSeconds is the time since New.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// Connections is the number of client connections open.
	Connections int64 `json:"connections"`
	// InFlight is the number of client requests being served.
	InFlight int64 `json:"in_flight"`
	// Publishers is the number of service PUB sockets followed.
	Publishers int `json:"publishers"`
	// Topics is the number of push topics subscribed.
	Topics int `json:"topics"`
	// RevocationFeeds is the number of the auth service's (login's) PUB
	// sockets followed with a live link: where session revocations are
	// heard from.
	RevocationFeeds int `json:"revocation_feeds"`
	// SessionFeeds is the number of PUB sockets of services whose routes
	// may bind keys followed with a live link for session directives.
	SessionFeeds int `json:"session_feeds"`
	// LoginSessions is the number of login sessions (tokens) with a
	// connection on the broker.
	LoginSessions int `json:"login_sessions"`
	// Routes is the route table.
	Routes []Route `json:"routes"`
	// Aliases map bare method names onto full ones.
	Aliases map[string]string `json:"aliases"`
	// DefaultTimeout is the timeout of routes that set none, in
	// milliseconds.
	DefaultTimeoutMs int64 `json:"default_timeout_ms"`
}

// Info returns the broker's state, as broker.Info answers it.
func (b *Broker) Info() Info {
	st := b.edge.Stats()
	return Info{
		ID:               b.id,
		ClientAddr:       b.advertise,
		Control:          b.ctlEP,
		Pub:              b.pubEP,
		Draining:         b.draining.Load(),
		Load:             b.Load(),
		UptimeSeconds:    time.Since(b.started).Seconds(),
		Connections:      st.Conns,
		InFlight:         st.InFlight,
		Publishers:       b.hub.publishers(),
		Topics:           b.hub.numTopics(),
		RevocationFeeds:  b.hub.revocationFeeds(),
		SessionFeeds:     b.hub.allSessionFeeds(),
		LoginSessions:    b.auth.loggedIn(),
		Routes:           b.routes.Routes(),
		Aliases:          b.routes.Aliases(),
		DefaultTimeoutMs: b.opts.DefaultTimeout.Milliseconds(),
	}
}

// control serves the control socket (link.Handler): broker.Info, and
// wire.MethodDrain (drain as on SIGTERM). Over TLS only admin identities
// (noonctl) may call it: it describes the broker's clients and routes, and
// drains it.
func (b *Broker) control(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	rep := &platformpb.Envelope{Method: req.GetMethod(), Sender: b.id}
	if caller, ok := link.CallerFrom(ctx); ok && caller.Role != pki.RoleAdmin {
		rep.ErrorCode, rep.ErrorMessage = wire.CodeUnauthenticated, fmt.Sprintf("%s is for admin identities, not %s", wire.Snippet(req.GetMethod()), caller)
		reply(rep)
		return
	}
	switch req.GetMethod() {
	case MethodInfo:
		out, err := json.Marshal(b.Info())
		if err != nil {
			rep.ErrorCode, rep.ErrorMessage = wire.CodeInternal, err.Error()
		} else {
			rep.Payload = out
		}
	case wire.MethodDrain:
		// Reply first, then drain: the reply must leave before the control
		// socket closes.
		if b.draining.Load() || b.exiting.Load() {
			rep.Payload = []byte(wire.DrainingMessage)
			reply(rep)
			return
		}
		b.log.Info("broker: drain requested by an admin")
		b.drainAsk.Store(true)
		rep.Payload = []byte("ok")
		reply(rep)
		b.requestDrain()
		return
	default:
		rep.ErrorCode, rep.ErrorMessage = wire.CodeUnknownMethod, wire.Snippet(req.GetMethod())
	}
	reply(rep)
}

// Routable reports whether the broker knows a ready instance of service,
// so that a request for it would be routed rather than answered
// unavailable (noon dev waits for this before it says it is up).
func (b *Broker) Routable(service string) bool { return b.pool.HasCandidate(service) }

// WaitRoutable waits until the broker has a live link to a ready instance
// of every one of services (a request for any of them would be served), or
// ctx ends. It wakes on the pool's changes; it does not poll.
func (b *Broker) WaitRoutable(ctx context.Context, services ...string) error {
	ok := b.pool.WaitFor(ctx, func() bool {
		for _, svc := range services {
			if _, _, err := b.pool.Pick(svc); err != nil {
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("broker: not every one of %v is routable: %w", services, ctx.Err())
	}
	return nil
}
