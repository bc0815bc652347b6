package yellow

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
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
