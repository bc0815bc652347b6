package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMain makes the test binary a like-for-like child process when
// lflChildEnv names a role: the scenario re-executes its own binary.
func TestMain(m *testing.M) {
	if role := os.Getenv(lflChildEnv); role != "" {
		os.Exit(lflChild(role, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// TestLFL runs the like-for-like scenario briefly at one connection: the
// servers in processes of their own, every row measured without errors,
// each server process's CPU read, the broker's CPU profile written. How
// fast anything is is not checked.
func TestLFL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four processes")
	}
	dir := t.TempDir()
	path, prof := filepath.Join(dir, "lfl.json"), filepath.Join(dir, "broker.prof")
	var stdout, stderr syncBuffer
	code := realMain(context.Background(), []string{"-only", "lfl", "-conns", "1", "-duration", "200ms", "-warmup", "50ms",
		"-json", path, "-cpuprofile-broker", prof}, &stdout, &stderr)
	t.Logf("stdout:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep lflReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	if len(rep.Notes) > 0 {
		t.Errorf("notes: %q", rep.Notes)
	}
	want := map[string]string{lflRelay: roleRelay, lflNoonTCP: roleBroker, lflNoonWS: roleBroker}
	if len(rep.Results) != len(want) || !rep.TLSLinks || rep.PayloadBytes != lflPayload {
		t.Fatalf("%d rows, TLS %v, payload %d: want %d rows, TLS links, %d bytes", len(rep.Results), rep.TLSLinks, rep.PayloadBytes, len(want), lflPayload)
	}
	for _, r := range rep.Results {
		hop, ok := want[r.Scenario]
		if !ok || r.Conns != 1 || r.Errors != 0 || r.Requests == 0 || r.RPS <= 0 || !(0 < r.P50Us && r.P50Us <= r.P99Us) {
			t.Errorf("%s: %+v", r.Scenario, r.Result)
		}
		if len(r.Procs) != 2 || r.Procs[0].Role != hop || r.Procs[0].PID <= 0 || r.Procs[0].PID == r.Procs[1].PID {
			t.Errorf("%s: server processes %+v, want %s first and one more", r.Scenario, r.Procs, hop)
		}
		if r.HopCPUPerRequestUs < 0 || r.ServerCPUPerRequestUs < r.HopCPUPerRequestUs {
			t.Errorf("%s: hop CPU %.1f us/req, servers %.1f", r.Scenario, r.HopCPUPerRequestUs, r.ServerCPUPerRequestUs)
		}
	}
	if len(rep.Ratios) != 2 {
		t.Errorf("ratios %+v, want noon-tcp and noon-ws over relay", rep.Ratios)
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("broker profile: %v", err)
	}
}

func TestLFLFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-only", "lfl,raw"},
		{"-lfl-plain"},
		{"-cpuprofile-broker", "x.prof"},
		{"-only", "raw", "-noon-dev", "bin/noon"},
		{"-only", "raw", "-lfl-rows", "relay"},
		{"-only", "lfl", "-lfl-rows", "relay,nope"},
		{"-only", "lfl", "-lfl-rows", "nakama"},
		{"-only", "lfl", "-lfl-rate", "-1"},
	} {
		var stdout, stderr syncBuffer
		if code := realMain(context.Background(), args, &stdout, &stderr); code == 0 {
			t.Errorf("%q: exit code 0, want an error", args)
		}
	}
	var stderr syncBuffer
	cfg, err := parseFlags([]string{"-only", "lfl"}, &stderr)
	if err != nil || cfg.payload != lflPayload || cfg.has(scenarioRaw) || !slices.Equal(cfg.lflRun, []string{lflRelay, lflNoonTCP, lflNoonWS}) {
		t.Errorf("-only lfl: %+v, %v", cfg, err)
	}
	if cfg, err := parseFlags([]string{"-only", "lfl", "-payload", "32"}, &stderr); err != nil || cfg.payload != 32 {
		t.Errorf("-only lfl -payload 32: payload %d, %v", cfg.payload, err)
	}
	if cfg, _ := parseFlags(nil, &stderr); cfg.has(scenarioLFL) || cfg.payload != defaultPayload {
		t.Error("lfl runs by default, or its payload leaks")
	}
}

