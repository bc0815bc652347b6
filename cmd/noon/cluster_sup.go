package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// The supervisor of `noon cluster`: it starts the cluster's processes,
// stops the cluster when one dies unasked, and takes an operator's
// commands on its control endpoint (mutual TLS, admin certificates only;
// loopback): scale a service's pool, or roll every pool (or some) to the
// binary now at its path, one process at a time, each new one taking
// traffic before the next old one drains.

// clusterIdentity is the certificate of the supervisor's control endpoint.
var clusterIdentity = pki.Identity{Role: pki.RoleAdmin, Name: "cluster"}

// Bounds of the control endpoint and its operations.
const (
	// deployWait bounds each step of a deploy or a scale: a new instance
	// listed ready in yellow, an old one drained (its shutdownGrace and
	// then some).
	deployWait = shutdownGrace + 15*time.Second
	// maxScale bounds a pool's size.
	maxScale = 64
	// maxControlBody bounds a control request's body.
	maxControlBody = 4 << 10
)

// serviceChild is instance n of service.
func serviceChild(base []string, service string, n int) clusterChild {
	// -instance lets the service vary its options per instance (an HTTP
	// API on a port of its own; put a load balancer in front).
	return clusterChild{
		name:     fmt.Sprintf("%s-%d", service, n),
		args:     append([]string{"service", service, "-instance", strconv.Itoa(n)}, base...),
		id:       pki.Identity{Role: pki.RoleService, Name: service},
		service:  service,
		instance: n,
	}
}

// supervisor runs the cluster's processes.
type supervisor struct {
	self    string // the noon binary's path: a deploy runs what is there now
	base    []string
	tlsArgs map[pki.Identity][]string
	stdout  io.Writer
	stderr  io.Writer
	watcher *yellow.Watcher
	failed  chan string // a process ended unasked

	outMu sync.Mutex
	wg    sync.WaitGroup
	opMu  sync.Mutex // one scale or deploy at a time

	mu      sync.Mutex
	running []*clusterProc
}

// clusterProc is one running process.
type clusterProc struct {
	clusterChild
	cmd      *exec.Cmd
	done     chan struct{} // closed when it exited
	expected atomic.Bool   // asked to stop: its end is no failure
}

// logf writes a supervisor's line to stdout.
func (s *supervisor) logf(format string, args ...any) {
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.stdout, format+"\n", args...)
}

// start starts ch's process.
func (s *supervisor) start(ch clusterChild) error {
	args := append(slices.Clip(ch.args), s.tlsArgs[ch.id]...)
	cmd := exec.Command(s.self, args...)
	// Its own process group: a terminal's Ctrl-C reaches only this
	// supervisor, which stops each child once (a second signal would make
	// a child skip its drain).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdout = s.stderr
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", ch.name, err)
	}
	p := &clusterProc{clusterChild: ch, cmd: cmd, done: make(chan struct{})}
	s.mu.Lock()
	s.running = append(s.running, p)
	s.mu.Unlock()
	s.logf("started %-12s pid %d: noon %v", ch.name, cmd.Process.Pid, ch.args)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			s.outMu.Lock()
			fmt.Fprintf(s.stderr, "%-12s | %s\n", ch.name, sc.Text())
			s.outMu.Unlock()
		}
		err := cmd.Wait()
		s.mu.Lock()
		s.running = slices.DeleteFunc(s.running, func(q *clusterProc) bool { return q == p })
		s.mu.Unlock()
		close(p.done)
		switch {
		case p.expected.Load():
			s.logf("stopped %-12s pid %d", ch.name, cmd.Process.Pid)
		case err == nil && ch.service != "":
			// A clean exit is a drain an operator asked for (noonctl
			// drain, POST /drain): the pool is one smaller.
			s.logf("drained %-12s pid %d (the %s pool runs %d)", ch.name, cmd.Process.Pid, ch.service, len(s.pool(ch.service)))
		case err != nil:
			s.failed <- fmt.Sprintf("%s: %v", ch.name, err)
		default:
			s.failed <- ch.name + ": exited"
		}
	}()
	return nil
}

