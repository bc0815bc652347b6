package broker

import (
	"time"

	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/wire"
)

// latencyBuckets are the request latency buckets, in seconds: from 100 µs
// (an echo over loopback) to 10 s (past every default timeout).
var latencyBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// brokerMetrics are the broker's metrics. Per-route children are cached so
// the request path does no label lookups for successful requests.
type brokerMetrics struct {
	requests        metrics.CounterVec   // route, result
	latency         metrics.HistogramVec // route
	unknown         metrics.Counter
	moved           metrics.Counter
	ignoredBindings metrics.Counter
	ignoredSubs     metrics.Counter
	logouts         metrics.CounterVec // reason
	directives      metrics.CounterVec // result
	// Session state (state.go).
	stateSaves    metrics.CounterVec // result
	stateRestores metrics.CounterVec // result

	routes map[string]*routeMetrics // by prefix; filled in New, read-only after
}

// routeMetrics are one route's metrics.
type routeMetrics struct {
	m       *brokerMetrics
	prefix  string
	ok      metrics.Counter
	latency metrics.Histogram
}

// result returns the request counter of the route for result ("ok" or an
// error code).
func (rm *routeMetrics) result(code string) metrics.Counter {
	if code == "ok" {
		return rm.ok
	}
	return rm.m.requests.With(rm.prefix, code)
}

