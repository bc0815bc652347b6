package services_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/wire"
)

func TestOptionsValidate(t *testing.T) {
	good := services.NewOptions()
	good.Name = "echo"
	good.Yellows = []string{"tcp://127.0.0.1:1060"}
	if err := good.Validate(); err != nil {
		t.Fatalf("good options: %v", err)
	}
	tests := []struct {
		mod  func(*services.Options)
		want string
	}{
		{func(o *services.Options) { o.Name = "" }, "name:"},
		{func(o *services.Options) { o.Name = "Echo" }, "name:"},
		{func(o *services.Options) { o.Name = "echo.x" }, "name:"},
		{func(o *services.Options) { o.Kind = "stateles" }, "kind:"},
		{func(o *services.Options) { o.Version = "1 2" }, "version:"},
		{func(o *services.Options) { o.Bind = "127.0.0.1:0" }, "bind:"},
		{func(o *services.Options) { o.Bind = "tcp://127.0.0.1:99999" }, "bind:"},
		{func(o *services.Options) { o.PubBind = "udp://x:1" }, "pub_bind:"},
		{func(o *services.Options) { o.Advertise = "0.0.0.0" }, "advertise:"},
		{func(o *services.Options) { o.Yellows = []string{"tcp://127.0.0.1:0"} }, "yellows[0]:"},
		{func(o *services.Options) { o.Concurrency = 0 }, "concurrency:"},
		{func(o *services.Options) { o.DefaultTimeout = 0 }, "default_timeout:"},
		{func(o *services.Options) { o.MaxTimeout = time.Second }, "max_timeout:"},
		{func(o *services.Options) { o.DrainTimeout = -1 }, "drain_timeout:"},
		{func(o *services.Options) { o.Heartbeat = time.Millisecond }, "heartbeat:"},
	}
	for _, tt := range tests {
		o := good
		o.Yellows = append([]string(nil), good.Yellows...)
		tt.mod(&o)
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate() = %v, want an error naming %q", err, tt.want)
		}
	}
	o := good
	o.PubBind = ""
	if err := o.Validate(); err != nil {
		t.Errorf("empty pub_bind: %v", err)
	}
}

func TestNewServerRejects(t *testing.T) {
	opts := services.NewOptions()
	opts.Name = "echo"
	if _, err := services.NewServer(opts, map[string]services.HandlerFunc{"other.Echo": echo.Handlers()[echo.MethodEcho]}, nil); err == nil {
		t.Error("a handler of another service was accepted")
	}
	if _, err := services.NewServer(opts, map[string]services.HandlerFunc{"echo.Nil": nil}, nil); err == nil {
		t.Error("a nil handler was accepted")
	}
	opts.Concurrency = -1
	if _, err := services.NewServer(opts, echo.Handlers(), nil); err == nil || !strings.Contains(err.Error(), "concurrency") {
		t.Errorf("bad options: %v", err)
	}
}

