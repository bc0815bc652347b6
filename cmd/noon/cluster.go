package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/wire"
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
		{"yellow", append([]string{"yellow", "-admin", "127.0.0.1:" + port(1062)}, base...), pki.Identity{Role: pki.RoleYellow}},
		{"brokerlist", append([]string{"brokerlist", "-admin", "127.0.0.1:" + port(1053)}, base...), platform.BrokerListIdentity},
	}
	for _, m := range modules {
		for i := 1; i <= *instances; i++ {
			// -instance lets the service vary its options per instance
			// (an HTTP API on a port of its own; put a load balancer in
			// front).
			args := append([]string{"service", m.Name(), "-instance", strconv.Itoa(i)}, base...)
			children = append(children, clusterChild{fmt.Sprintf("%s-%d", m.Name(), i), args,
				pki.Identity{Role: pki.RoleService, Name: m.Name()}})
		}
	}
	for i := 0; i < *brokers; i++ {
		// The client listeners are public (every interface), as in a
		// deployment; admin stays on loopback.
		name := fmt.Sprintf("broker-%d", i+1)
		children = append(children, clusterChild{name, append([]string{"broker"}, append(base,
			"-tcp", ":"+port(1055+2*i), "-ws", ":"+port(1056+2*i),
			"-admin", "127.0.0.1:"+port(1070+i))...), pki.Identity{Role: pki.RoleBroker, Name: name}})
	}
	tlsDir, err := clusterTLS(cfg, children)
	if err != nil {
		return err
	}
	if tlsDir != "" {
		defer os.RemoveAll(tlsDir)
	}

	var wg sync.WaitGroup
	var procs []*exec.Cmd
	var outMu sync.Mutex
	failed := make(chan string, len(children))
	for _, ch := range children {
		cmd := exec.Command(self, ch.args...)
		// Its own process group: a terminal's Ctrl-C reaches only this
		// supervisor, which stops each child once (a second signal would
		// make a child skip its drain).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout = stderr
		pipe, err := cmd.StderrPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			stopAll(procs)
			return fmt.Errorf("start %s: %w", ch.name, err)
		}
		procs = append(procs, cmd)
		fmt.Fprintf(stdout, "started %-12s pid %d: noon %v\n", ch.name, cmd.Process.Pid, ch.args)
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			sc := bufio.NewScanner(pipe)
			for sc.Scan() {
				outMu.Lock()
				fmt.Fprintf(stderr, "%-12s | %s\n", name, sc.Text())
				outMu.Unlock()
			}
			if err := cmd.Wait(); err != nil {
				failed <- fmt.Sprintf("%s: %v", name, err)
			} else {
				failed <- name + ": exited"
			}
		}(ch.name)
		if ch.name == "yellow" {
			time.Sleep(200 * time.Millisecond) // let yellow bind before the rest register
		}
	}
	fmt.Fprintf(stdout, "cluster up: BrokerList http://%s/brokerlist; Ctrl-C stops it\n", wire.DialAddr(cfg.BrokerList.Addr))
	if tlsDir != "" {
		fmt.Fprintf(stdout, "internal links: mutual TLS, ephemeral CA in %s; noonctl: bin/noonctl -tls %s instances\n", tlsDir, tlsDir)
	}
	select {
	case <-ctx.Done():
	case f := <-failed:
		fmt.Fprintf(stdout, "process ended (%s): stopping the cluster\n", f)
	}
	stopAll(procs)
	wg.Wait()
	return nil
}

// clusterTLS turns TLS on for the cluster, unless the config says
// tls.insecure: it makes an ephemeral CA, writes its certificate, one
// certificate per identity of children and one for noonctl (admin) to a
// temporary directory (0700), and adds each child's files to its
// arguments as -set tls.*. It returns the directory ("" without TLS); the
// caller removes it.
func clusterTLS(cfg *Config, children []clusterChild) (string, error) {
	if cfg.TLS.Insecure {
		return "", nil
	}
	eph, err := pki.NewEphemeral()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "noon-cluster-tls-")
	if err != nil {
		return "", err
	}
	ids := []pki.Identity{adminIdentity}
	for _, ch := range children {
		ids = append(ids, ch.id)
	}
	files, err := ephemeralFiles(eph, dir, ids...)
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("tls: %w", err)
	}
	for i := range children {
		f := files[children[i].id]
		children[i].args = append(children[i].args, "-set", "tls.ca="+f.CA, "-set", "tls.cert="+f.Cert, "-set", "tls.key="+f.Key)
	}
	return dir, nil
}

// stopAll sends SIGTERM to every process, in reverse start order (brokers
// drain first, yellow last).
func stopAll(procs []*exec.Cmd) {
	for i := len(procs) - 1; i >= 0; i-- {
		_ = procs[i].Process.Signal(syscall.SIGTERM)
	}
}
