// Package ops sees the whole platform at a glance: a Collector takes a
// Snapshot of every instance yellow knows (service, id, state, load,
// capacity, version, meta) and of what each daemon's admin /metrics says
// (requests, errors, in-flight, latency, rooms per room instance, broker
// connections, match queues and the scale-out signal). noonctl top prints
// snapshots; the console (package ops/console) serves them to a browser.
//
// An instance's admin endpoint is its yellow meta label wire.MetaAdmin.
// Instances sharing one admin endpoint (all of `noon dev`) are told apart by
// the metrics' daemon label (service_<name>, broker). Rates (requests and
// errors per second) and the latency percentile come from the difference
// between two successive snapshots of one Collector.
//
// The package does not import yellow (internal/ imports no daemon
// package): the caller passes a Directory, which a *yellow.Watcher is.
package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/wire"
)

// Limits of a Collector.
const (
	// DefaultScrapeTimeout bounds one /metrics request: the admin endpoints
	// answer from memory in milliseconds; a daemon that takes a second is
	// shown as unreachable rather than stalling the view.
	DefaultScrapeTimeout = 2 * time.Second
	// DefaultMaxBody caps the bytes read from one /metrics response: a
	// daemon exports a few hundred series (tens of KiB); 4 MiB leaves room
	// for many routes and queues and still bounds a misbehaving endpoint.
	DefaultMaxBody = 4 << 20
	// DefaultConcurrency bounds admin endpoints scraped at once: enough to
	// scrape a 100-instance cluster within a couple of timeouts, few enough
	// not to look like a storm to the daemons.
	DefaultConcurrency = 8
	// DefaultMaxInstances bounds the instances a snapshot lists (and so
	// the endpoints it scrapes): a large platform has a few hundred.
	DefaultMaxInstances = 2000
	// maxQueues bounds the match queues a snapshot lists.
	maxQueues = 200
)

// BrokerService is the service name brokers register with in yellow
// (broker.ServiceName; the package may not import broker).
const BrokerService = "broker"

// Metric names the snapshot reads (with the noon_ namespace).
const (
	mServiceRequests = "noon_service_requests_total"
	mServiceErrors   = "noon_service_errors_total"
	mServiceInFlight = "noon_service_in_flight"
	mRoomActive      = "noon_room_active"
	mBrokerConns     = "noon_broker_connections"
	mBrokerInFlight  = "noon_broker_in_flight"
	mBrokerRequests  = "noon_broker_requests_total"
	mBrokerLatency   = "noon_broker_request_duration_seconds"
	mScaleOut        = "noon_match_scale_out"
	mTickets         = "noon_match_tickets_active"
	mOldestTicket    = "noon_match_oldest_ticket_seconds"
	mReadySessions   = "noon_match_ready_sessions"
	mReadyWait       = "noon_match_ready_wait_seconds"
	daemonLabel      = "daemon"
)

// Directory lists the instances of the platform: a *yellow.Watcher.
type Directory interface {
	All() []*platformpb.Instance
}

// Options configure a Collector.
type Options struct {
	// Directory is where instances come from (required).
	Directory Directory
	// Client scrapes the admin endpoints; nil: a plain http.Client.
	Client *http.Client
	// ScrapeTimeout, MaxBody, Concurrency and MaxInstances are the
	// limits; zero takes the Default of each.
	ScrapeTimeout time.Duration
	MaxBody       int64
	Concurrency   int
	MaxInstances  int
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Snapshot is the platform at one moment.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Interval is the seconds since the previous snapshot the rates are
	// computed over; 0 for the first one (no rates yet).
	Interval float64 `json:"interval_s"`
	// Services are the service pools by name (brokers are in Brokers).
	Services []*Service `json:"services"`
	// Brokers are the brokers, by id.
	Brokers []*Instance `json:"brokers"`
	// Queues are the matchmaker's queues.
	Queues []*Queue `json:"queues"`
	// ScaleOut is the matchmaker's scale-out signal: ready sessions have
	// waited too long for room capacity.
	ScaleOut bool `json:"scale_out"`
	// Errors are the endpoints that could not be scraped (the rest of the
	// snapshot stands).
	Errors []string `json:"errors,omitempty"`
	// Truncated is set when instances past MaxInstances were left out.
	Truncated bool `json:"truncated,omitempty"`
}

