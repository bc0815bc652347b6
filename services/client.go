package services

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// ClientOptions configures a Client.
type ClientOptions struct {
	// Yellows are the ROUTER endpoints of every yellow to discover
	// services from.
	Yellows []string `yaml:"yellows"`
	// Heartbeat is the yellow heartbeat the watcher expects (default 1 s).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// DefaultTimeout is the deadline of a call whose context has none
	// (default 5 s).
	DefaultTimeout time.Duration `yaml:"default_timeout"`
	// ConnectWait bounds how long a call waits for a link to a listed
	// instance to come up when no link is up yet (the first call to a
	// service, or all instances restarting); default 1 s, never past the
	// call's deadline.
	ConnectWait time.Duration `yaml:"connect_wait"`
	// Peer configures the links to instances.
	Peer link.PeerOptions `yaml:"-"`
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Client defaults.
const (
	// DefaultConnectWait: a link on a LAN comes up in milliseconds; a
	// second covers a restarting instance without making a caller of a
	// dead service wait long.
	DefaultConnectWait = time.Second
)

// Client calls service methods point-to-point: the service is the method's
// prefix, the instance the least-loaded live one its Pool knows of. It is
// safe for concurrent use.
type Client struct {
	pool     *Pool
	ownsPool bool
	timeout  time.Duration
	connWait time.Duration
	log      *slog.Logger
}

// NewClient starts discovering services from opts.Yellows and returns at
// once; calls made before the first view arrives wait for it (at most
// ConnectWait, never past their deadline).
func NewClient(opts ClientOptions) *Client {
	c := NewClientPool(NewPool(PoolOptions{
		Yellows:   opts.Yellows,
		Heartbeat: opts.Heartbeat,
		Peer:      opts.Peer,
		Logger:    opts.Logger,
	}), opts)
	c.ownsPool = true
	return c
}

// NewClientPool returns a Client that calls through p, which the caller
// owns (Close leaves it open). Only the timeouts and Logger of opts are
// used.
func NewClientPool(p *Pool, opts ClientOptions) *Client {
	c := &Client{pool: p, timeout: opts.DefaultTimeout, connWait: opts.ConnectWait, log: opts.Logger}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.connWait <= 0 {
		c.connWait = DefaultConnectWait
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Pool returns the client's pool.
func (c *Client) Pool() *Pool { return c.pool }

// Close closes the client's links (and its pool, if NewClient made it).
func (c *Client) Close() {
	if c.ownsPool {
		c.pool.Close()
	}
}

// Call calls method ("<service>.<Method>") with req encoded as Thrift
// compact and decodes the reply into resp (which may be nil to ignore it).
// Called from a handler, it passes the handler's session on. Errors are
// *Error: the reply's error, or unavailable / timeout from the transport.
func (c *Client) Call(ctx context.Context, method string, req, resp thrift.TStruct) error {
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return wire.Errorf(wire.CodeBadRequest, "encoding %s request: %v", wire.Snippet(method), err)
	}
	var sess *platformpb.Session
	if s := SessionFromContext(ctx); s != nil {
		sess = s.Proto()
	}
	rep, err := c.CallRaw(ctx, method, sess, payload)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := thriftx.Unmarshal(rep.GetPayload(), resp); err != nil {
		return wire.Errorf(wire.CodeInternal, "decoding %s reply: %v", wire.Snippet(method), err)
	}
	return nil
}

// CallRaw sends payload to method on behalf of sess (nil: none) and returns
// the reply envelope. A reply carrying an error is returned together with
// that error as an *Error (so its bindings stay visible); a transport
// failure returns a nil envelope and an *Error (unavailable, timeout).
//
// The deadline is ctx's, or DefaultTimeout; CallRaw never waits past it. A
// request that certainly did not run (the link's queue was full, the link
// was down before sending, the instance answered "draining" or
// "overloaded") is retried once on another instance.
func (c *Client) CallRaw(ctx context.Context, method string, sess *platformpb.Session, payload []byte) (*platformpb.Envelope, error) {
	service, _, ok := strings.Cut(method, ".")
	if !ok || service == "" {
		return nil, wire.Errorf(wire.CodeUnknownMethod, "%q is not <service>.<Method>", wire.Snippet(method))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req := &platformpb.Envelope{Method: method, Session: sess, Payload: payload}
	var tried []string
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		peer, inst, err := c.pool.PickWait(ctx, service, c.connWait, tried...)
		if err != nil {
			if lastErr != nil {
				return nil, wire.AsError(lastErr) // the first failure says more
			}
			return nil, err
		}
		tried = append(tried, inst.GetId())
		rep, err := peer.Call(ctx, req)
		if err != nil {
			lastErr = wire.Errorf(wire.CodeOf(err), "%s on %s: %v", wire.Snippet(method), inst.GetId(), err)
			if NotSent(err) && ctx.Err() == nil {
				c.log.Debug("services: not sent, retrying elsewhere", "method", method, "instance", inst.GetId(), "err", err)
				continue
			}
			return nil, lastErr
		}
		rerr := wire.FromEnvelope(rep)
		if rerr == nil {
			return rep, nil
		}
		if wire.NotRun(rep) && ctx.Err() == nil {
			if rep.GetErrorCode() == wire.CodeUnavailable {
				c.pool.MarkDraining(inst.GetId())
			}
			c.log.Debug("services: not run, retrying elsewhere", "method", method, "instance", inst.GetId(), "err", rerr)
			lastErr = rerr
			continue
		}
		return rep, rerr
	}
	return nil, wire.AsError(lastErr)
}

// NotSent reports whether a transport error means the request never left,
// so that it is safe to try another instance: the link's queue was full, it
// was not connected, or the pool had just closed it (the pool closes a link
// only once no call waits on it, so a closed link means this call found it
// closed).
func NotSent(err error) bool {
	return errors.Is(err, link.ErrOverloaded) || errors.Is(err, link.ErrClosed) || errors.Is(err, link.ErrNotConnected)
}
