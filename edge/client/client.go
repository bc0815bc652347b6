// Package client is the Go client of noon's edge: it connects to a broker
// over TCP (pandaparty frames, optionally TLS) or WebSocket, says hello,
// calls methods and receives pushes. Tests, noonbench and Go game clients
// use it.
//
// A Client pipelines: any number of goroutines may Call at once on one
// connection. pandaparty frames carry no request id, so replies are matched
// to requests in FIFO order; the broker answers each connection's requests
// in the order it received them. One goroutine writes requests (batching
// them while more are queued) and one reads replies and pushes.
//
// Typical use:
//
//	list, err := client.FetchBrokerList(ctx, "http://lobby.example.com:1050/brokerlist")
//	addr, err := client.PickBroker(list)
//	c, err := client.Dial(ctx, addr, client.DefaultOptions())
//	defer c.Close()
//	logins := loginrpc.NewClient(c.CallThrift) // generated from idl/login.thrift
//	reply, err := logins.Login(ctx, &loginpb.LoginRequest{...})
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/coder/websocket"

	"github.com/noonhq/noon/edge/frame"
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/idl/gen/edge/edgerpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// The edge's own method and protocol version (see package edge).
const ()

// Defaults of Options.
const (
	// DefaultDialTimeout bounds connecting and the hello, 10 s.
	DefaultDialTimeout = 10 * time.Second
	// DefaultPushQueue is how many pushes wait in Pushes() before the
	// oldest is dropped, 256: the same as the broker's per-connection push
	// queue, so a client that keeps up with the broker keeps up here.
	DefaultPushQueue = 256
)

// ErrClosed is returned by calls on a Client that was closed with Close.
var ErrClosed = errors.New("client: closed")

// ErrNoBrokers is returned by PickBroker for an empty broker list.
var ErrNoBrokers = errors.New("client: no brokers in the list")

// Options configures a Client. Start from DefaultOptions: the zero value is
// a plain pandaparty client (no hello, no pushes).
type Options struct {
	// MaxFrame is the largest frame accepted from the broker and the
	// largest request sent. 0 means frame.DefaultMaxFrame (1 MiB).
	MaxFrame int
	// Push asks the broker for pushes in the hello.
	Push bool
	// ResumeToken, if set, resumes an existing session in the hello.
	ResumeToken string
	// ClientName is sent in the hello, for the broker's logs.
	ClientName string
	// DialTimeout bounds connecting and the hello; 0 means none beyond
	// Dial's ctx.
	DialTimeout time.Duration
	// Hello sends edge.Hello on connect (always, if Push or ResumeToken is
	// set); the reply is then in HelloReply.
	Hello bool
	// TLS, if set, connects over TLS (for TCP; a wss:// URL always uses
	// TLS, with this config if set).
	TLS *tls.Config
	// PushQueue is the capacity of Pushes(). When it is full the oldest
	// push is dropped and counted in DroppedPushes. 0 means
	// DefaultPushQueue.
	PushQueue int
}

// DefaultOptions returns the default options: hello on, pushes off.
func DefaultOptions() Options {
	return Options{
		MaxFrame:    frame.DefaultMaxFrame,
		DialTimeout: DefaultDialTimeout,
		Hello:       true,
		PushQueue:   DefaultPushQueue,
	}
}

// Push is a server-initiated event.
type Push struct {
	// Type is the event type without the "@" ("room.Event").
	Type string
	// Payload is the event, usually a Thrift compact struct.
	Payload []byte
}

// Client is a connection to a broker. Its methods are safe for concurrent
// use.
type Client struct {
	conn  carrier
	opts  Options
	lim   frame.Limits
	hello *edgeapi.HelloReply

	sendq   chan *request // unbuffered: a request handed over is the writer's
	pushes  chan Push
	dropped atomic.Uint64

	mu      sync.Mutex // guards the fields below
	pending []*request // sent, awaiting their reply, in order
	err     error      // why the client ended
	done    chan struct{}
}

// request is one Call.
type request struct {
	ctx     context.Context
	method  string
	payload []byte
	done    chan struct{}
	resp    []byte
	err     error
}

// carrier is a transport: TCP frames or WebSocket messages.
type carrier interface {
	// writeRequest queues a request; flush sends what is queued.
	writeRequest(method string, payload []byte) error
	flush() error
	// readResponse returns the next response or push; the slices are valid
	// until the next call.
	readResponse() (first, payload []byte, err error)
	close()
}

