package broker

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/noonhq/noon/edge"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// Defaults of Options. Each says why it is that size.
const (
	// DefaultControl is the ROUTER endpoint of the broker's control socket
	// (broker.Info for noonctl), and the "router" of its yellow record:
	// loopback and a free port, since only operators' tools on the host
	// call it. Bind a reachable address to let noonctl ask from elsewhere.
	DefaultControl = "tcp://127.0.0.1:0"
	// DefaultHeartbeat is how often the broker beats to yellow and pings
	// its links to instances: yellow's own default, so a dead broker
	// leaves the BrokerList within a few seconds.
	DefaultHeartbeat = time.Second
	// DefaultTimeout is the deadline of a request whose route sets none:
	// the platform's default request timeout (services.DefaultTimeout),
	// long enough for a Postgres round trip under load, short enough that
	// a game client is told something within a few frames of patience.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxHops is how many "moved" replies one request may follow to
	// a live owner: a key moves at most once or twice while instances come
	// and go, so a third move means instances disagree and the request
	// should fail rather than bounce.
	DefaultMaxHops = 3
	// DefaultDrainGrace is how long clients get, after @edge.Draining, to
	// move to another broker before their connection is closed: a client
	// fetches the BrokerList and reconnects in well under a second, and
	// five seconds is also the default request deadline, so in-flight
	// requests finish within it.
	DefaultDrainGrace = 5 * time.Second
	// DefaultAuthValidateMethod is the method edge.Hello calls to turn a
	// resume token into a user id.
	DefaultAuthValidateMethod = "login.Validate"
	// DefaultPubBind is the PUB endpoint the broker publishes presence on:
	// loopback and a free port, as a service's (services.DefaultPubBind).
	DefaultPubBind = "tcp://127.0.0.1:0"
	// DefaultResumeGrace is how long a player whose connection left may
	// come back (resume on any broker) before services treat them as gone:
	// a phone switching networks or a client moving off a draining broker
	// reconnects within seconds; thirty leaves room for a slow one without
	// keeping a matchmaker's ticket of someone who quit for long.
	DefaultResumeGrace = 30 * time.Second
)

// Session state defaults (state.go).
const (
	// DefaultStateSaveMethod is the internal method that saves a session's
	// bindings and topics with its login session, for a resume on another
	// broker.
	DefaultStateSaveMethod = "login.SaveSessionState"
	// DefaultStateSaveWorkers is how many saves run at once: a save is one
	// Redis script behind one login call (about a millisecond), so four
	// keep up with thousands of room joins per second, while a login that
	// slows down holds at most four of the broker's goroutines.
	DefaultStateSaveWorkers = 4
	// DefaultStateSaveQueue bounds the sessions waiting for a save: 4096
	// is a burst of joins far beyond a second's worth on one broker; a
	// session is queued once however often it changes.
	DefaultStateSaveQueue = 4096
	// DefaultStateDrainWait is how long Drain waits for pending saves
	// after its clients left: a second covers a queue of a few thousand
	// saves.
	DefaultStateDrainWait = time.Second
)

// Session state bounds, checked by Validate.
const (
	maxStateSaveWorkers = 64
	maxStateSaveQueue   = 1 << 20
	maxStateDrainWait   = 30 * time.Second
)

// Bounds checked by Validate.
const (
	// minHeartbeat and maxHeartbeat are yellow's bounds on a heartbeat.
	minHeartbeat = 10 * time.Millisecond
	maxHeartbeat = time.Minute
	// maxTimeout caps every request timeout: the service runtime caps any
	// deadline at a minute (services.DefaultMaxTimeout), so a longer one
	// could only end in the service's own timeout.
	maxTimeout = time.Minute
	// maxMaxHops bounds MaxHops: beyond ten re-routes a request is
	// ping-ponging between instances that disagree.
	maxMaxHops = 10
	// maxDrainGrace bounds DrainGrace: a deploy that waits longer than ten
	// minutes per broker is stuck, not graceful.
	maxDrainGrace = 10 * time.Minute
	// maxResumeGrace bounds ResumeGrace: a player away for ten minutes has
	// left, and a matchmaker's ticket time limit is about that long.
	maxResumeGrace = 10 * time.Minute
)

