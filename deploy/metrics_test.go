package deploy

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/services/friends"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/match"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/room"
)

// dashboardFile is the Grafana dashboard, relative to this package.
const dashboardFile = "grafana/noon.json"

// allModules are the modules of cmd/noon/modules.go (TestMetricsScan checks
// that the two lists agree).
var allModules = []services.Module{echo.Module, login.Module, room.Module, match.Module, game.Module, friends.Module, pay.Module}

// metricsImport is the package every daemon registers its metrics with.
const metricsImport = "github.com/noonhq/noon/internal/metrics"

var (
	scanOnce    sync.Once
	scanned     map[string]bool
	scanErr     error
	metricNameR = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// sourceMetrics returns the metric names noon's Go source registers
// through internal/metrics: every call of Counter, Gauge, Histogram,
// CounterFunc or GaugeFunc, or of a local helper named like them, with a
// name and a (non-empty) help text as its first two string literals, in a non-test
// file of internal/metrics or of a package that imports it. Each is
// prefixed noon_; a histogram adds its _bucket, _sum and _count series.
func sourceMetrics(t *testing.T) map[string]bool {
	t.Helper()
	scanOnce.Do(func() { scanned, scanErr = scanMetricNames("..") })
	if scanErr != nil {
		t.Fatal(scanErr)
	}
	return scanned
}

func scanMetricNames(root string) (map[string]bool, error) {
	names := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "deploy") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		inMetrics := filepath.ToSlash(filepath.Dir(path)) == filepath.ToSlash(filepath.Join(root, "internal/metrics"))
		imports := slices.ContainsFunc(f.Imports, func(s *ast.ImportSpec) bool { return s.Path.Value == strconv.Quote(metricsImport) })
		if !inMetrics && !imports {
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			var fn string
			switch f := call.Fun.(type) {
			case *ast.SelectorExpr:
				fn = f.Sel.Name
			case *ast.Ident:
				fn = f.Name
			}
			lower := strings.ToLower(fn)
			if !strings.Contains(lower, "counter") && !strings.Contains(lower, "gauge") && fn != "Histogram" {
				return true
			}
			name, ok1 := stringLit(call.Args[0])
			help, ok2 := stringLit(call.Args[1])
			if !ok1 || !ok2 || !metricNameR.MatchString(name) || help == "" {
				return true
			}
			full := metrics.Namespace + "_" + name
			names[full] = true
			if fn == "Histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					names[full+s] = true
				}
			}
			return true
		})
		return nil
	})
	return names, err
}

// stringLit returns the value of a string literal.
func stringLit(e ast.Expr) (string, bool) {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(lit.Value)
	return s, err == nil
}

// gatheredMetrics starts the whole platform in-process (yellow, every
// service, the BrokerList, a broker) with a metrics Registry per daemon,
// as noon dev does, and returns the names of every series they export
// (with the Go runtime and process metrics), histograms' and summaries'
// series included. Families with labels appear once a child exists, so
// this is a subset of what the daemons can export.
func gatheredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	opts := platformtest.Options(t, allModules...)
	// Free ports for the HTTP listeners, not their defaults.
	opts.Sections[login.Name].(*services.Config[login.Options]).Service.HTTPAddr = "127.0.0.1:0"
	opts.Sections[pay.Name].(*services.Config[pay.Options]).Service.HTTPAddr = "127.0.0.1:0"
	var mu sync.Mutex
	var regs []*metrics.Registry
	opts.Sink = func(daemon string) metrics.Sink {
		mu.Lock()
		defer mu.Unlock()
		r := metrics.NewRegistry(daemon)
		regs = append(regs, r)
		return r
	}
	platformtest.Start(t, opts)
	names := map[string]bool{}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range regs {
		fams, err := r.Gatherer().Gather()
		if err != nil {
			t.Fatalf("gather %s: %v", r.Daemon(), err)
		}
		for _, f := range fams {
			n := f.GetName()
			names[n] = true
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				names[n+"_sum"], names[n+"_count"] = true, true
			}
		}
	}
	return names
}

// TestMetricsScan: the source scan finds every noon_ metric the running
// platform exports (so it is a sound list of what exists), and the
// module list here is cmd/noon's.
func TestMetricsScan(t *testing.T) {
	var names []string
	for _, m := range allModules {
		names = append(names, m.Name())
	}
	if got := moduleNames(t); !slices.Equal(got, names) {
		t.Fatalf("cmd/noon/modules.go lists %v; this test's allModules %v", got, names)
	}
	scanned := sourceMetrics(t)
	gathered := gatheredMetrics(t)
	var n int
	for name := range gathered {
		if !strings.HasPrefix(name, metrics.Namespace+"_") {
			continue
		}
		n++
		if !scanned[name] {
			t.Errorf("the platform exports %s, which the source scan did not find: teach scanMetricNames how it is registered", name)
		}
	}
	if n < 50 {
		t.Errorf("the platform exported only %d noon_ series names; want the daemons' metrics", n)
	}
}

