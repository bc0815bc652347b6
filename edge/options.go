package edge

import (
	"fmt"
	"path"
	"time"

	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/wire"
)

// Defaults of Options. Each says why it is that size.
const (
	// DefaultTCPAddr is where clients speak pandaparty frames over TCP:
	// loopback by default, so that only a config that says so (as
	// configs/cluster.yaml does) exposes a broker to the network.
	DefaultTCPAddr = "127.0.0.1:1055"
	// DefaultWSAddr is where browsers speak the same frames over
	// WebSocket, loopback by default like DefaultTCPAddr.
	DefaultWSAddr = "127.0.0.1:1056"
	// DefaultWSPath is the HTTP path of the WebSocket endpoint.
	DefaultWSPath = "/ws"
	// AnyOrigin, as the only WSOrigins entry, lets pages of any origin
	// open a WebSocket.
	AnyOrigin = "*"

	// DefaultProxyTimeout bounds the wait for a PROXY header, 5 s: a load
	// balancer writes it with its first packet, so anything slower is
	// broken or not a load balancer.
	DefaultProxyTimeout = 5 * time.Second

	// DefaultMaxFrame is the largest request frame, 1 MiB (frame.DefaultMaxFrame):
	// payloads are Thrift structs of a few hundred bytes.
	DefaultMaxFrame = frame.DefaultMaxFrame
	// DefaultMaxMethod is the longest method name, 128 bytes
	// (frame.DefaultMaxMethod): "<service>.<Method>" is well under 40.
	DefaultMaxMethod = frame.DefaultMaxMethod

	// DefaultMaxConnections is how many client connections one broker holds,
	// 100,000: an idle connection costs a few KiB of broker memory (see
	// README), so 100k idle connections fit in well under 2 GiB; beyond that,
	// run another broker.
	DefaultMaxConnections = 100_000

	// DefaultMaxInFlight is how many requests of one connection run at once,
	// 64: enough to pipeline a burst of game actions, small enough that one
	// client cannot occupy the broker. The reader stops reading while the
	// limit is reached, so a pipelining client gets TCP backpressure.
	DefaultMaxInFlight = 64

	// DefaultMaxInFlightBytes is how many request and reply bytes (and
	// queued pushes) one connection may have in flight, 2 MiB: two
	// maximum frames, so one large request can be answered while another
	// is read; a connection at the limit is not read from until its
	// replies are written, so a client that pipelines big requests and
	// never reads holds at most this much (plus one frame being read).
	DefaultMaxInFlightBytes = 2 << 20
	// DefaultMaxInFlightBytesPerAddr bounds the same bytes summed over
	// every connection of one address (IPv4 /32, IPv6 /64), 8 MiB: four
	// connections' worth, so opening more connections buys a client no
	// more memory.
	DefaultMaxInFlightBytesPerAddr = 8 << 20
	// DefaultMaxBufferedBytes is the admission limit on the bytes the whole
	// edge holds for its connections (requests, replies, pushes), 1 GiB:
	// above it no connection is read from and new connections are refused
	// "overloaded" until replies drain, so a broker's heap stays bounded
	// whatever its clients do.
	DefaultMaxBufferedBytes = 1 << 30

	// DefaultMaxConnsPerAddr is how many connections one address (IPv4
	// /32, IPv6 /64) may hold, 64: a household or a small office behind one
	// NAT address, each player with a connection or two; one address
	// cannot take every slot of a broker.
	DefaultMaxConnsPerAddr = 64
	// DefaultConnRatePerAddr is how many new connections per second one
	// address may open, sustained, 10: clients reconnect after a failure
	// with back-off, so more is a flood.
	DefaultConnRatePerAddr = 10
	// DefaultConnBurstPerAddr is the burst of new connections one address
	// may open at once, 64: the whole DefaultMaxConnsPerAddr, so a NAT
	// whose players all reconnect after a broker's death is not refused.
	DefaultConnBurstPerAddr = 64

	// DefaultFrameTimeout is how long a frame may take to arrive once its
	// first byte did, 10 s: a 1 MiB frame over a slow mobile link takes
	// a few seconds; a client dribbling bytes slower than that is holding
	// a buffer open (slowloris) and is disconnected.
	DefaultFrameTimeout = 10 * time.Second

	// DefaultOutQueue is how many pushes may wait for one connection's
	// writer, 256: a burst of room events fits; a client that lets more pile
	// up is not reading and is disconnected rather than buffered for.
	DefaultOutQueue = 256

	// DefaultRate is the sustained requests per second of one connection,
	// 200: a 60 Hz game loop sending a few messages per tick stays under it.
	DefaultRate = 200
	// DefaultBurst is the token bucket size, 400: two seconds' worth of
	// requests may come at once (a reconnecting client replaying state).
	DefaultBurst = 400

	// DefaultAuthTimeout is how long a connection may stay unauthenticated,
	// 10 s: a login is one round trip to the login service.
	DefaultAuthTimeout = 10 * time.Second
	// DefaultIdleTimeout is how long a connection may go without a complete
	// frame, 60 s: clients send a request (edge.Hello serves as a ping) at
	// least every 30 s, so two missed pings close it.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultWriteTimeout is how long a batch of frames may take to reach the
	// socket, 10 s: a client whose receive window stays shut that long is not
	// reading and is disconnected.
	DefaultWriteTimeout = 10 * time.Second

	// minClampedConnections is the floor of max_connections when the file
	// limit clamps it: below that a broker is useless anyway.
	minClampedConnections = 256

	// DefaultReadBuffer is the per-connection read buffer, 4 KiB: most frames
	// fit and are parsed in place. It is held only while a connection has
	// unread bytes; an idle connection holds none.
	DefaultReadBuffer = 4 << 10
	// DefaultWriteBuffer is the per-connection write buffer, 4 KiB, held
	// only while a batch of frames is being written.
	DefaultWriteBuffer = 4 << 10
)