func newBrokerMetrics(sink metrics.Sink, b *Broker) *brokerMetrics {
	m := &brokerMetrics{
		requests: sink.Counter("broker_requests_total",
			"Client requests, by route prefix and result (ok or the error code).", "route", "result"),
		latency: sink.Histogram("broker_request_duration_seconds",
			"Time from reading a client request to its reply, by route prefix.", latencyBuckets, "route"),
		routes: make(map[string]*routeMetrics),
	}
	m.unknown = m.requests.With("unknown", "unknown_method")
	for _, r := range b.routes.routes {
		m.routes[r.Prefix] = &routeMetrics{
			m:       m,
			prefix:  r.Prefix,
			ok:      m.requests.With(r.Prefix, "ok"),
			latency: m.latency.With(r.Prefix),
		}
	}
	m.moved = sink.Counter("broker_moved_total",
		"Stateful requests re-routed after a moved reply.").With()
	m.ignoredBindings = sink.Counter("broker_ignored_bindings_total",
		"Session bindings in replies that the route may not make, ignored.").With()
	m.ignoredSubs = sink.Counter("broker_ignored_subscriptions_total",
		"Push subscriptions in replies ignored (bad topic, too many topics).").With()

	m.logouts = sink.Counter("broker_logouts_total",
		"Connections the broker logged out on its own, by reason: logout or logout_all (their session was revoked), expired.", "reason")

	m.directives = sink.Counter("broker_session_directives_total",
		"Session directives from services, by result: applied, no_connection, user_mismatch, refused; malformed counts events that did not decode or were over the limits.", "result")
	for _, r := range []string{directiveApplied, directiveNoConnection, directiveUserMismatch, directiveRefused, directiveMalformed} {
		m.directives.With(r) // listed at 0 from the start
	}
	// Session state (state.go).
	m.stateSaves = sink.Counter("broker_session_state_saves_total",
		"Saves of sessions' bindings and topics with their login session, by result: saved, stale (held by another broker since a resume, or a later save stored), gone (the login session ended), error (the call failed), dropped (the save queue was full).", "result")
	m.stateRestores = sink.Counter("broker_session_state_restores_total",
		"Saved session states met on a resume, by result: restored, malformed (did not decode or over the bounds), user_mismatch.", "result")
	for _, r := range stateSaveResults {
		m.stateSaves.With(r)
	}
	for _, r := range []string{stateRestored, stateMalformed, stateUserMismatch} {
		m.stateRestores.With(r)
	}
	sink.GaugeFunc("broker_session_state_pending", "Sessions waiting for, or in, a save of their state.", func() float64 {
		if b.states == nil {
			return 0
		}
		return float64(b.states.numPending())
	})

	sink.CounterFunc("broker_presence_events_total", "Presence events (a user's connection online or offline) queued on the broker's PUB socket.",
		func() float64 { return float64(b.presence.published.Load()) })
	sink.CounterFunc("broker_presence_dropped_total", "Presence events not published: the PUB socket's queue was full or closed.",
		func() float64 { return float64(b.presence.dropped.Load()) })
	sink.GaugeFunc("broker_session_feeds", "Service PUB sockets followed with a live link for session directives.",
		func() float64 { return float64(b.hub.allSessionFeeds()) })

	sink.GaugeFunc("broker_connections", "Client connections open.",
		func() float64 { return float64(b.edge.NumConns()) })
	sink.GaugeFunc("broker_in_flight", "Client requests being served.",
		func() float64 { return float64(b.edge.Stats().InFlight) })
	sink.GaugeFunc("broker_load", "Load reported to yellow and the BrokerList, in [0,1].", b.Load)
	sink.GaugeFunc("broker_draining", "1 while the broker drains.", func() float64 {
		if b.draining.Load() {
			return 1
		}
		return 0
	})
	sink.GaugeFunc("broker_push_publishers", "Service PUB sockets followed for pushes.",
		func() float64 { return float64(b.hub.publishers()) })
	sink.GaugeFunc("broker_push_topics", "Push topics subscribed for this broker's connections.",
		func() float64 { return float64(b.hub.numTopics()) })
	sink.GaugeFunc("broker_revocation_feeds", "Login instances' PUB sockets followed with a live link for session revocations.",
		func() float64 { return float64(b.hub.revocationFeeds()) })
	sink.GaugeFunc("broker_login_sessions", "Login sessions with a connection on this broker.",
		func() float64 { return float64(b.auth.loggedIn()) })
	sink.GaugeFunc("broker_cached_owners", "Stateful keys whose owner is cached.",
		func() float64 { return float64(b.router.CachedOwners()) })
	sink.CounterFunc("broker_pushes_total", "Push frames queued to client connections.",
		func() float64 { return float64(b.hub.delivered.Load()) })
	sink.CounterFunc("broker_pushes_unrouted_total", "Events received that no connection took.",
		func() float64 { return float64(b.hub.dropped.Load()) })

	edgeCounter := func(name, help string, f func() uint64) {
		sink.CounterFunc(name, help, func() float64 { return float64(f()) })
	}
	edgeCounter("broker_connections_accepted_total", "Client connections accepted (including rejected ones).",
		func() uint64 { return b.edge.Stats().Accepted })
	edgeCounter("broker_connections_rejected_total", "Client connections refused: max_connections or a per-address limit reached, max_buffered_bytes exceeded, or draining.",
		func() uint64 { return b.edge.Stats().Rejected })
	edgeCounter("broker_slow_consumers_total", "Clients disconnected for not reading (push queue full or write timeout).",
		func() uint64 { return b.edge.Stats().SlowConsumers })
	edgeCounter("broker_bad_frames_total", "Connections closed for a malformed frame.",
		func() uint64 { return b.edge.Stats().BadFrames })
	edgeCounter("broker_rate_limited_total", "Requests answered rate_limited.",
		func() uint64 { return b.edge.Stats().RateLimited })
	edgeCounter("broker_auth_timeouts_total", "Connections closed for not logging in in time.",
		func() uint64 { return b.edge.Stats().AuthTimeouts })
	edgeCounter("broker_idle_timeouts_total", "Connections closed for sending no complete frame in time.",
		func() uint64 { return b.edge.Stats().IdleTimeouts })
	edgeCounter("broker_bad_proxy_headers_total", "Connections from trusted proxies closed for a missing, malformed or late PROXY header.",
		func() uint64 { return b.edge.Stats().BadProxyHeaders })
	sink.GaugeFunc("broker_buffered_bytes", "Bytes the edge holds for client connections: requests and replies not yet written, pushes queued (admission stops at edge.max_buffered_bytes).",
		func() float64 { return float64(b.edge.Stats().BufferedBytes) })
	edgeCounter("broker_connections_refused_per_addr_total", "Client connections refused by a per-address limit (max_conns_per_addr, conn_rate_per_addr); counted in broker_connections_rejected_total too.",
		func() uint64 { return b.edge.Stats().AddrRejected })
	edgeCounter("broker_byte_waits_total", "Times a connection was not read from until bytes were freed (max_in_flight_bytes, per address, max_buffered_bytes).",
		func() uint64 { return b.edge.Stats().ByteWaits })
	edgeCounter("broker_frame_timeouts_total", "Connections closed for a frame not complete within frame_timeout of its first byte.",
		func() uint64 { return b.edge.Stats().FrameTimeouts })
	edgeCounter("broker_bad_methods_total", "Requests answered bad_request for an invalid method name.",
		func() uint64 { return b.edge.Stats().BadMethods })
	edgeCounter("broker_panics_total", "Panics recovered while serving connections; a bug.",
		func() uint64 { return b.edge.Stats().Panics })
	return m
}

// route returns the metrics of the route with prefix.
func (m *brokerMetrics) route(prefix string) *routeMetrics { return m.routes[prefix] }

// observe counts a request of the route that started at start and ended
// with err (nil: "ok"), and its latency.
func (rm *routeMetrics) observe(start time.Time, err error) {
	code := "ok"
	if err != nil {
		code = wire.CodeOf(err)
	}
	rm.result(code).Inc()
	rm.latency.Observe(time.Since(start).Seconds())
}
