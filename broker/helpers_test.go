package broker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/wire"

	"github.com/apache/thrift/lib/go/thrift"
	"github.com/coder/websocket"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/frame"
	edgepb "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/yellow"
)

// testLogger and checkFor are the shared test helpers (internal/testenv).
var (
	testLogger = testenv.Logger
	checkFor   = testenv.CheckFor
)

// hb is the heartbeat of every test yellow, service, link and broker:
// short, so expiry and dead links take a fraction of a second, yet long
// enough (3 x hb of silence kills a link) to ride out -race on a busy
// 2-core machine.
const hb = 250 * time.Millisecond

// waitLong bounds every wait for something that should happen at once.
const waitLong = 10 * time.Second

// testYellow is a running yellow server.
type testYellow struct {
	*yellow.Yellow
	done chan error
	once sync.Once
}

// mustStartYellow starts a yellow on 127.0.0.1, port 0.
func mustStartYellow(t testing.TB) *testYellow {
	t.Helper()
	opts := yellow.NewOptions()
	opts.RouterAddr, opts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	opts.Heartbeat, opts.TickInterval = hb, hb
	y, err := yellow.New(opts, testLogger(t).With("yellow", ""))
	if err != nil {
		t.Fatalf("yellow.New: %v", err)
	}
	ty := &testYellow{Yellow: y, done: make(chan error, 1)}
	go func() { ty.done <- y.Main() }()
	t.Cleanup(ty.stop)
	return ty
}

func (y *testYellow) stop() {
	y.once.Do(func() {
		y.Exit()
		<-y.done
	})
}

// instance returns yellow's record of id in service, or nil.
func (y *testYellow) instance(service, id string) *platformpb.Instance {
	for _, inst := range y.Registry().Query(service) {
		if inst.GetId() == id {
			return inst
		}
	}
	return nil
}

// testServer is a running service instance.
type testServer struct {
	*services.Server
	done chan error
}

// newService creates (but does not start) an instance of handlers with test
// options, modified by mod.
func newService(t testing.TB, name string, handlers map[string]services.HandlerFunc, y *testYellow, mod func(*services.Options)) *services.Server {
	t.Helper()
	opts := services.NewOptions()
	opts.Name = name
	opts.Heartbeat = hb
	opts.DrainTimeout = 5 * time.Second
	opts.Yellows = []string{y.RouterEndpoint()}
	if mod != nil {
		mod(&opts)
	}
	s, err := services.NewServer(opts, handlers, testLogger(t).With("server", name))
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(s.Exit)
	return s
}

// start runs s and waits until yellow holds it.
func start(t testing.TB, s *services.Server, y *testYellow) *testServer {
	t.Helper()
	ts := &testServer{Server: s, done: make(chan error, 1)}
	go func() { ts.done <- s.Main() }()
	checkFor(t, waitLong, "instance registered with yellow", func() bool {
		return y.instance(s.Options().Name, s.InstanceID()) != nil
	})
	return ts
}

// mustStartService starts an instance of handlers registered with y.
func mustStartService(t testing.TB, name string, handlers map[string]services.HandlerFunc, y *testYellow, mod func(*services.Options)) *testServer {
	t.Helper()
	return start(t, newService(t, name, handlers, y, mod), y)
}

// mustStartEcho starts an echo instance with a test handler added:
// "echo.Stall" answers only after its deadline passed.
func mustStartEcho(t testing.TB, y *testYellow) *testServer {
	t.Helper()
	h := echo.Handlers()
	h["echo.Stall"] = func(ctx context.Context, _ *services.Session, _ []byte) ([]byte, error) {
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // answers after the deadline on purpose
		return []byte("late"), nil
	}
	return mustStartService(t, echo.Name, h, y, nil)
}

// stallTimeout is the route timeout of echo.Stall in testOptions.
const stallTimeout = 300 * time.Millisecond