// TLSOptions turns on TLS for both listeners. Both files or neither.
type TLSOptions = config.TLSFiles

// Options configures the client edge of a broker: its listeners and the
// limits every client connection lives under.
type Options struct {
	// TCPAddr is the address of the pandaparty TCP listener; "" disables it.
	TCPAddr string `yaml:"tcp_addr"`
	// WSAddr is the address of the WebSocket listener; "" disables it.
	WSAddr string `yaml:"ws_addr"`
	// WSPath is the HTTP path WebSocket clients connect to.
	WSPath string `yaml:"ws_path"`
	// WSOrigins lists the Origins whose pages may open a WebSocket: host
	// patterns in path.Match syntax ("game.example.com", "*.example.com",
	// "localhost:*"; with a scheme, "https://*.example.com", matched
	// against scheme://host). A request without an Origin header (not a
	// browser) and a page served by the broker's own host are always
	// allowed; "*" alone allows any page. It is required when ws_addr is
	// set: without it any web site could make its visitors' browsers
	// register, log in and play through the broker (spending the
	// per-address throttles from their addresses). The default allows
	// localhost pages, for development.
	WSOrigins []string `yaml:"ws_origins"`
	// TLS, when set, serves both listeners over TLS.
	TLS TLSOptions `yaml:"tls"`
	// TrustedProxies lists the load balancers (CIDRs or addresses) whose
	// word on the client's address is taken: a TCP connection from one
	// must start with a PROXY protocol header (v1 or v2, within
	// ProxyTimeout) naming the client, else it is closed and logged; a
	// WebSocket upgrade from one names the client in X-Forwarded-For (the
	// right-most address not itself trusted). Rate limits, logs and the
	// session's remote address (which login's per-address throttle sees)
	// then use the client's address. From anyone else the headers are not
	// read: a PROXY header is then taken for a frame, whose length ("PROX",
	// or v2's "\r\n\r\n": over 200 MiB) exceeds any sane max_frame, so it
	// is answered bad_frame and the connection closed. Empty trusts nobody.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ProxyTimeout bounds how long a connection from a trusted proxy may
	// take to send its PROXY header.
	ProxyTimeout time.Duration `yaml:"proxy_timeout"`

	// MaxFrame is the largest accepted request frame (TotalLen) and the
	// largest reply or push the edge sends.
	MaxFrame config.ByteSize `yaml:"max_frame"`
	// MaxMethod is the longest accepted method name, in bytes.
	MaxMethod int `yaml:"max_method"`
	// MaxConnections is the most client connections at once; more are
	// answered "overloaded" and closed as soon as they are accepted. New
	// lowers it, with a warning, to the process's open files limit less a
	// tenth (at least 256): past it accepting fails for every listener and
	// link of the process, not only for clients.
	MaxConnections int `yaml:"max_connections"`
	// MaxInFlight is the most requests of one connection running at once.
	MaxInFlight int `yaml:"max_in_flight"`
	// MaxInFlightBytes bounds the request and reply bytes (and queued
	// pushes) of one connection held by the broker: at it, the connection
	// is not read from until replies are written (a request's bytes are
	// freed when its reply is written). A single frame larger than it is
	// still served, alone.
	MaxInFlightBytes config.ByteSize `yaml:"max_in_flight_bytes"`
	// MaxInFlightBytesPerAddr bounds the same bytes summed over the
	// connections of one client address (IPv4 /32, IPv6 /64), unless the
	// address is in AddrLimitsExempt.
	MaxInFlightBytesPerAddr config.ByteSize `yaml:"max_in_flight_bytes_per_addr"`
	// MaxBufferedBytes is the admission limit on the bytes the edge holds
	// for all its connections: above it no connection is read from and new
	// connections are refused "overloaded" (metric broker_buffered_bytes).
	MaxBufferedBytes config.ByteSize `yaml:"max_buffered_bytes"`
	// MaxConnsPerAddr is the most connections of one client address (IPv4
	// /32, IPv6 /64: the client's own behind a trusted proxy); more are
	// answered "overloaded" and closed. 0 turns it off.
	MaxConnsPerAddr int `yaml:"max_conns_per_addr"`
	// ConnRatePerAddr is the sustained new connections per second of one
	// client address (a token bucket holding ConnBurstPerAddr); more are
	// answered "overloaded" and closed. 0 turns it off.
	ConnRatePerAddr float64 `yaml:"conn_rate_per_addr"`
	// ConnBurstPerAddr is the per-address bucket size: new connections one
	// address may open at once.
	ConnBurstPerAddr int `yaml:"conn_burst_per_addr"`
	// AddrLimitsExempt lists the addresses (CIDRs or addresses) that the
	// per-address limits (max_conns_per_addr, conn_rate_per_addr,
	// max_in_flight_bytes_per_addr) do not apply to. The default, loopback
	// (127.0.0.0/8 and ::1), keeps the platform's own tests, benchmarks and
	// a local load balancer working; a broker behind a load balancer that
	// does not send PROXY headers sees every client as the balancer's
	// address and must either trust it (trusted_proxies) or exempt it.
	// Empty exempts nobody.
	AddrLimitsExempt []string `yaml:"addr_limits_exempt"`
	// OutQueue is the most pushes waiting for one connection's writer; a
	// push beyond it disconnects the client as too slow.
	OutQueue int `yaml:"out_queue"`
	// Rate is the sustained requests per second of one connection (a token
	// bucket refilled at Rate, holding Burst); a request over it is answered
	// rate_limited and the connection kept. 0 turns rate limiting off.
	Rate float64 `yaml:"rate"`
	// Burst is the token bucket size: requests that may come at once.
	Burst int `yaml:"burst"`

	// AuthTimeout closes a connection not authenticated within it; 0 turns
	// it off (development only).
	AuthTimeout time.Duration `yaml:"auth_timeout"`
	// IdleTimeout closes a connection that has not begun a frame within
	// it: the first byte of each frame must arrive within IdleTimeout of
	// the reader's asking for it (FrameTimeout then bounds the rest).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// FrameTimeout closes a connection whose frame, once its first byte
	// arrived, is not complete within it (apart from IdleTimeout, which
	// bounds the wait for that first byte).
	FrameTimeout time.Duration `yaml:"frame_timeout"`
	// WriteTimeout disconnects a client whose socket does not take a batch of
	// frames within it.
	WriteTimeout time.Duration `yaml:"write_timeout"`

	// ReadBuffer is the TCP read buffer of a connection, held only while it
	// has unread bytes. A frame that fits is parsed without a copy.
	ReadBuffer config.ByteSize `yaml:"read_buffer"`
	// WriteBuffer is the TCP write buffer of a connection, held only while
	// it writes.
	WriteBuffer config.ByteSize `yaml:"write_buffer"`
}