// Options configures a broker. The zero value is not usable; start from
// NewOptions.
type Options struct {
	// ID is the broker's instance id in yellow and in every envelope it
	// sends; empty generates "broker-<12 hex digits>" at New.
	ID string `yaml:"id"`
	// Edge configures the client listeners and the limits of every client
	// connection.
	Edge edge.Options `yaml:"edge"`
	// Advertise is the host:port clients dial, published in yellow as the
	// broker's client_addr (and so in the BrokerList). Empty derives it
	// from the TCP listener (the WebSocket one without TCP), with
	// 127.0.0.1 for a wildcard host: set it whenever clients are not on
	// this host.
	Advertise string `yaml:"advertise"`
	// Control is the ROUTER endpoint of the control socket answering
	// broker.Info (noonctl); it is the broker's "router" in yellow. A
	// wildcard host is advertised as Advertise's host.
	Control string `yaml:"control"`
	// PubBind is the PUB endpoint the broker publishes its presence events
	// on (wire.TopicPresence: a user's connection logged in, resumed, left),
	// the "pub" of its yellow record; services (the matchmaker) follow it,
	// brokers do not. A wildcard host is advertised as Advertise's host.
	// Empty: no presence is published, and services that follow it never
	// learn that this broker's players left.
	PubBind string `yaml:"pub_bind"`
	// AdminAddr is the host:port of the admin HTTP serving the broker's
	// metrics, published in its yellow record as the meta label
	// wire.MetaAdmin (a wildcard host as Advertise's host) for noonctl top
	// and the console. Set by the command that runs the broker; "" for
	// none.
	AdminAddr string `yaml:"-"`
	// ResumeGrace is how long a player whose connection left may reconnect
	// (resume their session, on any broker) before services such as the
	// matchmaker treat them as gone; it travels in the presence events
	// (grace_ms).
	ResumeGrace time.Duration `yaml:"resume_grace"`
	// Yellows are the ROUTER endpoints of every yellow: the broker
	// registers with each and discovers service instances from all.
	Yellows []string `yaml:"yellows"`
	// Heartbeat is how often the broker beats to yellow and pings the
	// service instances it links to.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// Routes is the route table: which service serves a method, how, and
	// who may call it. See Route and DefaultRoutes.
	Routes []Route `yaml:"routes"`
	// Aliases map pandaparty's bare method names onto full ones
	// ("CreateRoom: room.Create"); the full name is routed and sent. nil
	// means DefaultAliases(); an empty map, none. (A map, unlike Routes,
	// would be merged into defaults by the YAML decoder, so the defaults
	// are not put here.)
	Aliases map[string]string `yaml:"aliases"`
	// DefaultTimeout is the deadline of a request whose route sets none.
	DefaultTimeout time.Duration `yaml:"default_timeout"`
	// MaxHops is how many "moved" replies a stateful request follows to a
	// live owner before it fails unavailable.
	MaxHops int `yaml:"max_hops"`
	// DrainGrace is how long clients get after @edge.Draining before the
	// broker stops serving them (Drain).
	DrainGrace time.Duration `yaml:"drain_grace"`
	// AuthValidateMethod is the method edge.Hello calls with a resume
	// token (Thrift login.ValidateRequest -> login.ValidateReply). Its
	// service's instances are the ones whose revocations (login.Revoked on
	// wire.TopicRevoked) the broker acts on.
	AuthValidateMethod string `yaml:"auth_validate_method"`

	// Session state (state.go): a session's bindings and push topics are
	// saved with its login session, so that a resume on another broker
	// restores them.

	// StateSaveMethod is the internal method that saves them (Thrift
	// login.SaveSessionStateRequest); "" turns saving and restoring off
	// (a resume then restores the user only).
	StateSaveMethod string `yaml:"state_save_method"`
	// StateSaveWorkers is how many saves run at once.
	StateSaveWorkers int `yaml:"state_save_workers"`
	// StateSaveQueue bounds the sessions waiting for a save; past it, a
	// save is dropped (counted).
	StateSaveQueue int `yaml:"state_save_queue"`
	// StateDrainWait is how long Drain waits for pending saves.
	StateDrainWait time.Duration `yaml:"state_drain_wait"`
	// TLS, when set, runs mutual TLS on every internal link of the broker
	// (its control ROUTER, its PUB socket, which only services may
	// subscribe to, yellow, the links to instances and to their PUB
	// sockets); its certificate must say broker. Set from the config's tls
	// block. Nil: plain links.
	TLS *pki.Credentials `yaml:"-"`
	// Insecure allows plain links on control and pub addresses other than
	// loopback (the config's tls.insecure).
	Insecure bool `yaml:"-"`
}

// NewOptions returns the default options: the edge's defaults and the
// default route table (Aliases nil: the default aliases); Yellows still
// needs setting.
func NewOptions() Options {
	return Options{
		Edge:               edge.NewOptions(),
		Control:            DefaultControl,
		PubBind:            DefaultPubBind,
		ResumeGrace:        DefaultResumeGrace,
		Heartbeat:          DefaultHeartbeat,
		Routes:             DefaultRoutes(),
		DefaultTimeout:     DefaultTimeout,
		MaxHops:            DefaultMaxHops,
		DrainGrace:         DefaultDrainGrace,
		AuthValidateMethod: DefaultAuthValidateMethod,
		StateSaveMethod:    DefaultStateSaveMethod,
		StateSaveWorkers:   DefaultStateSaveWorkers,
		StateSaveQueue:     DefaultStateSaveQueue,
		StateDrainWait:     DefaultStateDrainWait,
	}
}

