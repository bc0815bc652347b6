package link

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
)

// PubOptions configures a Publisher. Zero values take the defaults in limits.go.
type PubOptions struct {
	// QueueSize bounds the queue in front of the PUB socket (default 1024):
	// Publish drops and counts when it is full.
	QueueSize int
	// HWM is each subscriber's high-water mark in messages (default 1000):
	// what does not fit in its queue is dropped for that subscriber only.
	HWM int
	// HWMBytes caps the bytes queued for one subscriber (default 16 MiB).
	HWMBytes int
	// SendTimeout disconnects a subscriber whose socket accepts nothing for
	// this long (default 1 s); it will reconnect.
	SendTimeout time.Duration
	// HeartbeatInterval is how often a heartbeat is published to every
	// subscriber (default 1 s; negative: never), so that Subscribers can tell
	// a quiet publisher from a dead one.
	HeartbeatInterval time.Duration
	// MaxMessage bounds an encoded Event (default 4 MiB).
	MaxMessage int
	// HandshakeTimeout bounds a new connection's TLS and ZMTP handshake
	// (default 2 s).
	HandshakeTimeout time.Duration
	// TLS, when set, runs mutual TLS 1.3: a subscriber must present a
	// certificate from the credentials' CA whose role is in
	// SubscriberRoles, or it is refused at connect. Nil: plain ZMTP,
	// anyone may subscribe.
	TLS *pki.Credentials
	// SubscriberRoles are the roles that may subscribe, with TLS (default:
	// brokers only, who deliver service events to their connections).
	SubscriberRoles []pki.Role
	// Logger receives the Publisher's logs (default slog.Default()).
	Logger *slog.Logger

	sockBuf int             // tests: small socket buffers, to make a subscriber slow
	hold    <-chan struct{} // tests: the writer starts once this is closed
}

