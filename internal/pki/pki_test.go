package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseIdentity(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Identity
		ok   bool
	}{
		{"broker", Identity{RoleBroker, ""}, true},
		{"broker:b1", Identity{RoleBroker, "b1"}, true},
		{"yellow", Identity{RoleYellow, ""}, true},
		{"admin:ops.host-1", Identity{RoleAdmin, "ops.host-1"}, true},
		{"service:login", Identity{RoleService, "login"}, true},
		{"service", Identity{}, false},       // a service needs its name
		{"service:Login", Identity{}, false}, // names are lower case
		{"service:1x", Identity{}, false},    // wire.NameRule
		{"broker:", Identity{}, false},       // an empty name is written without ":"
		{"broker:a:b", Identity{}, false},    // one colon
		{"broker:-x", Identity{}, false},     // a label starts with a letter or digit
		{"root", Identity{}, false},          // unknown role
		{"", Identity{}, false},              // no role
		{"Broker", Identity{}, false},        // roles are lower case
		{"broker:" + strings.Repeat("a", 65), Identity{}, false},
	} {
		got, err := ParseIdentity(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseIdentity(%q) = %v, %v; want %v, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if tc.ok && got.String() != tc.in {
			t.Errorf("%q: String() = %q", tc.in, got.String())
		}
	}
}

func TestIdentityURI(t *testing.T) {
	for _, tc := range []struct {
		uri  string
		want string // identity, "" = refused
	}{
		{"noon://broker", "broker"},
		{"noon://service/login", "service:login"},
		{"noon://admin/ops", "admin:ops"},
		{"NOON://broker", "broker"}, // url.Parse lower-cases the scheme
		{"noon://broker/", ""},      // not canonical
		{"noon://service", ""},      // a service needs its name
		{"noon://service/login/x", ""},
		{"noon://service/%6cogin", ""}, // escapes are not canonical
		{"noon://Service/login", ""},
		{"noon://u@broker", ""},
		{"noon://broker:1", ""},
		{"noon://broker?x", ""},
		{"noon://broker#x", ""},
		{"noon:broker", ""},
		{"spiffe://broker", ""},
		{"noon:///broker", ""},
	} {
		id, err := ParseURI(tc.uri)
		got := ""
		if err == nil {
			got = id.String()
		}
		if got != tc.want {
			t.Errorf("ParseURI(%q) = %q, %v; want %q", tc.uri, got, err, tc.want)
		}
	}
}

// FuzzIdentityURI: the URI parser never panics; what it accepts is valid,
// prints back to the same URI and string form, and parses again to itself.
func FuzzIdentityURI(f *testing.F) {
	for _, s := range []string{"noon://broker", "noon://service/login", "noon://admin/a.b-c_d",
		"noon://service/%6cogin", "noon://broker/", "noon:broker", "noon://u:p@yellow:1/x?y#z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseURI(s)
		if err != nil {
			return
		}
		if err := id.Validate(); err != nil {
			t.Fatalf("accepted %q as invalid %v: %v", s, id, err)
		}
		again, err := ParseURI(id.URI().String())
		if err != nil || again != id {
			t.Fatalf("%q -> %v -> %q -> %v, %v", s, id, id.URI(), again, err)
		}
		back, err := ParseIdentity(id.String())
		if err != nil || back != id {
			t.Fatalf("%v -> %q -> %v, %v", id, id.String(), back, err)
		}
	})
}

func TestSatisfies(t *testing.T) {
	login := Identity{RoleService, "login"}
	for _, tc := range []struct {
		id, want Identity
		ok       bool
	}{
		{login, Identity{}, true},
		{login, Identity{Role: RoleService}, true},
		{login, login, true},
		{login, Identity{RoleService, "room"}, false},
		{login, Identity{Role: RoleBroker}, false},
		{Identity{RoleBroker, "b1"}, Identity{Role: RoleBroker}, true},
	} {
		if got := tc.id.Satisfies(tc.want); got != tc.ok {
			t.Errorf("%v.Satisfies(%v) = %v", tc.id, tc.want, got)
		}
	}
}

