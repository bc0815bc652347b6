package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/internal/ops/console"
	"github.com/noonhq/noon/services/echo"
)

// chromiumPath is Debian's chromium (apt-get install chromium).
const chromiumPath = "/usr/bin/chromium"

// lineWriter collects what a daemon prints, line by line, and lets a test
// wait (on a condition variable, not a poll) for a line.
type lineWriter struct {
	mu      sync.Mutex
	cond    *sync.Cond
	partial []byte
	lines   []string
	closed  bool
}

func newLineWriter() *lineWriter {
	w := &lineWriter{}
	w.cond = sync.NewCond(&w.mu)
	return w
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	w.cond.Broadcast()
	return len(p), nil
}

// close wakes the waiters for good (the daemon stopped).
func (w *lineWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.cond.Broadcast()
}

// wait returns the first line containing s, once printed; "" if the
// writer closed or ctx ended first.
func (w *lineWriter) wait(ctx context.Context, s string) string {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.cond.Broadcast()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		for _, l := range w.lines {
			if strings.Contains(l, s) {
				return l
			}
		}
		if w.closed || ctx.Err() != nil {
			return ""
		}
		w.cond.Wait()
	}
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

// startDevInProcess runs `noon dev` in this process on port-0 listeners
// and returns its banner's console URL and token. It stops at the test's
// end.
func startDevInProcess(t *testing.T) (consoleURL, token, brokerTCP string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, logs := newLineWriter(), newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- runDev(ctx, []string{"-config", "../../configs/dev.yaml", "-admin", "127.0.0.1:0",
			"-set", "log.level=warn",
			"-set", "yellow.router_addr=tcp://127.0.0.1:0", "-set", "yellow.pub_addr=tcp://127.0.0.1:0",
			"-set", "broker.edge.tcp_addr=127.0.0.1:0", "-set", "broker.edge.ws_addr=127.0.0.1:0",
			"-set", "brokerlist.addr=127.0.0.1:0", "-set", "services.login.http_addr=127.0.0.1:0",
			"-set", "services.pay.http_addr=127.0.0.1:0",
			"-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1"}, out, logs)
		out.close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("noon dev: %v", err)
		}
		if t.Failed() {
			t.Logf("--- noon dev stdout:\n%s\n--- stderr:\n%s", out, logs)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if out.wait(wctx, "Ctrl-C stops everything") == "" {
		t.Fatalf("noon dev did not come up:\n%s\n%s", out, logs)
	}
	line := out.wait(wctx, "  console ")
	// "  console      http://127.0.0.1:N/console/ token T"
	f := strings.Fields(line)
	if len(f) != 4 || f[2] != "token" || !strings.HasSuffix(f[1], console.Path) {
		t.Fatalf("banner console line: %q", line)
	}
	// "  broker TCP   127.0.0.1:N (pandaparty frames)"
	b := strings.Fields(out.wait(wctx, "  broker TCP "))
	if len(b) < 3 {
		t.Fatalf("banner broker line: %q", b)
	}
	return f[1], f[3], b[2]
}