// testOptions are broker options for tests: loopback, port 0, fast
// heartbeats, no rate limit, the default routes plus the test services'.
func testOptions(y *testYellow) broker.Options {
	opts := broker.NewOptions()
	opts.Edge.TCPAddr = "127.0.0.1:0"
	opts.Edge.WSAddr = "127.0.0.1:0"
	opts.Edge.Rate = 0
	opts.Yellows = []string{y.RouterEndpoint()}
	opts.Heartbeat = hb
	opts.DrainGrace = 300 * time.Millisecond
	opts.Routes = append(opts.Routes,
		broker.Route{Prefix: "echo.Stall", Service: "echo", Kind: broker.KindStateless, Public: true, Timeout: stallTimeout},
		broker.Route{Prefix: "kv.", Service: "kv", Kind: broker.KindStateful, Key: "kv", Public: true},
	)
	return opts
}

// testBroker is a running broker.
type testBroker struct {
	*broker.Broker
	reg  *metrics.Registry
	done chan error
}

// mustStartBroker starts a broker with testOptions(y) modified by mod, and
// waits until yellow lists it. t.Cleanup exits it.
func mustStartBroker(t testing.TB, y *testYellow, mod func(*broker.Options)) *testBroker {
	t.Helper()
	opts := testOptions(y)
	if mod != nil {
		mod(&opts)
	}
	reg := metrics.NewRegistry("broker")
	b, err := broker.New(opts, testLogger(t).With("broker", ""), reg)
	if err != nil {
		t.Fatalf("broker.New: %v", err)
	}
	tb := &testBroker{Broker: b, reg: reg, done: make(chan error, 1)}
	go func() { tb.done <- b.Main() }()
	t.Cleanup(b.Exit)
	checkFor(t, waitLong, "broker registered with yellow", func() bool {
		return y.instance(broker.ServiceName, b.ID()) != nil
	})
	return tb
}

// counter returns the value of the counter noon_<name> (summed over its
// labels) in the broker's registry.
func (b *testBroker) counter(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := b.reg.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "noon_"+name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			}
		}
	}
	return sum
}

// waitInstances waits until the broker's routing sees n live instances of
// service, by calling through a throwaway client.
func waitRoutable(t testing.TB, b *testBroker, method string, payload []byte) {
	t.Helper()
	c := dial(t, b, transportTCP)
	defer c.close()
	checkFor(t, waitLong, "broker routes "+method, func() bool {
		r := c.call(method, payload)
		return r.first == ""
	})
}

// Transports.
const (
	transportTCP = "tcp"
	transportWS  = "ws"
)

var transports = []string{transportTCP, transportWS}

// msg is a response-shaped frame from the broker: a reply or a push.
type msg struct {
	first   string // the error ("" on success), or "@<type>" for a push
	payload []byte
}

// client is a test client speaking raw frames over TCP or WebSocket. A
// reader goroutine sorts what arrives into replies and pushes.
type client struct {
	t       testing.TB
	tr      string
	nc      net.Conn
	ws      *websocket.Conn
	replies chan msg
	pushes  chan msg
	done    chan struct{} // closed when the reader ends
	readErr error         // why the reader ended, after done
	wmu     sync.Mutex
}

// dial connects to b over tr.
func dial(t testing.TB, b *testBroker, tr string) *client {
	t.Helper()
	c := &client{t: t, tr: tr, replies: make(chan msg, 4096), pushes: make(chan msg, 4096), done: make(chan struct{})}
	switch tr {
	case transportTCP:
		nc, err := net.Dial("tcp", b.TCPAddr().String())
		if err != nil {
			t.Fatalf("dial tcp: %v", err)
		}
		c.nc = nc
		go c.readTCP()
	case transportWS:
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, "ws://"+b.WSAddr().String()+b.Options().Edge.WSPath, nil)
		if err != nil {
			t.Fatalf("dial ws: %v", err)
		}
		ws.SetReadLimit(2 << 20)
		c.ws = ws
		go c.readWS()
	default:
		t.Fatalf("unknown transport %q", tr)
	}
	t.Cleanup(c.close)
	return c
}

func (c *client) deliver(first, payload []byte) {
	m := msg{first: string(first), payload: append([]byte(nil), payload...)}
	if frame.IsPush(first) {
		c.pushes <- m
	} else {
		c.replies <- m
	}
}

