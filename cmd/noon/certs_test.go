package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noonhq/noon/internal/pki"
)

// TestCertsAndDaemonChecks: noon certs makes a CA and certificates; a
// daemon started with a certificate for another role, or binding a
// non-loopback address with plain links, refuses to start and says why.
func TestCertsAndDaemonChecks(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	run := func(c func(context.Context, []string, io.Writer, io.Writer) error, args ...string) error {
		out.Reset()
		errOut.Reset()
		return c(context.Background(), args, &out, &errOut)
	}
	if err := run(runCerts, "ca", "-out", filepath.Join(dir, "ca")); err != nil {
		t.Fatalf("certs ca: %v %s", err, errOut.String())
	}
	if err := run(runCerts, "issue", "-ca", filepath.Join(dir, "ca"), "-role", "service", "-name", "login", "-out", filepath.Join(dir, "login")); err != nil {
		t.Fatalf("certs issue: %v %s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "service-login.crt") {
		t.Fatalf("certs issue printed %q", out.String())
	}
	tlsSet := []string{"-set", "tls.ca=" + filepath.Join(dir, "login", "ca.crt"),
		"-set", "tls.cert=" + filepath.Join(dir, "login", "service-login.crt"),
		"-set", "tls.key=" + filepath.Join(dir, "login", "service-login.key"), "-admin", "off"}

	err := run(runService, append([]string{"echo"}, tlsSet...)...)
	if err == nil || !strings.Contains(err.Error(), "the certificate says service:login, but this process runs as service:echo") {
		t.Fatalf("echo with login's certificate: %v", err)
	}
	err = run(runYellow, append([]string{"-router", "tcp://127.0.0.1:0", "-pub", "tcp://127.0.0.1:0"}, tlsSet...)...)
	if err == nil || !strings.Contains(err.Error(), "this process runs as yellow") {
		t.Fatalf("yellow with login's certificate: %v", err)
	}
	err = run(runYellow, "-router", "tcp://0.0.0.0:0", "-pub", "tcp://127.0.0.1:0", "-admin", "off")
	if err == nil || !strings.Contains(err.Error(), "router_addr: tcp://0.0.0.0:0 is not a loopback address") || !strings.Contains(err.Error(), "tls.insecure: true") {
		t.Fatalf("plain yellow on a wildcard address: %v", err)
	}
	if err := run(runCerts, "issue", "-ca", filepath.Join(dir, "ca"), "-role", "root", "-out", dir); err == nil {
		t.Fatal("issued a certificate for an unknown role")
	}
}

// TestClusterTLS: noon cluster gives each child its own certificate, by
// -set tls.* flags, that names the role the child runs as; tls.insecure
// turns it off.
func TestClusterTLS(t *testing.T) {
	children := []clusterChild{
		{name: "yellow", args: []string{"yellow"}, id: pki.Identity{Role: pki.RoleYellow}},
		{name: "login-1", args: []string{"service", "login"}, id: pki.Identity{Role: pki.RoleService, Name: "login"}},
		{name: "login-2", args: []string{"service", "login"}, id: pki.Identity{Role: pki.RoleService, Name: "login"}},
		{name: "broker-1", args: []string{"broker"}, id: pki.Identity{Role: pki.RoleBroker, Name: "broker-1"}},
	}
	dir, _, tlsArgs, err := clusterTLS(&Config{}, children)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, ch := range children {
		cf := configFlags{}
		fs := flag.NewFlagSet(ch.name, flag.ContinueOnError)
		cf.register(fs, "")
		if err := fs.Parse(tlsArgs[ch.id]); err != nil {
			t.Fatal(err)
		}
		cfg, err := cf.load()
		if err != nil {
			t.Fatal(err)
		}
		creds, err := cfg.credentials()
		if err != nil || creds == nil || creds.Identity() != ch.id {
			t.Fatalf("%s: credentials %v, %v; want %s", ch.name, creds, err, ch.id)
		}
	}
	if _, err := pki.LoadCredentials(filepath.Join(dir, pki.CACertFile), filepath.Join(dir, "admin.crt"), filepath.Join(dir, "admin.key")); err != nil {
		t.Fatalf("noonctl's certificate: %v", err)
	}
	if dir, _, _, err := clusterTLS(&Config{TLS: pki.Config{Insecure: true}}, children[:1]); err != nil || dir != "" {
		t.Fatalf("insecure: %q %v", dir, err)
	}
}
