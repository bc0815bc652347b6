package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/noonhq/noon/edge/client"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
)

// up starts Redis, yellow, the services and the brokers, and waits until
// each broker answers echo, login and room calls.
func (c *cluster) up(ctx context.Context) error {
	if err := c.startRedis(ctx); err != nil {
		return err
	}
	ports := make([]int, 4)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return err
		}
		ports[i] = p
	}
	c.yellowEP = fmt.Sprintf("tcp://127.0.0.1:%d", ports[0])
	c.yellowPub = fmt.Sprintf("tcp://127.0.0.1:%d", ports[1])
	c.brokers = []string{fmt.Sprintf("127.0.0.1:%d", ports[2]), fmt.Sprintf("127.0.0.1:%d", ports[3])}
	tls, err := c.certs(ctx, [][2]string{{"yellow", ""}, {"broker", "broker-1"}, {"broker", "broker-2"},
		{"service", "login"}, {"service", "echo"}, {"service", "room"}})
	if err != nil {
		return err
	}
	common := []string{"-config", c.config,
		"-set", "postgres.url=" + c.dbURL(true),
		"-set", "redis.addrs=" + c.redisAddr(),
		"-set", "yellows=" + c.yellowEP,
		"-set", "log.format=text",
		"-set", "broker.drain_grace=1s",
		"-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1",
		"-set", "services.login.http_addr=",
		"-set", "services.login.ban_check=",
		// Every bot logs in from 127.0.0.1, and every bot's connect
		// registers (a taken name): per_address counts registrations, so
		// it is raised (still on: Redis is asked). per_account_address and
		// per_account count only failed logins (the bots' passwords are
		// right) and shed_queue / max_queue only a long hash queue: they
		// keep the platform's defaults, so a throttle or a shed answered
		// to the bots is a finding.
		"-set", "services.login.throttle.per_address.max=1000000",
		// Pairs create a room per game (one every few seconds): the
		// per-user create quota is raised (still counted in Redis); open
		// rooms per user stay bounded (a bot leaves each game's room).
		"-set", "services.room.max_creates_per_user=1000000",
		"-set", "services.room.max_rooms_per_user=10",
		// member_rate keeps its default (10/s, bursts of 20): the bots
		// pace their moves within it (-act-pace).
		"-set", "services.room.postgres_schema=room",
		"-set", "services.room.lease_ttl=2s",
		"-set", "services.room.race31.target=60",
		"-set", "services.room.race31.max_add=1",
		"-set", "services.room.race31.turn_timeout=10s",
		"-set", "services.room.rewards.on_win=null",
		"-admin", "127.0.0.1:0"}
	with := func(extra ...[]string) []string {
		out := append([]string{}, common...)
		for _, e := range extra {
			out = append(out, e...)
		}
		return out
	}
	c.args = map[string][]string{
		"yellow": append([]string{"yellow"}, with(tls["yellow"], []string{"-router", c.yellowEP, "-pub", c.yellowPub})...),
	}
	for _, svc := range []string{"login", "echo", "room"} {
		for i := 1; i <= 3; i++ {
			c.args[fmt.Sprintf("%s-%d", svc, i)] = append([]string{"service", svc}, with(tls["service-"+svc])...)
		}
	}
	for i, addr := range c.brokers {
		name := fmt.Sprintf("broker-%d", i+1)
		c.args[name] = append([]string{"broker"}, with(tls["broker-"+name],
			[]string{"-tcp", addr, "-id", name, "-set", "broker.edge.ws_addr="})...)
	}
	if _, err := c.restart("yellow"); err != nil {
		return err
	}
	if err := waitTCP(ctx, c.yellowEP[len("tcp://"):], 20*time.Second); err != nil {
		return fmt.Errorf("yellow: %w", err)
	}
	for _, n := range []string{"login-1", "login-2", "echo-1", "echo-2", "room-1", "room-2", "broker-1", "broker-2"} {
		if _, err := c.restart(n); err != nil {
			return err
		}
	}
	for _, b := range c.brokers {
		if err := probe(ctx, b, 60*time.Second); err != nil {
			return fmt.Errorf("broker %s not ready: %w (process logs in %s/logs)", b, err, c.dir)
		}
	}
	return nil
}

