package services

import (
	"fmt"
	"strings"
	"time"

	"github.com/noonhq/noon/internal/logging"

	"github.com/noonhq/noon/yellow"
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

// Validate checks the options and returns an error naming the first bad
// field by its yaml name.
func (o Options) Validate() error {
	if err := yellow.ValidateServiceName(o.Name); err != nil {
		return fmt.Errorf("services: name: must match [a-z][a-z0-9_-]{0,63}, got %q", snippet(o.Name))
	}
	if o.Kind != KindStateless && o.Kind != KindStateful {
		return fmt.Errorf("services: kind: must be %q or %q, got %q", KindStateless, KindStateful, snippet(o.Kind))
	}
	if len(o.Version) > 64 || strings.ContainsAny(o.Version, " \t\r\n") {
		return fmt.Errorf("services: version: at most 64 bytes with no spaces, got %q", snippet(o.Version))
	}
	if err := yellow.ValidateListenEndpoint(o.Bind); err != nil {
		return fmt.Errorf("services: bind: %w", err)
	}
	if o.PubBind != "" {
		if err := yellow.ValidateListenEndpoint(o.PubBind); err != nil {
			return fmt.Errorf("services: pub_bind: %w", err)
		}
	}
	if o.Advertise != "" && !yellow.ValidHost(o.Advertise) {
		return fmt.Errorf("services: advertise: must be a host name or IP address, got %q", snippet(o.Advertise))
	}
	for i, y := range o.Yellows {
		if err := yellow.ValidateEndpoint(fmt.Sprintf("yellows[%d]", i), y); err != nil {
			return fmt.Errorf("services: %w", err)
		}
	}
	if o.Concurrency < 1 || o.Concurrency > MaxConcurrency {
		return fmt.Errorf("services: concurrency: must be in [1, %d], got %d", MaxConcurrency, o.Concurrency)
	}
	if o.DefaultTimeout <= 0 {
		return fmt.Errorf("services: default_timeout: must be > 0, got %v", o.DefaultTimeout)
	}
	if o.MaxTimeout < o.DefaultTimeout {
		return fmt.Errorf("services: max_timeout: must be >= default_timeout (%v), got %v", o.DefaultTimeout, o.MaxTimeout)
	}
	if o.DrainTimeout <= 0 {
		return fmt.Errorf("services: drain_timeout: must be > 0, got %v", o.DrainTimeout)
	}
	if o.Heartbeat < minHeartbeat || o.Heartbeat > maxHeartbeat {
		return fmt.Errorf("services: heartbeat: must be in [%v, %v], got %v", minHeartbeat, maxHeartbeat, o.Heartbeat)
	}
	return nil
}

func snippet(s string) string { return logging.Truncate(s, 64) }
