package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

func init() {
	register(command{
		name:    "cluster",
		summary: "run a multi-process cluster on this machine (yellow, brokers, services as separate processes)",
		run:     runCluster,
	})
}

// clusterChild is one process of `noon cluster`.
type clusterChild struct {
	name string
	args []string
	id   pki.Identity // its certificate's identity
	// service and instance name a service's instance (args hold
	// -instance instance); "" for yellow, the BrokerList and brokers.
	service  string
	instance int
}

func runCluster(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("cluster", "Runs migrations, then yellow, the BrokerList, N brokers and M instances of each service as separate `noon` processes against the Postgres and Redis of the config (configs/cluster.yaml), and stops them all on Ctrl-C. Broker i listens on TCP 1055+2i and WebSocket 1056+2i of every interface (public, as behind a load balancer; its admin endpoint on 127.0.0.1:1070+i), yellow's admin on 127.0.0.1:1062 and the BrokerList's on 127.0.0.1:1053, each plus -port-offset; instance n of a service runs with -instance n. Every -set reaches every process.\n\n"+moduleList(), stderr)
	var cf configFlags
	cf.register(fs, "configs/cluster.yaml")
	brokers := fs.Int("brokers", 2, "number of brokers")
	instances := fs.Int("instances", 2, "instances of each service")
	offset := fs.Int("port-offset", 0, "add `n` to every port the cluster chooses (brokers' TCP, WebSocket and admin, yellow's and the BrokerList's admin), to run beside another cluster; the config's own ports (yellow, BrokerList, login API) are set with -set")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *offset < 0 || 1070+*offset+*brokers > 65535 {
		fmt.Fprintf(stderr, "noon cluster: -port-offset %d puts ports out of range\n", *offset)
		return errUsage
	}
	file := &cf.file
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	// Processes share data only through the stores: in-memory ones will not do.
	if needs := needsOf(modules...); needs.Postgres && cfg.Postgres.URL == "" || needs.Redis && len(cfg.Redis.Addrs) == 0 {
		return fmt.Errorf("%s: a cluster needs postgres.url and redis.addrs", *file)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	// Every process reads the same config file and -set overrides.
	base := []string{"-config", *file}
	for _, set := range cf.sets {
		base = append(base, "-set", set)
	}
	base = slices.Clip(base) // each child appends its own flags to a copy
	if migrate, ok := commands["migrate"]; ok {
		if err := migrate.run(ctx, base, stdout, stderr); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	port := func(p int) string { return strconv.Itoa(p + *offset) }
	children := []clusterChild{
		{name: "yellow", args: append([]string{"yellow", "-admin", "127.0.0.1:" + port(1062)}, base...), id: pki.Identity{Role: pki.RoleYellow}},
		{name: "brokerlist", args: append([]string{"brokerlist", "-admin", "127.0.0.1:" + port(1053)}, base...), id: platform.BrokerListIdentity},
	}
	for _, m := range modules {
		for i := 1; i <= *instances; i++ {
			// -instance lets the service vary its options per instance
			// (an HTTP API on a port of its own; put a load balancer in
			// front).
			children = append(children, serviceChild(base, m.Name(), i))
		}
	}
	for i := 0; i < *brokers; i++ {
		// The client listeners are public (every interface), as in a
		// deployment; admin stays on loopback.
		name := fmt.Sprintf("broker-%d", i+1)
		children = append(children, clusterChild{name: name, args: append([]string{"broker"}, append(base,
			"-tcp", ":"+port(1055+2*i), "-ws", ":"+port(1056+2*i),
			"-admin", "127.0.0.1:"+port(1070+i))...), id: pki.Identity{Role: pki.RoleBroker, Name: name}})
	}
	tlsDir, eph, tlsArgs, err := clusterTLS(cfg, children)
	if err != nil {
		return err
	}
	if tlsDir != "" {
		defer os.RemoveAll(tlsDir)
	}
	sup := &supervisor{
		self: self, base: base, tlsArgs: tlsArgs, stdout: stdout, stderr: stderr,
		failed: make(chan string, 64),
	}
	defer sup.wait()
	for _, ch := range children {
		if err := sup.start(ch); err != nil {
			sup.stopAll()
			return err
		}
		if ch.name == "yellow" {
			time.Sleep(200 * time.Millisecond) // let yellow bind before the rest register
		}
	}
	// The operator's control endpoint (noonctl scale, deploy) and yellow's
	// view, to wait for new instances.
	yopts := yellow.ClientOptions{Yellows: cfg.Yellows}
	var serverTLS *tls.Config
	if eph != nil {
		creds, err := eph.Credentials(clusterIdentity)
		if err != nil {
			sup.stopAll()
			return err
		}
		yopts.TLS = creds
		serverTLS = creds.ServerConfig(func(id pki.Identity) error {
			if id.Role != pki.RoleAdmin {
				return fmt.Errorf("%s may not control the cluster: admin only", id)
			}
			return nil
		})
	}
	sup.watcher = yellow.Watch(yopts)
	defer sup.watcher.Close()
	ctlAddr := "127.0.0.1:" + port(1065)
	ctl, err := sup.serveControl(ctlAddr, serverTLS)
	if err != nil {
		sup.stopAll()
		return err
	}
	defer ctl.Close()
	fmt.Fprintf(stdout, "cluster up: BrokerList http://%s/brokerlist; Ctrl-C stops it\n", wire.DialAddr(cfg.BrokerList.Addr))
	scheme := "http"
	if tlsDir != "" {
		scheme = "https"
		fmt.Fprintf(stdout, "internal links: mutual TLS, ephemeral CA in %s; noonctl: bin/noonctl -tls %s instances\n", tlsDir, tlsDir)
	}
	fmt.Fprintf(stdout, "control: %s://%s (noonctl -cluster %s://%s scale SERVICE N | deploy [SERVICE...]; SIGHUP deploys every pool)\n", scheme, ctlAddr, scheme, ctlAddr)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			sup.stopAll()
			return nil
		case f := <-sup.failed:
			fmt.Fprintf(stdout, "process ended (%s): stopping the cluster\n", f)
			sup.stopAll()
			return nil
		case <-hup:
			go func() {
				rep, err := sup.deploy(ctx, nil, deployWait)
				if err != nil {
					sup.logf("deploy: %v", err)
					return
				}
				sup.logf("deploy done: %s", strings.Join(rep, "; "))
			}()
		}
	}
}