func (o PubOptions) withDefaults() PubOptions {
	o.QueueSize = orDefault(o.QueueSize, DefaultQueueSize)
	o.HWM = orDefault(o.HWM, DefaultHWM)
	o.HWMBytes = orDefault(o.HWMBytes, DefaultHWMBytes)
	o.SendTimeout = orDefault(o.SendTimeout, DefaultSendTimeout)
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultPubHeartbeat
	}
	o.MaxMessage = orDefault(o.MaxMessage, DefaultMaxMessage)
	o.HandshakeTimeout = orDefault(o.HandshakeTimeout, DefaultHandshakeTimeout)
	if len(o.SubscriberRoles) == 0 {
		o.SubscriberRoles = []pki.Role{pki.RoleBroker}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// admit is the Publisher's TLS check of a subscriber's identity.
func (o PubOptions) admit(id pki.Identity) error {
	if slices.Contains(o.SubscriberRoles, id.Role) {
		return nil
	}
	return fmt.Errorf("link: %s may not subscribe here (roles allowed: %v)", id, o.SubscriberRoles)
}

// PubStats is a snapshot of a Publisher's counters.
type PubStats struct {
	Published uint64 // events accepted by Publish
	Dropped   uint64 // events Publish dropped because its queue was full
	// Guard.Dropped counts messages dropped for a subscriber at its HWM,
	// Guard.Stuck subscribers disconnected for not reading.
	Guard GuardStats
}

type pubMsg struct {
	topic, body []byte
}

// Publisher is a service instance's PUB socket. Publish never blocks.
type Publisher struct {
	opts     PubOptions
	log      *slog.Logger
	sock     zmq4.Socket
	endpoint string
	gstats   guardStats

	ctx       context.Context
	cancel    context.CancelFunc
	closed    atomic.Bool
	done      chan struct{}
	wg        sync.WaitGroup
	q         chan pubMsg
	published atomic.Uint64
	dropped   atomic.Uint64
}

// NewPublisher binds a PUB socket on endpoint ("tcp://host:port"; port 0
// picks a free port, see Endpoint).
func NewPublisher(endpoint string, opts PubOptions) (*Publisher, error) {
	zep, err := zmtpEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	p := &Publisher{
		opts: opts,
		log:  opts.Logger.With("pub", endpoint),
		done: make(chan struct{}),
		q:    make(chan pubMsg, opts.QueueSize),
	}
	gcfg := &guardConfig{
		maxMessage:   pubInboundLimit,
		handshake:    opts.HandshakeTimeout,
		writeTimeout: opts.SendTimeout,
		hwm:          opts.HWM,
		hwmBytes:     int64(opts.HWMBytes),
		sockBuf:      opts.sockBuf,
		stats:        &p.gstats,
		log:          p.log,
	}
	if opts.TLS != nil {
		gcfg.tls = opts.TLS.ServerConfig(opts.admit)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.sock = zmq4.NewPub(withGuard(p.ctx, gcfg), zmq4.WithLogger(zmqLogger(p.log)))
	// zmq4's own HWM is one queue shared by all subscribers that drops
	// silently. The guard's per-connection queues keep zmq4's sending
	// goroutine from ever blocking, so this one stays near empty; the bound
	// is a backstop.
	if err := p.sock.SetOption(zmq4.OptionHWM, opts.QueueSize); err != nil {
		p.cancel()
		_ = p.sock.Close()
		return nil, fmt.Errorf("link: publisher HWM: %w", err)
	}
	if err := p.sock.Listen(zep); err != nil {
		p.cancel()
		_ = p.sock.Close()
		return nil, fmt.Errorf("link: listen %s: %w", endpoint, err)
	}
	p.endpoint = "tcp://" + p.sock.Addr().String()
	p.log = opts.Logger.With("pub", p.endpoint)
	p.wg.Add(1)
	go p.writeLoop()
	return p, nil
}

// Endpoint returns the bound endpoint, "tcp://host:port", with the real port.
func (p *Publisher) Endpoint() string { return p.endpoint }

// Stats returns a snapshot of the Publisher's counters.
func (p *Publisher) Stats() PubStats {
	return PubStats{Published: p.published.Load(), Dropped: p.dropped.Load(), Guard: p.gstats.snapshot()}
}

// Publish queues ev for every subscriber of topic, without blocking. The
// event is sent with its topic field set to topic; ev is not modified. When
// the queue is full the event is dropped, counted, and ErrOverloaded is
// returned. It returns ErrBadTopic for an invalid topic, ErrTooLarge for an
// event over MaxMessage and ErrClosed after Close.
func (p *Publisher) Publish(topic string, ev *platformpb.Event) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := CheckTopic(topic); err != nil {
		return err
	}
	b, err := encodeEvent(ev, topic)
	if err != nil {
		return fmt.Errorf("link: encode event: %w", err)
	}
	if len(b) > p.opts.MaxMessage {
		return fmt.Errorf("%w: %d-byte event, limit %d", ErrTooLarge, len(b), p.opts.MaxMessage)
	}
	select {
	case p.q <- pubMsg{topic: topicFrame(topic), body: b}:
		p.published.Add(1)
		return nil
	default:
		p.dropped.Add(1)
		return ErrOverloaded
	}
}

// Close stops publishing and closes every subscriber's connection; queued
// events are dropped. It is idempotent.
func (p *Publisher) Close() error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(p.done)
	p.wg.Wait() // the writer is gone before the socket closes
	p.cancel()
	return p.sock.Close()
}

// writeLoop is the socket's only writer; it also sends the heartbeats.
// zmq4's PUB Send only appends to zmq4's queue, so it does not block.
func (p *Publisher) writeLoop() {
	defer p.wg.Done()
	if p.opts.hold != nil {
		select {
		case <-p.opts.hold:
		case <-p.done:
			return
		}
	}
	var beat <-chan time.Time
	if p.opts.HeartbeatInterval > 0 {
		t := time.NewTicker(p.opts.HeartbeatInterval)
		defer t.Stop()
		beat = t.C
	}
	for {
		select {
		case m := <-p.q:
			_ = p.sock.SendMulti(zmq4.NewMsgFrom(m.topic, m.body))
		case <-beat:
			_ = p.sock.Send(zmq4.NewMsgString(heartbeatFrame))
		case <-p.done:
			return
		}
	}
}
