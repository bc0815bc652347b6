package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/edge/frame"
	"github.com/noonhq/noon/idl/conformance"
	echoapi "github.com/noonhq/noon/idl/gen/echo"
	loginapi "github.com/noonhq/noon/idl/gen/login"
	roomapi "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/yellow"
)

// heartbeat is the recorded platform's yellow and link heartbeat: longer
// than platformtest's, since nothing here waits for an expiry and a
// shared, loaded machine must not see a link expire by accident.
const heartbeat = 500 * time.Millisecond

// attempts is how many fresh platforms recordSessions tries: a run on an
// overloaded machine can see a link fail (unavailable), and a script
// cannot be retried on the same platform (its users exist).
const attempts = 3

// recorded is one frame seen by a recording proxy.
type recorded struct {
	dir   string
	first string // method, error string or "@" + event
	body  []byte // payload
	raw   []byte // the whole frame
}

// recConn is one proxied connection.
type recConn struct {
	broker string
	mu     sync.Mutex
	frames []recorded
	done   chan struct{} // closed when both directions ended
}

// recorder is a recording TCP proxy in front of each broker.
type recorder struct {
	mu    sync.Mutex
	conns []*recConn
	lns   []net.Listener
	wg    sync.WaitGroup
}

// proxy listens on a free loopback port and forwards each connection to
// target, recording its frames; it returns the address clients dial.
func (r *recorder) proxy(name, target string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	r.lns = append(r.lns, ln)
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			rc := &recConn{broker: name, done: make(chan struct{})}
			r.mu.Lock()
			r.conns = append(r.conns, rc)
			r.mu.Unlock()
			var both sync.WaitGroup
			both.Go(func() { rc.pipe(c, up, conformance.DirSend) })
			both.Go(func() { rc.pipe(up, c, conformance.DirRecv) })
			go func() { both.Wait(); close(rc.done) }()
		}
	})
	return ln.Addr().String(), nil
}

// pipe copies frames from src to dst, recording each, until src ends;
// then it closes both.
func (rc *recConn) pipe(src, dst net.Conn, dir string) {
	defer func() { _ = src.Close(); _ = dst.Close() }()
	fr := frame.NewReader(src, frame.Limits{})
	for {
		var first, payload []byte
		var err error
		if dir == conformance.DirSend {
			first, payload, err = fr.ReadRequest()
		} else {
			first, payload, err = fr.ReadResponse()
		}
		if err != nil {
			return
		}
		raw := frame.AppendRequest(nil, string(first), payload) // the same bytes for either shape
		rc.mu.Lock()
		rc.frames = append(rc.frames, recorded{dir: dir, first: string(first), body: append([]byte(nil), payload...), raw: raw})
		rc.mu.Unlock()
		if _, err := dst.Write(raw); err != nil {
			return
		}
	}
}

func (r *recorder) close() {
	for _, ln := range r.lns {
		_ = ln.Close()
	}
	r.wg.Wait()
}

// take returns the connections recorded since the last take, after they
// ended.
func (r *recorder) take() []*recConn {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range conns {
		<-c.done
	}
	return conns
}

// devPlatform starts what `noon dev` starts for the sessions (yellow,
// echo, login, room, the BrokerList, a broker) plus a second broker, on
// loopback port 0 with in-memory stores and an in-process Redis.
type devPlatform struct {
	p       *platform.Platform
	stop    []func()
	brokers [2]string
}