// restart starts the process called name with its arguments.
func (c *cluster) restart(name string) (*proc, error) {
	args, ok := c.args[name]
	if !ok {
		return nil, fmt.Errorf("no process %s", name)
	}
	return c.noon(name, args...)
}

// waitTCP waits until addr accepts a connection.
func waitTCP(ctx context.Context, addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		nc, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			nc.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// probe waits until broker answers echo.Echo, login.Register and
// room.List.
func probe(ctx context.Context, broker string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last error
	user := "probe" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for {
		last = probeOnce(ctx, broker, user)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return last
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func probeOnce(ctx context.Context, broker, user string) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := client.Dial(cctx, broker, client.DefaultOptions())
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.Call(cctx, "echo.Echo", []byte("probe")); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	s, err := client.Connect(cctx, client.SessionOptions{Brokers: []string{broker}})
	if err != nil {
		return err
	}
	defer s.Close()
	if err := registerLogin(cctx, s, user, "pw-"+user); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if _, err := roomrpc.NewClient(s.CallThrift).List(cctx, &roompb.ListRequest{Game: "race31", Limit: 1}); err != nil {
		return fmt.Errorf("room: %w", err)
	}
	return nil
}

// phases lists the faults, each injected once under load.
func (c *cluster) phases(o options) []*phase {
	down := o.phase / 4
	if down < 2*time.Second {
		down = 2 * time.Second
	}
	all := []string{kindEcho, kindLogin, kindRoom}
	killRestart := func(name string, wait time.Duration) func(context.Context) (time.Time, error) {
		return func(ctx context.Context) (time.Time, error) {
			if err := c.kill(name, syscall.SIGKILL, 10*time.Second); err != nil {
				return time.Time{}, err
			}
			ref := time.Now()
			sleepCtx(ctx, wait)
			_, err := c.restart(name)
			return ref, err
		}
	}
	return []*phase{
		{name: "baseline", kinds: all, inject: func(context.Context) (time.Time, error) { return time.Now(), nil }},
		{name: "kill -9 echo-1", kinds: []string{kindEcho}, inject: killRestart("echo-1", down)},
		// The room lease is 2 s: room-1's rooms move to room-2 after it.
		{name: "kill -9 room-1 (room owner)", kinds: []string{kindRoom}, inject: killRestart("room-1", max(down, 3*time.Second))},
		{name: "kill -9 broker-1", kinds: all, inject: killRestart("broker-1", down)},
		{name: "kill -9 yellow, restart", kinds: all, inject: killRestart("yellow", time.Second)},
		{name: "Redis kill -9, restart", kinds: []string{kindLogin, kindRoom}, inject: func(ctx context.Context) (time.Time, error) {
			if err := c.kill("redis", syscall.SIGKILL, 10*time.Second); err != nil {
				return time.Time{}, err
			}
			sleepCtx(ctx, down/2)
			err := c.startRedis(ctx)
			return time.Now(), err
		}},
		{name: "Postgres outage", kinds: []string{kindLogin, kindRoom}, inject: func(ctx context.Context) (time.Time, error) {
			c.proxy.Cut()
			sleepCtx(ctx, down)
			c.proxy.Restore()
			return time.Now(), nil
		}},
		{name: "SIGTERM drain room-2, echo-2", kinds: []string{kindEcho, kindRoom}, inject: func(ctx context.Context) (time.Time, error) {
			ref := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, n := range []string{"room-2", "echo-2"} {
				wg.Add(1)
				go func() { defer wg.Done(); errs[i] = c.kill(n, syscall.SIGTERM, 40*time.Second) }()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return ref, err
				}
			}
			for _, n := range []string{"room-2", "echo-2"} {
				if _, err := c.restart(n); err != nil {
					return ref, err
				}
			}
			return ref, nil
		}},
		{name: "scale-out echo-3, room-3", kinds: []string{kindEcho, kindRoom}, inject: func(ctx context.Context) (time.Time, error) {
			ref := time.Now()
			for _, n := range []string{"echo-3", "room-3"} {
				if _, err := c.restart(n); err != nil {
					return ref, err
				}
			}
			return ref, nil
		}},
	}
}
