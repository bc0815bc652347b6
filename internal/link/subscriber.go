package link

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zeromq/zmq4"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
)

// SubOptions configures a Subscriber. Zero values take the defaults in limits.go.
type SubOptions struct {
	// IdentityPrefix starts the identity of each SUB socket (default "noon-sub-").
	IdentityPrefix string
	// DeadAfter reconnects when nothing, not even the publisher's heartbeat,
	// arrived for this long (default 3 x DefaultPubHeartbeat = 3 s; negative:
	// never, for publishers that send no heartbeats).
	DeadAfter time.Duration
	// BackoffMin and BackoffMax bound the redial delay (defaults 50 ms, 2 s).
	BackoffMin, BackoffMax time.Duration
	// DialTimeout bounds a TCP connect (default 1 s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds the TLS and ZMTP handshake (default 2 s).
	HandshakeTimeout time.Duration
	// SendTimeout bounds the write of one subscription (default 1 s).
	SendTimeout time.Duration
	// MaxMessage bounds an Event (default 4 MiB).
	MaxMessage int
	// TLS, when set, runs mutual TLS 1.3 with the credentials' certificate
	// (the publisher admits it by its role) and accepts only a publisher
	// whose certificate the same CA issued. Nil: plain ZMTP.
	TLS *pki.Credentials
	// ExpectIdentity, with TLS, is who the publisher must be (see
	// PeerOptions.ExpectIdentity).
	ExpectIdentity pki.Identity
	// Logger receives the Subscriber's logs (default slog.Default()).
	Logger *slog.Logger
	// OnUp, when set, is called (on the Subscriber's goroutine; it must not
	// block) each time a socket is connected with its subscriptions sent:
	// Alive turned true. A follower of many publishers uses it to wake
	// those waiting for a feed, instead of polling Alive.
	OnUp func()

	sockBuf int // tests: small socket buffers
}