func (c *client) readTCP() {
	defer close(c.done)
	r := frame.NewReader(c.nc, frame.DefaultLimits())
	for {
		first, payload, err := r.ReadResponse()
		if err != nil {
			c.readErr = err
			return
		}
		c.deliver(first, payload)
	}
}

func (c *client) readWS() {
	defer close(c.done)
	for {
		typ, b, err := c.ws.Read(context.Background())
		if err != nil {
			c.readErr = err
			return
		}
		if typ != websocket.MessageBinary {
			c.readErr = fmt.Errorf("text message %q", b)
			return
		}
		first, payload, err := frame.DecodeResponseFrame(b, frame.DefaultLimits())
		if err != nil {
			c.readErr = err
			return
		}
		c.deliver(first, payload)
	}
}

// write sends raw bytes: over WebSocket, as one binary message.
func (c *client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.nc != nil {
		_, err := c.nc.Write(b)
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageBinary, b)
}

// send sends one request without waiting for its reply.
func (c *client) send(method string, payload []byte) {
	c.t.Helper()
	if err := c.write(frame.AppendRequest(nil, method, payload)); err != nil {
		c.t.Fatalf("send %s: %v", method, err)
	}
}

// recv returns the next reply.
func (c *client) recv() msg {
	c.t.Helper()
	select {
	case m := <-c.replies:
		return m
	case <-c.done:
		select {
		case m := <-c.replies:
			return m
		default:
		}
		c.t.Fatalf("connection closed while waiting for a reply: %v", c.readErr)
	case <-time.After(waitLong):
		c.t.Fatalf("no reply within %v", waitLong)
	}
	return msg{}
}

// call sends a request and returns its reply.
func (c *client) call(method string, payload []byte) msg {
	c.t.Helper()
	c.send(method, payload)
	return c.recv()
}

// callOK calls method and fails the test on an error reply.
func (c *client) callOK(method string, payload []byte) []byte {
	c.t.Helper()
	m := c.call(method, payload)
	if m.first != "" {
		c.t.Fatalf("%s: %q", method, m.first)
	}
	return m.payload
}

// callErr calls method and checks that the reply is exactly want.
func (c *client) callErr(method string, payload []byte, want string) {
	c.t.Helper()
	if m := c.call(method, payload); m.first != want {
		c.t.Fatalf("%s: got %q, want %q", method, m.first, want)
	}
}

// hello sends edge.Hello and decodes the reply.
func (c *client) hello(push bool, token string) *edgepb.HelloReply {
	c.t.Helper()
	req := &edgepb.HelloRequest{ProtocolVersion: wire.ProtocolVersion, Push: push}
	if token != "" {
		req.ResumeToken = &token
	}
	var rep edgepb.HelloReply
	decode(c.t, c.callOK(wire.MethodHello, encode(c.t, req)), &rep)
	return &rep
}

// waitPush returns the next push, or false after timeout.
func (c *client) waitPush(timeout time.Duration) (msg, bool) {
	select {
	case m := <-c.pushes:
		return m, true
	case <-time.After(timeout):
		return msg{}, false
	}
}

// waitClosed reports whether the broker closed the connection within
// timeout.
func (c *client) waitClosed(timeout time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (c *client) close() {
	if c.nc != nil {
		_ = c.nc.Close()
	}
	if c.ws != nil {
		_ = c.ws.CloseNow()
	}
	<-c.done
}

// encode encodes a Thrift struct.
func encode(t testing.TB, s thrift.TStruct) []byte {
	t.Helper()
	b, err := thriftx.Marshal(s)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// decode decodes a Thrift struct.
func decode(t testing.TB, b []byte, s thrift.TStruct) {
	t.Helper()
	if err := thriftx.Unmarshal(b, s); err != nil {
		t.Fatalf("decode %T: %v", s, err)
	}
}

// isClosed reports whether err means the peer closed the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) ||
		websocket.CloseStatus(err) != -1 || strings.Contains(fmt.Sprint(err), "connection reset")
}

// counterWith returns the value of the counter noon_<name> whose label
// is value.
func (b *testBroker) counterWith(t testing.TB, name, label, value string) float64 {
	t.Helper()
	mfs, err := b.reg.Gatherer().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "noon_"+name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