// Service is one pool: its instances and their sums.
type Service struct {
	Name      string      `json:"name"`
	Instances []*Instance `json:"instances"`
	// Ready counts the instances in state ready.
	Ready int `json:"ready"`
	// Load is the mean load of the instances.
	Load     float64 `json:"load"`
	InFlight float64 `json:"in_flight"`
	// ReqRate and ErrRate are requests and errors per second over the
	// snapshot's interval.
	ReqRate float64 `json:"req_rate"`
	ErrRate float64 `json:"err_rate"`
	// P99 is the 99th percentile of the brokers' request latency to the
	// service, in seconds, over the interval (since start for the first
	// snapshot); -1 without requests.
	P99 float64 `json:"p99"`
	// Rooms is the room instances' rooms in memory (room service).
	Rooms float64 `json:"rooms,omitempty"`
}

// Instance is one instance (or broker) as yellow and its metrics see it.
type Instance struct {
	Service  string            `json:"service"`
	ID       string            `json:"id"`
	State    string            `json:"state"`
	Kind     string            `json:"kind"`
	Version  string            `json:"version"`
	Load     float64           `json:"load"`
	Capacity uint32            `json:"capacity"`
	Meta     map[string]string `json:"meta,omitempty"`
	// Admin is the admin endpoint scraped ("" when it publishes none).
	Admin string `json:"admin,omitempty"`
	// Scraped is set when the metrics below come from Admin.
	Scraped  bool    `json:"scraped"`
	InFlight float64 `json:"in_flight"`
	Requests float64 `json:"requests"`
	Errors   float64 `json:"errors"`
	ReqRate  float64 `json:"req_rate"`
	ErrRate  float64 `json:"err_rate"`
	// Rooms is a room instance's rooms in memory.
	Rooms float64 `json:"rooms,omitempty"`
	// Connections is a broker's client connections.
	Connections float64 `json:"connections,omitempty"`
	// ClientAddr is a broker's client address.
	ClientAddr string `json:"client_addr,omitempty"`
	// P99 is a broker's request latency percentile, in seconds (-1: no
	// requests).
	P99 float64 `json:"p99,omitempty"`
}

// Queue is one match queue, as the matchmaker's last tick read it.
type Queue struct {
	Name string `json:"name"`
	// Tickets are searching tickets; Oldest the oldest one's age (s).
	Tickets float64 `json:"tickets"`
	Oldest  float64 `json:"oldest_s"`
	// Ready are sessions ready and waiting for placement; ReadyWait the
	// oldest one's wait (s).
	Ready     float64 `json:"ready"`
	ReadyWait float64 `json:"ready_wait_s"`
}

// Collector takes snapshots; it keeps the previous one's counters for
// rates. Safe for concurrent use (snapshots are taken one at a time).
type Collector struct {
	opts Options

	mu   sync.Mutex // serializes Collect; guards prev
	prev *counters
}

// counters are what the next snapshot's rates are computed from.
type counters struct {
	at time.Time
	// byKey: admin endpoint + daemon label -> requests, errors.
	reqs, errs map[string]float64
	// hist: service (or "broker "+id) -> cumulative latency buckets.
	hist map[string]histogram
}