func (o SubOptions) withDefaults() SubOptions {
	if o.IdentityPrefix == "" {
		o.IdentityPrefix = "noon-sub-"
	}
	if len(o.IdentityPrefix) > maxIdentityPrefix {
		o.IdentityPrefix = o.IdentityPrefix[:maxIdentityPrefix]
	}
	switch {
	case o.DeadAfter == 0:
		o.DeadAfter = DefaultDeadIntervals * DefaultPubHeartbeat
	case o.DeadAfter < 0:
		o.DeadAfter = 0
	}
	o.BackoffMin = orDefault(o.BackoffMin, DefaultBackoffMin)
	o.BackoffMax = max(orDefault(o.BackoffMax, DefaultBackoffMax), o.BackoffMin)
	o.DialTimeout = orDefault(o.DialTimeout, DefaultDialTimeout)
	o.HandshakeTimeout = orDefault(o.HandshakeTimeout, DefaultHandshakeTimeout)
	o.SendTimeout = orDefault(o.SendTimeout, DefaultSendTimeout)
	o.MaxMessage = orDefault(o.MaxMessage, DefaultMaxMessage)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// SubStats is a snapshot of a Subscriber's counters.
type SubStats struct {
	Delivered   uint64 // events handed to deliver
	Filtered    uint64 // events for a topic no longer subscribed, dropped
	BadMessages uint64 // frames that were not a valid event, dropped
	Panics      uint64 // deliver calls that panicked
	Connects    uint64 // sockets connected
	DialErrors  uint64 // failed dials
	Deaths      uint64 // connections lost (error, silence, Reconnect)
	Guard       GuardStats
}

type subCounters struct {
	delivered, filtered, bad, panics, connects, dialErrors, deaths atomic.Uint64
}

// Subscriber receives the events of one remote PUB endpoint (one SUB socket
// per endpoint). It connects in the background, redials with backoff and a
// new socket when the connection fails, goes silent for DeadAfter, or
// Reconnect is called, and re-applies its subscriptions on every new socket.
type Subscriber struct {
	endpoint string
	zep      string
	epErr    error
	opts     SubOptions
	log      *slog.Logger
	gcfg     *guardConfig
	gstats   guardStats
	deliver  func(topic string, ev *platformpb.Event)

	mu     sync.RWMutex   // guards topics and dirty
	topics map[string]int // subscription refcounts
	// dirty are the topics whose first reference was added or last one
	// dropped since the socket last applied them: a change costs the
	// socket's goroutine O(1), not a pass over every topic (a broker
	// follows a topic per bound connection).
	dirty map[string]struct{}
	// changes counts the subscription changes made, written those the
	// socket has written; waiters wait in Synced for a count to be written.
	changes, written uint64
	waiters          []syncWaiter

	notify    chan struct{} // subscriptions changed
	reconnect chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	closed    atomic.Bool
	wg        sync.WaitGroup
	alive     atomic.Bool
	lastRecv  atomic.Int64
	stats     subCounters
}

// NewSubscriber returns a Subscriber of the PUB socket at endpoint
// ("tcp://host:port"). It does not block. deliver is called for each event of
// a subscribed topic, in order, from one goroutine at a time; it must not
// block for long (the publisher disconnects a subscriber that stops reading).
func NewSubscriber(endpoint string, opts SubOptions, deliver func(topic string, ev *platformpb.Event)) *Subscriber {
	opts = opts.withDefaults()
	s := &Subscriber{
		endpoint:  endpoint,
		opts:      opts,
		log:       opts.Logger.With("sub", endpoint),
		deliver:   deliver,
		topics:    make(map[string]int),
		dirty:     make(map[string]struct{}),
		notify:    make(chan struct{}, 1),
		reconnect: make(chan struct{}, 1),
	}
	s.zep, s.epErr = zmtpEndpoint(endpoint)
	s.gcfg = &guardConfig{
		maxMessage:   uint64(opts.MaxMessage) + frameOverhead,
		handshake:    opts.HandshakeTimeout,
		writeTimeout: opts.SendTimeout,
		sockBuf:      opts.sockBuf,
		stats:        &s.gstats,
		log:          s.log,
	}
	if opts.TLS != nil {
		s.gcfg.tls = opts.TLS.ClientConfig(opts.ExpectIdentity)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.run()
	return s
}

// Endpoint returns the PUB endpoint this Subscriber dials.
func (s *Subscriber) Endpoint() string { return s.endpoint }

// Alive reports whether the socket is connected and, if DeadAfter is set,
// something arrived within DeadAfter.
func (s *Subscriber) Alive() bool {
	if !s.alive.Load() {
		return false
	}
	return s.opts.DeadAfter == 0 || time.Since(time.Unix(0, s.lastRecv.Load())) < s.opts.DeadAfter
}

// Stats returns a snapshot of the Subscriber's counters.
func (s *Subscriber) Stats() SubStats {
	c := &s.stats
	return SubStats{
		Delivered: c.delivered.Load(), Filtered: c.filtered.Load(), BadMessages: c.bad.Load(), Panics: c.panics.Load(),
		Connects: c.connects.Load(), DialErrors: c.dialErrors.Load(), Deaths: c.deaths.Load(),
		Guard: s.gstats.snapshot(),
	}
}

// Subscribe adds a reference to topic; events of exactly that topic are
// delivered while it has any. The socket is updated in the background.
func (s *Subscriber) Subscribe(topic string) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	s.mu.Lock()
	s.topics[topic]++
	first := s.topics[topic] == 1
	if first {
		s.dirty[topic] = struct{}{}
		s.changes++
	}
	s.mu.Unlock()
	if first {
		s.kick(s.notify)
	}
	return nil
}

// Unsubscribe drops a reference to topic; when none is left, its events stop
// being delivered at once (the publisher stops sending them shortly after).
// Unsubscribing a topic with no reference does nothing.
func (s *Subscriber) Unsubscribe(topic string) error {
	if err := CheckTopic(topic); err != nil {
		return err
	}
	s.mu.Lock()
	n, ok := s.topics[topic]
	switch {
	case !ok:
	case n <= 1:
		delete(s.topics, topic)
		s.dirty[topic] = struct{}{}
		s.changes++
	default:
		s.topics[topic] = n - 1
	}
	s.mu.Unlock()
	if ok && n <= 1 {
		s.kick(s.notify)
	}
	return nil
}

// syncWaiter is a Synced caller waiting for the socket to have written
// the subscription changes up to gen.
type syncWaiter struct {
	gen uint64
	ch  chan struct{}
}

// closedChan is a closed channel: Synced's answer when there is nothing to
// wait for.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Synced returns a channel closed once every Subscribe and Unsubscribe made
// before the call has been written to the connected socket, so that the
// publisher hears of a subscription before anything the caller does next
// (zmq4 has no acknowledgement of a subscription: an event the publisher
// sends before it reads one is not delivered). It is closed at once when
// nothing is pending, and when the socket is down (subscriptions are
// written when it comes back) or goes down meanwhile.
func (s *Subscriber) Synced() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written >= s.changes || !s.alive.Load() {
		return closedChan
	}
	ch := make(chan struct{})
	s.waiters = append(s.waiters, syncWaiter{gen: s.changes, ch: ch})
	return ch
}

