package yellow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/wire"
)

// publishQueueLen bounds the deltas waiting for the PUB socket: a whole
// default table's worth (every instance re-registering after a restart).
// A delta that does not fit is dropped and counted; consumers notice the
// gap by the next delta or tick and re-sync from a snapshot.
const publishQueueLen = DefaultMaxInstances

// pubFailLimit is how many publishes in a row may fail before Health
// reports the PUB socket as broken: one failure is a blip.
const pubFailLimit = 3

var _ daemon.Daemon = (*Yellow)(nil)

// Yellow is the presence server: a ROUTER that answers register,
// heartbeat, deregister, query and snapshot requests, and a PUB socket that
// publishes every change as a numbered delta.
type Yellow struct {
	opts Options
	log  *slog.Logger
	reg  *Registry
	h    *handler
	c    counters

	srv   server
	pub   publisher
	queue chan *platformpb.Delta

	pubFails atomic.Int32
	lastPub  atomic.Pointer[error]

	exiting atomic.Bool
	quit    chan struct{}

	grMu      sync.Mutex // guards grRunning and wg.Add
	grRunning bool
	wg        sync.WaitGroup
	started   atomic.Bool
}

// server is the ROUTER side of the link layer, as yellow uses it.
type server interface {
	Endpoint() string
	Close() error
}

// publisher is the PUB side of the link layer, as yellow uses it.
type publisher interface {
	Endpoint() string
	Publish(topic string, ev *platformpb.Event) error
	Close() error
}

// New validates opts, binds the ROUTER and the PUB socket (port 0 picks a
// free port; RouterEndpoint and PubEndpoint give the real ones) and starts
// answering requests at once. Main runs the publisher, ticks and expiry.
func New(opts Options, log *slog.Logger) (*Yellow, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return newYellow(linkTransport{log: log, heartbeat: opts.tick(), tls: opts.TLS}, opts, log)
}

