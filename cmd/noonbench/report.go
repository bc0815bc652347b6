package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/noonhq/noon/cmd/noonbench/internal/bench"
)

// Aims of issue 4, checked in the report.
const (
	// aimRelayRatio: noon at least half the two-hop relay's rate at
	// aimConns connections.
	aimRelayRatio = 0.5
	aimConns      = 256
	// aimIdleBytes: at most 8 KiB of broker memory per idle connection (issue 15).
	aimIdleBytes = 8 << 10
	// aimTLSCost: TLS on every internal link costs under 15% of noon's
	// req/s (issue 10): noon / noon-plain above 0.85.
	aimTLSCost = 0.15
	// contendedPercent is the others % above which a row is flagged: a
	// few percent is the kernel and daemons; a fifth of a core is
	// another workload.
	contendedPercent = 20
	// target is the idle connection count the per-connection figure is
	// extrapolated to: one broker's goal, and edge.DefaultMaxConnections.
	target = 100_000
	// ephemeralPorts is the ephemeral port range of this machine
	// (/proc/sys/net/ipv4/ip_local_port_range 32768-60999): how many
	// connections one source address can open.
	ephemeralPorts = 60999 - 32768 + 1
)

// cpuNote explains the CPU and memory columns.
const cpuNote = "CPU % and mem are this whole process over the measured interval: the load generator and " +
	"the server under test share it (for noon also yellow and the echo instance); 100% is one core. " +
	"mem is the peak RSS sampled every 100 ms. others % is the CPU the rest of the machine used meanwhile " +
	"(/proc/stat): where it is high, other work competed for the cores and the row is unreliable."

