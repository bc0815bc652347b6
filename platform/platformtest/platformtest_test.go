package platformtest_test

import (
	"context"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
)

// TestPlatform: the harness starts every module of the platform on port 0
// and returns once a client's first call through the broker is served,
// with TLS on every internal link (the default) and without.
func TestPlatform(t *testing.T) {
	t.Run("tls", func(t *testing.T) { testPlatform(t, true) })
	t.Run("plain", func(t *testing.T) { testPlatform(t, false) })
}

func testPlatform(t *testing.T, tls bool) {
	opts := platformtest.Options(t, echo.Module, login.Module, room.Module)
	if !tls {
		opts.TLS = nil
	}
	// login's HTTP API on a free port, not :8081 (another run may hold it).
	opts.Sections[login.Name].(*services.Config[login.Options]).Service.HTTPAddr = "127.0.0.1:0"
	p := platformtest.Start(t, opts)
	if len(p.Instances) != 3 || len(p.Services) != 3 {
		t.Fatalf("instances %d, services %v", len(p.Instances), p.Services)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Ready means routable: the first call is served, not "unavailable".
	out, err := c.Call(ctx, echo.MethodEcho, []byte("hello"))
	if err != nil || string(out) != "hello" {
		t.Fatalf("echo.Echo: %q, %v", out, err)
	}
}
