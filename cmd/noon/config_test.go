package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigFiles parses and validates every file in configs/.
func TestConfigFiles(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no config files found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cf := configFlags{file: f}
			if _, err := cf.load(); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		})
	}
}

func TestConfigRejectsUnknownAndBadFields(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "yelow: {}\n", `unknown key "yelow"`},
		{"unknown service key", "services:\n  echo:\n    concurency: 3\n", "concurency"},
		{"bad duration", "yellow:\n  heartbeat: fast\n", "yellow.heartbeat"},
		{"bad value", "yellow:\n  expire_after: 0\n", "expire_after"},
		{"bad service value", "services:\n  echo:\n    concurrency: -1\n", "services.echo"},
		{"bad yellows", "yellows: [\"nope\"]\n", "yellows[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			cf := configFlags{file: p}
			_, err := cf.load()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load = %v; want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestConfigPrecedence(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("yellow:\n  heartbeat: 2s\n  expire_after: 5\nservices:\n  echo:\n    concurrency: 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOON_YELLOW_EXPIRE_AFTER", "6")
	cf := configFlags{file: p, sets: []string{"yellow.max_instances=9"}}
	cfg, err := cf.load()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Yellow.Heartbeat.String() != "2s" || cfg.Yellow.ExpireAfter != 6 || cfg.Yellow.MaxInstances != 9 {
		t.Fatalf("yellow = %+v; want heartbeat 2s (file), expire_after 6 (env), max_instances 9 (-set)", cfg.Yellow)
	}
	echo, err := cfg.service("echo")
	if err != nil {
		t.Fatal(err)
	}
	if echo.Concurrency != 7 || echo.DefaultTimeout == 0 || echo.PubBind == "" {
		t.Fatalf("echo = %+v; want concurrency 7 over the defaults", echo)
	}
}