// stop drains p (SIGTERM) and waits until it exited, or ctx ends.
func (s *supervisor) stop(ctx context.Context, p *clusterProc) error {
	p.expected.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s did not exit in time: %w", p.name, ctx.Err())
	}
}

// stopAll sends SIGTERM to every process, in reverse start order (brokers
// drain first, yellow last).
func (s *supervisor) stopAll() {
	s.mu.Lock()
	list := slices.Clone(s.running)
	s.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].expected.Store(true)
		_ = list[i].cmd.Process.Signal(syscall.SIGTERM)
	}
}

// wait waits for every process and its output.
func (s *supervisor) wait() { s.wg.Wait() }

// pool returns the running instances of service, oldest first.
func (s *supervisor) pool(service string) []*clusterProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*clusterProc
	for _, p := range s.running {
		if p.service == service && !p.expected.Load() {
			out = append(out, p)
		}
	}
	return out
}

// freeInstance returns the smallest instance number of service not in
// use (an HTTP API's port follows it).
func (s *supervisor) freeInstance(service string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for n := 1; ; n++ {
		if !slices.ContainsFunc(s.running, func(p *clusterProc) bool { return p.service == service && p.instance == n }) {
			return n
		}
	}
}

// ready counts the instances of service yellow lists as ready.
func (s *supervisor) ready(service string) int {
	n := 0
	for _, in := range s.watcher.Instances(service) {
		if in.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY {
			n++
		}
	}
	return n
}

// waitReady waits until yellow lists at least n ready instances of
// service, within wait.
func (s *supervisor) waitReady(ctx context.Context, service string, n int, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if err := s.watcher.WaitFor(ctx, func() bool { return s.ready(service) >= n }); err != nil {
		return fmt.Errorf("%s: %d of %d instances ready in yellow after %v", service, s.ready(service), n, wait)
	}
	return nil
}

// grow starts one more instance of service and waits until it takes
// traffic (yellow lists one more ready instance).
func (s *supervisor) grow(ctx context.Context, service string, wait time.Duration) (string, error) {
	want := s.ready(service) + 1
	ch := serviceChild(s.base, service, s.freeInstance(service))
	if err := s.start(ch); err != nil {
		return "", err
	}
	return ch.name, s.waitReady(ctx, service, want, wait)
}