func startPlatform(ctx context.Context) (*devPlatform, error) {
	dp := &devPlatform{}
	rc, _, stopRedis, err := stores.EmbeddedRedis()
	if err != nil {
		return nil, err
	}
	dp.stop = append(dp.stop, stopRedis)
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("NOON_CONFORMANCE_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	yo := yellow.NewOptions()
	yo.RouterAddr, yo.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	yo.Heartbeat, yo.TickInterval = heartbeat, heartbeat
	bo := broker.NewOptions()
	bo.Edge.TCPAddr, bo.Edge.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	bo.Edge.Rate = 0
	bo.Heartbeat = heartbeat
	blo := brokerlist.NewOptions()
	blo.Addr = "127.0.0.1:0"
	blo.Heartbeat = heartbeat
	modules := []services.Module{echo.Module, login.Module, room.Module}
	sections := map[string]services.Section{}
	for _, m := range modules {
		sec := m.NewSection()
		rt := sec.Runtime()
		rt.Bind, rt.PubBind = services.DefaultBind, services.DefaultPubBind
		rt.Heartbeat = heartbeat
		sections[m.Name()] = sec
	}
	opts := platform.Options{Yellow: yo, Broker: bo, BrokerList: blo, Modules: modules, Sections: sections, Log: log}
	opts.Env.Redis = rc
	p, err := platform.New(ctx, opts)
	if err != nil {
		dp.close()
		return nil, err
	}
	dp.p = p
	done := make(chan error, len(p.Daemons))
	for _, d := range p.Daemons {
		go func() { done <- d.Main() }()
	}
	dp.stop = append(dp.stop, func() {
		p.Exit()
		for range p.Daemons {
			<-done
		}
	})
	if err := p.Ready(ctx); err != nil {
		dp.close()
		return nil, err
	}
	bo2 := p.Broker.Options()
	bo2.ID, bo2.Advertise = "", ""
	bo2.Edge.TCPAddr, bo2.Edge.WSAddr = "127.0.0.1:0", "127.0.0.1:0"
	bo2.Control = broker.DefaultControl
	b2, err := broker.New(bo2, log, nil)
	if err != nil {
		dp.close()
		return nil, err
	}
	done2 := make(chan error, 1)
	go func() { done2 <- b2.Main() }()
	dp.stop = append(dp.stop, func() { b2.Exit(); <-done2 })
	if err := b2.WaitRoutable(ctx, p.Services...); err != nil {
		dp.close()
		return nil, err
	}
	dp.brokers = [2]string{p.Broker.TCPAddr().String(), b2.TCPAddr().String()}
	return dp, nil
}

func (dp *devPlatform) close() {
	for i := len(dp.stop) - 1; i >= 0; i-- {
		dp.stop[i]()
	}
}

// script is one session to record: it runs clients against the proxies
// (dial[0] for broker1, dial[1] for broker2).
type script struct {
	name, setup string
	run         func(ctx context.Context, dial [2]string) error
	// push, when set, says which pushes the recording keeps (the others
	// are dropped): pushes are asynchronous, so whether one that is not
	// the point of the script arrives, and where, depends on timing.
	push func(event string, payload []byte) bool
}

// keepPushes drops from conns the pushes that keep refuses.
func keepPushes(conns []*recConn, keep func(event string, payload []byte) bool) {
	for _, c := range conns {
		c.frames = slices.DeleteFunc(c.frames, func(f recorded) bool {
			return f.dir == conformance.DirRecv && strings.HasPrefix(f.first, "@") && !keep(f.first[1:], f.body)
		})
	}
}

// recordSessions records every script against a fresh platform, trying
// up to attempts platforms.
func recordSessions(ctx context.Context) ([]conformance.Session, error) {
	var errs []error
	for range attempts {
		out, err := recordOnce(ctx)
		if err == nil {
			return out, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// recordOnce records every script against a fresh platform.
func recordOnce(ctx context.Context) ([]conformance.Session, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	dp, err := startPlatform(ctx)
	if err != nil {
		return nil, err
	}
	defer dp.close()
	var rec recorder
	defer rec.close()
	var dial [2]string
	for i, b := range dp.brokers {
		if dial[i], err = rec.proxy(fmt.Sprintf("broker%d", i+1), b); err != nil {
			return nil, err
		}
	}
	var out []conformance.Session
	for _, sc := range scripts() {
		if err := sc.run(ctx, dial); err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		conns := rec.take()
		if sc.push != nil {
			keepPushes(conns, sc.push)
		}
		s, err := normalize(sc.name, sc.setup, conns)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sc.name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// isJoined says whether a push is a room.Event of type room.joined.
func isJoined(event string, payload []byte) bool {
	var ev roomapi.Event
	return event == "room.Event" && thriftx.Unmarshal(payload, &ev) == nil && ev.GetType() == "room.joined"
}

// dialOpts are the connection options of the scripts.
func dialOpts(push bool, token string) client.Options {
	o := client.DefaultOptions()
	o.Push, o.ResumeToken = push, token
	return o
}

// loginAs registers and logs in user on c; it returns the login reply.
func loginAs(ctx context.Context, c *client.Client, user string) (*loginapi.LoginReply, error) {
	nick := user
	if err := c.CallThrift(ctx, "login.Register", &loginapi.RegisterRequest{Username: user, Password: "correct horse " + user, Nickname: &nick}, loginapi.NewRegisterReply()); err != nil {
		return nil, fmt.Errorf("register: %w", err)
	}
	rep := loginapi.NewLoginReply()
	if err := c.CallThrift(ctx, "login.Login", &loginapi.LoginRequest{Username: user, Password: "correct horse " + user}, rep); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return rep, nil
}

func scripts() []script {
	return []script{
		{
			name:  "hello",
			setup: "Two connections to one broker. The first says edge.Hello without push (protocol_version 1) and gets the broker's HelloReply; the second says edge.Hello with push: true and a client_name.",
			run: func(ctx context.Context, dial [2]string) error {
				c, err := client.Dial(ctx, dial[0], dialOpts(false, ""))
				if err != nil {
					return err
				}
				_ = c.Close()
				o := dialOpts(true, "")
				o.ClientName = "conformance"
				c, err = client.Dial(ctx, dial[0], o)
				if err != nil {
					return err
				}
				return c.Close()
			},
		},
		{
			name:  "login",
			setup: "One connection: edge.Hello, then login.Register of a new user (username alice, nickname alice) and login.Login of it; the login reply sets the session token the client keeps (TOKEN_1) and logs the connection in.",
			run: func(ctx context.Context, dial [2]string) error {
				c, err := client.Dial(ctx, dial[0], dialOpts(false, ""))
				if err != nil {
					return err
				}
				defer c.Close()
				_, err = loginAs(ctx, c, "alice")
				return err
			},
		},
		{
			name:  "call",
			setup: "One connection: edge.Hello, then echo.Echo with the raw payload \"hello\" (a public method: no login needed), then echo.Sleep{ms: 1}.",
			run: func(ctx context.Context, dial [2]string) error {
				c, err := client.Dial(ctx, dial[0], dialOpts(false, ""))
				if err != nil {
					return err
				}
				defer c.Close()
				if _, err := c.Call(ctx, "echo.Echo", []byte("hello")); err != nil {
					return err
				}
				return c.CallThrift(ctx, "echo.Sleep", &echoapi.SleepRequest{Ms: 1}, echoapi.NewSleepReply())
			},
		},
		{
			name:  "error",
			setup: "One connection: edge.Hello, then room.Create before any login: a private method is answered \"unauthenticated: room.Create requires login\" and the connection stays open; then a request with an empty method (a well-formed frame, not a bad_frame), answered bad_request (an invalid method name) on the open connection; echo.Echo still works after both.",
			run: func(ctx context.Context, dial [2]string) error {
				c, err := client.Dial(ctx, dial[0], dialOpts(false, ""))
				if err != nil {
					return err
				}
				defer c.Close()
				err = c.CallThrift(ctx, "room.Create", &roomapi.CreateRequest{Name: "table"}, roomapi.NewRoomState())
				var werr *client.Error
				if !errors.As(err, &werr) || werr.Code != "unauthenticated" {
					return fmt.Errorf("room.Create before login: %v, want unauthenticated", err)
				}
				_, err = c.Call(ctx, "", nil)
				if !errors.As(err, &werr) || werr.Code != "bad_request" {
					return fmt.Errorf("empty method: %v, want bad_request", err)
				}
				_, err = c.Call(ctx, "echo.Echo", []byte("still here"))
				return err
			},
		},
		{
			name: "push",
			setup: "Two connections to one broker. The first says edge.Hello with push: true, registers and logs in carol and room.Create's a race31 room (ROOM_1); the second (edge.Hello without push) registers and logs in dave and room.Join's it. " +
				"The first connection then gets the push \"@room.Event\" (a room.Event of type room.joined, player dave) after its own replies. (Pushes are asynchronous: a client must accept them between any two replies.)",
			run: func(ctx context.Context, dial [2]string) error {
				a, err := client.Dial(ctx, dial[0], dialOpts(true, ""))
				if err != nil {
					return err
				}
				defer a.Close()
				if _, err := loginAs(ctx, a, "carol"); err != nil {
					return err
				}
				st := roomapi.NewRoomState()
				if err := a.CallThrift(ctx, "room.Create", &roomapi.CreateRequest{Name: "table", Game: "race31", MaxPlayers: 2}, st); err != nil {
					return err
				}
				// The creator gets no push of its own create: the broker
				// subscribes it to the room when the reply passes, after
				// room.created was published.
				// The joiner asks for no pushes: whether it would see its
				// own room.joined depends on timing (its subscription is
				// made as the join reply passes the broker).
				b, err := client.Dial(ctx, dial[0], dialOpts(false, ""))
				if err != nil {
					return err
				}
				defer b.Close()
				if _, err := loginAs(ctx, b, "dave"); err != nil {
					return err
				}
				if err := b.CallThrift(ctx, "room.Join", &roomapi.JoinRequest{RoomID: st.GetID()}, roomapi.NewRoomState()); err != nil {
					return err
				}
				for {
					select {
					case p, ok := <-a.Pushes():
						if !ok {
							return errors.New("connection ended before the push")
						}
						if isJoined(p.Type, p.Payload) {
							return nil
						}
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			},
			// Whether the creator also sees room.created (published as
			// the room was made, while the broker subscribes it as the
			// reply passes) depends on timing: only room.joined is kept.
			push: isJoined,
		},
		{
			name: "resume",
			setup: "A broker change. Connection 1, to broker1: edge.Hello, login.Register and login.Login of erin (session token TOKEN_1), then room.List. The client then loses broker1 and connects to broker2: " +
				"connection 2 says edge.Hello with resume_token: TOKEN_1 (the token of the login.Login reply) and gets a HelloReply with user_id set: the connection is logged in without a login; room.List, a private method, is answered.",
			run: func(ctx context.Context, dial [2]string) error {
				a, err := client.Dial(ctx, dial[0], dialOpts(false, ""))
				if err != nil {
					return err
				}
				rep, err := loginAs(ctx, a, "erin")
				if err != nil {
					_ = a.Close()
					return err
				}
				if err := a.CallThrift(ctx, "room.List", &roomapi.ListRequest{}, roomapi.NewListReply()); err != nil {
					_ = a.Close()
					return err
				}
				_ = a.Close()
				b, err := client.Dial(ctx, dial[1], dialOpts(false, rep.GetSessionToken()))
				if err != nil {
					return err
				}
				defer b.Close()
				if b.HelloReply().GetUserID() != rep.GetUserID() {
					return fmt.Errorf("resume: user %q, want %q", b.HelloReply().GetUserID(), rep.GetUserID())
				}
				return b.CallThrift(ctx, "room.List", &roomapi.ListRequest{}, roomapi.NewListReply())
			},
		},
	}
}
