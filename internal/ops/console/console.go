// Package console is noon's web console: a small static page (embedded,
// no build step) showing what `noonctl top` shows, graphs of req/s, p99
// latency and errors per service over the last minutes, and a Drain button
// per instance. It is served under /console/ by the `noon console` daemon
// and on the admin HTTP port of `noon dev`.
//
// A Console takes an ops snapshot every Interval and keeps the last
// History of them in a ring (the graphs' data), so the browser only reads.
// Its API wants the bearer token (Options.Token):
//
//	GET  /console/api/snapshot  the latest snapshot and the ring, as JSON
//	POST /console/api/drain     {"instance": "<id>"}: the Drainer drains it
//
// The page itself (/console/) carries no data and needs no token.
package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/ops"
	"github.com/noonhq/noon/wire"
)

// Path is where the console is mounted.
const Path = "/console/"

// Limits of the console.
const (
	// DefaultInterval is how often a snapshot is taken (the page refreshes
	// as often).
	DefaultInterval = 2 * time.Second
	// DefaultHistory is how many snapshots the ring keeps: 10 minutes at
	// DefaultInterval, a few hundred KiB of JSON at most.
	DefaultHistory = 300
	// MaxHistory bounds History whatever the options say.
	MaxHistory = 3600
	// maxDrainBody caps a drain request's body: {"instance": id} with an
	// id of at most maxInstanceID bytes fits many times.
	maxDrainBody = 1 << 10
	// maxInstanceID bounds an instance id (yellow's ids are far shorter).
	maxInstanceID = 128
	// drainTimeout bounds one Drainer call.
	drainTimeout = 30 * time.Second
	// maxAuthHeader caps the Authorization header compared.
	maxAuthHeader = 512
	// maxDrainsInFlight bounds concurrent drain requests.
	maxDrainsInFlight = 4
	// tokenBytes is the entropy of a generated token.
	tokenBytes = 16
)

//go:embed static
var static embed.FS

// Drainer makes an instance drain (as on SIGTERM), remotely: the admin
// platform method. It returns ErrDrainUnavailable when the platform
// offers none.
type Drainer func(ctx context.Context, instance string) error

// ErrDrainUnavailable is what the default Drainer returns: draining from
// the console is not wired in this build.
var ErrDrainUnavailable = errors.New("drain is not available")

// Options configure a Console.
type Options struct {
	// Collector takes the snapshots (required).
	Collector *ops.Collector
	// Token is the bearer token the API wants; "" generates one (see
	// Console.Token), which the caller prints.
	Token string
	// Drainer drains an instance; nil: every drain answers
	// ErrDrainUnavailable (501).
	Drainer Drainer
	// Interval and History: see DefaultInterval, DefaultHistory.
	Interval time.Duration
	History  int
	// Log receives the console's logs; nil discards them.
	Log *slog.Logger
}

// Point is one snapshot's figures per service, for the graphs.
type Point struct {
	Time     int64               `json:"t"` // Unix milliseconds
	Services map[string]PointSvc `json:"s"`
}

// PointSvc is one service's figures at a Point.
type PointSvc struct {
	ReqRate float64 `json:"r"`
	ErrRate float64 `json:"e"`
	P99     float64 `json:"p"` // seconds, -1: no requests
}

// Console is the web console: an http.Handler under Path and a daemon
// whose Main takes the snapshots.
type Console struct {
	opts    Options
	log     *slog.Logger
	token   string
	tokenH  [32]byte
	drainer Drainer
	drains  chan struct{}
	handler http.Handler

	mu     sync.Mutex // guards latest, ring, next
	latest *ops.Snapshot
	ring   []Point
	next   int // where the next Point goes once the ring is full

	ready   chan struct{} // closed at the first snapshot
	readyMu sync.Once
	exiting atomic.Bool
	quit    chan struct{}
	done    chan struct{}
}

var _ daemon.Daemon = (*Console)(nil)

// New returns a Console of opts; Main starts taking snapshots.
func New(opts Options) (*Console, error) {
	if opts.Collector == nil {
		return nil, errors.New("console: Collector is required")
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.History <= 0 {
		opts.History = DefaultHistory
	}
	opts.History = min(opts.History, MaxHistory)
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	token := opts.Token
	if token == "" {
		var b [tokenBytes]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("console: token: %w", err)
		}
		token = hex.EncodeToString(b[:])
	}
	if len(token) < 16 || len(token) > 256 {
		return nil, fmt.Errorf("console: token must be 16..256 bytes, got %d", len(token))
	}
	c := &Console{
		opts:    opts,
		log:     opts.Log,
		token:   token,
		tokenH:  sha256.Sum256([]byte(token)),
		drainer: opts.Drainer,
		drains:  make(chan struct{}, maxDrainsInFlight),
		ready:   make(chan struct{}),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if c.drainer == nil {
		c.drainer = func(context.Context, string) error { return ErrDrainUnavailable }
	}
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+Path, http.StripPrefix(Path, http.FileServer(http.FS(sub))))
	mux.HandleFunc("GET "+Path+"api/snapshot", c.auth(c.snapshot))
	mux.HandleFunc("POST "+Path+"api/drain", c.auth(c.drain))
	c.handler = headers(mux)
	return c, nil
}

// Token returns the bearer token the API wants.
func (c *Console) Token() string { return c.token }