// echoLoad calls echo.Echo through the broker at addr about 100 times a
// second (below noon dev's per-connection rate limit) until the test
// ends: traffic for the console's figures.
func echoLoad(t *testing.T, addr string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := client.Dial(ctx, addr, client.DefaultOptions())
	if err != nil {
		cancel()
		t.Fatalf("dial %s: %v", addr, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := c.Call(ctx, echo.MethodEcho, []byte("console")); err != nil && ctx.Err() == nil {
				t.Errorf("echo: %v", err)
				return
			}
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
			c.Close()
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestConsoleInChromium loads noon dev's console in headless Chromium,
// enters the token, waits for the real services, checks a screenshot,
// opens a service's instances and presses a Drain button: the console asks
// the instance with its admin certificate (_noon.Drain), and noon dev
// drains as on SIGTERM. A client calls echo until then, so the figures and
// graphs have something to show.
func TestConsoleInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped with -short")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("NOON_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is missing (apt-get install -y chromium) and NOON_REQUIRE_SERVICES=1", chromiumPath)
		}
		t.Skipf("%s is missing: apt-get install -y chromium to run the console's browser test", chromiumPath)
	}
	began := time.Now()
	url, token, brokerTCP := startDevInProcess(t)
	up := time.Since(began)
	stopLoad := echoLoad(t, brokerTCP)

	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer bcancel()
	// The first Do starts the browser, which lives as long as bctx: no
	// timeout on it; the steps then run under one.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	// The services noon dev runs, every one of which the table must show.
	want := make([]string, 0, len(modules))
	for _, m := range modules {
		want = append(want, m.Name())
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token),
		chromedp.Click(chromedp.CSS("#connect")),
	)
	if err != nil {
		t.Fatalf("load %s and log in: %v", url, err)
	}
	// A condition, not a sleep: every service in the table, and the
	// graphs drawn from at least two snapshots.
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](fmt.Sprintf(`(() => {
			const want = %s;
			const rows = [...document.querySelectorAll("#services tbody tr.service")].map(r => r.dataset.service);
			const echo = document.querySelector('#services tbody tr.service[data-service="echo"]');
			return want.every(n => rows.includes(n)) && document.querySelectorAll("#g-req polyline").length > 0 &&
				echo !== null && parseFloat(echo.children[5].textContent) > 0;
		})()`, jsList(want)), chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		t.Fatalf("console did not show the services %v with echo's traffic: %v", want, err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#services tbody tr.service")].map(r => r.dataset.service)`))
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(began)
	t.Logf("services shown: %v", shown)
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	checkScreenshot(t, png)

	// Click through: the echo row shows echo's instances; its Drain button
	// reaches the Drainer, which this build does not have.
	err = chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`window.NOON_CONFIRM = false`)(ctx, tg)
			return err
		}),
		chromedp.Click(chromedp.CSS(`#services tbody tr.service[data-service="echo"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#instances tbody tr.instance button.drain`)),
	)
	if err != nil {
		t.Fatalf("click the echo row: %v", err)
	}
	instances, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#instances tbody tr.instance")].map(r => r.dataset.instance)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(instances) != 1 || !strings.HasPrefix(instances[0], "echo-") {
		t.Fatalf("echo's instances in the DOM: %q", instances)
	}
	// The drain ends noon dev, and with it the echo traffic.
	stopLoad()
	err = chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#instances tbody tr.instance button.drain`)))
	if err != nil {
		t.Fatalf("click Drain: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`/draining|failed/.test(document.querySelector("#drain-result").textContent)`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("no drain result: %v", err)
	}
	result, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#drain-result")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(result, instances[0]) || !strings.Contains(result, "draining") {
		t.Fatalf("drain result: %q", result)
	}
	t.Logf("timings: noon dev up %v, services shown %v, whole test %v", up.Round(time.Millisecond), loaded.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))
}

// jsList writes names as a JavaScript array literal.
func jsList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return "[" + strings.Join(q, ",") + "]"
}

// checkScreenshot decodes a PNG, checks it is a real render (a sensible
// size, more than a few colours) and saves it under the test's temporary
// directory (NOON_SCREENSHOT_DIR keeps a copy).
func checkScreenshot(t *testing.T, b []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	r := img.Bounds()
	if r.Dx() < 800 || r.Dy() < 600 {
		t.Fatalf("screenshot is %dx%d", r.Dx(), r.Dy())
	}
	colours := distinctColours(img, 64)
	if colours < 8 {
		t.Fatalf("screenshot has %d distinct colours: not a real render", colours)
	}
	dir := t.TempDir()
	if d := os.Getenv("NOON_SCREENSHOT_DIR"); d != "" {
		dir = d
	}
	path := filepath.Join(dir, "console.png")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %dx%d, %d+ colours, %d bytes: %s", r.Dx(), r.Dy(), colours, len(b), path)
}

// distinctColours counts the colours of img, stopping at limit.
func distinctColours(img image.Image, limit int) int {
	seen := map[[4]uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, ca := img.At(x, y).RGBA()
			seen[[4]uint32{cr, cg, cb, ca}] = true
			if len(seen) >= limit {
				return len(seen)
			}
		}
	}
	return len(seen)
}