// NewOptions returns the default options.
func NewOptions() Options {
	return Options{
		TCPAddr:                 DefaultTCPAddr,
		WSAddr:                  DefaultWSAddr,
		WSPath:                  DefaultWSPath,
		WSOrigins:               DefaultWSOrigins(),
		ProxyTimeout:            DefaultProxyTimeout,
		MaxFrame:                DefaultMaxFrame,
		MaxMethod:               DefaultMaxMethod,
		MaxConnections:          DefaultMaxConnections,
		MaxInFlight:             DefaultMaxInFlight,
		MaxInFlightBytes:        DefaultMaxInFlightBytes,
		MaxInFlightBytesPerAddr: DefaultMaxInFlightBytesPerAddr,
		MaxBufferedBytes:        DefaultMaxBufferedBytes,
		MaxConnsPerAddr:         DefaultMaxConnsPerAddr,
		ConnRatePerAddr:         DefaultConnRatePerAddr,
		ConnBurstPerAddr:        DefaultConnBurstPerAddr,
		AddrLimitsExempt:        DefaultAddrLimitsExempt(),
		FrameTimeout:            DefaultFrameTimeout,
		OutQueue:                DefaultOutQueue,
		Rate:                    DefaultRate,
		Burst:                   DefaultBurst,
		AuthTimeout:             DefaultAuthTimeout,
		IdleTimeout:             DefaultIdleTimeout,
		WriteTimeout:            DefaultWriteTimeout,
		ReadBuffer:              DefaultReadBuffer,
		WriteBuffer:             DefaultWriteBuffer,
	}
}