// scale starts or drains instances of service until n run.
func (s *supervisor) scale(ctx context.Context, service string, n int, wait time.Duration) ([]string, error) {
	if _, ok := findModule(service); !ok {
		return nil, wire.Errorf(wire.CodeNotFound, "no service %q in this cluster", wire.Snippet(service))
	}
	if n < 1 || n > maxScale {
		return nil, wire.Errorf(wire.CodeBadRequest, "a pool runs 1..%d instances, not %d", maxScale, n)
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	var did []string
	for len(s.pool(service)) < n {
		name, err := s.grow(ctx, service, wait)
		if err != nil {
			return did, err
		}
		did = append(did, "started "+name)
	}
	for {
		list := s.pool(service)
		if len(list) <= n {
			return did, nil
		}
		// The newest goes first: the oldest keep their ports.
		p := list[len(list)-1]
		sctx, cancel := context.WithTimeout(ctx, wait)
		err := s.stop(sctx, p)
		cancel()
		if err != nil {
			return did, err
		}
		did = append(did, "drained "+p.name)
	}
}

// deploy restarts the pools of services (every service and the brokers
// when empty; "broker" names the brokers) one process at a time with the
// binary now at the supervisor's path. A service's new instance takes
// traffic before its old one drains; a broker (its ports are its own)
// drains first, its clients moving to the other brokers, and its new
// process is listed ready before the next broker drains.
func (s *supervisor) deploy(ctx context.Context, pools []string, wait time.Duration) ([]string, error) {
	if len(pools) == 0 {
		for _, m := range modules {
			pools = append(pools, m.Name())
		}
		pools = append(pools, "broker")
	}
	for _, p := range pools {
		if _, ok := findModule(p); p != "broker" && !ok {
			return nil, wire.Errorf(wire.CodeNotFound, "no pool %q in this cluster", wire.Snippet(p))
		}
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	var did []string
	for _, pool := range pools {
		if pool == "broker" {
			d, err := s.deployBrokers(ctx, wait)
			did = append(did, d...)
			if err != nil {
				return did, err
			}
			continue
		}
		for _, old := range s.pool(pool) {
			name, err := s.grow(ctx, pool, wait)
			if err != nil {
				return did, err
			}
			sctx, cancel := context.WithTimeout(ctx, wait)
			err = s.stop(sctx, old)
			cancel()
			if err != nil {
				return did, err
			}
			did = append(did, fmt.Sprintf("%s: %s replaced %s", pool, name, old.name))
		}
	}
	return did, nil
}

// deployBrokers restarts the brokers one at a time.
func (s *supervisor) deployBrokers(ctx context.Context, wait time.Duration) ([]string, error) {
	s.mu.Lock()
	var brokers []*clusterProc
	for _, p := range s.running {
		if p.id.Role == pki.RoleBroker && p.args[0] == "broker" && !p.expected.Load() {
			brokers = append(brokers, p)
		}
	}
	s.mu.Unlock()
	var did []string
	for _, old := range brokers {
		want := s.ready("broker")
		sctx, cancel := context.WithTimeout(ctx, wait)
		err := s.stop(sctx, old)
		cancel()
		if err != nil {
			return did, err
		}
		if err := s.start(old.clusterChild); err != nil {
			return did, err
		}
		if err := s.waitReady(ctx, "broker", want, wait); err != nil {
			return did, err
		}
		did = append(did, "broker: restarted "+old.name)
	}
	return did, nil
}

// controlReply is the control endpoint's answer.
type controlReply struct {
	Done  []string      `json:"done,omitempty"`
	Error string        `json:"error,omitempty"`
	Procs []controlProc `json:"procs,omitempty"`
}

type controlProc struct {
	Name     string `json:"name"`
	Service  string `json:"service,omitempty"`
	Instance int    `json:"instance,omitempty"`
	PID      int    `json:"pid"`
}

// controlRequest is a scale or deploy command.
type controlRequest struct {
	Service string   `json:"service"`
	N       int      `json:"n"`
	Pools   []string `json:"pools"`
}

// serveControl serves the control endpoint on addr (a loopback address):
// GET /cluster lists the processes; POST /cluster/scale {"service","n"}
// and POST /cluster/deploy {"pools"} run to the end and answer what they
// did. With tlsConf, only admin certificates get in.
func (s *supervisor) serveControl(addr string, tlsConf *tls.Config) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /cluster", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		var rep controlReply
		for _, p := range s.running {
			rep.Procs = append(rep.Procs, controlProc{Name: p.name, Service: p.service, Instance: p.instance, PID: p.cmd.Process.Pid})
		}
		s.mu.Unlock()
		writeControl(w, http.StatusOK, rep)
	})
	op := func(run func(ctx context.Context, req controlRequest) ([]string, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req controlRequest
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeControl(w, http.StatusBadRequest, controlReply{Error: "bad request: " + err.Error()})
				return
			}
			if len(req.Pools) > maxScale {
				writeControl(w, http.StatusBadRequest, controlReply{Error: "bad request: too many pools"})
				return
			}
			did, err := run(r.Context(), req)
			if err != nil {
				code := http.StatusInternalServerError
				var we *wire.Error
				if errors.As(err, &we) && (we.Code == wire.CodeBadRequest || we.Code == wire.CodeNotFound) {
					code = http.StatusBadRequest
				}
				writeControl(w, code, controlReply{Done: did, Error: err.Error()})
				return
			}
			writeControl(w, http.StatusOK, controlReply{Done: did})
		}
	}
	mux.HandleFunc("POST /cluster/scale", op(func(ctx context.Context, req controlRequest) ([]string, error) {
		return s.scale(ctx, req.Service, req.N, deployWait)
	}))
	mux.HandleFunc("POST /cluster/deploy", op(func(ctx context.Context, req controlRequest) ([]string, error) {
		return s.deploy(ctx, req.Pools, deployWait)
	}))
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 5 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		var err error
		if tlsConf != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logf("control endpoint: %v", err)
		}
	}()
	return srv, nil
}

func writeControl(w http.ResponseWriter, code int, rep controlReply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(rep)
}