// markWritten records that the changes up to gen are written, and wakes
// their waiters; all of them with all.
func (s *Subscriber) markWritten(gen uint64, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = max(s.written, gen)
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if all || w.gen <= s.written {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

// Reconnect replaces the socket with a new one (new identity, subscriptions
// re-applied), e.g. when the caller learns that the publisher restarted.
func (s *Subscriber) Reconnect() { s.kick(s.reconnect) }

// Close closes the socket and stops redialling. It is idempotent.
func (s *Subscriber) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Subscriber) kick(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (s *Subscriber) subscribed(topic string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.topics[topic] > 0
}

// run owns the SUB sockets: it dials, applies subscriptions, watches for
// silence, and redials, until Close.
func (s *Subscriber) run() {
	defer s.wg.Done()
	if s.epErr != nil {
		s.log.Error("link: subscriber not started", "err", s.epErr)
		return
	}
	bo := backoff{min: s.opts.BackoffMin, max: s.opts.BackoffMax}
	for {
		sock, err := s.dial()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.stats.dialErrors.Add(1)
			d := bo.next()
			s.log.Debug("link: dial failed", "err", err, "retry_in", d)
			if !s.sleep(d) {
				return
			}
			continue
		}
		s.stats.connects.Add(1)
		heard, cause := s.serve(sock)
		s.alive.Store(false)
		s.markWritten(0, true) // nobody waits on a socket that is gone
		if s.ctx.Err() != nil {
			return
		}
		s.stats.deaths.Add(1)
		if heard {
			bo.reset()
		}
		d := bo.next()
		s.log.Warn("link: subscription link down, redialling", "cause", cause, "retry_in", d)
		if !s.sleep(d) {
			return
		}
	}
}

func (s *Subscriber) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.ctx.Done():
		return false
	}
}

func (s *Subscriber) dial() (zmq4.Socket, error) {
	sock := zmq4.NewSub(withGuard(s.ctx, s.gcfg),
		zmq4.WithID(zmq4.SocketIdentity(newIdentity(s.opts.IdentityPrefix))),
		zmq4.WithDialerTimeout(s.opts.DialTimeout),
		zmq4.WithDialerMaxRetries(0),
		zmq4.WithTimeout(s.opts.SendTimeout),
		zmq4.WithLogger(zmqLogger(s.log)),
	)
	if err := sock.Dial(s.zep); err != nil {
		_ = sock.Close()
		return nil, err
	}
	return sock, nil
}

