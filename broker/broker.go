// Package broker is noon's edge broker (`noon broker`, the HappyBroker of
// the HighNoon design): it holds client connections (through package edge)
// and routes every request, by its method, to a service instance found in
// yellow.
//
//   - A stateless request goes to the least-loaded live instance of its
//     service (the broker's own in-flight count per link first, then the
//     load the instance reported).
//   - A stateful request goes to the instance that owns the value of the
//     session's binding (room = r42): a cached owner learned from earlier
//     replies, else rendezvous placement over the live instances. An
//     instance that does not own the key answers "moved" with the owner's
//     id and the broker follows it.
//   - Replies may bind keys on the session and subscribe it to push topics;
//     events published on the instances' PUB sockets are delivered to the
//     connections that opted in as "@<type>" push frames.
//   - A connection's login ends with its session token: when the login
//     service revokes the token (logout, logout-all) and when it expires
//     (auth.go).
//   - Services may change connections with no request from them: a
//     service whose routes may bind keys publishes session directives
//     (bindings, then a push) for named connections (directives.go).
//   - The broker publishes its connections' presence (a user online, or
//     gone) on a PUB socket of its own, for services such as the
//     matchmaker (presence.go).
//
// The route table (Route, RouteTable.Resolve) is the one place a method is
// routed. The broker registers in yellow as service "broker" with the
// address clients dial and its load, which is what the BrokerList
// (package edge/brokerlist) serves.
//
// # Goroutines and locks
//
// A request for a stateless route starts from the connection's reader
// (StartRequest, edge.AsyncHandler) and completes from the link's reader;
// the edge runs every other request in a goroutine of its own and calls
// Handler.Request. The broker's own goroutines are the view follower (yellow -> push
// subscribers, link warm-up) and the sync waiter, counted in Broker.wg.
// Lock order: session.mu, then pushHub.mu (the router.Subscribers' lock,
// then a link.Subscriber's, under it) or authIndex.mu; Broker.viewMu, then
// the Subscribers' lock and the pool's and router's locks; the router's
// owner cache, connIndex.mu and Broker.mu are leaves. The presence
// publisher's queue is written under session.mu (it never blocks). No
// lock is held while calling a link.Peer.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/edge"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// ServiceName is the broker's service name in yellow.
const ServiceName = "broker"

// ErrClosed is returned by Main after Exit (or when called twice).
var ErrClosed = errors.New("broker: closed")

// exitDeregisterTimeout bounds the best-effort deregistration in Exit: a
// yellow answers in a millisecond; one that does not answer within half a
// second expires the record on its own.
const exitDeregisterTimeout = 500 * time.Millisecond

var _ daemon.Daemon = (*Broker)(nil)

// Broker is one edge broker. It implements edge.Handler.
type Broker struct {
	opts      Options
	id        string
	log       *slog.Logger
	routes    *RouteTable
	edge      *edge.Server
	ctl       *link.Server
	ctlEP     string          // advertised control endpoint (the yellow record's router)
	pub       *link.Publisher // nil without Options.PubBind
	pubEP     string          // advertised PUB endpoint (the yellow record's pub)
	advertise string          // host:port clients dial
	record    *platformpb.Instance
	pool      *router.Pool
	router    *router.Router
	hub       *pushHub
	auth      *authIndex
	conns     *connIndex
	presence  *presence
	states    *stateSaver // nil when session state saving is off (state.go)
	m         *brokerMetrics
	started   time.Time

	ctx    context.Context // ends at Exit
	cancel context.CancelFunc

	mu      sync.Mutex // guards reg, running, and wg.Add against Exit
	reg     *yellow.Registration
	running bool

	viewMu sync.Mutex      // serializes syncView
	warmed map[string]bool // services whose links were warmed; guarded by viewMu

	// holdRegistration, when set (tests, before Main), delays the
	// registration until it is closed, as if the routes were not synced.
	holdRegistration chan struct{}
	drainReq         atomic.Pointer[func()] // SetDrainRequest
	drainAsk         atomic.Bool            // a drain request was taken: not ready

	draining atomic.Bool
	exiting  atomic.Bool
	quit     chan struct{}
	fatal    chan error
	wg       sync.WaitGroup
}

var _ edge.Handler = (*Broker)(nil)