// Dial connects to a broker: addr is "host:port" for TCP (TLS if opts.TLS
// is set) or a "ws://" or "wss://" URL for WebSocket. With opts.Hello (or
// Push, or ResumeToken) it sends edge.Hello before returning.
func Dial(ctx context.Context, addr string, opts Options) (*Client, error) {
	if opts.MaxFrame == 0 {
		opts.MaxFrame = frame.DefaultMaxFrame
	}
	if opts.PushQueue <= 0 {
		opts.PushQueue = DefaultPushQueue
	}
	lim := frame.Limits{MaxFrame: opts.MaxFrame}
	if err := lim.Validate(); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if opts.DialTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.DialTimeout)
		defer cancel()
	}
	var (
		w   carrier
		err error
	)
	if strings.HasPrefix(addr, "ws://") || strings.HasPrefix(addr, "wss://") {
		w, err = dialWS(ctx, addr, opts, lim)
	} else {
		w, err = dialTCP(ctx, strings.TrimPrefix(addr, "tcp://"), opts, lim)
	}
	if err != nil {
		return nil, err
	}
	c := &Client{
		conn:   w,
		opts:   opts,
		lim:    lim,
		sendq:  make(chan *request),
		pushes: make(chan Push, opts.PushQueue),
		done:   make(chan struct{}),
	}
	go c.writeLoop()
	go c.readLoop()
	if opts.Hello || opts.Push || opts.ResumeToken != "" {
		req := &edgeapi.HelloRequest{ProtocolVersion: wire.ProtocolVersion, Push: opts.Push}
		if opts.ResumeToken != "" {
			req.ResumeToken = &opts.ResumeToken
		}
		if opts.ClientName != "" {
			req.ClientName = &opts.ClientName
		}
		reply, err := c.Hello(ctx, req)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("client: hello to %s: %w", addr, err)
		}
		c.hello = reply
	}
	return c, nil
}

func dialTCP(ctx context.Context, addr string, opts Options, lim frame.Limits) (carrier, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", addr, err)
	}
	if opts.TLS != nil {
		cfg := opts.TLS.Clone()
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			host, _, _ := net.SplitHostPort(addr)
			cfg.ServerName = host
		}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = nc.Close()
			return nil, fmt.Errorf("client: tls handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	return &tcpWire{nc: nc, r: frame.NewReader(nc, lim), w: frame.NewWriter(nc, lim)}, nil
}

func dialWS(ctx context.Context, url string, opts Options, lim frame.Limits) (carrier, error) {
	var dopts websocket.DialOptions
	if opts.TLS != nil {
		dopts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: opts.TLS.Clone()}}
	}
	ws, _, err := websocket.Dial(ctx, url, &dopts)
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	ws.SetReadLimit(int64(lim.MaxFrame) + 4)
	return &wsWire{ws: ws, lim: lim}, nil
}

// HelloReply returns the broker's reply to the hello Dial sent, or nil.
func (c *Client) HelloReply() *edgeapi.HelloReply { return c.hello }

// Hello sends edge.Hello and returns the reply. Dial sends it already when
// Options.Hello is set; calling it again changes the push setting.
func (c *Client) Hello(ctx context.Context, req *edgeapi.HelloRequest) (*edgeapi.HelloReply, error) {
	return edgerpc.NewClient(c.CallThrift).Hello(ctx, req)
}

// CallThrift calls method with req encoded in Thrift compact and decodes the
// reply into resp (which may be nil to ignore it).
func (c *Client) CallThrift(ctx context.Context, method string, req, resp thrift.TStruct) error {
	payload, err := thriftx.Marshal(req)
	if err != nil {
		return fmt.Errorf("client: encoding %s request: %w", method, err)
	}
	out, err := c.Call(ctx, method, payload)
	if err != nil {
		return err
	}
	if resp == nil {
		return nil
	}
	if err := thriftx.Unmarshal(out, resp); err != nil {
		return fmt.Errorf("client: decoding %s reply: %w", method, err)
	}
	return nil
}