// certWithURIs issues a leaf with arbitrary URI SANs from ca.
func certWithURIs(t *testing.T, ca *CA, uris ...string) *x509.Certificate {
	t.Helper()
	is, err := ca.Issue(Identity{Role: RoleBroker}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(is.CertPEM, is.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := *pair.Leaf
	c.URIs = nil
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		c.URIs = append(c.URIs, u)
	}
	return &c
}

func TestIdentityOf(t *testing.T) {
	ca := testCA(t)
	for _, tc := range []struct {
		uris []string
		want string
	}{
		{[]string{"noon://broker"}, "broker"},
		{[]string{"spiffe://x/y", "noon://service/login"}, "service:login"},
		{nil, ""},
		{[]string{"spiffe://x/y"}, ""},
		{[]string{"noon://broker", "noon://service/login"}, ""},
		{[]string{"noon://broker", "noon://broker"}, ""},
		{[]string{"noon://root"}, ""},
	} {
		id, err := IdentityOf(certWithURIs(t, ca, tc.uris...))
		got := ""
		if err == nil {
			got = id.String()
		}
		if got != tc.want {
			t.Errorf("URIs %v: identity %q, %v; want %q", tc.uris, got, err, tc.want)
		}
	}
}

func testCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("", 0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func creds(t testing.TB, ca *CA, id Identity) *Credentials {
	t.Helper()
	is, err := ca.Issue(id, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Credentials(is)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handshake runs a TLS handshake over a pipe with server and client
// configurations and returns both sides' errors.
func handshake(t *testing.T, server, client *tls.Config) (serr, cerr error) {
	t.Helper()
	a, b := net.Pipe()
	s, c := tls.Server(a, server), tls.Client(b, client)
	done := make(chan error, 1)
	go func() {
		err := s.Handshake()
		if err == nil {
			// TLS 1.3: the server's verdict on the client's certificate
			// reaches the client with the first read.
			_, err = s.Write([]byte{1})
		}
		done <- err
		a.Close() // not s.Close: its close_notify would block on the pipe
	}()
	cerr = c.Handshake()
	if cerr == nil {
		_, cerr = c.Read(make([]byte, 1))
	}
	b.Close()
	return <-done, cerr
}

func TestMutualTLS(t *testing.T) {
	ca := testCA(t)
	other := testCA(t)
	yellow := creds(t, ca, Identity{Role: RoleYellow})
	broker := creds(t, ca, Identity{RoleBroker, "b1"})
	login := creds(t, ca, Identity{RoleService, "login"})
	stranger := creds(t, other, Identity{Role: RoleBroker})

	var seen Identity
	accept := func(id Identity) error { seen = id; return nil }
	if serr, cerr := handshake(t, yellow.ServerConfig(accept), broker.ClientConfig(Identity{Role: RoleYellow})); serr != nil || cerr != nil {
		t.Fatalf("same CA: server %v, client %v", serr, cerr)
	}
	if seen != (Identity{RoleBroker, "b1"}) {
		t.Fatalf("server saw %v", seen)
	}
	t.Run("client from another CA", func(t *testing.T) {
		serr, cerr := handshake(t, yellow.ServerConfig(nil), stranger.ClientConfig(Identity{}))
		if serr == nil || cerr == nil {
			t.Fatalf("server %v, client %v; want both to fail", serr, cerr)
		}
	})
	t.Run("server from another CA", func(t *testing.T) {
		_, cerr := handshake(t, stranger.ServerConfig(nil), broker.ClientConfig(Identity{}))
		if cerr == nil || !strings.Contains(cerr.Error(), "unknown authority") {
			t.Fatalf("client %v; want unknown authority", cerr)
		}
	})
	t.Run("server is not who the client expects", func(t *testing.T) {
		_, cerr := handshake(t, login.ServerConfig(nil), broker.ClientConfig(Identity{RoleService, "room"}))
		if cerr == nil || !strings.Contains(cerr.Error(), "the server is service:login, expected service:room") {
			t.Fatalf("client %v", cerr)
		}
	})
	t.Run("server refuses the client's role", func(t *testing.T) {
		onlyBrokers := func(id Identity) error {
			if id.Role != RoleBroker {
				return errors.New("brokers only")
			}
			return nil
		}
		serr, cerr := handshake(t, login.ServerConfig(onlyBrokers), yellow.ClientConfig(Identity{}))
		if serr == nil || cerr == nil {
			t.Fatalf("server %v, client %v; want both to fail", serr, cerr)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		cfg := broker.ClientConfig(Identity{})
		cfg.GetClientCertificate = nil
		serr, _ := handshake(t, yellow.ServerConfig(nil), cfg)
		if serr == nil {
			t.Fatal("server accepted a client without a certificate")
		}
	})
	t.Run("TLS 1.2 refused", func(t *testing.T) {
		cfg := broker.ClientConfig(Identity{})
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if serr, _ := handshake(t, yellow.ServerConfig(nil), cfg); serr == nil {
			t.Fatal("server accepted TLS 1.2")
		}
	})
}

func TestFilesAndRotation(t *testing.T) {
	dir := t.TempDir()
	ca := testCA(t)
	if err := ca.Save(dir); err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(dir); err == nil {
		t.Fatal("Save overwrote an existing CA key")
	}
	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{RoleService, "login"}
	is, err := loaded.Issue(id, IssueOptions{Hosts: []string{"svc.example", "10.0.0.7"}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := is.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(certFile) != "service-login.crt" || filepath.Base(keyFile) != "service-login.key" {
		t.Fatalf("files %s %s", certFile, keyFile)
	}
	for f, perm := range map[string]os.FileMode{keyFile: 0o600, filepath.Join(dir, CAKeyFile): 0o600, certFile: 0o644} {
		st, err := os.Stat(f)
		if err != nil || st.Mode().Perm() != perm {
			t.Fatalf("%s: %v %v; want %v", f, st.Mode(), err, perm)
		}
	}
	c, err := Config{CA: filepath.Join(dir, CACertFile), Cert: certFile, Key: keyFile}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity() != id || c.Certificate().Leaf.DNSNames[0] != "svc.example" || len(c.Certificate().Leaf.IPAddresses) != 1 {
		t.Fatalf("loaded %v %v", c.Identity(), c.Certificate().Leaf)
	}
	if err := c.Require(Identity{RoleService, "login"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Require(Identity{Role: RoleYellow}); err == nil || !strings.Contains(err.Error(), "says service:login") {
		t.Fatalf("Require(yellow) = %v", err)
	}

	// A certificate of a new CA, with a bundle of old and new: both verify.
	newCA := testCA(t)
	bundle := filepath.Join(dir, "bundle.crt")
	if err := os.WriteFile(bundle, append(append([]byte{}, ca.CertPEM()...), newCA.CertPEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	is2, err := newCA.Issue(Identity{Role: RoleBroker}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir2 := t.TempDir()
	cert2, key2, err := is2.Save(dir2)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := LoadCredentials(bundle, cert2, key2)
	if err != nil {
		t.Fatal(err)
	}
	c1, err := LoadCredentials(bundle, certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if serr, cerr := handshake(t, c1.ServerConfig(nil), c2.ClientConfig(Identity{})); serr != nil || cerr != nil {
		t.Fatalf("old and new CA in one bundle: server %v, client %v", serr, cerr)
	}
	// Without the bundle, the old CA's file refuses the new certificate.
	if _, err := LoadCredentials(filepath.Join(dir, CACertFile), cert2, key2); err == nil {
		t.Fatal("a certificate of another CA was loaded")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, ""},
		{Config{Insecure: true}, ""},
		{Config{CA: "a", Cert: "b", Key: "c"}, ""},
		{Config{CA: "a"}, "cert"},
		{Config{CA: "a", Cert: "b", Key: "c", Insecure: true}, "insecure"},
	} {
		err := tc.c.Validate()
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v; want %q", tc.c, err, tc.want)
		}
	}
}

func TestEphemeral(t *testing.T) {
	e, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	a, err := e.Credentials(Identity{Role: RoleYellow})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := e.Credentials(Identity{Role: RoleYellow})
	if a != b {
		t.Fatal("credentials of one identity issued twice")
	}
	if left := time.Until(a.Certificate().Leaf.NotAfter); left < 24*time.Hour {
		t.Fatalf("ephemeral certificate valid for %v", left)
	}
	if _, err := e.Credentials(Identity{Role: RoleService}); err == nil {
		t.Fatal("a service identity without a name was issued")
	}
}
