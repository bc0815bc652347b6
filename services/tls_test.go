package services_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/yellow"
)

// TestTLS: over TLS a service calling another is known to the callee as
// itself (link.CallerFrom), discovery and the links work as in plain, and
// an instance must hold its own service's certificate.
func TestTLS(t *testing.T) {
	login := pki.Identity{Role: pki.RoleService, Name: "login"}
	o := services.NewOptions()
	o.Name, o.TLS = "echo", testenv.Credentials(t, login)
	if _, err := services.NewServer(o, nil, nil); err == nil || !strings.Contains(err.Error(), "services: tls: the certificate says service:login") {
		t.Fatalf("echo with login's certificate: %v", err)
	}

	yo := yellow.NewOptions()
	yo.RouterAddr, yo.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	yo.Heartbeat, yo.TickInterval = hb, hb
	yo.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleYellow})
	y, err := yellow.New(yo, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- y.Main() }()
	t.Cleanup(func() { y.Exit(); <-done })
	ty := &testYellow{Yellow: y, done: make(chan error, 1)}

	who := func(ctx context.Context, _ *services.Session, _ []byte) ([]byte, error) {
		id, ok := link.CallerFrom(ctx)
		if !ok {
			return []byte("nobody"), nil
		}
		return []byte(id.String()), nil
	}
	mustStartEcho(t, []*testYellow{ty}, func(o *services.Options) {
		o.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleService, Name: "echo"})
	}, map[string]services.HandlerFunc{"echo.Who": who, "echo.User": func(_ context.Context, s *services.Session, _ []byte) ([]byte, error) {
		return []byte(s.UserID()), nil
	}, "echo.Internal": func(_ context.Context, s *services.Session, _ []byte) ([]byte, error) {
		return nil, s.RequireService("match")
	}, "echo.Admin": func(_ context.Context, s *services.Session, _ []byte) ([]byte, error) {
		return nil, s.RequireAdmin()
	}})

	opts := services.ClientOptions{Heartbeat: hb, Peer: peerOpts(t)}
	opts.Peer.TLS = testenv.Credentials(t, login)
	c := newClientOpts(t, opts, ty)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := c.CallRaw(ctx, router.Target{}, "echo.Who", nil, nil)
	if err != nil || rep.GetErrorCode() != "" || string(rep.GetPayload()) != "service:login" {
		t.Fatalf("echo.Who: %v %v; want service:login", rep, err)
	}

	// A client session is believed only from a broker: a service calling
	// a service is that service, never a user.
	alice := &platformpb.Session{Id: "s1", UserId: "alice"}
	if rep, err := c.CallRaw(ctx, router.Target{}, "echo.User", alice, nil); err != nil || string(rep.GetPayload()) != "" {
		t.Fatalf("a service posing with a user's session: user %q, %v", rep.GetPayload(), err)
	}
	bopts := services.ClientOptions{Heartbeat: hb, Peer: peerOpts(t)}
	bopts.Peer.TLS = testenv.Credentials(t, pki.Identity{Role: pki.RoleBroker})
	bc := newClientOpts(t, bopts, ty)
	if rep, err := bc.CallRaw(ctx, router.Target{}, "echo.User", alice, nil); err != nil || string(rep.GetPayload()) != "alice" {
		t.Fatalf("a broker's session: user %q, %v", rep.GetPayload(), err)
	}

	// Internal and admin methods, by the caller's certificate.
	client := func(id pki.Identity) *services.Client {
		o := services.ClientOptions{Heartbeat: hb, Peer: peerOpts(t)}
		o.Peer.TLS = testenv.Credentials(t, id)
		return newClientOpts(t, o, ty)
	}
	match := client(pki.Identity{Role: pki.RoleService, Name: "match"})
	admin := client(pki.Identity{Role: pki.RoleAdmin})
	for _, tc := range []struct {
		who    string
		c      *services.Client
		sess   *platformpb.Session
		method string
		err    string
	}{
		{"service:match", match, nil, "echo.Internal", ""},
		{"service:match", match, nil, "echo.Admin", "unauthenticated: an admin method: service:match may not call it"},
		{"admin", admin, nil, "echo.Internal", ""},
		{"admin", admin, nil, "echo.Admin", ""},
		{"service:login", c, nil, "echo.Internal", "unauthenticated: an internal method: service:login may not call it (services match and admins may)"},
		{"a broker for a client", bc, alice, "echo.Internal", "unauthenticated: an internal method: clients may not call it"},
		{"a broker for a client", bc, alice, "echo.Admin", "unauthenticated: an internal method: clients may not call it"},
		{"a broker for nobody", bc, nil, "echo.Internal", "unauthenticated: an internal method: broker may not call it (services match and admins may)"},
	} {
		_, err := tc.c.CallRaw(ctx, router.Target{}, tc.method, tc.sess, nil)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err {
			t.Errorf("%s as %s: %q, want %q", tc.method, tc.who, got, tc.err)
		}
	}
}
