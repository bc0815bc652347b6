package main

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
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
		{"unknown service", "services:\n  nope: {}\n", `services.nope: unknown service "nope"`},
		{"bad module option", "services:\n  login:\n    session_ttl: 1s\n", "services.login.session_ttl"},
		{"unknown module key", "services:\n  room:\n    lease_tll: 1s\n", `unknown key "services.room.lease_tll"`},
		{"wrong kind", "services:\n  room:\n    kind: stateless\n", "services.room.kind: the room service is stateful"},
		{"tls half configured", "tls:\n  ca: ca.crt\n", "tls.cert: must not be empty"},
		{"tls files and insecure", "tls: {ca: a, cert: b, key: c, insecure: true}\n", "tls.insecure"},
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
	echo := cfg.Services["echo"].Runtime()
	if echo.Concurrency != 7 || echo.DefaultTimeout == 0 || echo.PubBind == "" {
		t.Fatalf("echo = %+v; want concurrency 7 over the defaults", echo)
	}
}

// TestModules checks the list: unique names, defaults that validate, and
// sections whose keys (the runtime's and the service's own, inlined) do not
// collide.
func TestModules(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range modules {
		if seen[m.Name()] {
			t.Errorf("%s listed twice", m.Name())
		}
		seen[m.Name()] = true
		sec := m.NewSection()
		if err := m.Validate(sec); err != nil {
			t.Errorf("%s: defaults: %v", m.Name(), err)
		}
		out, err := yaml.Marshal(sec)
		if err != nil {
			t.Errorf("%s: section: %v", m.Name(), err)
			continue
		}
		var keys map[string]any
		if err := yaml.Unmarshal(out, &keys); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"bind", "concurrency", "heartbeat"} {
			if _, ok := keys[k]; !ok {
				t.Errorf("%s: section has no runtime key %q: %s", m.Name(), k, out)
			}
		}
	}
}

func TestConfigServicesPrecedence(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("services:\n  login:\n    session_ttl: 2h\n    concurrency: 5\n  room:\n    lease_ttl: 3s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOON_SERVICES_LOGIN_SESSION_TTL", "3h")
	t.Setenv("NOON_SERVICES_ROOM_CONCURRENCY", "9")
	cf := configFlags{file: p, sets: []string{"services.login.http_addr=:9999", "services.room.lease_ttl=4s"}}
	cfg, err := cf.load()
	if err != nil {
		t.Fatal(err)
	}
	lg := cfg.Services["login"].(*services.Config[login.Options])
	if lg.Service.SessionTTL != 3*time.Hour || lg.Options.Concurrency != 5 || lg.Service.HTTPAddr != ":9999" {
		t.Errorf("login = %+v; want session_ttl 3h (env), concurrency 5 (file), http_addr :9999 (-set)", lg)
	}
	rm := cfg.Services["room"].(*services.Config[room.Options])
	if rm.Service.LeaseTTL != 4*time.Second || rm.Options.Concurrency != 9 || rm.Options.Kind != services.KindStateful {
		t.Errorf("room = %+v; want lease_ttl 4s (-set), concurrency 9 (env), kind stateful", rm)
	}
	// -instance: login's HTTP API moves to port + n - 1.
	login.Module.ForInstance(lg, 3)
	if lg.Service.HTTPAddr != ":10001" {
		t.Errorf("login instance 3: http_addr %q, want :10001", lg.Service.HTTPAddr)
	}
}

// listeners returns every listen address in cfg by its yaml path: the
// options named addr, *_addr, bind, pub_bind and control, found by walking
// the config as YAML, so that a listener added later is checked too.
func listeners(t *testing.T, cfg *Config) map[string]string {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, c := range v {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(p, c)
			}
		case string:
			key := path[strings.LastIndex(path, ".")+1:]
			// (*_per_addr are per-client-address limits, not listeners.)
			if key == "addr" || strings.HasSuffix(key, "_addr") && !strings.HasSuffix(key, "_per_addr") || key == "bind" || key == "pub_bind" || key == "control" {
				out[path] = v
			}
		}
	}
	walk("", tree)
	return out
}

// TestDevListensOnLoopback: the built-in defaults (what `noon dev` runs
// without a file) and configs/dev.yaml bind every listener to loopback.
func TestDevListensOnLoopback(t *testing.T) {
	fromFile, err := (&configFlags{file: "../../configs/dev.yaml"}).load()
	if err != nil {
		t.Fatal(err)
	}
	defaults := defaultConfig()
	for name, cfg := range map[string]*Config{"built-in defaults": &defaults, "configs/dev.yaml": fromFile} {
		t.Run(name, func(t *testing.T) {
			found := listeners(t, cfg)
			for _, want := range []string{"broker.edge.tcp_addr", "broker.edge.ws_addr", "brokerlist.addr", "services.login.http_addr",
				"yellow.router_addr", "yellow.pub_addr", "broker.control", "services.echo.bind", "services.room.pub_bind", "admin.addr"} {
				if _, ok := found[want]; !ok {
					t.Errorf("no listener %s in %v", want, found)
				}
			}
			for path, addr := range found {
				if path == "admin.addr" && addr == "" {
					addr = adminDev // the command's default
				}
				_, hostPort, ok := strings.Cut(addr, "://")
				if !ok {
					hostPort = addr
				}
				host, _, err := net.SplitHostPort(hostPort)
				if ip := net.ParseIP(host); err != nil || host != "localhost" && (ip == nil || !ip.IsLoopback()) {
					t.Errorf("%s = %q: want a loopback address", path, addr)
				}
			}
		})
	}
}

// TestClusterConfigNeedsOrigins: configs/cluster.yaml lists WebSocket
// origins and requires JSON on the login API; without origins it is an
// error naming the field.
func TestClusterConfigNeedsOrigins(t *testing.T) {
	b, err := os.ReadFile("../../configs/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := (&configFlags{file: "../../configs/cluster.yaml"}).load()
	if err != nil {
		t.Fatal(err)
	}
	lg := cfg.Services["login"].(*services.Config[login.Options])
	if len(cfg.Broker.Edge.WSOrigins) == 0 || !lg.Service.HTTPRequireJSON {
		t.Fatalf("cluster.yaml: ws_origins %v, http_require_json %v", cfg.Broker.Edge.WSOrigins, lg.Service.HTTPRequireJSON)
	}
	re := regexp.MustCompile(`(?m)^    ws_origins: .*$`)
	if !re.Match(b) {
		t.Fatal("cluster.yaml has no broker.edge.ws_origins line")
	}
	p := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(p, re.ReplaceAll(b, []byte("    ws_origins: []")), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = (&configFlags{file: p}).load()
	if err == nil || !strings.Contains(err.Error(), "broker.edge.ws_origins: must list the Origins") {
		t.Fatalf("cluster config without origins: %v", err)
	}
}