// Validate checks the options, naming every bad field by its yaml name.
func (o Options) Validate() error {
	var errs config.Errors
	if o.TCPAddr == "" && o.WSAddr == "" {
		errs.Addf("tcp_addr", "tcp_addr and ws_addr are both empty: no listener")
	}
	if o.TCPAddr != "" {
		errs.Add(config.HostPort("tcp_addr", o.TCPAddr))
	}
	if o.WSAddr != "" {
		errs.Add(config.HostPort("ws_addr", o.WSAddr))
		if len(o.WSPath) == 0 || o.WSPath[0] != '/' {
			errs.Addf("ws_path", "must start with /, got %q", o.WSPath)
		}
		errs.Add(validateOrigins(o.WSOrigins))
	}
	errs.Add(realip.ValidateTrusted("trusted_proxies", o.TrustedProxies))
	if len(o.TrustedProxies) > 0 {
		errs.Add(config.Positive("proxy_timeout", o.ProxyTimeout))
	}
	errs.Add(config.Nested("tls", o.TLS.Validate()))
	errs.Add(config.Range("max_frame", o.MaxFrame, frame.MinFrame+1, frame.MaxFrameLimit))
	if o.MaxFrame > frame.MinFrame {
		errs.Add(config.Range("max_method", o.MaxMethod, 1, int(o.MaxFrame)-frame.MinFrame))
	}
	errs.Add(config.Positive("max_connections", o.MaxConnections))
	errs.Add(config.Range("max_in_flight", o.MaxInFlight, 1, 1<<16))
	errs.Add(config.Positive("max_in_flight_bytes", o.MaxInFlightBytes))
	errs.Add(config.Positive("max_in_flight_bytes_per_addr", o.MaxInFlightBytesPerAddr))
	errs.Add(config.Positive("max_buffered_bytes", o.MaxBufferedBytes))
	errs.Add(config.NonNegative("max_conns_per_addr", o.MaxConnsPerAddr))
	errs.Add(config.NonNegative("conn_rate_per_addr", o.ConnRatePerAddr))
	if o.ConnRatePerAddr > 0 {
		errs.Add(config.Positive("conn_burst_per_addr", o.ConnBurstPerAddr))
	}
	errs.Add(realip.ValidateTrusted("addr_limits_exempt", o.AddrLimitsExempt))
	errs.Add(config.Positive("frame_timeout", o.FrameTimeout))
	errs.Add(config.Range("out_queue", o.OutQueue, 1, 1<<20))
	errs.Add(config.NonNegative("rate", o.Rate))
	if o.Rate > 0 {
		errs.Add(config.Positive("burst", o.Burst))
	}
	errs.Add(config.NonNegative("auth_timeout", o.AuthTimeout))
	errs.Add(config.Positive("idle_timeout", o.IdleTimeout))
	errs.Add(config.Positive("write_timeout", o.WriteTimeout))
	errs.Add(config.Range("read_buffer", o.ReadBuffer, 16, 16<<20))
	errs.Add(config.Range("write_buffer", o.WriteBuffer, 16, 16<<20))
	return errs.Err()
}

// DefaultWSOrigins returns the default WSOrigins: pages served from this
// machine (localhost and 127.0.0.1, any port), for development.
func DefaultWSOrigins() []string {
	return []string{"localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"}
}

// DefaultAddrLimitsExempt returns the default AddrLimitsExempt: loopback.
func DefaultAddrLimitsExempt() []string {
	return []string{"127.0.0.0/8", "::1"}
}

// validateOrigins checks ws_origins: required, each a valid pattern, "*"
// only alone.
func validateOrigins(origins []string) error {
	var errs config.Errors
	if len(origins) == 0 {
		errs.Addf("ws_origins", "must list the Origins whose pages may open a WebSocket (e.g. [\"game.example.com\"]; [\"*\"] allows any page)")
	}
	for i, p := range origins {
		field := fmt.Sprintf("ws_origins[%d]", i)
		if _, err := path.Match(p, ""); err != nil || p == "" {
			errs.Addf(field, "must be a host pattern (path.Match syntax), got %q", wire.Snippet(p))
		} else if p == AnyOrigin && len(origins) > 1 {
			errs.Addf(field, "%q allows any origin; list it alone", AnyOrigin)
		}
	}
	return errs.Err()
}

// limits returns the frame limits of o: replies and pushes are bounded by
// MaxFrame too, and their first string by frame.DefaultMaxErr.
func (o Options) limits() frame.Limits {
	return frame.Limits{MaxFrame: int(o.MaxFrame), MaxMethod: o.MaxMethod, MaxErr: min(frame.DefaultMaxErr, int(o.MaxFrame)-frame.MinFrame)}
}
