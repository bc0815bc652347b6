package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of the
// progress printer and the daemons' loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestQuick runs every scenario with -quick and checks that the numbers
// are sane; how fast anything is depends on the machine and is not
// checked.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario for a few seconds")
	}
	path := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr syncBuffer
	code := realMain(context.Background(), []string{"-quick", "-conns", "1,16", "-json", path}, &stdout, &stderr)
	t.Logf("stdout:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"scenario", "req/s", "p99.9", "noon / baseline", "idle test", "broker memory per idle connection", "extrapolated to 100,000"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	if !strings.Contains(stderr.String(), "[6/6] noon  conns=16") {
		t.Errorf("no progress for the last scenario on stderr:\n%s", stderr.String())
	}

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if len(rep.Unavailable) > 0 {
		t.Fatalf("unavailable: %v", rep.Unavailable)
	}
	seen := map[string]int{}
	for _, r := range rep.Results {
		seen[r.Scenario]++
		if r.Errors != 0 {
			t.Errorf("%s ×%d: %d errors, first %s", r.Scenario, r.Conns, r.Errors, r.FirstError)
		}
		if r.RPS <= 0 || r.Requests == 0 || !(0 < r.P50Us && r.P50Us <= r.P99Us && r.P99Us <= r.P999Us) || r.PeakRSSBytes == 0 {
			t.Errorf("%s ×%d: implausible %+v", r.Scenario, r.Conns, r)
		}
	}
	for _, s := range loadScenarios {
		if seen[s] != 2 {
			t.Errorf("%d results for %s, want 2 (1 and 16 connections)", seen[s], s)
		}
	}
	if len(rep.Ratios) != 4 {
		t.Errorf("%d ratios, want noon/raw and noon/relay at 2 connection counts", len(rep.Ratios))
	}
	if rep.Idle == nil {
		t.Fatal("no idle result")
	}
	if rep.Idle.Conns != quickIdle || rep.Idle.ServerPerConnBytes <= 0 || rep.Idle.Extrapolated100kMiB <= 0 || len(rep.Idle.Sources) == 0 {
		t.Errorf("implausible idle result %+v", rep.Idle)
	}
}

// TestOnlyBaselines runs the baselines alone: no broker is started.
func TestOnlyBaselines(t *testing.T) {
	var stdout, stderr syncBuffer
	code := realMain(context.Background(), []string{"-quick", "-only", "raw,relay", "-conns", "2", "-json", ""}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "raw") || !strings.Contains(out, "relay") || strings.Contains(out, "noon  ") || strings.Contains(out, "idle test") {
		t.Errorf("want only raw and relay rows:\n%s", out)
	}
	if strings.Contains(stderr.String(), "starting yellow") {
		t.Error("the platform was started for baselines only")
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-only", "raw,bogus"},
		{"-conns", "1,x"},
		{"-conns", "0"},
		{"-conns", ""},
		{"-duration", "0s"},
		{"-pipeline", "0"},
		{"-payload", "-1"},
		{"-idle", "0"},
		{"-log", "loud"},
		{"extra"},
		{"-nosuchflag"},
	} {
		var stdout, stderr syncBuffer
		if code := realMain(context.Background(), args, &stdout, &stderr); code == 0 {
			t.Errorf("%q: exit code 0, want an error", args)
		}
	}
	var stdout, stderr syncBuffer
	if code := realMain(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "-idle") {
		t.Errorf("-h: exit %d, usage:\n%s", code, stderr.String())
	}

	cfg, err := parseFlags([]string{"-quick", "-duration", "2s"}, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.duration.String() != "2s" || cfg.warmup != quickWarmup || cfg.idle != quickIdle || len(cfg.conns) != 3 || len(cfg.only) != 4 {
		t.Errorf("-quick -duration 2s: %+v", cfg)
	}
}

func TestCheckFDs(t *testing.T) {
	cfg := config{conns: []int{1, 16, 256}, only: allScenarios, idle: defaultIdle}
	if err := checkFDs(cfg, 20_000); err != nil {
		t.Errorf("defaults under a 20,000 limit: %v", err)
	}
	cfg.idle = 10_000
	if err := checkFDs(cfg, 20_000); err == nil || !strings.Contains(err.Error(), "-idle 9500 or less") {
		t.Errorf("-idle 10000 under a 20,000 limit: %v", err)
	}
	cfg = config{conns: []int{5000}, only: []string{scenarioRelay}}
	if err := checkFDs(cfg, 20_000); err == nil {
		t.Error("-conns 5000 with the relay under a 20,000 limit passed")
	}
}

func TestFmt(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234"} {
		if got := fmtCount(in); got != want {
			t.Errorf("fmtCount(%v) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[float64]string{38: "38µs", 1250: "1.25ms", 2.1e6: "2.10s"} {
		if got := fmtUs(in); got != want {
			t.Errorf("fmtUs(%v) = %q, want %q", in, got, want)
		}
	}
}