// Handler returns the console's handler, to mount at Path.
func (c *Console) Handler() http.Handler { return c.handler }

// Ready is closed once the first snapshot is taken.
func (c *Console) Ready() <-chan struct{} { return c.ready }

// Main takes a snapshot every Interval until Exit or Drain.
func (c *Console) Main() error {
	defer close(c.done)
	t := time.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		c.collect()
		select {
		case <-c.quit:
			return nil
		case <-t.C:
		}
	}
}

// Drain stops the console (it has nothing to hand over).
func (c *Console) Drain(context.Context) error {
	c.Exit()
	return nil
}

// Exit stops taking snapshots; idempotent.
func (c *Console) Exit() {
	if c.exiting.CompareAndSwap(false, true) {
		close(c.quit)
	}
}

// collect takes one snapshot and adds it to the ring.
func (c *Console) collect() {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Interval+ops.DefaultScrapeTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	snap, err := c.opts.Collector.Collect(ctx)
	if err != nil {
		c.log.Warn("console: snapshot", "err", err)
		return
	}
	p := Point{Time: snap.Time.UnixMilli(), Services: make(map[string]PointSvc, len(snap.Services))}
	if snap.Interval > 0 {
		for _, s := range snap.Services {
			p.Services[s.Name] = PointSvc{ReqRate: s.ReqRate, ErrRate: s.ErrRate, P99: s.P99}
		}
	}
	c.mu.Lock()
	c.latest = snap
	if len(c.ring) < c.opts.History {
		c.ring = append(c.ring, p)
	} else {
		c.ring[c.next] = p
		c.next = (c.next + 1) % len(c.ring)
	}
	c.mu.Unlock()
	c.readyMu.Do(func() { close(c.ready) })
}

// headers sets the security headers of every answer: the page loads only
// its own files, is never framed, and nothing is cached.
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// auth wraps an API handler: it wants "Authorization: Bearer <token>",
// compared in constant time (of the token's hash, so neither length nor
// content leaks).
func (c *Console) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		gh := sha256.Sum256([]byte(got))
		if !ok || len(got) > maxAuthHeader || subtle.ConstantTimeCompare(gh[:], c.tokenH[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="noon console"`)
			jsonError(w, http.StatusUnauthorized, "unauthenticated: the console token is required (Authorization: Bearer <token>)")
			return
		}
		h(w, r)
	}
}

// snapshotReply is GET /console/api/snapshot's answer.
type snapshotReply struct {
	Snapshot *ops.Snapshot `json:"snapshot"`
	History  []Point       `json:"history"`
	// IntervalMs is how often snapshots are taken.
	IntervalMs int64 `json:"interval_ms"`
}

// snapshot answers the latest snapshot and the ring, oldest first.
func (c *Console) snapshot(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	rep := snapshotReply{Snapshot: c.latest, IntervalMs: c.opts.Interval.Milliseconds()}
	rep.History = make([]Point, 0, len(c.ring))
	rep.History = append(rep.History, c.ring[c.next:]...)
	rep.History = append(rep.History, c.ring[:c.next]...)
	c.mu.Unlock()
	if rep.Snapshot == nil {
		jsonError(w, http.StatusServiceUnavailable, "unavailable: no snapshot yet")
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// drainRequest is POST /console/api/drain's body.
type drainRequest struct {
	Instance string `json:"instance"`
}

// drain asks the Drainer to drain one instance of the latest snapshot.
func (c *Console) drain(w http.ResponseWriter, r *http.Request) {
	select {
	case c.drains <- struct{}{}:
		defer func() { <-c.drains }()
	default:
		jsonError(w, http.StatusTooManyRequests, "rate_limited: too many drains in flight")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		jsonError(w, http.StatusUnsupportedMediaType, "bad_request: the body must be application/json")
		return
	}
	var req drainRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxDrainBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		jsonError(w, http.StatusBadRequest, "bad_request: "+err.Error())
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		jsonError(w, http.StatusBadRequest, "bad_request: one JSON object expected")
		return
	}
	if req.Instance == "" || len(req.Instance) > maxInstanceID || !validID(req.Instance) {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("bad_request: instance must be 1..%d bytes of [A-Za-z0-9._:-], got %q", maxInstanceID, wire.Snippet(req.Instance)))
		return
	}
	if !c.known(req.Instance) {
		jsonError(w, http.StatusNotFound, fmt.Sprintf("not_found: no instance %q in the latest snapshot", req.Instance))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), drainTimeout)
	defer cancel()
	c.log.Info("console: drain", "instance", req.Instance, "remote", r.RemoteAddr)
	if err := c.drainer(ctx, req.Instance); err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, ErrDrainUnavailable) {
			status = http.StatusNotImplemented
		}
		c.log.Warn("console: drain", "instance", req.Instance, "err", err)
		jsonError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"instance": req.Instance, "result": "draining"})
}

// known reports whether id is an instance of the latest snapshot.
func (c *Console) known(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.latest == nil {
		return false
	}
	for _, s := range c.latest.Services {
		for _, in := range s.Instances {
			if in.ID == id {
				return true
			}
		}
	}
	for _, b := range c.latest.Brokers {
		if b.ID == id {
			return true
		}
	}
	return false
}

// validID reports whether id holds only the characters of instance ids.
func validID(id string) bool {
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == ':' || ch == '-') {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