func TestParseProcStat(t *testing.T) {
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
	// majflt cmajflt utime stime ...
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0\n"
	got, err := parseProcStat(line)
	if err != nil || got != 3*time.Second {
		t.Errorf("parseProcStat = %v, %v; want 3s", got, err)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 5 0"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q): no error", bad)
		}
	}
	if _, err := procCPUTime(os.Getpid()); err != nil {
		t.Errorf("own /proc stat: %v", err)
	}
}

func TestParseProcIO(t *testing.T) {
	io := "rchar: 10\nwchar: 20\nsyscr: 7\nsyscw: 5\nread_bytes: 0\n"
	if got := parseProcIO(io); got != 12 {
		t.Errorf("parseProcIO = %d, want 12", got)
	}
	for _, bad := range []string{"", "syscr: 7\n", "syscr: x\nsyscw: 1\n"} {
		if got := parseProcIO(bad); got != -1 {
			t.Errorf("parseProcIO(%q) = %d, want -1", bad, got)
		}
	}
	if procSyscalls(os.Getpid()) <= 0 {
		t.Errorf("own /proc io: no system calls counted")
	}
}

func TestLFLRowsToRun(t *testing.T) {
	for _, c := range []struct {
		only        string
		dev, nakama bool
		want        []string
	}{
		{"", false, false, []string{lflRelay, lflNoonTCP, lflNoonWS}},
		{"", true, true, lflRows},
		{"noon-tcp, relay", true, false, []string{lflRelay, lflNoonTCP}},
		{"dev-ws,noon-ws", false, false, []string{lflNoonWS}},
	} {
		got, err := lflRowsToRun(c.only, c.dev, c.nakama)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("lflRowsToRun(%q, %v, %v) = %q, %v; want %q", c.only, c.dev, c.nakama, got, err, c.want)
		}
	}
	for _, bad := range []string{"relay,nope", "nakama"} {
		if got, err := lflRowsToRun(bad, false, false); err == nil {
			t.Errorf("lflRowsToRun(%q) = %q, no error", bad, got)
		}
	}
}

func TestDevBanner(t *testing.T) {
	banner := `noon dev is up: yellow, broker, brokerlist, services [echo login]
  BrokerList   http://127.0.0.1:42735/brokerlist
  broker TCP   127.0.0.1:39945 (pandaparty frames)
  broker WS    ws://127.0.0.1:40535/ws
  links        mutual TLS, ephemeral CA
Ctrl-C stops everything.
`
	got, err := devBanner(bufio.NewReader(strings.NewReader(banner)))
	if err != nil || !slices.Equal(got, []string{"127.0.0.1:39945", "ws://127.0.0.1:40535/ws"}) {
		t.Errorf("devBanner = %q, %v", got, err)
	}
	noWS := strings.Replace(banner, "  broker WS    ws://127.0.0.1:40535/ws\n", "", 1)
	for _, bad := range []string{"", noWS, banner[:100], strings.Repeat("x\n", maxBannerLines+1)} {
		if got, err := devBanner(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("devBanner(%.40q) = %q, no error", bad, got)
		}
	}
}

// TestLFLNoonDev builds cmd/noon and runs the like-for-like scenario with
// -noon-dev -lfl-plain briefly: the dev-ws row measured without errors,
// its CPU the noon dev process's.
func TestLFLNoonDev(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/noon and starts five processes")
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool to build cmd/noon")
	}
	dir := t.TempDir()
	noon := filepath.Join(dir, "noon")
	if out, err := exec.Command(gotool, "build", "-o", noon, "github.com/noonhq/noon/cmd/noon").CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/noon: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "lfl.json")
	var stdout, stderr syncBuffer
	code := realMain(context.Background(), []string{"-only", "lfl", "-conns", "1", "-duration", "200ms", "-warmup", "50ms",
		"-lfl-plain", "-noon-dev", noon, "-json", path}, &stdout, &stderr)
	t.Logf("stdout:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep lflReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	var dev *lflRow
	for i, r := range rep.Results {
		if r.Scenario == lflDevWS {
			dev = &rep.Results[i]
		}
	}
	if rep.TLSLinks || len(rep.Results) != 4 || dev == nil {
		t.Fatalf("TLS %v, %d rows, dev-ws %v: want plain links and 4 rows with dev-ws", rep.TLSLinks, len(rep.Results), dev != nil)
	}
	if dev.Errors != 0 || dev.Requests == 0 || len(dev.Procs) != 1 || dev.Procs[0].Role != roleNoonDev {
		t.Errorf("dev-ws: %+v", *dev)
	}
}