// New validates opts, builds the route table, binds the client listeners
// and the control socket (port 0 picks free ports; see TCPAddr, WSAddr,
// ControlEndpoint) and starts following yellow. Clients are served once
// Main runs. A nil log discards logs; a nil sink exports no metrics.
func New(opts Options, log *slog.Logger, sink metrics.Sink) (*Broker, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.checkTLS(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if sink == nil {
		sink = metrics.Nop()
	}
	routes, err := opts.RouteTable()
	if err != nil {
		return nil, err // Validate already checked it
	}
	id := opts.ID
	if id == "" {
		id = newID()
	}
	log = log.With("broker", id)
	b := &Broker{
		opts:    opts,
		id:      id,
		log:     log,
		routes:  routes,
		warmed:  make(map[string]bool),
		started: time.Now(),
		quit:    make(chan struct{}),
		fatal:   make(chan error, 1),
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())

	b.edge, err = edge.New(opts.Edge, b, log.With("component", "edge"))
	if err != nil {
		b.cancel()
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.advertise = opts.Advertise
	if b.advertise == "" {
		if a := b.edge.TCPAddr(); a != nil {
			b.advertise = wire.DialAddr(a.String())
		} else {
			b.advertise = wire.DialAddr(b.edge.WSAddr().String())
		}
	}
	advHost, _, _ := net.SplitHostPort(b.advertise)

	b.ctl, err = link.Listen(opts.Control, link.ServerOptions{
		InstanceID: id,
		Load:       b.Load,
		TLS:        opts.TLS,
		Logger:     log.With("component", "control"),
	}, b.control)
	if err != nil {
		b.cancel()
		b.edge.Exit()
		return nil, fmt.Errorf("broker: control %s: %w", opts.Control, err)
	}
	b.ctlEP = advertiseEndpoint(b.ctl.Endpoint(), advHost)
	if opts.PubBind != "" {
		b.pub, err = link.NewPublisher(opts.PubBind, link.PubOptions{
			HeartbeatInterval: opts.Heartbeat,
			TLS:               opts.TLS,
			// Services follow the brokers' presence (the matchmaker);
			// brokers do not follow each other.
			SubscriberRoles: []pki.Role{pki.RoleService},
			Logger:          log.With("component", "pub"),
		})
		if err != nil {
			b.cancel()
			b.ctl.Close()
			b.edge.Exit()
			return nil, fmt.Errorf("broker: pub_bind %s: %w", opts.PubBind, err)
		}
		b.pubEP = advertiseEndpoint(b.pub.Endpoint(), advHost)
	}
	b.presence = &presence{pub: b.pub, broker: id, grace: opts.ResumeGrace, log: log.With("component", "presence")}
	b.conns = newConnIndex()

	b.record = &platformpb.Instance{
		Service:    ServiceName,
		Id:         id,
		Router:     b.ctlEP,
		Pub:        b.pubEP,
		Kind:       platformpb.ServiceKind_SERVICE_KIND_BROKER,
		Capacity:   uint32(min(b.edge.Options().MaxConnections, yellow.MaxCapacity)),
		State:      platformpb.InstanceState_INSTANCE_STATE_READY,
		ClientAddr: b.advertise,
	}
	if a := b.edge.WSAddr(); a != nil {
		_, port, _ := net.SplitHostPort(a.String())
		b.record.Meta = map[string]string{"ws": "ws://" + net.JoinHostPort(advHost, port) + opts.Edge.WSPath}
	}
	if adm := wire.AdminLabel(opts.AdminAddr, advHost); adm != "" {
		if b.record.Meta == nil {
			b.record.Meta = map[string]string{}
		}
		b.record.Meta[wire.MetaAdmin] = adm
	}
	if err := yellow.ValidateInstance(b.record, 0); err != nil {
		b.cancel()
		b.closePub()
		b.ctl.Close()
		b.edge.Exit()
		return nil, fmt.Errorf("broker: yellow record: %w (set advertise)", err)
	}

	w := yellow.Watch(yellow.ClientOptions{
		Yellows:   opts.Yellows,
		Heartbeat: opts.Heartbeat,
		TLS:       opts.TLS,
		Logger:    log.With("component", "watcher"),
	})
	b.pool = router.NewPoolWatcher(w, link.PeerOptions{
		IdentityPrefix:    id + "-",
		InstanceID:        id,
		HeartbeatInterval: opts.Heartbeat,
		TLS:               opts.TLS,
		Logger:            log.With("component", "pool"),
	}, log.With("component", "pool"))
	b.router = router.New(b.pool, router.Options{
		MaxHops: opts.MaxHops,
		OnMoved: func() { b.m.moved.Inc() },
		Logger:  log.With("component", "router"),
	})
	_, authRoute, _ := routes.Resolve(opts.AuthValidateMethod) // Validate checked it
	b.auth = newAuthIndex()
	b.hub = newPushHub(log.With("component", "push"), link.SubOptions{
		IdentityPrefix: id + "-sub-",
		DeadAfter:      link.DefaultDeadIntervals * opts.Heartbeat,
		TLS:            opts.TLS,
		Logger:         log.With("component", "push"),
	}, ServiceName, hubFeeds{
		auth:         authRoute.Service,
		revoked:      b.revoked,
		sessionTopic: wire.SessionTopic(id),
		mayBind:      routes.hasBinds,
		directives:   b.sessionEvent,
	})
	b.m = newBrokerMetrics(sink, b)
	if b.states = newStateSaver(b); b.states != nil {
		b.states.start()
	}

	b.wg.Add(1)
	go b.awaitSync()
	log.Info("broker: listening", "tcp", addrString(b.edge.TCPAddr()), "ws", addrString(b.edge.WSAddr()),
		"advertise", b.advertise, "control", b.ctlEP, "routes", len(routes.routes))
	return b, nil
}

// newID returns "broker-<12 hex digits>", unique per process start.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return ServiceName + "-" + hex.EncodeToString(b[:])
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// awaitSync follows yellow's first view as soon as there is one.
func (b *Broker) awaitSync() {
	defer b.wg.Done()
	if b.pool.WaitSynced(b.ctx) == nil {
		b.syncView()
	}
}

// ID returns the broker's instance id.
func (b *Broker) ID() string { return b.id }

// TCPAddr returns the bound address of the TCP listener, or nil.
func (b *Broker) TCPAddr() net.Addr { return b.edge.TCPAddr() }

// WSAddr returns the bound address of the WebSocket listener, or nil;
// clients connect to ws://<WSAddr><Options.Edge.WSPath>.
func (b *Broker) WSAddr() net.Addr { return b.edge.WSAddr() }

// Advertise returns the host:port the broker publishes for clients.
func (b *Broker) Advertise() string { return b.advertise }

// ControlEndpoint returns the control socket's endpoint, as registered in
// yellow.
func (b *Broker) ControlEndpoint() string { return b.ctlEP }

// Routes returns the route table.
func (b *Broker) Routes() *RouteTable { return b.routes }

// Options returns the options the broker runs with.
func (b *Broker) Options() Options { return b.opts }

// Edge returns the client edge, for its Stats.
func (b *Broker) Edge() *edge.Server { return b.edge }

// Main serves clients until Exit (or Drain, which ends with Exit), and
// registers the broker in yellow once it can take them: once its view of
// yellow (its routes' instances) is synced, so the BrokerList lists only a
// broker that routes. It returns nil then, the first fatal error of a
// listener (after calling Exit), or ErrClosed if Main was already called.
// Exit before Main makes Main return nil at once.
func (b *Broker) Main() error {
	b.mu.Lock()
	if b.running {
		b.mu.Unlock()
		return ErrClosed
	}
	b.running = true
	if b.exiting.Load() {
		// Exit came first: stopped on request, like after Main started.
		b.mu.Unlock()
		return nil
	}
	b.wg.Add(3)
	b.mu.Unlock()
	go b.follow()
	go func() {
		defer b.wg.Done()
		if err := b.edge.Main(); err != nil {
			b.fatal <- err
		}
	}()
	go b.registerWhenSynced()
	select {
	case <-b.quit:
		return nil
	case err := <-b.fatal:
		b.log.Error("broker: edge failed", "err", err)
		b.Exit()
		return err
	}
}

// registerWhenSynced registers the broker in yellow once the pool has a
// first view (and the test hook, if any, lets it), unless it drains or
// exits first: a broker that drains before it was listed is never listed.
func (b *Broker) registerWhenSynced() {
	defer b.wg.Done()
	if b.pool.WaitSynced(b.ctx) != nil {
		return
	}
	if hold := b.holdRegistration; hold != nil {
		select {
		case <-hold:
		case <-b.quit:
			return
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Drain sets draining before it takes mu to mark the registration:
	// either it finds reg, or this sees draining.
	if b.exiting.Load() || b.draining.Load() {
		return
	}
	b.reg = yellow.Register(yellow.ClientOptions{
		Yellows:   b.opts.Yellows,
		Heartbeat: b.opts.Heartbeat,
		TLS:       b.opts.TLS,
		Logger:    b.log.With("component", "registration"),
	}, b.record, b.Load)
	b.log.Info("broker: routes synced, registering in yellow")
}

// follow keeps the push subscribers and the pool's links in line with
// yellow: at every change of the view, and every heartbeat as a backstop.
func (b *Broker) follow() {
	defer b.wg.Done()
	changes, cancel := b.pool.Watcher().Subscribe()
	defer cancel()
	t := time.NewTicker(b.opts.Heartbeat)
	defer t.Stop()
	for {
		b.syncView()
		select {
		case <-b.quit:
			return
		case <-changes:
		case <-t.C:
		}
	}
}

// syncView follows publishers and warms the links of routed services: a
// Pick dials every ready instance of a service, and from then on the pool
// dials new ones as they appear, so the first request finds a link up.
func (b *Broker) syncView() {
	b.viewMu.Lock()
	defer b.viewMu.Unlock()
	b.hub.sync(b.pool.Watcher().All())
	for _, svc := range b.routes.Services() {
		if !b.warmed[svc] && len(b.pool.Instances(svc)) > 0 {
			_, _, _ = b.pool.Pick(svc)
			b.warmed[svc] = true
		}
	}
}

// Exit closes the broker at once: it deregisters from yellow (best effort,
// briefly), closes the listeners and every connection (requests in flight
// are cancelled), and the links, and waits for its goroutines. Drain is the
// graceful way. Exit is idempotent.
func (b *Broker) Exit() {
	if !b.exiting.CompareAndSwap(false, true) {
		return
	}
	b.mu.Lock()
	reg := b.reg
	b.mu.Unlock()
	if reg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), exitDeregisterTimeout)
		if err := reg.Close(ctx); err != nil {
			b.log.Debug("broker: deregistering", "err", err)
		}
		cancel()
	}
	b.edge.Exit()
	b.cancel()
	close(b.quit)
	b.wg.Wait()
	b.hub.close()
	b.closePub()
	b.ctl.Close()
	w := b.pool.Watcher()
	b.pool.Close()
	w.Close()
	b.log.Info("broker: stopped")
}

// closePub closes the PUB socket, if there is one.
func (b *Broker) closePub() {
	if b.pub != nil {
		_ = b.pub.Close()
	}
}

// PubEndpoint returns the endpoint of the broker's PUB socket (presence),
// as registered in yellow, or "" without one.
func (b *Broker) PubEndpoint() string { return b.pubEP }

// SessionFeeds returns the number of service's instances whose PUB
// sockets the broker follows on its session topic with a live link: where
// it takes that service's session directives from (0 when the service's
// routes may bind no key). Tests wait on it.
func (b *Broker) SessionFeeds(service string) int { return b.hub.sessionFeeds(service) }

// Health is the broker's liveness (its /healthz check): nil until Exit,
// ErrClosed after. A draining broker is alive (it still serves its
// clients), and so is one that sees no yellow (it routes on its last
// view): restarting it would help neither. Ready is whether it should get
// new clients.
func (b *Broker) Health() error {
	if b.exiting.Load() {
		return ErrClosed
	}
	return nil
}

// Ready returns nil once the broker takes clients and is listed: its view
// of yellow is synced and some yellow took its registration (its /readyz
// check); an error before that and once it drains or exits. A yellow that
// becomes unreachable later does not make it unready: it routes on its
// last view and its clients stay.
func (b *Broker) Ready() error {
	switch {
	case b.exiting.Load():
		return ErrClosed
	case b.draining.Load() || b.drainAsk.Load():
		return errors.New("draining")
	case !b.pool.Synced():
		return errors.New("routes not synced: no view from yellow yet")
	}
	b.mu.Lock()
	reg := b.reg
	b.mu.Unlock()
	if reg == nil || !reg.EverRegistered() {
		return errors.New("not registered in yellow yet")
	}
	return nil
}

// Load weights, see Load.
const (
	// loadConnWeight is the share of connections in the load: they are what
	// a broker's memory and descriptors are spent on, and what the client
	// choosing a broker from the BrokerList adds to.
	loadConnWeight = 0.75
	// loadInFlightFull is the number of requests in flight at which the
	// in-flight part of the load is full: 4096 is what one service
	// instance's link runs at once (link.DefaultMaxInFlight) before it
	// answers overloaded, so a broker with that many waiting is busy.
	loadInFlightFull = 4096
)

// Load is the load the broker reports to yellow (and the BrokerList ranks
// brokers by), in [0, 1]: 0.75 × connections / MaxConnections + 0.25 ×
// min(1, requests in flight / 4096). Connections dominate, since they last;
// the in-flight part makes a broker that is busy right now look fuller than
// an idle one with as many connections.
func (b *Broker) Load() float64 {
	conns := float64(b.edge.NumConns()) / float64(b.edge.Options().MaxConnections)
	inflight := float64(b.edge.Stats().InFlight) / loadInFlightFull
	return min(1, loadConnWeight*min(1, conns)+(1-loadConnWeight)*min(1, inflight))
}