// New returns a Collector of opts.
func New(opts Options) (*Collector, error) {
	if opts.Directory == nil {
		return nil, errors.New("ops: Directory is required")
	}
	if opts.Client == nil {
		opts.Client = &http.Client{}
	}
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = DefaultScrapeTimeout
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.MaxInstances <= 0 {
		opts.MaxInstances = DefaultMaxInstances
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Collector{opts: opts}, nil
}

// scrape is the parsed /metrics of one admin endpoint.
type scrape struct {
	families map[string]*dto.MetricFamily
	err      error
}

// Collect takes a snapshot: the instances from the Directory, the metrics
// of their admin endpoints (each scraped once, at most Concurrency at a
// time, each within ScrapeTimeout), rates against the previous snapshot.
func (c *Collector) Collect(ctx context.Context) (*Snapshot, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	all := c.opts.Directory.All()
	sort.Slice(all, func(i, j int) bool {
		if all[i].GetService() != all[j].GetService() {
			return all[i].GetService() < all[j].GetService()
		}
		return all[i].GetId() < all[j].GetId()
	})
	snap := &Snapshot{Time: c.opts.Now()}
	if len(all) > c.opts.MaxInstances {
		all, snap.Truncated = all[:c.opts.MaxInstances], true
	}
	scrapes := c.scrapeAll(ctx, all)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	addrs := make([]string, 0, len(scrapes))
	for a := range scrapes {
		addrs = append(addrs, a)
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		if s := scrapes[a]; s.err != nil {
			snap.Errors = append(snap.Errors, fmt.Sprintf("%s: %v", a, s.err))
		}
	}

	cur := &counters{at: snap.Time, reqs: map[string]float64{}, errs: map[string]float64{}, hist: map[string]histogram{}}
	prev := c.prev
	if prev != nil {
		snap.Interval = snap.Time.Sub(prev.at).Seconds()
	}
	rate := func(now, before float64, ok bool) float64 {
		if !ok || snap.Interval <= 0 || now < before {
			return 0
		}
		return (now - before) / snap.Interval
	}

	byService := map[string]*Service{}
	counted := map[string]bool{} // admin+daemon keys summed into a service already
	queues := map[string]*Queue{}
	serviceHist := map[string]histogram{}
	for _, in := range all {
		inst := &Instance{
			Service:    in.GetService(),
			ID:         in.GetId(),
			State:      strings.ToLower(strings.TrimPrefix(in.GetState().String(), "INSTANCE_STATE_")),
			Kind:       strings.ToLower(strings.TrimPrefix(in.GetKind().String(), "SERVICE_KIND_")),
			Version:    in.GetVersion(),
			Load:       in.GetLoad(),
			Capacity:   in.GetCapacity(),
			Meta:       in.GetMeta(),
			Admin:      in.GetMeta()[wire.MetaAdmin],
			ClientAddr: in.GetClientAddr(),
		}
		daemon := "service_" + inst.Service
		if inst.Service == BrokerService {
			daemon = "broker"
		}
		key := inst.Admin + " " + daemon
		sc, ok := scrapes[inst.Admin]
		if ok && sc.err == nil {
			inst.Scraped = true
			fams := sc.families
			if inst.Service == BrokerService {
				inst.Connections = gauge(fams, mBrokerConns, daemon, nil)
				inst.InFlight = gauge(fams, mBrokerInFlight, daemon, nil)
				inst.Requests = counterSum(fams, mBrokerRequests, daemon)
				inst.Errors = counterSum(fams, mBrokerRequests, daemon, "result", "ok")
				h := latency(fams, daemon)
				bkey := "broker " + key
				cur.hist[bkey] = h
				inst.P99 = h.sub(prev.histOf(bkey)).quantile(0.99)
				for svc, sh := range latencyByService(fams, daemon) {
					serviceHist[svc] = serviceHist[svc].add(sh)
				}
			} else {
				inst.InFlight = gauge(fams, mServiceInFlight, daemon, nil)
				inst.Requests = counterSum(fams, mServiceRequests, daemon)
				inst.Errors = counterSum(fams, mServiceErrors, daemon)
				inst.Rooms = gauge(fams, mRoomActive, daemon, nil)
				if gauge(fams, mScaleOut, daemon, nil) > 0 {
					snap.ScaleOut = true
				}
				readQueues(fams, daemon, queues)
			}
			cur.reqs[key], cur.errs[key] = inst.Requests, inst.Errors
			if prev != nil {
				r, okr := prev.reqs[key]
				e, oke := prev.errs[key]
				inst.ReqRate, inst.ErrRate = rate(inst.Requests, r, okr), rate(inst.Errors, e, oke)
			}
		}
		if inst.Service == BrokerService {
			snap.Brokers = append(snap.Brokers, inst)
			continue
		}
		svc := byService[inst.Service]
		if svc == nil {
			svc = &Service{Name: inst.Service, P99: -1}
			byService[inst.Service] = svc
			snap.Services = append(snap.Services, svc)
		}
		svc.Instances = append(svc.Instances, inst)
		if inst.State == "ready" {
			svc.Ready++
		}
		svc.Load += inst.Load
		if inst.Scraped && !counted[key] {
			// Two instances behind one endpoint and daemon label (one
			// process running two of a service) share their series:
			// count them once.
			counted[key] = true
			svc.InFlight += inst.InFlight
			svc.ReqRate += inst.ReqRate
			svc.ErrRate += inst.ErrRate
			svc.Rooms += inst.Rooms
		}
	}
	for _, svc := range snap.Services {
		svc.Load /= float64(len(svc.Instances))
		h := serviceHist[svc.Name]
		cur.hist[svc.Name] = h
		svc.P99 = h.sub(prev.histOf(svc.Name)).quantile(0.99)
	}
	names := make([]string, 0, len(queues))
	for n := range queues {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > maxQueues {
		names = names[:maxQueues]
		snap.Truncated = true
	}
	for _, n := range names {
		snap.Queues = append(snap.Queues, queues[n])
	}
	c.prev = cur
	return snap, nil
}

// scrapeAll scrapes every distinct admin endpoint of instances, at most
// Concurrency at a time.
func (c *Collector) scrapeAll(ctx context.Context, instances []*platformpb.Instance) map[string]scrape {
	out := map[string]scrape{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.opts.Concurrency)
	for _, in := range instances {
		addr := in.GetMeta()[wire.MetaAdmin]
		if addr == "" {
			continue
		}
		mu.Lock()
		_, seen := out[addr]
		if !seen {
			out[addr] = scrape{err: errors.New("not scraped")}
		}
		mu.Unlock()
		if seen {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return out
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fams, err := c.scrape(ctx, addr)
			mu.Lock()
			out[addr] = scrape{families: fams, err: err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// errTooLarge is a /metrics response over MaxBody.
var errTooLarge = errors.New("metrics response too large")

// scrape fetches and parses http://addr/metrics.
func (c *Collector) scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	if _, _, err := splitHostPort(addr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.ScrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := c.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	body := &limitedReader{r: resp.Body, n: c.opts.MaxBody}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(body)
	if body.over {
		return nil, fmt.Errorf("%w (over %d bytes)", errTooLarge, c.opts.MaxBody)
	}
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	return fams, nil
}

// limitedReader is io.LimitReader that says when the limit cut the input.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// One more byte tells a body of exactly n bytes from a longer one.
		var b [1]byte
		if k, _ := l.r.Read(b[:]); k > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

// series calls fn for each series of family name with daemon=daemon.
func series(fams map[string]*dto.MetricFamily, name, daemon string, fn func(*dto.Metric)) {
	mf := fams[name]
	if mf == nil {
		return
	}
	for _, m := range mf.GetMetric() {
		if label(m, daemonLabel) == daemon {
			fn(m)
		}
	}
}

// label returns m's label name, "" when absent.
func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}

// value is a counter's, gauge's or untyped metric's value.
func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// gauge sums family name's series of daemon (with match labels, when given).
func gauge(fams map[string]*dto.MetricFamily, name, daemon string, match map[string]string) float64 {
	var sum float64
	series(fams, name, daemon, func(m *dto.Metric) {
		for k, v := range match {
			if label(m, k) != v {
				return
			}
		}
		sum += value(m)
	})
	return sum
}

// counterSum sums family name's series of daemon; with exclude (label,
// value) it leaves out the series carrying that label value.
func counterSum(fams map[string]*dto.MetricFamily, name, daemon string, exclude ...string) float64 {
	var sum float64
	series(fams, name, daemon, func(m *dto.Metric) {
		if len(exclude) == 2 && label(m, exclude[0]) == exclude[1] {
			return
		}
		sum += value(m)
	})
	return sum
}

// readQueues folds the match queue gauges of daemon into queues. Every
// match instance reports the cluster's figures: the largest wins.
func readQueues(fams map[string]*dto.MetricFamily, daemon string, queues map[string]*Queue) {
	get := func(name string) *Queue {
		q := queues[name]
		if q == nil {
			if len(queues) >= maxQueues*2 {
				return nil
			}
			q = &Queue{Name: name}
			queues[name] = q
		}
		return q
	}
	for _, f := range []struct {
		name string
		set  func(*Queue, float64)
	}{
		{mTickets, func(q *Queue, v float64) { q.Tickets = math.Max(q.Tickets, v) }},
		{mOldestTicket, func(q *Queue, v float64) { q.Oldest = math.Max(q.Oldest, v) }},
		{mReadySessions, func(q *Queue, v float64) { q.Ready = math.Max(q.Ready, v) }},
		{mReadyWait, func(q *Queue, v float64) { q.ReadyWait = math.Max(q.ReadyWait, v) }},
	} {
		series(fams, f.name, daemon, func(m *dto.Metric) {
			if q := get(label(m, "queue")); q != nil {
				f.set(q, value(m))
			}
		})
	}
}

// histogram is a cumulative latency histogram: counts by upper bound.
type histogram struct {
	bounds []float64 // ascending, +Inf last
	counts []float64 // cumulative
}

// latency returns the broker's request latency histogram over every route.
func latency(fams map[string]*dto.MetricFamily, daemon string) histogram {
	var h histogram
	series(fams, mBrokerLatency, daemon, func(m *dto.Metric) {
		h = h.add(fromProto(m.GetHistogram()))
	})
	return h
}

// latencyByService returns the broker's latency histograms summed by the
// service of their route ("login.Login" and "login." are login's).
func latencyByService(fams map[string]*dto.MetricFamily, daemon string) map[string]histogram {
	out := map[string]histogram{}
	series(fams, mBrokerLatency, daemon, func(m *dto.Metric) {
		svc, _, _ := strings.Cut(label(m, "route"), ".")
		if svc == "" {
			return
		}
		out[svc] = out[svc].add(fromProto(m.GetHistogram()))
	})
	return out
}

// fromProto converts a Prometheus histogram.
func fromProto(p *dto.Histogram) histogram {
	if p == nil {
		return histogram{}
	}
	var h histogram
	for _, b := range p.GetBucket() {
		h.bounds = append(h.bounds, b.GetUpperBound())
		h.counts = append(h.counts, float64(b.GetCumulativeCount()))
	}
	if len(h.bounds) == 0 || !math.IsInf(h.bounds[len(h.bounds)-1], 1) {
		h.bounds = append(h.bounds, math.Inf(1))
		h.counts = append(h.counts, float64(p.GetSampleCount()))
	}
	return h
}

// sameBounds reports whether h and o have the same buckets.
func (h histogram) sameBounds(o histogram) bool {
	if len(h.bounds) != len(o.bounds) {
		return false
	}
	for i := range h.bounds {
		if h.bounds[i] != o.bounds[i] {
			return false
		}
	}
	return true
}

// add returns h + o; an empty h takes o's buckets; o with other buckets is
// left out.
func (h histogram) add(o histogram) histogram {
	if len(h.bounds) == 0 {
		return histogram{bounds: o.bounds, counts: append([]float64(nil), o.counts...)}
	}
	if !h.sameBounds(o) {
		return h
	}
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i] + o.counts[i]
	}
	return out
}

// sub returns h - o, the requests between two snapshots; h itself when o
// is empty, of other buckets, or larger somewhere (a restart reset the
// counters).
func (h histogram) sub(o histogram) histogram {
	if len(o.bounds) == 0 || !h.sameBounds(o) {
		return h
	}
	out := histogram{bounds: h.bounds, counts: make([]float64, len(h.counts))}
	for i := range h.counts {
		out.counts[i] = h.counts[i] - o.counts[i]
		if out.counts[i] < 0 {
			return h
		}
	}
	return out
}

// quantile estimates the q-quantile by linear interpolation inside the
// bucket (as Prometheus's histogram_quantile); -1 without observations.
// Past the last finite bound it answers that bound.
func (h histogram) quantile(q float64) float64 {
	n := len(h.counts)
	if n == 0 || h.counts[n-1] <= 0 {
		return -1
	}
	rank := q * h.counts[n-1]
	for i, c := range h.counts {
		if c < rank {
			continue
		}
		if math.IsInf(h.bounds[i], 1) {
			if i == 0 {
				return -1
			}
			return h.bounds[i-1]
		}
		lower, below := 0.0, 0.0
		if i > 0 {
			lower, below = h.bounds[i-1], h.counts[i-1]
		}
		if c == below {
			return h.bounds[i]
		}
		return lower + (h.bounds[i]-lower)*(rank-below)/(c-below)
	}
	return h.bounds[n-1]
}

// histOf returns the previous snapshot's histogram of key (nil c: none).
func (c *counters) histOf(key string) histogram {
	if c == nil {
		return histogram{}
	}
	return c.hist[key]
}

// splitHostPort checks an admin label: host:port, from yellow (which any
// instance may write), so it is validated before use as a URL.
func splitHostPort(addr string) (string, string, error) {
	if len(addr) > 256 || strings.ContainsAny(addr, "/?#@ ") {
		return "", "", fmt.Errorf("bad admin address %q", wire.Snippet(addr))
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", "", fmt.Errorf("bad admin address %q", wire.Snippet(addr))
	}
	return host, port, nil
}
