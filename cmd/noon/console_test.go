package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/ops/console"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services/echo"
)

// TestConsoleDaemon runs `noon console` in this process against a small
// real platform (plain loopback links) and reads its API with the
// configured token.
func TestConsoleDaemon(t *testing.T) {
	opts := platformtest.Options(t, echo.Module)
	opts.TLS = nil
	platformtest.Admin(t, &opts)
	p := platformtest.Start(t, opts)

	const token = "console-test-token-0123456789"
	ctx, cancel := context.WithCancel(context.Background())
	logs := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- runConsole(ctx, []string{"-listen", "127.0.0.1:0", "-admin", "off",
			"-set", "yellows=" + p.Yellow.RouterEndpoint(), "-set", "console.token=" + token}, io.Discard, logs)
		logs.close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("noon console: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	line := logs.wait(wctx, "console listening")
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("no console URL in the log:\n%s", logs)
	}
	url := strings.Fields(line[i:])[0]
	url = strings.Trim(url, `"`)
	if !strings.HasSuffix(url, console.Path) || strings.Contains(line, token) {
		t.Fatalf("log line %q: want the URL, and not the configured token", line)
	}

	get := func(auth string) (int, []byte) {
		req, _ := http.NewRequest("GET", url+"api/snapshot", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := get(""); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", code)
	}
	testenv.CheckFor(t, 15*time.Second, "the console lists echo and the broker", func() bool {
		code, b := get("Bearer " + token)
		var rep struct {
			Snapshot struct {
				Services []struct{ Name string }
				Brokers  []struct{ Connections float64 }
			}
		}
		return code == 200 && json.Unmarshal(b, &rep) == nil && len(rep.Snapshot.Services) == 1 &&
			rep.Snapshot.Services[0].Name == "echo" && len(rep.Snapshot.Brokers) == 1
	})
}
