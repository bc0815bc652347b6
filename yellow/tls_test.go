package yellow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/wire"
)

// TestTLS: with TLS, providers and watchers that hold certificates of the
// CA register and follow as usual; a client without one gets nothing.
func TestTLS(t *testing.T) {
	opts := testOptions()
	opts.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleYellow})
	y := mustStart(t, opts)

	watch := clientOptions(t, y)
	watch.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleBroker})
	w := mustWatch(t, watch)
	reg := clientOptions(t, y)
	reg.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleService, Name: "login"})
	mustRegister(t, reg, testInstance("login", "login-1"), nil)
	checkFor(t, 2*time.Second, "watcher sees the instance", has(w, "login", "login-1"))

	plain := Watch(clientOptions(t, y))
	defer plain.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*testBeat)
	defer cancel()
	if err := plain.WaitSynced(ctx); err == nil {
		t.Fatal("a watcher without a certificate synced with a TLS yellow")
	}
	if n := len(plain.All()); n != 0 {
		t.Fatalf("a watcher without a certificate sees %d instances", n)
	}
}

func TestNewTLSChecks(t *testing.T) {
	o := testOptions()
	o.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleBroker})
	if _, err := New(o, nil); err == nil || !strings.Contains(err.Error(), "yellow: tls: the certificate says broker") {
		t.Fatalf("a broker certificate: %v", err)
	}
	o = testOptions()
	o.RouterAddr = "tcp://0.0.0.0:0"
	if _, err := New(o, nil); err == nil || !strings.Contains(err.Error(), "yellow: router_addr: tcp://0.0.0.0:0 is not a loopback address") ||
		!strings.Contains(err.Error(), "tls.insecure") {
		t.Fatalf("plain on a wildcard address: %v", err)
	}
	o.Insecure = true
	y, err := New(o, nil)
	if err != nil {
		t.Fatalf("plain on a wildcard address with insecure: %v", err)
	}
	y.Exit()
}

// TestTLSRecordsBelongToIdentities: over real sockets, an identity that is
// not the record's owner can neither replace nor remove it, and may not
// register under another service's name; the real record stays.
func TestTLSRecordsBelongToIdentities(t *testing.T) {
	opts := testOptions()
	opts.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleYellow})
	y := mustStart(t, opts)
	reg := clientOptions(t, y)
	reg.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleService, Name: "login"})
	real := testInstance("login", "login-1")
	mustRegister(t, reg, real, nil)
	checkFor(t, 5*time.Second, "yellow holds the real record", func() bool { return len(y.Registry().Query("login")) == 1 })

	evil := linkTransport{log: testenv.Logger(t), heartbeat: testBeat, tls: testenv.Credentials(t, pki.Identity{Role: pki.RoleService, Name: "evil"})}
	p := evil.dial(y.RouterEndpoint())
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !waitAlive(ctx, p, 5*time.Second) {
		t.Fatal("a certified client could not connect")
	}
	forged := testInstance("login", "login-1")
	forged.Router = "tcp://127.0.0.1:6666"
	for _, tc := range []struct {
		method string
		req    *platformpb.YellowRequest
	}{
		{MethodRegister, &platformpb.YellowRequest{Instance: forged}},
		{MethodRegister, &platformpb.YellowRequest{Instance: testInstance("login", "login-2")}},
		{MethodHeartbeat, &platformpb.YellowRequest{Instance: &platformpb.Instance{Service: "login", Id: "login-1", Load: 1}}},
		{MethodDeregister, &platformpb.YellowRequest{Service: "login", Id: "login-1"}},
	} {
		_, err := call(ctx, p, time.Second, tc.method, tc.req)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeUnauthenticated {
			t.Errorf("%s by service:evil: %v, want unauthenticated", tc.method, err)
		}
	}
	got := y.Registry().Query("login")
	if len(got) != 1 || got[0].GetRouter() != real.GetRouter() {
		t.Fatalf("login records after the attack: %v", got)
	}
	if n := y.Stats().NotOwner; n != 4 {
		t.Fatalf("NotOwner = %d, want 4", n)
	}
}
