package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/edge"
	"github.com/noonhq/noon/edge/client"
	edgeapi "github.com/noonhq/noon/idl/gen/edge"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// handler is the broker side of the tests:
//
//	echo        reply with the payload
//	sleep       payload "<ms>[:tag]": sleep, reply with the payload
//	fail        fail with wire.Parse(payload)
//	push        payload "<n>": push n "test.Event" frames "0".."n-1", reply with how many were queued
//	edge.Hello  edge.Server.Hello with broker id "b1"; a resume token "good" authenticates as "u1"
type handler struct{ srv *edge.Server }

func (h *handler) Open(*edge.Conn) error { return nil }
func (h *handler) Close(*edge.Conn)      {}

func (h *handler) Request(ctx context.Context, c *edge.Conn, method string, payload []byte) ([]byte, error) {
	switch method {
	case "echo":
		return payload, nil
	case "sleep":
		ms, _, _ := strings.Cut(string(payload), ":")
		n, _ := strconv.Atoi(ms)
		select {
		case <-time.After(time.Duration(n) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return payload, nil
	case "fail":
		return nil, wire.Parse(string(payload))
	case "push":
		n, _ := strconv.Atoi(string(payload))
		queued := 0
		for i := range n {
			if c.Push("test.Event", []byte(strconv.Itoa(i))) {
				queued++
			}
		}
		return []byte(strconv.Itoa(queued)), nil
	case wire.MethodHello:
		req, reply, err := h.srv.Hello(c, payload)
		if err != nil {
			return nil, err
		}
		if req.GetResumeToken() == "good" {
			c.Authenticate("u1")
			uid := "u1"
			reply.UserID = &uid
		}
		reply.BrokerID = "b1"
		return thriftx.Marshal(reply)
	}
	return nil, wire.Errorf(wire.CodeUnknownMethod, "%s", method)
}

// startBench starts a server for a benchmark, without logs, and returns the
// address for transport tr.
func startBench(b *testing.B, tr string) string {
	o := edge.NewOptions()
	o.TCPAddr, o.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	o.Rate = 0
	h := &handler{}
	s, err := edge.New(o, h, nil)
	if err != nil {
		b.Fatal(err)
	}
	h.srv = s
	go s.Main()
	b.Cleanup(s.Exit)
	if tr == "ws" {
		return "ws://" + s.WSAddr().String() + o.WSPath
	}
	return s.TCPAddr().String()
}

// mustStart starts an edge server on 127.0.0.1 port 0 (TCP and WebSocket)
// and returns it with the addresses clients dial.
func mustStart(t *testing.T, edit func(*edge.Options)) (s *edge.Server, tcpAddr, wsURL string) {
	t.Helper()
	o := edge.NewOptions()
	o.TCPAddr, o.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	o.Rate = 0 // TestPipelinedCalls sends 800 requests at once
	if edit != nil {
		edit(&o)
	}
	h := &handler{}
	s, err := edge.New(o, h, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	h.srv = s
	done := make(chan error, 1)
	go func() { done <- s.Main() }()
	t.Cleanup(func() {
		s.Exit()
		if err := <-done; err != nil {
			t.Errorf("Main: %v", err)
		}
	})
	scheme := "ws://"
	if o.TLS.Enabled() {
		scheme = "wss://"
	}
	return s, s.TCPAddr().String(), scheme + s.WSAddr().String() + o.WSPath
}

func mustDial(t *testing.T, addr string, opts client.Options) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), addr, opts)
	if err != nil {
		t.Fatalf("Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// addrs returns the transports to run a test over.
func addrs(tcpAddr, wsURL string) map[string]string {
	return map[string]string{"tcp": tcpAddr, "ws": wsURL}
}

func TestDialAndCall(t *testing.T) {
	s, tcpAddr, wsURL := mustStart(t, nil)
	for name, addr := range addrs(tcpAddr, wsURL) {
		t.Run(name, func(t *testing.T) {
			opts := client.DefaultOptions()
			opts.ResumeToken = "good"
			c := mustDial(t, addr, opts)
			hr := c.HelloReply()
			if hr == nil || hr.BrokerID != "b1" || hr.SessionID == "" || hr.GetUserID() != "u1" ||
				hr.MaxFrame != edge.DefaultMaxFrame || hr.ProtocolVersion != wire.ProtocolVersion {
				t.Fatalf("hello reply %v", hr)
			}
			got, err := c.Call(context.Background(), "echo", []byte("hi"))
			if err != nil || string(got) != "hi" {
				t.Fatalf("echo: %q, %v", got, err)
			}
			got, err = c.Call(context.Background(), "echo", nil)
			if err != nil || len(got) != 0 {
				t.Fatalf("empty echo: %q, %v", got, err)
			}
		})
	}
	if got := s.Stats().Accepted; got != 2 {
		t.Fatalf("Stats.Accepted = %d, want 2", got)
	}
}

// TestPipelinedCalls: many goroutines call at once on one connection with
// random handler delays; each gets its own reply.
func TestPipelinedCalls(t *testing.T) {
	_, tcpAddr, wsURL := mustStart(t, nil)
	for name, addr := range addrs(tcpAddr, wsURL) {
		t.Run(name, func(t *testing.T) {
			c := mustDial(t, addr, client.DefaultOptions())
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 32 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 25 {
						want := fmt.Sprintf("%d:%d-%d", mrand.IntN(3), g, i)
						got, err := c.Call(context.Background(), "sleep", []byte(want))
						if err != nil || string(got) != want {
							errs <- fmt.Errorf("call %s: got %q, %v", want, got, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func TestCallError(t *testing.T) {
	_, tcpAddr, _ := mustStart(t, nil)
	c := mustDial(t, tcpAddr, client.DefaultOptions())
	_, err := c.Call(context.Background(), "fail", []byte("not_found: no such room"))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "not_found" || ce.Message != "no such room" {
		t.Fatalf("got %#v", err)
	}
	if err.Error() != "not_found: no such room" || !errors.Is(err, &client.Error{Code: "not_found"}) {
		t.Fatalf("got %q", err)
	}
	_, err = c.Call(context.Background(), "fail", []byte("disk on fire"))
	if !errors.As(err, &ce) || ce.Code != "internal" || ce.Message != "disk on fire" {
		t.Fatalf("got %#v", err)
	}
	for in, want := range map[string]client.Error{
		"timeout":            {Code: "timeout"},
		"moved: room r1":     {Code: "moved", Message: "room r1"},
		"Something happened": {Message: "Something happened"},
		"a b: c":             {Message: "a b: c"},
	} {
		if got := wire.Parse(in); *got != want || got.Error() != in {
			t.Errorf("Parse(%q) = %#v (%q)", in, got, got.Error())
		}
	}
}

// TestCallCancelKeepsOrder: a call whose ctx ends returns early; the reply
// to it, when it comes, does not go to the next caller.
func TestCallCancelKeepsOrder(t *testing.T) {
	_, tcpAddr, wsURL := mustStart(t, nil)
	for name, addr := range addrs(tcpAddr, wsURL) {
		t.Run(name, func(t *testing.T) {
			c := mustDial(t, addr, client.DefaultOptions())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			start := time.Now()
			if _, err := c.Call(ctx, "sleep", []byte("200")); err != context.DeadlineExceeded {
				t.Fatalf("got %v, want deadline exceeded", err)
			}
			if took := time.Since(start); took > 150*time.Millisecond {
				t.Fatalf("cancelled call returned after %v", took)
			}
			got, err := c.Call(context.Background(), "echo", []byte("next"))
			if err != nil || string(got) != "next" {
				t.Fatalf("next call: %q, %v", got, err)
			}
		})
	}
}

func TestPushes(t *testing.T) {
	_, tcpAddr, wsURL := mustStart(t, nil)
	for name, addr := range addrs(tcpAddr, wsURL) {
		t.Run(name, func(t *testing.T) {
			opts := client.DefaultOptions()
			plain := mustDial(t, addr, opts)
			if got, err := plain.Call(context.Background(), "push", []byte("3")); err != nil || string(got) != "0" {
				t.Fatalf("push without opting in: %q, %v", got, err)
			}
			opts.Push = true
			c := mustDial(t, addr, opts)
			if got, err := c.Call(context.Background(), "push", []byte("3")); err != nil || string(got) != "3" {
				t.Fatalf("push: %q, %v", got, err)
			}
			for i := range 3 {
				select {
				case p := <-c.Pushes():
					if p.Type != "test.Event" || string(p.Payload) != strconv.Itoa(i) {
						t.Fatalf("push %d: %+v", i, p)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("push %d did not come", i)
				}
			}
			select {
			case p := <-plain.Pushes():
				t.Fatalf("a client that did not opt in got %+v", p)
			default:
			}
		})
	}
}

// TestPushesDropOldest: when nobody reads Pushes(), the oldest are dropped
// and counted, and replies keep flowing.
func TestPushesDropOldest(t *testing.T) {
	_, tcpAddr, _ := mustStart(t, nil)
	opts := client.DefaultOptions()
	opts.Push = true
	opts.PushQueue = 2
	c := mustDial(t, tcpAddr, opts)
	if got, err := c.Call(context.Background(), "push", []byte("5")); err != nil || string(got) != "5" {
		t.Fatalf("push: %q, %v", got, err)
	}
	if got := c.DroppedPushes(); got != 3 {
		t.Fatalf("DroppedPushes = %d, want 3", got)
	}
	for _, want := range []string{"3", "4"} {
		if p := <-c.Pushes(); string(p.Payload) != want {
			t.Fatalf("got push %q, want %q", p.Payload, want)
		}
	}
}

func TestCloseAndServerExit(t *testing.T) {
	s, tcpAddr, wsURL := mustStart(t, nil)
	c := mustDial(t, tcpAddr, client.DefaultOptions())
	c.Close()
	<-c.Done()
	if _, err := c.Call(context.Background(), "echo", nil); err != client.ErrClosed {
		t.Fatalf("Call after Close: %v", err)
	}
	if _, ok := <-c.Pushes(); ok {
		t.Fatal("Pushes not closed")
	}

	var clients []*client.Client
	for _, addr := range []string{tcpAddr, wsURL} {
		clients = append(clients, mustDial(t, addr, client.DefaultOptions()))
	}
	waiting := make(chan error, len(clients))
	for _, c := range clients {
		go func() {
			_, err := c.Call(context.Background(), "sleep", []byte("60000"))
			waiting <- err
		}()
	}
	testenv.CheckFor(t, 5*time.Second, "both calls in flight", func() bool { return s.Stats().InFlight == 2 })
	s.Exit()
	for _, c := range clients {
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("client not done after the server exited")
		}
		if c.Err() == nil || errors.Is(c.Err(), client.ErrClosed) {
			t.Fatalf("Err = %v, want connection lost", c.Err())
		}
		if err := <-waiting; err == nil {
			t.Fatal("a call waiting when the server exited succeeded")
		}
	}
}

func TestCallThrift(t *testing.T) {
	_, tcpAddr, _ := mustStart(t, nil)
	opts := client.DefaultOptions()
	opts.Hello = false
	c := mustDial(t, tcpAddr, opts)
	if c.HelloReply() != nil {
		t.Fatal("hello sent with Hello off")
	}
	reply, err := c.Hello(context.Background(), &edgeapi.HelloRequest{ProtocolVersion: 1, Push: true})
	if err != nil || reply.BrokerID != "b1" {
		t.Fatalf("Hello: %v, %v", reply, err)
	}
	err = c.CallThrift(context.Background(), wire.MethodHello, &edgeapi.HelloRequest{ProtocolVersion: 7}, edgeapi.NewHelloReply())
	if !errors.Is(err, &client.Error{Code: "bad_request"}) {
		t.Fatalf("bad version: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := client.Dial(context.Background(), addr, client.DefaultOptions()); err == nil {
		t.Fatal("Dial to a closed port succeeded")
	}
	// A server that accepts but never answers the hello: DialTimeout.
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			defer nc.Close()
			time.Sleep(2 * time.Second)
		}
	}()
	opts := client.DefaultOptions()
	opts.DialTimeout = 100 * time.Millisecond
	start := time.Now()
	if _, err := client.Dial(context.Background(), ln.Addr().String(), opts); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want deadline exceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("Dial took %v", took)
	}
}

// TestTLS serves both listeners over TLS and dials them.
func TestTLS(t *testing.T) {
	certFile, keyFile, pool := testenv.SelfSigned(t)
	_, tcpAddr, wsURL := mustStart(t, func(o *edge.Options) {
		o.TLS = edge.TLSOptions{CertFile: certFile, KeyFile: keyFile}
	})
	for name, addr := range addrs(tcpAddr, wsURL) {
		t.Run(name, func(t *testing.T) {
			opts := client.DefaultOptions()
			opts.TLS = &tls.Config{RootCAs: pool}
			c := mustDial(t, addr, opts)
			if got, err := c.Call(context.Background(), "echo", []byte("secret")); err != nil || string(got) != "secret" {
				t.Fatalf("echo: %q, %v", got, err)
			}
		})
	}
}

func TestFetchBrokerList(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/brokerlist":
			fmt.Fprint(w, `{"version":"0.1.0","brokerList":{"10.0.0.1:1055":0.067,"10.0.0.2:1055":0.0418,"10.0.0.3:1055":0.5}}`)
		case "/empty":
			fmt.Fprint(w, `{"version":"0.1.0","brokerList":{}}`)
		case "/huge":
			fmt.Fprint(w, `{"version":"0.1.0","brokerList":{"`)
			fmt.Fprint(w, strings.Repeat("x", client.MaxBrokerListBytes))
		case "/missing":
			fmt.Fprint(w, `{"version":"0.1.0"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	list, err := client.FetchBrokerList(ctx, srv.URL+"/brokerlist")
	if err != nil || len(list) != 3 || list["10.0.0.2:1055"] != 0.0418 {
		t.Fatalf("list %v, %v", list, err)
	}
	if addr, err := client.PickBroker(list); err != nil || addr != "10.0.0.2:1055" {
		t.Fatalf("PickBroker: %q, %v", addr, err)
	}
	if addr, _ := client.PickBroker(map[string]float64{"b:1": 0.1, "a:1": 0.1}); addr != "a:1" {
		t.Fatalf("tie: %q", addr)
	}
	empty, err := client.FetchBrokerList(ctx, srv.URL+"/empty")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.PickBroker(empty); err != client.ErrNoBrokers {
		t.Fatalf("empty list: %v", err)
	}
	for _, path := range []string{"/huge", "/missing", "/nope"} {
		if _, err := client.FetchBrokerList(ctx, srv.URL+path); err == nil {
			t.Errorf("%s: no error", path)
		} else {
			t.Logf("%s: %v", path, err)
		}
	}
}
