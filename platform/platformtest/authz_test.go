package platformtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/wire"
)

// TestAuthorisationByRole: with TLS (the harness's default), the broker's
// control socket answers only admin identities, and a process without a
// certificate of the cluster's CA gets nothing from a service instance.
func TestAuthorisationByRole(t *testing.T) {
	p := platformtest.Start(t, platformtest.Options(t, echo.Module))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dial := func(ep string, creds *pki.Credentials) *link.Peer {
		peer := link.Dial(ep, link.PeerOptions{TLS: creds, Logger: testenv.Logger(t)})
		t.Cleanup(func() { _ = peer.Close() })
		return peer
	}
	info := &platformpb.Envelope{Method: broker.MethodInfo}
	for _, tc := range []struct {
		id   pki.Identity
		code string
	}{
		{pki.Identity{Role: pki.RoleAdmin}, ""},
		{pki.Identity{Role: pki.RoleService, Name: "echo"}, wire.CodeUnauthenticated},
		{pki.Identity{Role: pki.RoleBroker}, wire.CodeUnauthenticated},
	} {
		peer := dial(p.Broker.ControlEndpoint(), testenv.Credentials(t, tc.id))
		select {
		case <-peer.Up():
		case <-ctx.Done():
			t.Fatalf("%s: the link never came up", tc.id)
		}
		rep, err := peer.Call(ctx, info)
		if err != nil || rep.GetErrorCode() != tc.code {
			t.Errorf("broker.Info as %s: %v %s: %s, want code %q", tc.id, err, rep.GetErrorCode(), rep.GetErrorMessage(), tc.code)
		}
	}

	// No certificate: the handshake fails, no request is served.
	plain := dial(p.Instances[0].Server().Endpoint(), nil)
	short, cancel2 := context.WithTimeout(ctx, time.Second)
	defer cancel2()
	if _, err := plain.Call(short, &platformpb.Envelope{Method: echo.MethodEcho, Payload: []byte("x")}); err == nil {
		t.Fatal("a plain DEALER was served by a TLS instance")
	}
	if n := p.Instances[0].Server().Stats().Served; n != 0 {
		t.Fatalf("the instance ran %d requests from a plain DEALER", n)
	}
}
