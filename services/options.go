package services

import (
	"fmt"
	"strings"
	"time"

	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// Service kinds, the values of Options.Kind.
const (
	// KindStateless: any instance can serve any request; the broker picks
	// the least-loaded one.
	KindStateless = "stateless"
	// KindStateful: requests are routed by a session binding to the
	// instance that owns the key.
	KindStateful = "stateful"
)

// Defaults of Options.
const (
	// DefaultBind is the ROUTER endpoint: loopback, a free port.
	DefaultBind = "tcp://127.0.0.1:0"
	// DefaultPubBind is the PUB endpoint: loopback, a free port.
	DefaultPubBind = "tcp://127.0.0.1:0"
	// DefaultConcurrency is how many requests an instance runs at once:
	// enough to keep a few cores busy with handlers that wait on Postgres
	// or Redis, few enough that a saturated instance answers overloaded
	// quickly instead of queueing.
	DefaultConcurrency = 256
	// DefaultTimeout is a request's deadline when the caller sends none.
	DefaultTimeout = 5 * time.Second
	// DefaultMaxTimeout caps any request's deadline: nothing a game client
	// waits for takes longer than a minute.
	DefaultMaxTimeout = 60 * time.Second
	// DefaultDrainTimeout bounds Drain: long enough for any request under
	// DefaultTimeout to finish, short enough for a rolling deploy.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultHeartbeat is how often the instance beats to yellow.
	DefaultHeartbeat = time.Second
)

// Bounds checked by Options.Validate.
const (
	// MaxConcurrency bounds Concurrency: yellow's capacity limit.
	MaxConcurrency = 1_000_000
	// minHeartbeat is the shortest heartbeat (yellow's limit; tests use
	// 50 ms).
	minHeartbeat = 10 * time.Millisecond
	// maxHeartbeat is the longest heartbeat (yellow's limit).
	maxHeartbeat = time.Minute
)

// Options configures a service instance (a Server).
type Options struct {
	// Name is the service name: the prefix of its methods ("echo" serves
	// "echo.*") and its name in yellow. [a-z][a-z0-9_-]*, at most 64 bytes.
	Name string `yaml:"name"`
	// Kind is "stateless" or "stateful".
	Kind string `yaml:"kind"`
	// Version is a free-form label shown in yellow and noonctl.
	Version string `yaml:"version"`
	// Bind is the ROUTER endpoint, tcp://host:port; port 0 picks a free
	// port.
	Bind string `yaml:"bind"`
	// PubBind is the PUB endpoint events are published on, or "" for none.
	PubBind string `yaml:"pub_bind"`
	// Advertise is the host other processes dial, published in yellow
	// instead of the bound host; needed when Bind is a wildcard (0.0.0.0),
	// where it defaults to the hostname.
	Advertise string `yaml:"advertise"`
	// Yellows are the ROUTER endpoints of every yellow to register with.
	Yellows []string `yaml:"yellows"`
	// Concurrency is how many requests run at once; a request beyond that
	// is answered overloaded.
	Concurrency int `yaml:"concurrency"`
	// DefaultTimeout is the deadline of a request that carries none.
	DefaultTimeout time.Duration `yaml:"default_timeout"`
	// MaxTimeout caps every request's deadline.
	MaxTimeout time.Duration `yaml:"max_timeout"`
	// DrainTimeout bounds Drain's wait for in-flight requests.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Heartbeat is how often the instance beats to yellow.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// TLS, when set, runs mutual TLS on every link of the instance: its
	// ROUTER, its PUB socket (brokers only may subscribe), its yellow
	// registration and the Client it calls other services with. Its
	// certificate must say service:<name>. Set by the platform from the
	// config's tls block (Env.TLS), not by the service's section.
	TLS *pki.Credentials `yaml:"-"`
	// Insecure allows plain links on addresses other than loopback (the
	// config's tls.insecure).
	Insecure bool `yaml:"-"`
	// AdminAddr is the host:port of the admin HTTP (/metrics, /healthz)
	// serving this instance's metrics, published in yellow as the meta
	// label wire.MetaAdmin (a wildcard host as the advertised host) for
	// noonctl top and the console. Set by the command that runs the
	// instance (it knows the admin endpoint), not by the section; "" for
	// none.
	AdminAddr string `yaml:"-"`
	// Inline lists methods whose handlers never block: no I/O, no call of
	// another service, no wait but on short locks (echo.Echo, a room's
	// in-memory move). Such a handler may run on its link's reading
	// goroutine rather than a goroutine of its own, when it is the only
	// request running (link.ServerOptions.Inline): at low load that saves
	// waking a second thread per request, and the replies of the requests
	// one read brought leave in one write (a read burst). One that runs longer than
	// link.InlineBudget stops inline runs for a while and is logged. Set by
	// the service's code (Impl.Inline), not by its config section.
	Inline []string `yaml:"-"`
	// InProcess makes the instance's link reachable without a socket by
	// the callers of its own process (link.ServerOptions.InProcess): `noon
	// dev`, where the broker and every service share one process. Set by
	// the command that runs it, not by the section.
	InProcess bool `yaml:"-"`
}

// NewOptions returns the default options; Name and Yellows still need
// setting.
func NewOptions() Options {
	return Options{
		Kind:           KindStateless,
		Bind:           DefaultBind,
		PubBind:        DefaultPubBind,
		Concurrency:    DefaultConcurrency,
		DefaultTimeout: DefaultTimeout,
		MaxTimeout:     DefaultMaxTimeout,
		DrainTimeout:   DefaultDrainTimeout,
		Heartbeat:      DefaultHeartbeat,
	}
}

// Validate checks the options and returns every bad field, named by its
// yaml name (config.Errors).
func (o Options) Validate() error {
	var errs config.Errors
	if err := wire.ValidateName(o.Name); err != nil {
		errs.Addf("name", "%v", err)
	}
	if o.Kind != KindStateless && o.Kind != KindStateful {
		errs.Addf("kind", "must be %q or %q, got %q", KindStateless, KindStateful, wire.Snippet(o.Kind))
	}
	if len(o.Version) > 64 || strings.ContainsAny(o.Version, " \t\r\n") {
		errs.Addf("version", "at most 64 bytes with no spaces, got %q", wire.Snippet(o.Version))
	}
	if err := wire.ValidateListenEndpoint(o.Bind); err != nil {
		errs.Addf("bind", "%v", err)
	}
	if o.PubBind != "" {
		if err := wire.ValidateListenEndpoint(o.PubBind); err != nil {
			errs.Addf("pub_bind", "%v", err)
		}
	}
	if o.Advertise != "" && !wire.ValidHost(o.Advertise) {
		errs.Addf("advertise", "must be a host name or IP address, got %q", wire.Snippet(o.Advertise))
	}
	for i, y := range o.Yellows {
		if err := wire.ValidateDialEndpoint(y); err != nil {
			errs.Addf(fmt.Sprintf("yellows[%d]", i), "%v", err)
		}
	}
	errs.Add(config.Range("concurrency", o.Concurrency, 1, MaxConcurrency))
	errs.Add(config.Positive("default_timeout", o.DefaultTimeout))
	if o.MaxTimeout < o.DefaultTimeout {
		errs.Addf("max_timeout", "must be >= default_timeout (%v), got %v", o.DefaultTimeout, o.MaxTimeout)
	}
	errs.Add(config.Positive("drain_timeout", o.DrainTimeout))
	errs.Add(config.Range("heartbeat", o.Heartbeat, minHeartbeat, maxHeartbeat))
	return errs.Err()
}

// checkTLS checks what NewServer needs of the links: a service:<name>
// certificate with TLS, loopback binds without (unless Insecure).
func (o Options) checkTLS() error {
	if o.TLS != nil {
		if err := o.TLS.Require(pki.Identity{Role: pki.RoleService, Name: o.Name}); err != nil {
			return fmt.Errorf("services: tls: %w", err)
		}
	}
	if err := link.CheckPlainBind("bind", o.Bind, o.TLS, o.Insecure); err != nil {
		return fmt.Errorf("services: %w", err)
	}
	if o.PubBind != "" {
		if err := link.CheckPlainBind("pub_bind", o.PubBind, o.TLS, o.Insecure); err != nil {
			return fmt.Errorf("services: %w", err)
		}
	}
	return nil
}
