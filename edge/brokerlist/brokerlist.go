// Package brokerlist serves the BrokerList: the one address a game client
// knows. GET /brokerlist answers
//
//	{"version":"0.1.0","brokerList":{"host:port":0.067,"host:port":0.0418}}
//
// with the client address and load of every ready broker registered in
// yellow (draining brokers are left out); a client connects to the one with
// the lowest load. The server is stateless (it only reads yellow), so
// several run behind one DNS name; `noon dev` mounts Handler on its own
// HTTP server.
package brokerlist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/yellow"
)

// Version is the "version" field of the BrokerList JSON.
const Version = "0.1.0"

// Paths served.
const (
	// Path is where the BrokerList is served.
	Path = "/brokerlist"
	// HealthPath answers 200 once yellow gave a view, 503 before.
	HealthPath = "/healthz"
)

// BrokerService is the service name brokers register under in yellow
// (broker.ServiceName; not imported, so the BrokerList builds alone).
const BrokerService = "broker"

// Defaults of Options.
const (
	// DefaultAddr is the BrokerList's HTTP address (DESIGN.md ports), on
	// loopback: only a config that says so (configs/cluster.yaml) exposes
	// it to the network.
	DefaultAddr = "127.0.0.1:1050"
	// DefaultHeartbeat is yellow's default heartbeat, which the watcher
	// expects ticks at.
	DefaultHeartbeat = time.Second
)

// HTTP server limits.
const (
	// readHeaderTimeout bounds a request's headers: a GET is one small
	// packet; five seconds rides out a slow mobile link.
	readHeaderTimeout = 5 * time.Second
	// writeTimeout bounds writing the reply: a list of a few hundred
	// brokers is a few KiB.
	writeTimeout = 10 * time.Second
	// idleTimeout closes idle keep-alive connections: clients fetch the
	// list once per connect, so there is nothing to keep alive for long.
	idleTimeout = 60 * time.Second
	// maxHeaderBytes bounds request headers: a GET needs a few hundred
	// bytes; 16 KiB allows big cookies from a browser.
	maxHeaderBytes = 16 << 10
	// loadDecimals is how many decimals of a load are served: loads are
	// rounded so the JSON shows 0.067 rather than 0.06700000000000001.
	loadDecimals = 4
)

// Options configures a BrokerList server.
type Options struct {
	// Addr is the HTTP listen address (port 0 picks a free port).
	Addr string `yaml:"addr"`
	// Yellows are the ROUTER endpoints of every yellow to read brokers
	// from.
	Yellows []string `yaml:"yellows"`
	// Heartbeat is the yellows' heartbeat.
	Heartbeat time.Duration `yaml:"heartbeat"`
	// TLS, when set, runs mutual TLS on the links to yellow; the
	// BrokerList is part of the edge, so its certificate must say broker
	// (e.g. broker:brokerlist). Nil: plain links.
	TLS *pki.Credentials `yaml:"-"`
}

// NewOptions returns the default options; Yellows still needs setting.
func NewOptions() Options {
	return Options{Addr: DefaultAddr, Heartbeat: DefaultHeartbeat}
}

// Validate checks the options and names every bad field by its yaml name.
func (o Options) Validate() error {
	var errs config.Errors
	errs.Add(config.HostPort("addr", o.Addr))
	if len(o.Yellows) == 0 {
		errs.Addf("yellows", "at least one yellow endpoint is required: brokers are listed from yellow")
	}
	for i, y := range o.Yellows {
		errs.Add(config.DialEndpoint(fmt.Sprintf("yellows[%d]", i), y))
	}
	errs.Add(config.Range("heartbeat", o.Heartbeat, 10*time.Millisecond, time.Minute))
	return errs.Err()
}

// List is the BrokerList JSON.
type List struct {
	// Version is Version.
	Version string `json:"version"`
	// Brokers maps each ready broker's client address to its load.
	Brokers map[string]float64 `json:"brokerList"`
}

// Brokers returns the BrokerList of what w sees: every READY broker's
// client address and load. When two records share an address (a broker
// restarted before its old record expired) the lower load is kept.
func Brokers(w *yellow.Watcher) List {
	l := List{Version: Version, Brokers: make(map[string]float64)}
	for _, inst := range w.Instances(BrokerService) {
		addr := inst.GetClientAddr()
		if addr == "" || inst.GetState() != platformpb.InstanceState_INSTANCE_STATE_READY {
			continue
		}
		load := roundLoad(inst.GetLoad())
		if old, ok := l.Brokers[addr]; !ok || load < old {
			l.Brokers[addr] = load
		}
	}
	return l
}

