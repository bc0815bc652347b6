package services

import (
	"context"
	"log/slog"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/router"
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
	// Peer configures the links to instances (and with Peer.TLS, to
	// yellow too: see router.PoolOptions).
	Peer link.PeerOptions `yaml:"-"`
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger `yaml:"-"`
}

// Client calls service methods point-to-point through the one client-side
// router (package router): a stateless method goes to the least-loaded
// live instance of its service; CallTo targets a stateful key (following
// "moved" and waiting out a dead owner's lease) or one instance. It is safe
// for concurrent use.
type Client struct {
	router   *router.Router
	ownsPool bool
	timeout  time.Duration
}

// Target is where a call goes (router.Target): a service's least-loaded
// instance, the owner of a stateful key (Stateful, Key, Value: the room
// service's owner of room = <id>), or one instance. Services name it here,
// as they do not import router.
type Target = router.Target

// NewClient starts discovering services from opts.Yellows and returns at
// once; calls made before the first view arrives wait for it (at most
// ConnectWait, never past their deadline).
func NewClient(opts ClientOptions) *Client {
	c := NewClientPool(router.NewPool(router.PoolOptions{
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
func NewClientPool(p *router.Pool, opts ClientOptions) *Client {
	c := &Client{timeout: opts.DefaultTimeout}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	c.router = router.New(p, router.Options{ConnectWait: opts.ConnectWait, MaxHops: router.DefaultMaxHops, Logger: opts.Logger})
	return c
}

// Pool returns the client's pool.
func (c *Client) Pool() *router.Pool { return c.router.Pool() }

// Close closes the client's links (and its pool, if NewClient made it).
func (c *Client) Close() {
	if c.ownsPool {
		c.router.Pool().Close()
	}
}

// Call calls method ("<service>.<Method>") with req encoded as Thrift
// compact and decodes the reply into resp (which may be nil to ignore it):
// a wire.CallFunc, so generated client stubs call through it. Called from
// a handler, it passes the handler's session on; over TLS the callee drops
// it (a service calling a service is that service, never a user). Errors are *wire.Error:
// the reply's error, or unavailable / timeout from the transport.
func (c *Client) Call(ctx context.Context, method string, req, resp thrift.TStruct) error {
	return c.CallTo(ctx, router.Target{Service: wire.ServiceOf(method)}, method, req, resp)
}

// CallTo is Call to an explicit target: a stateful key (Target{Service:
// "room", Stateful: true, Key: "room", Value: id}) goes to the key's owner,
// following "moved"; Target.Instance goes to one instance.
func (c *Client) CallTo(ctx context.Context, t router.Target, method string, req, resp thrift.TStruct) error {
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return wire.Errorf(wire.CodeBadRequest, "encoding %s request: %v", wire.Snippet(method), err)
	}
	var sess *platformpb.Session
	if s := SessionFromContext(ctx); s != nil {
		sess = s.Proto()
	}
	rep, err := c.CallRaw(ctx, t, method, sess, payload)
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

// CallRaw sends payload to method at t on behalf of sess (nil: none) and
// returns the reply envelope. A reply carrying an error is returned
// together with that error as an *wire.Error (so its bindings stay
// visible); a transport failure returns a nil envelope and an *wire.Error
// (unavailable, timeout). An empty t.Service is the method's service.
//
// The deadline is ctx's, or DefaultTimeout; CallRaw never waits past it. A
// request that certainly did not run is retried once on another instance
// (see router.Router.Call).
func (c *Client) CallRaw(ctx context.Context, t router.Target, method string, sess *platformpb.Session, payload []byte) (*platformpb.Envelope, error) {
	if t.Service == "" {
		t.Service = wire.ServiceOf(method)
	}
	if t.Service == "" {
		return nil, wire.Errorf(wire.CodeUnknownMethod, "%q is not <service>.<Method>", wire.Snippet(method))
	}
	timeout := c.timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl).Round(time.Millisecond)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	rep, err := c.router.Call(ctx, router.Request{
		Target:  t,
		Env:     &platformpb.Envelope{Method: method, Session: sess, Payload: payload},
		Timeout: timeout,
	})
	if err != nil {
		return nil, err
	}
	if rerr := wire.FromEnvelope(rep); rerr != nil {
		return rep, rerr
	}
	return rep, nil
}
