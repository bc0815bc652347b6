package platformtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/brokerlist"
	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/wire"
)

// TestDrainRequest: wire.MethodDrain (noonctl drain) is taken only from an
// admin identity; it drains a service instance (it leaves yellow, and a
// request in flight finishes) and a broker (it leaves the BrokerList).
// Without a drain hook (as in tests) each drains itself.
func TestDrainRequest(t *testing.T) {
	opts := platformtest.Options(t, echo.Module)
	opts.Instances = map[string]int{echo.Name: 2}
	readiness := map[string]func() error{}
	opts.Ready = func(name string, check func() error) { readiness[name] = check }
	p := platformtest.Start(t, opts)
	// Ready by event means listed by yellow; the daemons hear yellow's
	// answer to their registration about then.
	for name, check := range readiness {
		testenv.CheckFor(t, 10*time.Second, name+" ready", func() bool { return check() == nil })
	}
	if len(readiness) != 5 {
		t.Errorf("readiness checks of %v, want yellow, 2 instances, brokerlist, broker", readiness)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	target, other := p.Instances[0], p.Instances[1]
	srv := target.Server()
	inst := srv.Instance()

	ask := func(t *testing.T, rec *platformpb.Instance, id pki.Identity) (*platformpb.Envelope, error) {
		t.Helper()
		peer := link.Dial(rec.GetRouter(), link.PeerOptions{
			TLS: testenv.Credentials(t, id), ExpectIdentity: router.ExpectedIdentity(rec), Logger: testenv.Logger(t),
		})
		defer peer.Close()
		select {
		case <-peer.Up():
		case <-ctx.Done():
			t.Fatalf("no link to %s", rec.GetRouter())
		}
		return peer.Call(ctx, &platformpb.Envelope{Method: wire.MethodDrain})
	}

	brokerRec := &platformpb.Instance{Service: "broker", Id: p.Broker.ID(), Kind: platformpb.ServiceKind_SERVICE_KIND_BROKER, Router: p.Broker.ControlEndpoint()}

	// Not an admin: refused, nothing drains.
	for _, id := range []pki.Identity{{Role: pki.RoleService, Name: echo.Name}, {Role: pki.RoleBroker}} {
		rep, err := ask(t, inst, id)
		if err != nil || rep.GetErrorCode() != wire.CodeUnauthenticated {
			t.Errorf("drain as %s: %v %s: %s, want %s", id, err, rep.GetErrorCode(), rep.GetErrorMessage(), wire.CodeUnauthenticated)
		}
		rep, err = ask(t, brokerRec, id)
		if err != nil || rep.GetErrorCode() != wire.CodeUnauthenticated {
			t.Errorf("broker drain as %s: %v %s, want %s", id, err, rep.GetErrorCode(), wire.CodeUnauthenticated)
		}
	}
	if srv.Draining() || p.Broker.Draining() {
		t.Fatal("a refused drain request drained")
	}

	// A request in flight on the target finishes.
	c := services.NewClient(services.ClientOptions{Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		Peer: link.PeerOptions{TLS: testenv.Credentials(t, pki.Identity{Role: pki.RoleAdmin})}, Logger: testenv.Logger(t)})
	defer c.Close()
	if !c.Pool().WaitFor(ctx, func() bool { return c.Pool().Ready(echo.Name, srv.InstanceID()) }) {
		t.Fatal("the client never saw the target instance")
	}
	slept := make(chan error, 1)
	go func() {
		slept <- c.CallTo(ctx, services.Target{Service: echo.Name, Instance: srv.InstanceID()}, echo.MethodSleep, &echopb.SleepRequest{Ms: 500}, &echopb.SleepReply{})
	}()
	testenv.CheckFor(t, 10*time.Second, "the sleep in flight", func() bool {
		select {
		case err := <-slept:
			t.Fatalf("the sleep returned before the drain: %v", err)
		default:
		}
		return srv.InFlight() == 1
	})

	rep, err := ask(t, inst, pki.Identity{Role: pki.RoleAdmin})
	if err != nil || rep.GetErrorCode() != "" {
		t.Fatalf("drain as admin: %v %s: %s", err, rep.GetErrorCode(), rep.GetErrorMessage())
	}
	if err := target.Ready(); err == nil {
		t.Error("a draining instance is ready")
	}
	w := p.BrokerList.Watcher()
	gone := func(service, id string) bool {
		for _, in := range w.Instances(service) {
			if in.GetId() == id {
				return false
			}
		}
		return true
	}
	if err := w.WaitFor(ctx, func() bool { return gone(echo.Name, srv.InstanceID()) }); err != nil {
		t.Fatalf("the drained instance did not leave yellow: %v", err)
	}
	if err := <-slept; err != nil {
		t.Errorf("the request in flight during the drain: %v", err)
	}
	if err := other.Ready(); err != nil {
		t.Errorf("the other instance: %v", err)
	}

	// The broker: it leaves the BrokerList.
	rep, err = ask(t, brokerRec, pki.Identity{Role: pki.RoleAdmin})
	if err != nil || rep.GetErrorCode() != "" {
		t.Fatalf("broker drain as admin: %v %s: %s", err, rep.GetErrorCode(), rep.GetErrorMessage())
	}
	if err := w.WaitFor(ctx, func() bool { return len(brokerlist.Brokers(w).Brokers) == 0 }); err != nil {
		t.Fatalf("the draining broker is still listed: %v", err)
	}
	if err := p.Broker.Ready(); err == nil {
		t.Error("a draining broker is ready")
	}
}
