package yellow

import (
	"fmt"
	"time"

	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options.
const (
	// DefaultRouterAddr is where yellow's ROUTER listens (DESIGN.md ports).
	DefaultRouterAddr = "tcp://127.0.0.1:1060"
	// DefaultPubAddr is where yellow publishes deltas (DESIGN.md ports).
	DefaultPubAddr = "tcp://127.0.0.1:1061"
	// DefaultHeartbeat is how often providers beat: a second notices a dead
	// instance within a few seconds for a few hundred beats per second.
	DefaultHeartbeat = time.Second
	// DefaultExpireAfter is how many beats may be missed before a record
	// expires: three rides out one lost beat and a GC pause.
	DefaultExpireAfter = 3
	// DefaultMaxInstances bounds the records yellow holds: the platform
	// runs a few hundred instances; 4096 leaves >10x headroom while a full
	// table of DefaultMaxRecordBytes records stays at 16 MiB.
	DefaultMaxInstances = 4096
	// DefaultMaxPerIdentity bounds the records of one identity (all
	// instances of one service share its certificate's identity): a pool
	// of a thousand instances fits, and no one identity can take more
	// than a quarter of DefaultMaxInstances.
	DefaultMaxPerIdentity = 1024
	// DefaultMaxRecordBytes bounds one encoded record: a typical record is
	// ~200 bytes; 4 KiB leaves room for the meta labels.
	DefaultMaxRecordBytes = 4 << 10
)

// Bounds checked by Options.Validate.
const (
	// minInterval is the shortest heartbeat or tick: shorter ones would
	// spend yellow's CPU on beats (tests use 50 ms).
	minInterval = 10 * time.Millisecond
	// maxInterval is the longest heartbeat or tick: a minute already lets a
	// dead instance linger for minutes.
	maxInterval = time.Minute
	// maxExpireAfter bounds ExpireAfter: beyond 100 missed beats a record
	// is a ghost.
	maxExpireAfter = 100
	// maxMaxInstances bounds MaxInstances: a million records of 4 KiB
	// would be 4 GiB of memory and of snapshot.
	maxMaxInstances = 1 << 20
	// minMaxRecordBytes / maxMaxRecordBytes bound MaxRecordBytes: a minimal
	// record with long names needs a few hundred bytes; a record above
	// 64 KiB is no longer a record.
	minMaxRecordBytes = 512
	maxMaxRecordBytes = 64 << 10
)

// Options configures a Yellow server.
type Options struct {
	// RouterAddr is the endpoint of the ROUTER that providers and consumers
	// call (port 0 picks a free port).
	RouterAddr string `yaml:"router_addr"`
	// PubAddr is the endpoint of the PUB socket deltas are published on.
	PubAddr string `yaml:"pub_addr"`
	// Heartbeat is the interval providers are told to beat at.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// ExpireAfter is the number of missed beats after which a record
	// expires.
	ExpireAfter int `yaml:"expire_after"`
	// MaxInstances bounds the number of records.
	MaxInstances int `yaml:"max_instances"`
	// MaxPerIdentity bounds the records one identity (one certificate's
	// role and name) may hold, so that no one client fills max_instances.
	MaxPerIdentity int `yaml:"max_per_identity"`
	// MaxRecordBytes bounds the encoded size of one record.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// TickInterval is how often a TICK delta is published; 0 means
	// Heartbeat, and it may not be longer than Heartbeat.
	TickInterval time.Duration `yaml:"tick_interval"`
	// TLS, when set, runs mutual TLS on the ROUTER and the PUB socket
	// (anyone the CA certified may query and watch); its certificate must
	// say yellow. Nil: plain links, which New allows on loopback addresses
	// only, unless Insecure (the config's tls block).
	TLS *pki.Credentials `yaml:"-"`
	// Insecure allows plain links on addresses other than loopback.
	Insecure bool `yaml:"-"`
}

// NewOptions returns the default options.
func NewOptions() Options {
	return Options{
		RouterAddr:     DefaultRouterAddr,
		PubAddr:        DefaultPubAddr,
		Heartbeat:      DefaultHeartbeat,
		ExpireAfter:    DefaultExpireAfter,
		MaxInstances:   DefaultMaxInstances,
		MaxPerIdentity: DefaultMaxPerIdentity,
		MaxRecordBytes: DefaultMaxRecordBytes,
		TickInterval:   DefaultHeartbeat,
	}
}

// Validate checks the options and returns an error naming the first bad
// field by its yaml name.
func (o Options) Validate() error {
	if err := wire.ValidateListenEndpoint(o.RouterAddr); err != nil {
		return fmt.Errorf("yellow: router_addr: %w", err)
	}
	if err := wire.ValidateListenEndpoint(o.PubAddr); err != nil {
		return fmt.Errorf("yellow: pub_addr: %w", err)
	}
	if o.Heartbeat < minInterval || o.Heartbeat > maxInterval {
		return fmt.Errorf("yellow: heartbeat: must be in [%v, %v], got %v", minInterval, maxInterval, o.Heartbeat)
	}
	if o.ExpireAfter < 1 || o.ExpireAfter > maxExpireAfter {
		return fmt.Errorf("yellow: expire_after: must be in [1, %d], got %d", maxExpireAfter, o.ExpireAfter)
	}
	if o.MaxPerIdentity < 1 || o.MaxPerIdentity > maxMaxInstances {
		return fmt.Errorf("yellow: max_per_identity: must be in [1, %d], got %d", maxMaxInstances, o.MaxPerIdentity)
	}
	if o.MaxInstances < 1 || o.MaxInstances > maxMaxInstances {
		return fmt.Errorf("yellow: max_instances: must be in [1, %d], got %d", maxMaxInstances, o.MaxInstances)
	}
	if o.MaxRecordBytes < minMaxRecordBytes || o.MaxRecordBytes > maxMaxRecordBytes {
		return fmt.Errorf("yellow: max_record_bytes: must be in [%d, %d], got %d", minMaxRecordBytes, maxMaxRecordBytes, o.MaxRecordBytes)
	}
	if o.TickInterval != 0 && (o.TickInterval < minInterval || o.TickInterval > maxInterval) {
		return fmt.Errorf("yellow: tick_interval: must be 0 (= heartbeat) or in [%v, %v], got %v", minInterval, maxInterval, o.TickInterval)
	}
	// Watchers take silentTicks heartbeats without a tick as yellow being
	// gone, so ticks must come at least once per heartbeat.
	if o.TickInterval > o.Heartbeat {
		return fmt.Errorf("yellow: tick_interval: must be at most heartbeat (%v), got %v", o.Heartbeat, o.TickInterval)
	}
	return nil
}

// checkTLS checks what New needs of the links: a yellow certificate with
// TLS, loopback addresses without (unless Insecure).
func (o Options) checkTLS() error {
	if o.TLS != nil {
		if err := o.TLS.Require(pki.Identity{Role: pki.RoleYellow}); err != nil {
			return fmt.Errorf("yellow: tls: %w", err)
		}
	}
	for _, f := range []struct{ name, ep string }{{"router_addr", o.RouterAddr}, {"pub_addr", o.PubAddr}} {
		if err := link.CheckPlainBind(f.name, f.ep, o.TLS, o.Insecure); err != nil {
			return fmt.Errorf("yellow: %w", err)
		}
	}
	return nil
}

// tick returns the effective tick interval.
func (o Options) tick() time.Duration {
	if o.TickInterval == 0 {
		return o.Heartbeat
	}
	return o.TickInterval
}