// serve runs one connected socket until it fails, goes silent, is replaced
// or the Subscriber closes; it closes the socket and reports whether anything
// was received on it, and why it ended.
func (s *Subscriber) serve(sock zmq4.Socket) (heard bool, cause error) {
	var got atomic.Bool
	readErr := make(chan error, 1)
	s.lastRecv.Store(time.Now().UnixNano())
	go s.readLoop(sock, &got, readErr)
	defer func() {
		_ = sock.Close()
		if !errors.Is(cause, errReaderDone) {
			<-readErr // the reader ends once the socket is closed
		}
		heard = got.Load()
	}()

	applied := make(map[string]bool)
	if s.opts.DeadAfter > 0 {
		if err := sock.SetOption(zmq4.OptionSubscribe, heartbeatFrame); err != nil {
			return false, err
		}
	}
	if err := s.apply(sock, applied, true); err != nil {
		return false, err
	}
	s.alive.Store(true)
	if s.opts.OnUp != nil {
		s.opts.OnUp()
	}

	var silence <-chan time.Time
	if s.opts.DeadAfter > 0 {
		t := time.NewTicker(max(s.opts.DeadAfter/4, time.Millisecond))
		defer t.Stop()
		silence = t.C
	}
	for {
		select {
		case <-s.ctx.Done():
			return false, ErrClosed
		case <-s.notify:
			if err := s.apply(sock, applied, false); err != nil {
				return false, err
			}
		case <-s.reconnect:
			return false, fmt.Errorf("reconnect requested")
		case err := <-readErr:
			return false, fmt.Errorf("%w: %w", errReaderDone, err)
		case <-silence:
			if quiet := time.Since(time.Unix(0, s.lastRecv.Load())); quiet >= s.opts.DeadAfter {
				return false, fmt.Errorf("no message for %v", quiet.Round(time.Millisecond))
			}
		}
	}
}

// errReaderDone marks a serve that ended because its reader did.
var errReaderDone = errors.New("receive failed")

// apply brings the socket's subscriptions in line with s.topics: all of
// them on a new socket (full), else the dirty ones. Only the owning
// goroutine calls it.
func (s *Subscriber) apply(sock zmq4.Socket, applied map[string]bool, full bool) error {
	var add, del []string
	s.mu.Lock()
	gen := s.changes
	if full {
		for t := range s.topics {
			if !applied[t] {
				add = append(add, t)
			}
		}
		for t := range applied {
			if s.topics[t] == 0 {
				del = append(del, t)
			}
		}
	} else {
		for t := range s.dirty {
			switch want := s.topics[t] > 0; {
			case want && !applied[t]:
				add = append(add, t)
			case !want && applied[t]:
				del = append(del, t)
			}
		}
	}
	clear(s.dirty)
	s.mu.Unlock()
	for _, t := range add {
		if err := sock.SetOption(zmq4.OptionSubscribe, string(topicFrame(t))); err != nil {
			return fmt.Errorf("subscribe %q: %w", t, err)
		}
		applied[t] = true
	}
	for _, t := range del {
		if err := sock.SetOption(zmq4.OptionUnsubscribe, string(topicFrame(t))); err != nil {
			return fmt.Errorf("unsubscribe %q: %w", t, err)
		}
		delete(applied, t)
	}
	// zmq4's SetOption returns once the message is written to every
	// connection of the socket.
	s.markWritten(gen, false)
	return nil
}

// readLoop is the socket's only reader. It filters exactly on the topic
// (the publisher filters by prefix, and a subscription may have just been
// dropped) and delivers.
func (s *Subscriber) readLoop(sock zmq4.Socket, got *atomic.Bool, done chan<- error) {
	for {
		msg, err := sock.Recv()
		if err != nil {
			done <- err
			return
		}
		s.lastRecv.Store(time.Now().UnixNano())
		got.Store(true)
		if msg.Type == zmq4.CmdMsg {
			continue
		}
		if len(msg.Frames) == 1 && string(msg.Frames[0]) == heartbeatFrame {
			continue
		}
		if len(msg.Frames) != 2 || len(msg.Frames[0]) < 2 || msg.Frames[0][len(msg.Frames[0])-1] != 0 {
			s.stats.bad.Add(1)
			continue
		}
		topic := string(msg.Frames[0][:len(msg.Frames[0])-1])
		if !s.subscribed(topic) {
			s.stats.filtered.Add(1)
			continue
		}
		ev, err := decodeEvent(msg.Frames[1], s.opts.MaxMessage)
		if err != nil {
			s.stats.bad.Add(1)
			s.log.Debug("link: bad event", "topic", topic, "err", err)
			continue
		}
		s.stats.delivered.Add(1)
		s.safeDeliver(topic, ev)
	}
}

// safeDeliver calls deliver; a panic is logged with its stack and counted,
// and the subscription goes on.
func (s *Subscriber) safeDeliver(topic string, ev *platformpb.Event) {
	defer func() {
		if v := recover(); v != nil {
			s.stats.panics.Add(1)
			s.log.Error("link: deliver panicked", "topic", topic, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	s.deliver(topic, ev)
}