// Validate checks the options and returns an error naming every bad field
// by its yaml path ("edge.max_frame", "routes[2].key").
func (o Options) Validate() error {
	var errs config.Errors
	if o.ID != "" {
		if err := yellow.ValidateID(o.ID); err != nil {
			errs.Addf("id", "%v", strings.TrimPrefix(err.Error(), "yellow: "))
		}
	}
	errs.Add(config.Nested("edge", o.Edge.Validate()))
	if o.Advertise != "" {
		errs.Add(validateAdvertise(o.Advertise))
	}
	if o.Control == "" {
		errs.Addf("control", "must not be empty: yellow needs the broker's ROUTER endpoint")
	} else if !strings.HasPrefix(o.Control, "tcp://") {
		errs.Addf("control", "must be tcp://host:port, got %q", o.Control)
	} else {
		errs.Add(config.Endpoint("control", o.Control))
	}
	if o.PubBind != "" {
		if err := wire.ValidateListenEndpoint(o.PubBind); err != nil {
			errs.Addf("pub_bind", "%v", err)
		}
	}
	errs.Add(config.Range("resume_grace", o.ResumeGrace, 0, maxResumeGrace))
	if len(o.Yellows) == 0 {
		errs.Addf("yellows", "at least one yellow endpoint is required: the broker finds services there")
	}
	for i, y := range o.Yellows {
		errs.Add(config.DialEndpoint(fmt.Sprintf("yellows[%d]", i), y))
	}
	errs.Add(config.Range("heartbeat", o.Heartbeat, minHeartbeat, maxHeartbeat))
	errs.Add(config.Range("default_timeout", o.DefaultTimeout, time.Millisecond, maxTimeout))
	errs.Add(config.Range("max_hops", o.MaxHops, 0, maxMaxHops))
	errs.Add(config.Range("drain_grace", o.DrainGrace, 0, maxDrainGrace))
	table, err := NewRouteTable(o.Routes, o.aliases())
	errs.Add(err)
	if o.AuthValidateMethod == "" {
		errs.Addf("auth_validate_method", "must not be empty")
	} else if table != nil {
		if _, r, ok := table.Resolve(o.AuthValidateMethod); !ok || r.Kind == KindLocal {
			errs.Addf("auth_validate_method", "%q has no route to a service", o.AuthValidateMethod)
		}
	}
	errs.Add(o.validateState(table))
	return errs.Err()
}

// checkTLS checks what New needs of the links: a broker certificate with
// TLS, loopback control and pub addresses without (unless Insecure).
func (o Options) checkTLS() error {
	if o.TLS != nil {
		if err := o.TLS.Require(pki.Identity{Role: pki.RoleBroker}); err != nil {
			return fmt.Errorf("broker: tls: %w", err)
		}
	}
	if err := link.CheckPlainBind("control", o.Control, o.TLS, o.Insecure); err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	if o.PubBind != "" {
		if err := link.CheckPlainBind("pub_bind", o.PubBind, o.TLS, o.Insecure); err != nil {
			return fmt.Errorf("broker: %w", err)
		}
	}
	return nil
}

// validateAdvertise checks Advertise: host:port that a client can dial.
func validateAdvertise(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return config.FieldError{Field: "advertise", Msg: fmt.Sprintf("must be host:port, got %q", addr)}
	}
	if wire.IsWildcard(host) {
		return config.FieldError{Field: "advertise", Msg: fmt.Sprintf("must be a host clients can dial, not a wildcard, got %q", addr)}
	}
	if err := config.HostPort("advertise", addr); err != nil {
		return err
	}
	if port == "0" {
		return config.FieldError{Field: "advertise", Msg: fmt.Sprintf("port must not be 0, got %q", addr)}
	}
	return nil
}

// advertiseEndpoint returns the endpoint others dial for a bound ZeroMQ
// endpoint: a wildcard host becomes host.
func advertiseEndpoint(bound, host string) string {
	if h, _, err := wire.SplitEndpoint(bound); err != nil || !wire.IsWildcard(h) {
		return bound
	}
	ep, err := wire.Advertised(bound, host)
	if err != nil {
		return bound
	}
	return ep
}

// RouteTable returns the checked route table of the options, with the
// aliases in force (the defaults when Aliases is nil): what `noonctl
// routes` prints (see FormatRoutes).
func (o Options) RouteTable() (*RouteTable, error) {
	return NewRouteTable(o.Routes, o.aliases())
}

// aliases returns the aliases in force: Aliases, or DefaultAliases() when
// nil.
func (o Options) aliases() map[string]string {
	if o.Aliases == nil {
		return DefaultAliases()
	}
	return o.Aliases
}

// validateState checks the session state options.
func (o Options) validateState(table *RouteTable) error {
	var errs config.Errors
	if o.StateSaveMethod != "" && table != nil {
		if _, r, ok := table.Resolve(o.StateSaveMethod); !ok || r.Kind == KindLocal {
			errs.Addf("state_save_method", "%q has no route to a service", o.StateSaveMethod)
		}
	}
	errs.Add(config.Range("state_save_workers", o.StateSaveWorkers, 1, maxStateSaveWorkers))
	errs.Add(config.Range("state_save_queue", o.StateSaveQueue, 1, maxStateSaveQueue))
	errs.Add(config.Range("state_drain_wait", o.StateDrainWait, 0, maxStateDrainWait))
	return errs.Err()
}
