package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestChaosShort builds bin/noon's binary and runs the suite's -short mode
// (about 2 minutes: a real cluster of processes, real Postgres, its own
// Redis). It runs only with NOON_CHAOS=1, as CI runs bin/noonchaos -short
// itself after the tests.
func TestChaosShort(t *testing.T) {
	if os.Getenv("NOON_CHAOS") != "1" {
		t.Skip("set NOON_CHAOS=1 to run the chaos suite (-short)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("the chaos suite needs redis-server: %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", dir+"/", "../noon").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out bytes.Buffer
	code := run([]string{"-short", "-noon", filepath.Join(dir, "noon"), "-config", "../../configs/cluster.yaml"}, &out, &out)
	t.Logf("noonchaos -short:\n%s", out.String())
	if code != 0 {
		t.Fatalf("noonchaos -short exited %d", code)
	}
	if !strings.Contains(out.String(), "PASS") {
		t.Fatal("no PASS line")
	}
}