// roundLoad rounds a load to loadDecimals decimals.
func roundLoad(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	p := math.Pow10(loadDecimals)
	return math.Round(v*p) / p
}

// Handler serves GET /brokerlist and GET /healthz from w, answering 405 to
// other verbs. w is read on every request; the caller owns it.
func Handler(w *yellow.Watcher) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(Path, func(rw http.ResponseWriter, r *http.Request) {
		if !allow(rw, r) {
			return
		}
		body, err := json.Marshal(Brokers(w))
		if err != nil {
			http.Error(rw, "internal: "+err.Error(), http.StatusInternalServerError)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Cache-Control", "no-store")
		// Browser clients fetch the list from a game page on another
		// origin; it holds nothing private.
		rw.Header().Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = rw.Write(body)
	})
	mux.HandleFunc(HealthPath, func(rw http.ResponseWriter, r *http.Request) {
		if !allow(rw, r) {
			return
		}
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		st := w.Stats()
		switch {
		case st.Syncs == 0:
			rw.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(rw, "no view from yellow yet")
		case st.Up == 0:
			_, _ = fmt.Fprintln(rw, "ok (stale: no yellow reachable, serving the last view)")
		default:
			_, _ = fmt.Fprintln(rw, "ok")
		}
	})
	return mux
}

// allow answers 405 to anything but GET and HEAD.
func allow(rw http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	rw.Header().Set("Allow", "GET, HEAD")
	http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
	return false
}

var _ daemon.Daemon = (*Server)(nil)

// Server is `noon brokerlist`: the BrokerList over HTTP, read from yellow.
type Server struct {
	opts    Options
	log     *slog.Logger
	ln      net.Listener
	w       *yellow.Watcher
	mux     *http.ServeMux
	srv     *http.Server
	started atomic.Bool
	exiting atomic.Bool
	done    chan struct{}
}

// New validates opts, binds the listener (port 0 picks a free port; see
// Addr) and starts following yellow. Main serves. A nil log discards logs.
func New(opts Options, log *slog.Logger) (*Server, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.TLS != nil {
		if err := opts.TLS.Require(pki.Identity{Role: pki.RoleBroker}); err != nil {
			return nil, fmt.Errorf("brokerlist: tls: %w", err)
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("brokerlist: listen %s: %w", opts.Addr, err)
	}
	s := &Server{opts: opts, log: log, ln: ln, done: make(chan struct{})}
	s.w = yellow.Watch(yellow.ClientOptions{Yellows: opts.Yellows, Heartbeat: opts.Heartbeat, TLS: opts.TLS, Logger: log})
	s.mux = http.NewServeMux()
	s.mux.Handle("/", Handler(s.w))
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("brokerlist: listening", "addr", ln.Addr().String(), "path", Path)
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Handle serves pattern (an http.ServeMux pattern, e.g. "/play/") with h
// beside the BrokerList: `noon dev` serves its browser game there, on the
// one address a game client knows. It panics as ServeMux.Handle does (a
// conflicting pattern).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Watcher returns the yellow watcher the server reads.
func (s *Server) Watcher() *yellow.Watcher { return s.w }

// Main serves until Exit and returns nil, or returns the first fatal error
// (after calling Exit). It must be called once.
func (s *Server) Main() error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("brokerlist: Main called twice")
	}
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) || s.exiting.Load() {
		<-s.done
		return nil
	}
	s.Exit()
	return fmt.Errorf("brokerlist: serve: %w", err)
}

// Health returns nil once yellow gave a view and while some yellow answers.
func (s *Server) Health() error {
	st := s.w.Stats()
	switch {
	case s.exiting.Load():
		return errors.New("brokerlist: closed")
	case st.Syncs == 0:
		return errors.New("brokerlist: no view from yellow yet")
	case st.Up == 0:
		return errors.New("brokerlist: no yellow reachable: serving the last view")
	}
	return nil
}

// Drain stops accepting and lets requests being served finish, bounded by
// ctx, then exits.
func (s *Server) Drain(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.Exit()
	return err
}

// Exit closes the listener, the connections and the watcher. It is
// idempotent.
func (s *Server) Exit() {
	if !s.exiting.CompareAndSwap(false, true) {
		return
	}
	_ = s.srv.Close()
	_ = s.ln.Close()
	s.w.Close()
	close(s.done)
}