// clusterTLS turns TLS on for the cluster, unless the config says
// tls.insecure: it makes an ephemeral CA, writes its certificate, one
// certificate per identity of children and one for noonctl (admin) to a
// temporary directory (0700). It returns the directory ("" without TLS;
// the caller removes it), the CA, and the -set tls.* arguments of each
// identity.
func clusterTLS(cfg *Config, children []clusterChild) (string, *pki.Ephemeral, map[pki.Identity][]string, error) {
	if cfg.TLS.Insecure {
		return "", nil, nil, nil
	}
	eph, err := pki.NewEphemeral()
	if err != nil {
		return "", nil, nil, err
	}
	dir, err := os.MkdirTemp("", "noon-cluster-tls-")
	if err != nil {
		return "", nil, nil, err
	}
	ids := []pki.Identity{adminIdentity}
	for _, ch := range children {
		ids = append(ids, ch.id)
	}
	files, err := ephemeralFiles(eph, dir, ids...)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, fmt.Errorf("tls: %w", err)
	}
	args := make(map[pki.Identity][]string, len(files))
	for id, f := range files {
		args[id] = []string{"-set", "tls.ca=" + f.CA, "-set", "tls.cert=" + f.Cert, "-set", "tls.key=" + f.Key}
	}
	return dir, eph, args, nil
}
