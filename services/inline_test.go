package services_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
)

// TestInlineMethods: an instance's Inline methods must have handlers;
// lone requests of them run on the link's reader (counted), and a
// blocking method's handler, not listed, still runs beside them.
func TestInlineMethods(t *testing.T) {
	opts := services.NewOptions()
	opts.Name = echo.Name
	opts.Inline = []string{"echo.Nope"}
	if _, err := services.NewServer(opts, echo.Handlers(), nil); err == nil || !strings.Contains(err.Error(), "echo.Nope") {
		t.Fatalf("NewServer with an inline method without a handler: %v, want an error naming it", err)
	}

	y := mustStartYellow(t, "", "")
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	srv := mustStartEcho(t, []*testYellow{y}, func(o *services.Options) { o.Inline = echo.Inline() },
		map[string]services.HandlerFunc{"echo.Block": func(ctx context.Context, _ *services.Session, p []byte) ([]byte, error) {
			blocked <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return p, nil
		}})
	c := newClient(t, y)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const calls = 40
	for range calls {
		if _, err := c.CallRaw(ctx, router.Target{}, echo.MethodEcho, nil, []byte("hi")); err != nil {
			t.Fatalf("echo.Echo: %v", err)
		}
	}
	// A heartbeat buffered behind a request sends it to a goroutine:
	// most, not all, run inline. An overrun is the machine's timing (a
	// preempted echo under -race can hold the reader past the 1 ms
	// budget), not the code's; two in a row pause inline runs, and then
	// only some ran inline.
	st := srv.Stats()
	switch {
	case st.Inline == 0 || st.InlineOverruns < 2 && st.Inline < calls/2:
		t.Fatalf("inline %d of %d lone calls, overruns %d", st.Inline, calls, st.InlineOverruns)
	case st.InlineOverruns > 0:
		t.Logf("inline %d of %d lone calls, overruns %d (a slow machine)", st.Inline, calls, st.InlineOverruns)
	}
	// A blocking handler runs in a goroutine of its own: the link reads on
	// and serves Echo meanwhile.
	errc := make(chan error, 1)
	go func() {
		_, err := c.CallRaw(ctx, router.Target{}, "echo.Block", nil, []byte("x"))
		errc <- err
	}()
	<-blocked
	if _, err := c.CallRaw(ctx, router.Target{}, echo.MethodEcho, nil, []byte("meanwhile")); err != nil {
		t.Fatalf("echo.Echo while echo.Block runs: %v", err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatalf("echo.Block: %v", err)
	}
}