// promQLMetrics returns the metric names an expression (or a Grafana
// variable query) uses. Grafana variables are replaced, strings, label
// matchers, ranges and grouping clauses removed; what is left that is not
// a function, a keyword or a number is a metric name.
func promQLMetrics(expr string) []string {
	if m := labelValuesR.FindStringSubmatch(expr); m != nil {
		return []string{m[1]}
	}
	s := grafanaVarR.ReplaceAllString(expr, "x")
	for _, r := range []*regexp.Regexp{stringR, matchersR, rangeR, groupingR} {
		s = r.ReplaceAllString(s, " ")
	}
	var out []string
	for _, loc := range identR.FindAllStringIndex(s, -1) {
		word := s[loc[0]:loc[1]]
		rest := strings.TrimLeft(s[loc[1]:], " \t\n")
		if strings.HasPrefix(rest, "(") || promKeywords[strings.ToLower(word)] {
			continue
		}
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9' || s[loc[0]-1] == '.') {
			continue // the exponent or unit of a number
		}
		out = append(out, word)
	}
	return out
}

var (
	labelValuesR = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	grafanaVarR  = regexp.MustCompile(`\$\{[^}]*\}|\$[a-zA-Z_][a-zA-Z0-9_]*`)
	stringR      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	matchersR    = regexp.MustCompile(`\{[^{}]*\}`)
	rangeR       = regexp.MustCompile(`\[[^\]]*\]`)
	groupingR    = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identR       = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true, "atan2": true}
)

func TestPromQLMetrics(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (daemon) (rate(noon_service_requests_total{daemon=~"service_($service)"}[$__rate_interval]))`:                                                                                       {"noon_service_requests_total"},
		`histogram_quantile(0.99, sum by (service, le) (label_replace(rate(noon_broker_request_duration_seconds_bucket{route=~"($service)\\..*"}[5m]), "service", "$1", "route", "([^.]*)\\..*")))`: {"noon_broker_request_duration_seconds_bucket"},
		`rate(go_gc_duration_seconds_sum[1m]) / rate(go_gc_duration_seconds_count[1m]) > 1e-3`:                                                                                                      {"go_gc_duration_seconds_sum", "go_gc_duration_seconds_count"},
		`max(noon_match_scale_out) or vector(0)`:                     {"noon_match_scale_out"},
		`label_values(noon_service_requests_total{job="x"}, daemon)`: {"noon_service_requests_total"},
		`noon_no_such_metric`:                                        {"noon_no_such_metric"},
	} {
		if got := promQLMetrics(expr); !slices.Equal(got, want) {
			t.Errorf("promQLMetrics(%q) = %q, want %q", expr, got, want)
		}
	}
}

// TestDashboard checks deploy/grafana/noon.json: a recent schema, a
// Prometheus data source variable that every panel uses, service and
// instance variables, the panels the operators need, and only metric
// names the daemons export (by the source scan or the running platform).
func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		SchemaVersion int `json:"schemaVersion"`
		UID           string
		Templating    struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want a recent one (36+)", dash.SchemaVersion)
	}

	exported := maps.Clone(sourceMetrics(t))
	for name := range gatheredMetrics(t) {
		exported[name] = true // go_*, process_*
	}
	check := func(where, expr string) []string {
		names := promQLMetrics(expr)
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s: %s is not a metric the daemons export (expr %s)", where, n, expr)
			}
		}
		return names
	}

	vars := map[string]string{}
	for _, v := range dash.Templating.List {
		vars[v.Name] = v.Type
		var q struct {
			Query string `json:"query"`
		}
		var qs string
		if json.Unmarshal(v.Query, &qs) != nil {
			_ = json.Unmarshal(v.Query, &q)
			qs = q.Query
		}
		if v.Type == "query" {
			check("variable "+v.Name, qs)
		}
		if v.Type == "datasource" && qs != "prometheus" {
			t.Errorf("variable %s: data source type %q, want prometheus", v.Name, qs)
		}
	}
	if vars["datasource"] != "datasource" || vars["service"] != "query" || vars["instance"] != "query" {
		t.Errorf("variables %v, want datasource (a data source), service and instance (queries)", vars)
	}

	used := map[string]bool{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: data source %q, want ${datasource}", p.Title, p.Datasource.UID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q: no queries", p.Title)
			}
			for _, tg := range p.Targets {
				for _, n := range check("panel "+strconv.Quote(p.Title), tg.Expr) {
					used[n] = true
				}
			}
		}
	}
	walk(dash.Panels)

	// What the dashboard is for: requests, latency, errors per service and
	// method, brokers' connections, in-flight, rooms per instance, match
	// queues, Go runtime and process.
	for _, n := range []string{
		"noon_service_requests_total", "noon_broker_request_duration_seconds_bucket",
		"noon_service_errors_total", "noon_broker_requests_total", "noon_login_requests_total",
		"noon_broker_connections", "noon_broker_in_flight", "noon_service_in_flight",
		"noon_room_active", "noon_match_ready_sessions", "noon_match_scale_out",
		"go_goroutines", "go_gc_duration_seconds_count", "go_sched_latencies_seconds_bucket",
		"process_resident_memory_bytes",
	} {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}

// panel is the part of a Grafana panel the test reads.
type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}