// Call sends a request and waits for its reply. An error reply is an
// *Error. If ctx ends first Call returns ctx.Err(), but the request keeps
// its place in line: its reply, when it comes, is dropped, and later replies
// still go to their callers. If the connection fails, Call returns the
// error that ended it (ErrClosed after Close).
func (c *Client) Call(ctx context.Context, method string, payload []byte) ([]byte, error) {
	if len(method) > frame.DefaultMaxMethod {
		return nil, fmt.Errorf("client: method name of %d bytes is over the limit of %d", len(method), frame.DefaultMaxMethod)
	}
	if n := frame.MinFrame + len(method) + len(payload); n > c.lim.MaxFrame {
		return nil, fmt.Errorf("client: %s request of %d bytes is over the maximum frame of %d bytes", method, n, c.lim.MaxFrame)
	}
	r := &request{ctx: ctx, method: method, payload: payload, done: make(chan struct{})}
	select {
	case c.sendq <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.Err()
	}
	select {
	case <-r.done:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Pushes returns the channel of pushes (only sent if Options.Push asked for
// them). It holds Options.PushQueue pushes; when it is full, the oldest is
// dropped to make room (see DroppedPushes), so a slow consumer loses old
// events rather than stalling replies. It is closed when the client ends.
func (c *Client) Pushes() <-chan Push { return c.pushes }

// DroppedPushes returns how many pushes were dropped because Pushes() was
// full.
func (c *Client) DroppedPushes() uint64 { return c.dropped.Load() }

// Close closes the connection. Calls waiting for a reply return ErrClosed.
func (c *Client) Close() error {
	c.fail(ErrClosed)
	return nil
}

// Done is closed when the client has ended: closed, or the connection lost.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the client ended (ErrClosed after Close), or nil while it
// runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the client with err (the first error wins) and fails every call
// waiting for a reply.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	close(c.done)
	c.mu.Unlock()
	c.conn.close()
	for _, r := range pending {
		r.err = err
		close(r.done)
	}
}

// writeLoop sends requests in the order it takes them, adding each to the
// pending line first, and flushes when no more are waiting.
func (c *Client) writeLoop() {
	for {
		var r *request
		select {
		case r = <-c.sendq:
		case <-c.done:
			return
		}
		for r != nil {
			if r.ctx.Err() == nil && c.add(r) {
				if err := c.conn.writeRequest(r.method, r.payload); err != nil {
					c.fail(fmt.Errorf("client: write: %w", err))
					return
				}
			}
			select {
			case r = <-c.sendq:
			default:
				r = nil
			}
		}
		if err := c.conn.flush(); err != nil {
			c.fail(fmt.Errorf("client: write: %w", err))
			return
		}
	}
}

// add puts r in the pending line, or fails it if the client has ended.
func (c *Client) add(r *request) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		r.err = c.err
		close(r.done)
		return false
	}
	c.pending = append(c.pending, r)
	return true
}

// readLoop reads replies and pushes until the connection ends.
func (c *Client) readLoop() {
	defer close(c.pushes)
	for {
		first, payload, err := c.conn.readResponse()
		if err != nil {
			c.fail(fmt.Errorf("client: connection lost: %w", err))
			return
		}
		if frame.IsPush(first) {
			c.deliver(Push{Type: string(first[1:]), Payload: clone(payload)})
			continue
		}
		c.mu.Lock()
		var r *request
		if len(c.pending) > 0 {
			r = c.pending[0]
			c.pending[0] = nil
			c.pending = c.pending[1:]
			if len(c.pending) == 0 {
				c.pending = c.pending[:0:0] // let the backing array go
			}
		}
		c.mu.Unlock()
		if r == nil {
			c.fail(errors.New("client: the broker sent a reply to no request"))
			return
		}
		if len(first) > 0 {
			r.err = wire.Parse(string(first))
		} else {
			r.resp = clone(payload)
		}
		close(r.done)
	}
}

// deliver queues a push, dropping the oldest if the queue is full. Only the
// reader sends on c.pushes, so after one is taken out the send succeeds.
func (c *Client) deliver(p Push) {
	for {
		select {
		case c.pushes <- p:
			return
		default:
		}
		select {
		case <-c.pushes:
			c.dropped.Add(1)
		default:
		}
	}
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// tcpWire speaks frames over a stream.
type tcpWire struct {
	nc net.Conn
	r  *frame.Reader
	w  *frame.Writer
}

func (t *tcpWire) writeRequest(method string, payload []byte) error {
	return t.w.WriteRequest(method, payload)
}
func (t *tcpWire) flush() error                          { return t.w.Flush() }
func (t *tcpWire) readResponse() ([]byte, []byte, error) { return t.r.ReadResponse() }
func (t *tcpWire) close()                                { _ = t.nc.Close() }

// wsWire sends one frame per WebSocket binary message.
type wsWire struct {
	ws  *websocket.Conn
	lim frame.Limits
	buf []byte // writer only
}

func (t *wsWire) writeRequest(method string, payload []byte) error {
	t.buf = frame.AppendRequest(t.buf[:0], method, payload)
	err := t.ws.Write(context.Background(), websocket.MessageBinary, t.buf)
	if cap(t.buf) > 64<<10 {
		t.buf = nil
	}
	return err
}

func (t *wsWire) flush() error { return nil }

func (t *wsWire) readResponse() ([]byte, []byte, error) {
	typ, msg, err := t.ws.Read(context.Background())
	if err != nil {
		return nil, nil, err
	}
	if typ != websocket.MessageBinary {
		return nil, nil, errors.New("client: the broker sent a text message")
	}
	return frame.DecodeResponseFrame(msg, t.lim)
}

func (t *wsWire) close() { _ = t.ws.CloseNow() }