// report is everything noonbench measured; it is also the JSON file.
type report struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished"`
	Command    string    `json:"command"`
	GoVersion  string    `json:"go_version"`
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	NumCPU     int       `json:"num_cpu"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	FDLimit    uint64    `json:"fd_limit"`
	Settings   settings  `json:"settings"`
	// Results has one result per scenario and connection count: with
	// several rounds, the round of median req/s.
	Results []bench.Result `json:"results"`
	// AllResults has every round's results.
	AllResults []roundResult `json:"all_results"`
	// Ratios are noon's figures divided by each baseline's at each
	// connection count.
	Ratios []ratio `json:"ratios,omitempty"`
	// Idle is the idle-connection test.
	Idle *idleReport `json:"idle,omitempty"`
	// Login is the login scenario.
	Login *loginReport `json:"login,omitempty"`
	// Match is the match scenario.
	Match *matchReport `json:"match,omitempty"`
	// Game is the game scenario.
	Game *gameReport `json:"game,omitempty"`
	// Friends is the friends scenario.
	Friends *friendsReport `json:"friends,omitempty"`
	// Pay is the pay scenario.
	Pay *payReport `json:"pay,omitempty"`
	// Unavailable maps a scenario that could not run to why.
	Unavailable map[string]string `json:"unavailable,omitempty"`
	// Notes are failures and remarks.
	Notes []string `json:"notes,omitempty"`
	// CPUNote explains what CPU and memory cover.
	CPUNote string `json:"cpu_note"`
}

// roundResult is one round's result.
type roundResult struct {
	Round int `json:"round"`
	bench.Result
}

type settings struct {
	DurationSec  float64  `json:"duration_s"`
	WarmupSec    float64  `json:"warmup_s"`
	Conns        []int    `json:"conns"`
	Rounds       int      `json:"rounds"`
	Pipeline     int      `json:"pipeline"`
	PayloadBytes int      `json:"payload_bytes"`
	Idle         int      `json:"idle"`
	Only         []string `json:"only"`
	Quick        bool     `json:"quick"`
}

// ratio is noon / baseline at one connection count: above 1 for RPS is
// faster than the baseline, above 1 for latency and CPU is slower.
type ratio struct {
	Conns         int     `json:"conns"`
	Baseline      string  `json:"baseline"`
	RPS           float64 `json:"rps"`
	P50           float64 `json:"p50"`
	P99           float64 `json:"p99"`
	P999          float64 `json:"p999"`
	CPUPerRequest float64 `json:"cpu_per_request"`
}

// idleReport is the idle test with its extrapolation.
type idleReport struct {
	bench.IdleResult
	PerSource int `json:"per_source"`
	// Extrapolated100kMiB is ServerPerConnBytes × 100,000, in MiB.
	Extrapolated100kMiB float64 `json:"extrapolated_100k_mib"`
	// Extrapolation says how to read it.
	Extrapolation string `json:"extrapolation"`
}

func newReport(cfg config) *report {
	return &report{
		Started:    time.Now(),
		Command:    strings.Join(os.Args, " "),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		FDLimit:    fdLimit(),
		Settings: settings{
			DurationSec:  cfg.duration.Seconds(),
			WarmupSec:    cfg.warmup.Seconds(),
			Conns:        cfg.conns,
			Rounds:       cfg.rounds,
			Pipeline:     cfg.pipeline,
			PayloadBytes: cfg.payload,
			Idle:         cfg.idle,
			Only:         cfg.only,
			Quick:        cfg.quick,
		},
		CPUNote: cpuNote,
	}
}

func (r *report) unavailable(scenario string, err error) {
	if r.Unavailable == nil {
		r.Unavailable = map[string]string{}
	}
	r.Unavailable[scenario] = errText(err)
}

func (r *report) marshal() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func newIdleReport(res bench.IdleResult) *idleReport {
	ir := &idleReport{IdleResult: res, PerSource: bench.DefaultPerSource}
	ir.Extrapolated100kMiB = res.ServerPerConnBytes * target / (1 << 20)
	ir.Extrapolation = extrapolation(res.ServerPerConnBytes)
	return ir
}

// extrapolation says how the per-connection figure scales to target
// connections and what holding them for real takes.
func extrapolation(perConn float64) string {
	limit := fdLimit()
	return fmt.Sprintf("linear: %s B per connection × %s; what the broker keeps per connection (its edge.Conn and "+
		"session, the socket, two parked goroutine stacks) is not shared, and the connection map grows amortised. "+
		"Holding %s for real takes an open-file limit above %s for the broker process alone (here %s, shared by "+
		"client and broker, so about %s is the most this one process can test), and clients on at least %d source "+
		"addresses (%s ephemeral ports each), run from another process or host.",
		fmtCount(perConn), fmtCount(target), fmtCount(target), fmtCount(target), fmtCount(float64(limit)),
		fmtCount(float64((max(limit, fdSlack)-fdSlack)/2)), (target+ephemeralPorts-1)/ephemeralPorts, fmtCount(ephemeralPorts))
}

// medians returns, for each scenario and connection count in the order
// they first ran, the round of median req/s (the lower one of an even
// count): one round's coherent figures, not a mix of rounds.
func medians(all []roundResult) []bench.Result {
	type key struct {
		scenario string
		conns    int
	}
	var order []key
	groups := map[key][]bench.Result{}
	for _, r := range all {
		k := key{r.Scenario, r.Conns}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r.Result)
	}
	out := make([]bench.Result, 0, len(order))
	for _, k := range order {
		g := groups[k]
		slices.SortFunc(g, func(a, b bench.Result) int { return cmp.Compare(a.RPS, b.RPS) })
		out = append(out, g[(len(g)-1)/2])
	}
	return out
}

// ratios computes noon / baseline for every connection count with all
// three results.
func ratios(results []bench.Result) []ratio {
	find := func(scenario string, conns int) *bench.Result {
		for i := range results {
			if results[i].Scenario == scenario && results[i].Conns == conns {
				return &results[i]
			}
		}
		return nil
	}
	div := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	var out []ratio
	for _, r := range results {
		if r.Scenario != scenarioNoon {
			continue
		}
		for _, base := range []string{scenarioRaw, scenarioRelay, scenarioNoonPlain} {
			b := find(base, r.Conns)
			if b == nil {
				continue
			}
			out = append(out, ratio{
				Conns:         r.Conns,
				Baseline:      base,
				RPS:           div(r.RPS, b.RPS),
				P50:           div(r.P50Us, b.P50Us),
				P99:           div(r.P99Us, b.P99Us),
				P999:          div(r.P999Us, b.P999Us),
				CPUPerRequest: div(r.CPUPerRequestUs, b.CPUPerRequestUs),
			})
		}
	}
	return out
}

// fmtUs formats microseconds: "38µs", "1.25ms", "2.10s".
func fmtUs(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	}
	return fmt.Sprintf("%.2fs", us/1e6)
}

// fmtCount formats n with thousands separators.
func fmtCount(n float64) string {
	s := fmt.Sprintf("%.0f", n)
	var b strings.Builder
	if sign, rest, ok := strings.Cut(s, "-"); ok && sign == "" {
		b.WriteByte('-')
		s = rest
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtMiB(b uint64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// printReport prints the table, the ratios and the idle test.
func printReport(w io.Writer, cfg config, r *report) {
	fmt.Fprintf(w, "noonbench: %s; %v measured per scenario after %v warm-up; pipeline %d; payload %d B\n",
		environment(), cfg.duration, cfg.warmup, cfg.pipeline, cfg.payload)
	if cfg.rounds > 1 {
		fmt.Fprintf(w, "%d rounds; each row is the round of median req/s (every round is in the JSON)\n", cfg.rounds)
	}
	if slices.ContainsFunc(loadScenarios, cfg.has) {
		printLoad(w, r)
	}
	if why, ok := r.Unavailable[scenarioIdle]; ok {
		fmt.Fprintf(w, "\nidle test: not run: %s\n", why)
	}
	if r.Idle != nil {
		printIdle(w, r.Idle)
	}
	printLogin(w, cfg, r)
	printMatch(w, r.Match)
	printGame(w, r.Game)
	printFriends(w, r.Friends)
	printPay(w, r.Pay)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// printLoad prints the load scenarios' table and the ratios.
func printLoad(w io.Writer, r *report) {
	fmt.Fprintf(w, "raw = client -> Go TCP echo; relay = client -> Go TCP frame relay -> echo; noon = client -> broker -> echo service -> broker -> client, "+
		"internal links mutual TLS 1.3; noon-plain = the same with plain internal links\n")
	fmt.Fprintf(w, "%s\n\n", cpuNote)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tconns\treq/s\tp50\tp99\tp99.9\tCPU %\tmem\terrors\tothers %\t")
	contended := 0
	for _, res := range r.Results {
		others := "?"
		if res.OthersCPUPercent >= 0 {
			others = fmt.Sprintf("%.0f", res.OthersCPUPercent)
		}
		if res.OthersCPUPercent > contendedPercent {
			contended++
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%.0f\t%s\t%d\t%s\t\n", res.Scenario, res.Conns, fmtCount(res.RPS),
			fmtUs(res.P50Us), fmtUs(res.P99Us), fmtUs(res.P999Us), res.CPUPercent, fmtMiB(res.PeakRSSBytes), res.Errors, others)
	}
	_ = tw.Flush()
	if contended > 0 {
		fmt.Fprintf(w, "warning: in %d of %d rows other processes used over %d%% of a core: the machine was shared, "+
			"compare those rows with care (-rounds 3 takes the median of three)\n", contended, len(r.Results), contendedPercent)
	}
	for _, res := range r.Results {
		if res.Errors > 0 {
			fmt.Fprintf(w, "  %s at %d connections: %d errors, first: %s\n", res.Scenario, res.Conns, res.Errors, res.FirstError)
		}
	}
	for s, why := range r.Unavailable {
		if slices.Contains(loadScenarios, s) {
			fmt.Fprintf(w, "  %s: not run: %s\n", s, why)
		}
	}

	if len(r.Ratios) > 0 {
		fmt.Fprintf(w, "\nnoon / baseline (req/s: higher is better; latency and CPU per request: lower is better)\n\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "conns\tbaseline\treq/s\tp50\tp99\tp99.9\tCPU/req\t")
		for _, q := range r.Ratios {
			fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", q.Conns, q.Baseline, q.RPS, q.P50, q.P99, q.P999, q.CPUPerRequest)
		}
		_ = tw.Flush()
		for _, q := range r.Ratios {
			if q.Baseline == scenarioRelay && q.Conns == aimConns {
				fmt.Fprintf(w, "aim: noon >= %.1f × the relay's req/s at %d connections: %.2f, %s\n", aimRelayRatio, aimConns, q.RPS, metOr(q.RPS >= aimRelayRatio))
			}
		}
		for _, q := range r.Ratios {
			if q.Baseline == scenarioNoonPlain {
				cost := 1 - q.RPS
				fmt.Fprintf(w, "aim: TLS links cost under %.0f%% of req/s at %d connections: %.1f%% (noon / noon-plain %.2f), %s\n",
					100*aimTLSCost, q.Conns, 100*cost, q.RPS, metOr(cost < aimTLSCost))
			}
		}
	}
}

// printIdle prints the idle test.
func printIdle(w io.Writer, ir *idleReport) {
	fmt.Fprintf(w, "\nidle test: %s connections held by one broker, from %s (%d per source address), each after one edge.Hello\n",
		fmtCount(float64(ir.Conns)), sourceRange(ir.Sources), ir.PerSource)
	fmt.Fprintf(w, "  broker memory per idle connection: %.0f B (%.1f KiB) = %.0f B Go heap+stack growth per connection - %.0f B, half a bare socket pair (the client socket's share)\n",
		ir.ServerPerConnBytes, ir.ServerPerConnBytes/1024, ir.TotalPerConnBytes, ir.BarePairBytes/2)
	fmt.Fprintf(w, "  of the %.0f B: heap %.0f B, goroutine stacks %.0f B\n", ir.TotalPerConnBytes, ir.HeapPerConnBytes, ir.StackPerConnBytes)
	fmt.Fprintf(w, "  RSS growth per connection, client sockets included: %.0f B; goroutines per connection: %.2f\n", ir.RSSPerConnBytes, ir.GoroutinesPerConn)
	fmt.Fprintf(w, "  method: %s\n", ir.Method)
	fmt.Fprintf(w, "  aim: at most 8 KiB per idle connection: %s\n", metOr(ir.ServerPerConnBytes <= aimIdleBytes))
	fmt.Fprintf(w, "  extrapolated to %s idle connections: %.0f MiB of broker memory\n", fmtCount(target), ir.Extrapolated100kMiB)
	fmt.Fprintf(w, "  extrapolation: %s\n", ir.Extrapolation)
}

func metOr(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// sourceRange writes the source addresses as "127.0.0.2-127.0.0.6".
func sourceRange(s []string) string {
	switch len(s) {
	case 0:
		return "?"
	case 1:
		return s[0]
	}
	return s[0] + "-" + s[len(s)-1]
}
