package main

import (
	"context"
	"io"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/platform"
)

func init() {
	register(command{
		name:    "broker",
		summary: "run an edge broker: client connections, routing, pushes",
		run:     runBroker,
	})
	register(command{
		name:    "brokerlist",
		summary: "serve the BrokerList JSON (GET /brokerlist) from yellow",
		run:     runBrokerList,
	})
}

func runBroker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("broker", "Runs an edge broker: keeps client connections (TCP pandaparty frames, WebSocket) and routes each request by type to a stateless service, or by session to the stateful instance that owns it.", stderr)
	var cf configFlags
	cf.register(fs, "")
	tcp := fs.String("tcp", "", "client TCP `addr` (overrides broker.edge.tcp_addr)")
	ws := fs.String("ws", "", "client WebSocket `addr` (overrides broker.edge.ws_addr)")
	advertise := fs.String("advertise", "", "`host:port` clients dial, published in the BrokerList (overrides broker.advertise)")
	control := fs.String("control", "", "control ROUTER `endpoint` (overrides broker.control)")
	id := fs.String("id", "", "broker instance `id` (overrides broker.id; default generated)")
	admin := fs.String("admin", "", "admin HTTP `addr` for /metrics, /healthz, /readyz and /drain (overrides admin.addr)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.loadWith(func(c *Config) {
		setIf(&c.Broker.Edge.TCPAddr, *tcp)
		setIf(&c.Broker.Edge.WSAddr, *ws)
		setIf(&c.Broker.Advertise, *advertise)
		setIf(&c.Broker.Control, *control)
		setIf(&c.Broker.ID, *id)
		setIf(&c.Admin.Addr, *admin)
	})
	if err != nil {
		return err
	}
	rt, err := newRuntime(cfg, adminBroker, stderr)
	if err != nil {
		return err
	}
	b, err := rt.newBroker(cfg)
	if err != nil {
		return err
	}
	return rt.run(ctx, daemon.Named{Name: "broker", Daemon: b})
}

// newBroker builds the configured broker, its metrics, health (liveness)
// and readiness (routes synced, registered in yellow) on the admin
// endpoint; an admin's drain request (noonctl drain) drains the process.
func (rt *runtime) newBroker(cfg *Config) (*broker.Broker, error) {
	o := cfg.brokerOptions()
	var err error
	if o.TLS, err = cfg.credentials(); err != nil {
		return nil, err
	}
	o.Insecure = cfg.TLS.Insecure
	o.AdminAddr = rt.adminAddr()
	b, err := broker.New(o, rt.log.With("daemon", "broker"), rt.registry("broker"))
	if err != nil {
		return nil, err
	}
	rt.health("broker", b.Health)
	rt.ready("broker", b.Ready)
	b.SetDrainRequest(rt.requestDrain)
	return b, nil
}

func runBrokerList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("brokerlist", "Serves GET /brokerlist: every ready broker's client address and load, read from yellow. Stateless: run several behind one DNS name.", stderr)
	var cf configFlags
	cf.register(fs, "")
	addr := fs.String("addr", "", "HTTP `addr` (overrides brokerlist.addr)")
	admin := fs.String("admin", "", "admin HTTP `addr` for /metrics, /healthz, /readyz and /drain (overrides admin.addr)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.loadWith(func(c *Config) {
		setIf(&c.BrokerList.Addr, *addr)
		setIf(&c.Admin.Addr, *admin)
	})
	if err != nil {
		return err
	}
	rt, err := newRuntime(cfg, adminBrokerList, stderr)
	if err != nil {
		return err
	}
	o := cfg.brokerListOptions()
	if o.TLS, err = cfg.credentials(); err != nil {
		return err
	}
	s, err := brokerlist.New(o, rt.log.With("daemon", "brokerlist"))
	if err != nil {
		return err
	}
	// Readiness: a view of the brokers from yellow. Its Health (is a
	// yellow reachable now?) is a dependency's, not liveness: without
	// yellow it serves its last view.
	rt.ready("brokerlist", platform.BrokerListReady(s))
	rt.log.Info("brokerlist listening", "url", "http://"+s.Addr().String()+brokerlist.Path)
	return rt.run(ctx, daemon.Named{Name: "brokerlist", Daemon: s})
}