func newYellow(tr serverTransport, opts Options, log *slog.Logger) (*Yellow, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := opts.checkTLS(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	epoch := hex.EncodeToString(b[:])
	y := &Yellow{
		opts:      opts,
		log:       log.With("component", "yellow", "epoch", epoch),
		queue:     make(chan *platformpb.Delta, publishQueueLen),
		quit:      make(chan struct{}),
		grRunning: true,
	}
	y.reg = NewRegistry(RegistryConfig{
		Epoch:          epoch,
		TTL:            opts.Heartbeat * time.Duration(opts.ExpireAfter),
		MaxInstances:   opts.MaxInstances,
		MaxPerOwner:    opts.MaxPerIdentity,
		MaxRecordBytes: opts.MaxRecordBytes,
	}, y.enqueue)

	pub, err := tr.publish(opts.PubAddr)
	if err != nil {
		return nil, fmt.Errorf("yellow: pub_addr %s: %w", opts.PubAddr, err)
	}
	y.pub = pub
	y.h = &handler{
		reg:         y.reg,
		log:         y.log,
		heartbeatMS: uint32(opts.Heartbeat / time.Millisecond),
		maxReq:      opts.MaxRecordBytes + requestOverhead,
		pub:         pub.Endpoint(),
		now:         time.Now,
		c:           &y.c,
	}
	// A snapshot of a full table must fit in one reply.
	maxMessage := opts.MaxInstances*(opts.MaxRecordBytes+8) + requestOverhead
	srv, err := tr.listen(opts.RouterAddr, maxMessage, y.handle)
	if err != nil {
		_ = pub.Close()
		return nil, fmt.Errorf("yellow: router_addr %s: %w", opts.RouterAddr, err)
	}
	y.srv = srv
	y.log.Info("yellow: listening", "router", srv.Endpoint(), "pub", pub.Endpoint(),
		"heartbeat", opts.Heartbeat, "expire_after", opts.ExpireAfter)
	return y, nil
}

// RouterEndpoint returns the real endpoint of the ROUTER.
func (y *Yellow) RouterEndpoint() string { return y.srv.Endpoint() }

// PubEndpoint returns the real endpoint of the PUB socket.
func (y *Yellow) PubEndpoint() string { return y.pub.Endpoint() }

// Epoch returns this run's epoch.
func (y *Yellow) Epoch() string { return y.reg.Epoch() }

// Registry returns the registry, for in-process inspection.
func (y *Yellow) Registry() *Registry { return y.reg }

// Main publishes deltas and ticks and expires records until Exit, then
// returns nil; it returns an error only if called twice. An Exit that
// comes first (a signal at start-up, before the goroutine running Main was
// scheduled) also makes Main return nil at once: a daemon stopped on
// request did not fail, whichever of the two ran first.
func (y *Yellow) Main() error {
	if !y.started.CompareAndSwap(false, true) {
		return errors.New("yellow: Main called twice")
	}
	// startGoroutine refuses once Exit has begun; Exit then closes quit.
	if y.startGoroutine(y.publishLoop) {
		y.startGoroutine(y.timerLoop)
	}
	<-y.quit
	return nil
}

// Exit closes the sockets, stops Main and waits for its goroutines. It is
// idempotent.
func (y *Yellow) Exit() {
	if !y.exiting.CompareAndSwap(false, true) {
		return
	}
	_ = y.srv.Close()
	_ = y.pub.Close()
	y.grMu.Lock()
	y.grRunning = false
	y.grMu.Unlock()
	close(y.quit)
	y.wg.Wait()
	y.log.Info("yellow: stopped")
}

// Drain is Exit: yellow holds no work to hand over (providers re-register
// with the yellows left, or with this one when it comes back). It returns
// nil.
func (y *Yellow) Drain(context.Context) error {
	y.Exit()
	return nil
}

// Health returns nil while yellow serves and publishes, ErrClosed after
// Exit, and an error before Main runs or when the PUB socket keeps failing.
func (y *Yellow) Health() error {
	if y.exiting.Load() {
		return ErrClosed
	}
	if !y.started.Load() {
		return errors.New("yellow: Main not running: deltas are not published")
	}
	if y.pubFails.Load() >= pubFailLimit {
		if p := y.lastPub.Load(); p != nil {
			return fmt.Errorf("yellow: publishing deltas: %w", *p)
		}
	}
	return nil
}

// Stats returns yellow's counters.
func (y *Yellow) Stats() Stats {
	return Stats{
		Instances:         y.reg.Len(),
		Seq:               y.reg.Seq(),
		Epoch:             y.reg.Epoch(),
		Requests:          y.c.requests.Load(),
		BadRequests:       y.c.badRequests.Load(),
		Registers:         y.c.registers.Load(),
		Heartbeats:        y.c.heartbeats.Load(),
		UnknownHeartbeats: y.c.unknownHeartbeats.Load(),
		Deregisters:       y.c.deregisters.Load(),
		Queries:           y.c.queries.Load(),
		Snapshots:         y.c.snaps.Load(),
		Rejected:          y.c.rejected.Load(),
		NotOwner:          y.c.notOwner.Load(),
		Expired:           y.c.expired.Load(),
		Published:         y.c.published.Load(),
		Dropped:           y.c.dropped.Load(),
	}
}

// startGoroutine runs f on a new goroutine counted by wg, unless Exit has
// begun.
func (y *Yellow) startGoroutine(f func()) bool {
	y.grMu.Lock()
	defer y.grMu.Unlock()
	if !y.grRunning {
		return false
	}
	y.wg.Add(1)
	go func() {
		defer y.wg.Done()
		f()
	}()
	return true
}

// handle is the link Handler: one request in, one reply out. A panic
// becomes an internal error reply, with the stack logged.
func (y *Yellow) handle(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	defer func() {
		if p := recover(); p != nil {
			y.log.Error("yellow: panic serving request", "method", wire.Snippet(req.GetMethod()), "panic", p, "stack", string(debug.Stack()))
			reply(&platformpb.Envelope{
				Kind: platformpb.Kind_KIND_REPLY, RequestId: req.GetRequestId(), Method: req.GetMethod(),
				ErrorCode: wire.CodeInternal, ErrorMessage: "internal error",
			})
		}
	}()
	reply(y.h.serve(req, callerOf(ctx)))
}

// callerOf returns the identity of the connection a request came from, ""
// on a plain link.
func callerOf(ctx context.Context) string {
	if id, ok := link.CallerFrom(ctx); ok {
		return id.String()
	}
	return ""
}

// enqueue is the registry's emit: it runs under the registry's lock, so
// deltas enter the queue in seq order; it never blocks.
func (y *Yellow) enqueue(d *platformpb.Delta) {
	select {
	case y.queue <- d:
	default:
		y.c.dropped.Add(1)
	}
}

// publishLoop publishes queued deltas in order.
func (y *Yellow) publishLoop() {
	for {
		select {
		case <-y.quit:
			return
		case d := <-y.queue:
			y.publish(d)
		}
	}
}

func (y *Yellow) publish(d *platformpb.Delta) {
	payload, err := proto.Marshal(d)
	if err == nil {
		ev := &platformpb.Event{
			Topic:        TopicDelta,
			Type:         EventTypeDelta,
			Payload:      payload,
			Seq:          d.GetSeq(),
			TimeUnixNano: time.Now().UnixNano(),
		}
		err = y.pub.Publish(TopicDelta, ev)
	}
	if err != nil {
		y.c.dropped.Add(1)
		if y.pubFails.Add(1) == 1 {
			y.log.Warn("yellow: publishing a delta failed", "seq", d.GetSeq(), "err", err)
		}
		y.lastPub.Store(&err)
		return
	}
	y.pubFails.Store(0)
	y.c.published.Add(1)
}

// timerLoop publishes a TICK every TickInterval and expires records whose
// beats stopped, checking twice per heartbeat.
func (y *Yellow) timerLoop() {
	tick := time.NewTicker(y.opts.tick())
	defer tick.Stop()
	expire := time.NewTicker(y.opts.Heartbeat / 2)
	defer expire.Stop()
	for {
		select {
		case <-y.quit:
			return
		case <-tick.C:
			y.reg.Tick()
		case now := <-expire.C:
			for _, d := range y.reg.Expire(now) {
				y.c.expired.Add(1)
				y.log.Info("yellow: instance expired", "service", d.GetInstance().GetService(),
					"instance", d.GetInstance().GetId(), "seq", d.GetSeq())
			}
		}
	}
}