func TestServerEndpoints(t *testing.T) {
	s := mustStartEcho(t, nil, nil, nil)
	if !strings.HasPrefix(s.Endpoint(), "tcp://127.0.0.1:") || strings.HasSuffix(s.Endpoint(), ":0") {
		t.Errorf("Endpoint() = %q", s.Endpoint())
	}
	if !strings.HasPrefix(s.PubEndpoint(), "tcp://127.0.0.1:") || s.PubEndpoint() == s.Endpoint() {
		t.Errorf("PubEndpoint() = %q", s.PubEndpoint())
	}
	s2 := mustStartEcho(t, nil, nil, nil)
	if s.InstanceID() == s2.InstanceID() || !strings.HasPrefix(s.InstanceID(), "echo-") {
		t.Errorf("instance ids %q %q", s.InstanceID(), s2.InstanceID())
	}
	inst := s.Instance()
	if inst.GetService() != "echo" || inst.GetRouter() != s.Endpoint() || inst.GetPub() != s.PubEndpoint() ||
		inst.GetKind() != platformpb.ServiceKind_SERVICE_KIND_STATELESS || inst.GetCapacity() != services.DefaultConcurrency ||
		inst.GetState() != platformpb.InstanceState_INSTANCE_STATE_READY {
		t.Errorf("Instance() = %v", inst)
	}
	wildOpts := services.NewOptions()
	wildOpts.Name, wildOpts.Bind = "echo", "tcp://0.0.0.0:0"
	if _, err := services.NewServer(wildOpts, nil, nil); err == nil || !strings.Contains(err.Error(), "services: bind: tcp://0.0.0.0:0 is not a loopback address") {
		t.Errorf("plain ROUTER on a wildcard address: %v", err)
	}
	wild := mustStartEcho(t, nil, func(o *services.Options) {
		o.Bind, o.PubBind, o.Advertise = "tcp://0.0.0.0:0", "", "127.0.0.1"
		o.Insecure = true // a trusted network
	}, nil)
	if !strings.HasPrefix(wild.Endpoint(), "tcp://127.0.0.1:") || wild.PubEndpoint() != "" {
		t.Errorf("advertised %q %q", wild.Endpoint(), wild.PubEndpoint())
	}
	if err := wild.Publish("room/r1", "room.Event", nil); !errors.Is(err, services.ErrNoPublisher) {
		t.Errorf("Publish without pub_bind: %v", err)
	}
	if err := wild.PublishSession("broker-1", &platformpb.SessionDirective{}); !errors.Is(err, services.ErrNoPublisher) {
		t.Errorf("PublishSession without pub_bind: %v", err)
	}
	// It serves on the advertised endpoint.
	p := dial(t, wild.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if rep, err := rawCall(ctx, p, echo.MethodEcho, []byte("hi")); err != nil || string(rep.GetPayload()) != "hi" {
		t.Errorf("echo: %v %v", rep, err)
	}
}

// TestDispatch covers what the server answers by itself, over a real link.
func TestDispatch(t *testing.T) {
	internalErr := errors.New("db password is hunter2")
	s := mustStartEcho(t, nil, nil, map[string]services.HandlerFunc{
		"echo.Panic": func(context.Context, *services.Session, []byte) ([]byte, error) {
			panic("boom")
		},
		"echo.Internal": func(context.Context, *services.Session, []byte) ([]byte, error) {
			return nil, internalErr
		},
		"echo.Bind": func(ctx context.Context, sess *services.Session, p []byte) ([]byte, error) {
			if services.SessionFromContext(ctx) != sess {
				return nil, wire.Errorf(wire.CodeInternal, "no session in ctx")
			}
			if services.Logger(ctx) == slog.Default() {
				return nil, wire.Errorf(wire.CodeInternal, "no request logger in ctx")
			}
			sess.Bind("room", "r"+sess.UserID())
			sess.Unbind("match")
			sess.Subscribe("room/r" + sess.UserID())
			if string(p) == "fail" {
				return nil, wire.Errorf(wire.CodeConflict, "but failed")
			}
			return []byte(sess.ID() + "/" + sess.Binding("room")), nil
		},
	})
	p := dial(t, s.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	tests := []struct {
		method  string
		payload string
		code    string
		msg     string
	}{
		{echo.MethodEcho, "hello", "", ""},
		{"echo.Nope", "", "unknown_method", "echo.Nope"},
		{"login.Login", "", "unknown_method", "login.Login"},
		{"", "", "unknown_method", ""},
		{"echo.Panic", "", "internal", "handler panicked"},
		{"echo.Internal", "", "internal", "internal error"},
	}
	for _, tt := range tests {
		rep, err := rawCall(ctx, p, tt.method, []byte(tt.payload))
		if err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		if rep.GetErrorCode() != tt.code || rep.GetErrorMessage() != tt.msg {
			t.Errorf("%s: reply %q: %q, want %q: %q", tt.method, rep.GetErrorCode(), rep.GetErrorMessage(), tt.code, tt.msg)
		}
		if tt.code == "" && string(rep.GetPayload()) != tt.payload {
			t.Errorf("%s: payload %q", tt.method, rep.GetPayload())
		}
		if rep.GetSender() != s.InstanceID() || rep.GetKind() != platformpb.Kind_KIND_REPLY {
			t.Errorf("%s: sender %q kind %v", tt.method, rep.GetSender(), rep.GetKind())
		}
	}

	st := s.Stats()
	if st.Requests != 6 || st.Served != 3 || st.UnknownMethod != 3 || st.Panics != 1 || st.Errors != 2 {
		t.Errorf("Stats() = %+v", st)
	}

	sess := &platformpb.Session{Id: "s1", UserId: "42", Bindings: map[string]string{"match": "m1"}}
	for _, payload := range []string{"ok", "fail"} {
		rep, err := p.Call(ctx, &platformpb.Envelope{Method: "echo.Bind", Session: sess, Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		if payload == "ok" && (rep.GetErrorCode() != "" || string(rep.GetPayload()) != "s1/r42") {
			t.Errorf("Bind: %q %q %q", rep.GetErrorCode(), rep.GetErrorMessage(), rep.GetPayload())
		}
		if payload == "fail" && rep.GetErrorCode() != "conflict" {
			t.Errorf("Bind fail: %q", rep.GetErrorCode())
		}
		b, subs := rep.GetBindings(), rep.GetSubscriptions()
		if len(b) != 2 || b[0].GetKey() != "room" || b[0].GetValue() != "r42" || b[1].GetKey() != "match" || !b[1].GetUnset() {
			t.Errorf("bindings %v", b)
		}
		if len(subs) != 1 || subs[0].GetTopic() != "room/r42" || subs[0].GetUnsubscribe() {
			t.Errorf("subscriptions %v", subs)
		}
	}
}

func TestOverloaded(t *testing.T) {
	release := make(chan struct{})
	var running atomic.Int32
	s := mustStartEcho(t, nil, func(o *services.Options) { o.Concurrency = 2 }, map[string]services.HandlerFunc{
		"echo.Block": func(ctx context.Context, _ *services.Session, _ []byte) ([]byte, error) {
			running.Add(1)
			defer running.Add(-1)
			select {
			case <-release:
				return []byte("done"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	p := dial(t, s.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := rawCall(ctx, p, "echo.Block", nil)
			if err != nil || string(rep.GetPayload()) != "done" {
				t.Errorf("blocked call: %v %v", rep, err)
			}
		}()
	}
	checkFor(t, 2*time.Second, "two handlers running", func() bool { return running.Load() == 2 })
	if got := s.Load(); got != 1 {
		t.Errorf("Load() = %v at capacity, want 1", got)
	}
	start := time.Now()
	rep, err := rawCall(ctx, p, echo.MethodEcho, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	want := "overloaded: " + s.InstanceID() + " is running 2 requests"
	if got := wire.FromEnvelope(rep); got == nil || got.Error() != want {
		t.Errorf("saturated: %v, want %s", got, want)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("overloaded reply took %v", d)
	}
	close(release)
	wg.Wait()
	checkFor(t, time.Second, "load back to 0", func() bool { return s.Load() == 0 })
	if rep, err := rawCall(ctx, p, echo.MethodEcho, []byte("x")); err != nil || rep.GetErrorCode() != "" {
		t.Errorf("after saturation: %v %v", rep, err)
	}
}

// deadlineHandler replies with its context's deadline (unix nanos, 0 =
// none).
func deadlineHandler(ctx context.Context, _ *services.Session, _ []byte) ([]byte, error) {
	var b [8]byte
	if dl, ok := ctx.Deadline(); ok {
		binary.BigEndian.PutUint64(b[:], uint64(dl.UnixNano()))
	}
	return b[:], nil
}

func TestDeadlinePropagation(t *testing.T) {
	var ran atomic.Int32
	s := mustStartEcho(t, nil, func(o *services.Options) { o.MaxTimeout = 8 * time.Second }, map[string]services.HandlerFunc{
		"echo.Deadline": deadlineHandler,
		"echo.Count": func(context.Context, *services.Session, []byte) ([]byte, error) {
			ran.Add(1)
			return nil, nil
		},
	})
	p := dial(t, s.Server)
	got := func(ctx context.Context) time.Time {
		t.Helper()
		rep, err := rawCall(ctx, p, "echo.Deadline", nil)
		if err != nil || rep.GetErrorCode() != "" {
			t.Fatalf("Deadline: %v %v", rep, err)
		}
		return time.Unix(0, int64(binary.BigEndian.Uint64(rep.GetPayload())))
	}

	// The caller's deadline reaches the handler exactly.
	want := time.Now().Add(1500 * time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), want)
	if dl := got(ctx); !dl.Equal(want) {
		t.Errorf("handler deadline %v, want the caller's %v", dl, want)
	}
	cancel()

	// A deadline past MaxTimeout is capped.
	ctx, cancel = context.WithTimeout(context.Background(), time.Hour)
	start := time.Now()
	if dl := got(ctx); dl.Before(start.Add(7*time.Second)) || dl.After(time.Now().Add(8*time.Second)) {
		t.Errorf("handler deadline %v from now, want capped at max_timeout 8s", dl.Sub(start))
	}
	cancel()

	// A request that arrives after its deadline does not run: it is
	// answered timeout at once. (Handed to the server directly: over a
	// socket, whether a request with a tiny deadline arrives in time is up
	// to the scheduler.)
	var rep *platformpb.Envelope
	s.Handle(context.Background(), &platformpb.Envelope{
		Kind: platformpb.Kind_KIND_REQUEST, RequestId: 7, Method: "echo.Count",
		DeadlineUnixNano: time.Now().Add(-time.Millisecond).UnixNano(),
	}, func(e *platformpb.Envelope) { rep = e })
	if n := ran.Load(); n != 0 || rep.GetErrorCode() != wire.CodeTimeout {
		t.Errorf("expired request: ran %d times, reply %v; want not run, timeout", n, rep)
	}
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rep, err := rawCall(ctx, p, echo.MethodEcho, nil); err != nil || rep.GetErrorCode() != "" {
		t.Fatalf("echo after an expired request: %v %v", rep, err)
	}
}

func TestHandlerSeesCancellation(t *testing.T) {
	ended := make(chan error, 1)
	s := mustStartEcho(t, nil, nil, map[string]services.HandlerFunc{
		"echo.Wait": func(ctx context.Context, _ *services.Session, _ []byte) ([]byte, error) {
			<-ctx.Done()
			ended <- ctx.Err()
			return nil, ctx.Err()
		},
	})
	p := dial(t, s.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The handler's context ends at the caller's deadline: the caller
	// gives up, or the handler's timeout reply wins the race.
	rep, err := rawCall(ctx, p, "echo.Wait", nil)
	if err == nil {
		err = wire.FromEnvelope(rep)
	}
	if wire.CodeOf(err) != wire.CodeTimeout {
		t.Fatalf("Call = %v, want timeout", err)
	}
	select {
	case err := <-ended:
		if d := time.Since(start); d > time.Second {
			t.Errorf("handler ended after %v", d)
		}
		t.Logf("handler ctx ended with %v", err)
	case <-time.After(2 * time.Second):
		t.Fatal("handler context never ended")
	}
}

func TestPublish(t *testing.T) {
	s := mustStartEcho(t, nil, nil, nil)
	got := make(chan *platformpb.Event, 16)
	sub := link.NewSubscriber(s.PubEndpoint(), link.SubOptions{Logger: testLogger(t)}, func(topic string, ev *platformpb.Event) {
		got <- ev
	})
	defer sub.Close()
	if err := sub.Subscribe("room/r1"); err != nil {
		t.Fatal(err)
	}
	// Events published before the subscription reaches the publisher are
	// not delivered: publish until one is.
	deadline := time.After(5 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := s.Publish("room/r1", "room.Event", []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if err := s.Publish("room/r2", "room.Event", []byte{9}); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-got:
			if ev.GetTopic() != "room/r1" || ev.GetType() != "room.Event" || !bytes.Equal(ev.GetPayload(), []byte{1, 2, 3}) ||
				ev.GetSeq() == 0 || ev.GetTimeUnixNano() == 0 {
				t.Fatalf("event %v", ev)
			}
			return
		case <-tick.C:
		case <-deadline:
			t.Fatal("no event delivered")
		}
	}
}

func TestExitIdempotent(t *testing.T) {
	s := mustStartEcho(t, nil, nil, nil)
	s.Exit() // whether Main has started or not, it returns nil
	s.Exit()
	s.Exit()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Main returned %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Main did not return after Exit")
	}
	if err := s.Main(); !errors.Is(err, services.ErrClosed) {
		t.Errorf("Main after Exit: %v", err)
	}
	if err := s.Publish("room/r1", "x", nil); !errors.Is(err, services.ErrClosed) {
		t.Errorf("Publish after Exit: %v", err)
	}
	if err := s.Drain(context.Background()); err != nil {
		t.Errorf("Drain after Exit: %v", err)
	}
}

func TestOptionsYAML(t *testing.T) {
	opts := services.NewOptions()
	in := `
name: room
kind: stateful
version: v1.2.3
bind: tcp://0.0.0.0:7001
pub_bind: ""
advertise: room-1.internal
yellows: [tcp://yellow-1:1060, tcp://yellow-2:1060]
concurrency: 64
default_timeout: 2s
max_timeout: 30s
drain_timeout: 10s
heartbeat: 500ms
`
	if err := yaml.Unmarshal([]byte(in), &opts); err != nil {
		t.Fatal(err)
	}
	want := services.Options{
		Name: "room", Kind: "stateful", Version: "v1.2.3", Bind: "tcp://0.0.0.0:7001", PubBind: "",
		Advertise: "room-1.internal", Yellows: []string{"tcp://yellow-1:1060", "tcp://yellow-2:1060"},
		Concurrency: 64, DefaultTimeout: 2 * time.Second, MaxTimeout: 30 * time.Second,
		DrainTimeout: 10 * time.Second, Heartbeat: 500 * time.Millisecond,
	}
	if fmt.Sprint(opts) != fmt.Sprint(want) {
		t.Fatalf("parsed %+v\nwant   %+v", opts, want)
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerContextDerivesWithoutGoroutines: contexts a handler derives
// from its context (a Client.Call's timeout, a pgx query's cancellation)
// end with it without a goroutine each.
func TestHandlerContextDerivesWithoutGoroutines(t *testing.T) {
	const n = 500
	s := mustStartEcho(t, nil, nil, map[string]services.HandlerFunc{
		"echo.Derive": func(ctx context.Context, _ *services.Session, _ []byte) ([]byte, error) {
			before := runtime.NumGoroutine()
			for range n {
				_, cancel := context.WithTimeout(ctx, time.Hour)
				defer cancel()
				stop := context.AfterFunc(ctx, func() {})
				defer stop()
			}
			return []byte(strconv.Itoa(runtime.NumGoroutine() - before)), nil
		},
	})
	p := dial(t, s.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := rawCall(ctx, p, "echo.Derive", nil)
	if err != nil || rep.GetErrorCode() != "" {
		t.Fatalf("Derive: %v %v", rep, err)
	}
	if grew, _ := strconv.Atoi(string(rep.GetPayload())); grew > n/10 {
		t.Fatalf("%d goroutines for %d derived contexts", grew, 2*n)
	}
}
