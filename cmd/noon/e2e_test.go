package main

// Black-box end-to-end tests: build bin/noon, start it as processes, and
// talk to it the way a game client does (BrokerList, HTTP login API, the
// pandaparty wire through edge/client).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/idl/gen/login"
	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/internal/freeport"
	"github.com/noonhq/noon/internal/testenv"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// noonBinary builds cmd/noon (and cmd/noonctl) once per test run.
func noonBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "noon-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		out, err := exec.Command("go", "build", "-o", dir+"/", ".", "../noonctl").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "noon")
}

// noonctl runs bin/noonctl with args and returns its output.
func noonctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	noonBinary(t)
	out, err := exec.Command(filepath.Join(binDir, "noonctl"), args...).CombinedOutput()
	return string(out), err
}

// proc is a noon process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lineBuffer
	done chan struct{}
}

// lineBuffer collects a process's output lines and lets a test wait for one.
type lineBuffer struct {
	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

func newLineBuffer() *lineBuffer {
	b := &lineBuffer{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *lineBuffer) add(l string) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
	b.cond.Broadcast()
}

func (b *lineBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

// find returns the first line containing s, or "".
func (b *lineBuffer) find(s string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// startDaemon runs bin/noon with args; stdout and stderr are collected and
// logged when the test fails. The process is killed when the test ends.
func startDaemon(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(noonBinary(t), args...)
	d := &proc{name: name, cmd: cmd, out: newLineBuffer(), done: make(chan struct{})}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			d.out.add(sc.Text())
		}
	}()
	go func() { _ = cmd.Wait(); pw.Close(); close(d.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, d.out)
		}
	})
	return d
}

// waitLine waits until the daemon prints a line containing s.
func (d *proc) waitLine(t *testing.T, s string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if l := d.out.find(s); l != "" {
			return l
		}
		select {
		case <-d.done:
			t.Fatalf("%s exited before printing %q", d.name, s)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %v", d.name, s, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGINT and waits for a clean exit.
func (d *proc) stop(t *testing.T, timeout time.Duration) {
	t.Helper()
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not stop within %v of SIGINT", d.name, timeout)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited with %d after SIGINT", d.name, code)
	}
}

// field returns the text after label on a banner line ("  BrokerList   URL").
func field(line, label string) string {
	rest := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), label))
	if i := strings.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// postJSON posts body to url and decodes the reply into out, returning the
// status code.
func postJSON(t *testing.T, url string, body, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("POST %s: %v: %s", url, err, data)
		}
	}
	return resp.StatusCode
}

type loginReply struct {
	UserID       string `json:"user_id"`
	SessionToken string `json:"session_token"`
}

// TestDevEndToEnd starts `noon dev` as a process and does what a newcomer's
// first client does.
func TestDevEndToEnd(t *testing.T) {
	yellowEP := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	dev := startDaemon(t, "noon dev", "dev", "-config", "../../configs/dev.yaml",
		"-admin", "127.0.0.1:0",
		"-set", "yellow.router_addr="+yellowEP, "-set", "yellow.pub_addr=tcp://127.0.0.1:0",
		"-set", "broker.edge.tcp_addr=127.0.0.1:0", "-set", "broker.edge.ws_addr=127.0.0.1:0",
		"-set", "brokerlist.addr=127.0.0.1:0", "-set", "services.login.http_addr=127.0.0.1:0",
		"-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1")
	dev.waitLine(t, "Ctrl-C stops everything", 30*time.Second)
	listURL := field(dev.out.find("  BrokerList "), "BrokerList")
	apiURL := strings.TrimSuffix(field(dev.out.find("  login API "), "login API"), "/api/login")
	if dev.out.find("First call:") == "" || listURL == "" || apiURL == "" {
		t.Fatalf("banner incomplete:\n%s", dev.out)
	}
	// The browser game, on the BrokerList's port.
	playURL := field(dev.out.find("  play "), "play")
	if want := strings.TrimSuffix(listURL, "/brokerlist") + PlayPath; playURL != want {
		t.Fatalf("banner: play at %q, want %q", playURL, want)
	}
	if resp, err := http.Get(playURL); err != nil {
		t.Fatalf("GET %s: %v", playURL, err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `src="play.js"`) {
			t.Fatalf("GET %s: %d\n%s", playURL, resp.StatusCode, b)
		}
	}
	// The internal links are TLS; noonctl gets in with the admin
	// certificate noon dev wrote, and not without.
	links := dev.out.find("  links ")
	tlsDir := field(links[strings.Index(links, "-tls"):], "-tls")
	if !strings.Contains(links, "mutual TLS") || tlsDir == "" {
		t.Fatalf("banner: %q", links)
	}
	if out, err := noonctl(t, "-yellows", yellowEP, "-tls", tlsDir, "instances", "echo"); err != nil || !strings.Contains(out, "echo-") {
		t.Fatalf("noonctl instances with the admin certificate: %v\n%s", err, out)
	}
	if out, err := noonctl(t, "-yellows", yellowEP, "-timeout", "1s", "instances"); err == nil {
		t.Fatalf("noonctl instances without a certificate succeeded:\n%s", out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The BrokerList names the broker once it has registered in yellow.
	var addr string
	for addr == "" {
		list, err := client.FetchBrokerList(ctx, listURL)
		if err == nil && len(list) > 0 {
			addr, _ = client.PickBroker(list)
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("BrokerList %s never listed a broker: %v", listURL, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Register and log in over the pandaparty HTTP API.
	user := "e2e" + strings.ReplaceAll(testenv.UniqueID(t), "t", "")[:10]
	if code := postJSON(t, apiURL+"/api/register", map[string]string{"username": user, "password": "correct-horse"}, nil); code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("register: status %d", code)
	}
	if code := postJSON(t, apiURL+"/api/login", map[string]string{"username": user, "password": "wrong-password"}, nil); code != http.StatusUnauthorized {
		t.Fatalf("login with a bad password: status %d, want 401", code)
	}
	var lr loginReply
	if code := postJSON(t, apiURL+"/api/login", map[string]string{"username": user, "password": "correct-horse"}, &lr); code != http.StatusOK || lr.SessionToken == "" {
		t.Fatalf("login: status %d, %+v", code, lr)
	}

	// Connect over TCP, resuming the session with the token.
	opts := client.DefaultOptions()
	opts.ResumeToken = lr.SessionToken
	c, err := client.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	if got := c.HelloReply().GetUserID(); got != lr.UserID {
		t.Fatalf("hello resumed user %q, want %q", got, lr.UserID)
	}
	var vr login.ValidateReply
	if err := c.CallThrift(ctx, "login.Validate", &login.ValidateRequest{SessionToken: lr.SessionToken}, &vr); err != nil || !vr.GetValid() || vr.GetUserID() != lr.UserID {
		t.Fatalf("login.Validate = %+v, %v", &vr, err)
	}
	out, err := c.Call(ctx, "echo.Echo", []byte("hello noon"))
	if err != nil || string(out) != "hello noon" {
		t.Fatalf("echo.Echo = %q, %v", out, err)
	}
	if _, err := c.Call(ctx, "nope.Nothing", nil); err == nil || !strings.HasPrefix(err.Error(), "unknown_method: ") {
		t.Fatalf("unknown method: %v", err)
	}
	// The broker reached the echo instance of its own process without a
	// socket (an in-process link, under the same TLS identities).
	metricsURL := field(dev.out.find("  admin "), "admin")
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatalf("GET %s: %v", metricsURL, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^noon_service_inprocess_links_total\{daemon="service_echo"\} [1-9]`).Match(body) {
		t.Fatalf("%s: no in-process link to echo:\n%s", metricsURL, body)
	}

	// The matchmaker runs on the embedded Redis; an operator sees the
	// queue and the ticket with noonctl match, and cancels it.
	var sr matchpb.StartReply
	if err := c.CallThrift(ctx, matchrpc.MethodStart, &matchpb.StartRequest{Queue: "race31"}, &sr); err != nil || sr.GetTicket().GetState() != matchpb.STATE_SEARCHING {
		t.Fatalf("match.Start = %+v, %v", sr.GetTicket(), err)
	}
	ticket := sr.GetTicket().GetID()
	if out, err := noonctl(t, "-yellows", yellowEP, "-tls", tlsDir, "match"); err != nil || !strings.Contains(out, "race31") || !strings.Contains(out, "scale-out signal: no") {
		t.Fatalf("noonctl match: %v\n%s", err, out)
	}
	if out, err := noonctl(t, "-yellows", yellowEP, "-tls", tlsDir, "match", "tickets", "race31"); err != nil || !strings.Contains(out, ticket) || !strings.Contains(out, lr.UserID) {
		t.Fatalf("noonctl match tickets race31 (want %s): %v\n%s", ticket, err, out)
	}
	if out, err := noonctl(t, "-yellows", yellowEP, "-timeout", "1s", "match"); err == nil {
		t.Fatalf("noonctl match without a certificate succeeded:\n%s", out)
	}
	if out, err := noonctl(t, "-yellows", yellowEP, "-tls", tlsDir, "match", "cancel", ticket); err != nil || !strings.Contains(out, ticket+" cancelled operator") {
		t.Fatalf("noonctl match cancel: %v\n%s", err, out)
	}
	var st matchpb.StatusReply
	if err := c.CallThrift(ctx, matchrpc.MethodStatus, &matchpb.StatusRequest{Ticket: ticket}, &st); err != nil || st.GetTicket().GetState() != matchpb.STATE_CANCELLED {
		t.Fatalf("match.Status after the operator's cancel = %+v, %v", st.GetTicket(), err)
	}

	// Log out: the token is refused afterwards, on the wire and over HTTP.
	if err := c.CallThrift(ctx, "login.Logout", &login.LogoutRequest{SessionToken: &lr.SessionToken}, &login.LogoutReply{}); err != nil {
		t.Fatalf("login.Logout: %v", err)
	}
	vr = login.ValidateReply{}
	if err := c.CallThrift(ctx, "login.Validate", &login.ValidateRequest{SessionToken: lr.SessionToken}, &vr); err != nil || vr.GetValid() {
		t.Fatalf("login.Validate after logout = %+v, %v; want invalid", &vr, err)
	}
	// The connection that logged out is logged out too.
	if _, err := c.Call(ctx, "room.List", nil); err == nil || !strings.HasPrefix(err.Error(), "unauthenticated: ") {
		t.Fatalf("non-public call after logout on the same connection: %v; want unauthenticated", err)
	}
	c2, err := client.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if got := c2.HelloReply().GetUserID(); got != "" {
		t.Fatalf("resume with a logged-out token authenticated as %q", got)
	}
	if _, err := c2.Call(ctx, "login.Logout", nil); err == nil || !strings.HasPrefix(err.Error(), "unauthenticated: ") {
		t.Fatalf("non-public call with a refused token: %v; want unauthenticated", err)
	}
	c2.Close()
	var hv struct {
		Valid bool `json:"valid"`
	}
	postJSON(t, apiURL+"/api/validate_session", map[string]string{"session_token": lr.SessionToken}, &hv)
	if hv.Valid {
		t.Fatal("validate_session says a logged-out token is valid")
	}

	dev.stop(t, 40*time.Second)
}

// freePort returns a TCP port for a daemon of the test (freeport.Pick:
// below the ephemeral range, never the same twice in this binary).
func freePort(t *testing.T) int {
	t.Helper()
	port, err := freeport.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// certs makes a CA with `noon certs ca` and returns a function that issues
// a certificate with `noon certs issue` and returns the -set flags of its
// tls block.
func certs(t *testing.T) func(role, name string) []string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command(noonBinary(t), "certs", "ca", "-out", dir).CombinedOutput(); err != nil {
		t.Fatalf("noon certs ca: %v\n%s", err, out)
	}
	return func(role, name string) []string {
		args := []string{"certs", "issue", "-ca", dir, "-role", role}
		base := role
		if name != "" {
			args = append(args, "-name", name)
			base += "-" + name
		}
		if out, err := exec.Command(noonBinary(t), args...).CombinedOutput(); err != nil {
			t.Fatalf("noon %v: %v\n%s", args, err, out)
		}
		return []string{"-set", "tls.ca=" + filepath.Join(dir, "ca.crt"),
			"-set", "tls.cert=" + filepath.Join(dir, base+".crt"), "-set", "tls.key=" + filepath.Join(dir, base+".key")}
	}
}

// TestClusterBrokerFailover runs yellow, two brokers, login and echo as
// separate processes on the real Postgres and Redis, each with its own
// certificate (mutual TLS on every internal link), kills the broker a
// client is connected to, and checks the client resumes on the other broker
// with its token.
func TestClusterBrokerFailover(t *testing.T) {
	testenv.Postgres(t)
	testenv.Redis(t)
	yport := freePort(t)
	yellowEP := fmt.Sprintf("tcp://127.0.0.1:%d", yport)
	common := []string{"-config", "../../configs/cluster.yaml",
		"-set", "postgres.url=" + testenv.PostgresURL(),
		"-set", "redis.addrs=" + redisAddr(t),
		"-set", "yellows=" + yellowEP,
		"-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1",
		"-set", "services.login.postgres_schema=login_e2e",
		"-admin", "127.0.0.1:0"}
	with := func(extra ...string) []string { return append(append([]string{}, common...), extra...) }
	issue := certs(t)

	y := startDaemon(t, "yellow", append([]string{"yellow"}, with(append(issue("yellow", ""),
		"-router", yellowEP, "-pub", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)))...)...)...)
	y.waitLine(t, "listening", 20*time.Second)
	blPort := freePort(t)
	bl := startDaemon(t, "brokerlist", append([]string{"brokerlist"}, with(append(issue("broker", "brokerlist"),
		"-addr", fmt.Sprintf("127.0.0.1:%d", blPort))...)...)...)
	startDaemon(t, "login", append([]string{"service", "login"}, with(append(issue("service", "login"),
		"-set", "services.login.http_addr=")...)...)...)
	startDaemon(t, "echo", append([]string{"service", "echo"}, with(issue("service", "echo")...)...)...)
	var brokers []*proc
	addrs := map[string]*proc{}
	for i := 0; i < 2; i++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		name := fmt.Sprintf("broker-%d", i+1)
		b := startDaemon(t, name, append([]string{"broker"}, with(append(issue("broker", name),
			"-tcp", addr, "-set", "broker.edge.ws_addr=", "-set", "broker.drain_grace=100ms")...)...)...)
		brokers = append(brokers, b)
		addrs[addr] = b
	}
	bl.waitLine(t, "listening", 20*time.Second)
	kill := map[string]func(){}
	var list []string
	for addr, b := range addrs {
		list = append(list, addr)
		kill[addr] = func() { _ = b.cmd.Process.Signal(syscall.SIGKILL); <-b.done }
	}
	clusterChecks(t, fmt.Sprintf("http://127.0.0.1:%d/brokerlist", blPort), list, kill)
	_ = brokers
}

// clusterChecks runs the end-to-end checks of a two-broker cluster: the
// BrokerList lists both brokers, a client registers, logs in and calls
// echo; a logout on one broker logs the token's connection out on the
// other; then, when kill is set, the client's broker is killed
// (kill[its address]) and the client resumes on the other with its token.
func clusterChecks(t *testing.T, listURL string, brokers []string, kill map[string]func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		list, err := client.FetchBrokerList(ctx, listURL)
		if err == nil && len(list) == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("BrokerList never listed both brokers: %v %v", list, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	s, err := client.Connect(ctx, client.SessionOptions{BrokerList: listURL})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The brokers are listed; wait until every broker also routes login
	// and echo (those processes register on their own time: login migrates
	// its schema first), so that a resume on either broker is served.
	for _, addr := range brokers {
		c, err := client.Dial(ctx, addr, client.DefaultOptions())
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		testenv.CheckFor(t, 30*time.Second, addr+" routes login and echo", func() bool {
			var vr login.ValidateReply
			errL := c.CallThrift(ctx, "login.Validate", &login.ValidateRequest{SessionToken: "none"}, &vr)
			_, errE := c.Call(ctx, "echo.Echo", []byte("up?"))
			return errL == nil && errE == nil
		})
		c.Close()
	}
	user := "fo" + strings.ReplaceAll(testenv.UniqueID(t), "t", "")[:12]
	if err := s.CallThrift(ctx, "login.Register", &login.RegisterRequest{Username: user, Password: "correct-horse"}, &login.RegisterReply{}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if _, err := s.Login(ctx, user, "correct-horse"); err != nil {
		t.Fatalf("login: %v", err)
	}
	if out, err := s.Call(ctx, "echo.Echo", []byte("before")); err != nil || string(out) != "before" {
		t.Fatalf("echo before failover: %q %v", out, err)
	}

	first := s.Broker()
	if !slices.Contains(brokers, first) {
		t.Fatalf("session on unknown broker %s, not one of %v", first, brokers)
	}
	var second string
	for _, a := range brokers {
		if a != first {
			second = a
		}
	}
	logoutAcrossBrokers(ctx, t, first, second, user)
	if kill == nil {
		return
	}
	victim := kill[first]
	victim()
	start := time.Now()

	// The next calls reconnect to the other broker and resume the session:
	// a non-public method succeeds only on an authenticated connection.
	var lastErr error
	for time.Since(start) < 20*time.Second {
		var vr login.ValidateReply
		lastErr = s.CallThrift(ctx, "login.Validate", &login.ValidateRequest{SessionToken: s.Token()}, &vr)
		if lastErr == nil {
			if !vr.GetValid() {
				t.Fatalf("token invalid after failover")
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("no call succeeded after the broker died: %v", lastErr)
	}
	if s.Broker() == first {
		t.Fatalf("still on the dead broker %s", first)
	}
	if err := s.CallThrift(ctx, "login.Logout", &login.LogoutRequest{SessionToken: ptr(s.Token())}, &login.LogoutReply{}); err != nil {
		var ce *client.Error
		if errors.As(err, &ce) && ce.Code == "unauthenticated" {
			t.Fatalf("the resumed connection is not authenticated: %v", err)
		}
		t.Fatalf("logout after failover: %v", err)
	}
	t.Logf("failover: resumed on %s %v after the broker on %s was killed", s.Broker(), time.Since(start).Round(time.Millisecond), first)
}

// logoutAcrossBrokers logs user in on broker a, resumes the token on broker
// b with pushes, logs the token out on a, and checks that b's connection is
// told (@edge.LoggedOut) and logged out: the revocation crosses processes.
// A broker learns revocations on a subscription that reaches login's PUB
// socket a moment after it sees the instance, so a first event may be
// missed; the round is repeated until one lands, and the rounds are logged.
func logoutAcrossBrokers(ctx context.Context, t *testing.T, a, b, user string) {
	t.Helper()
	ca, err := client.Dial(ctx, a, client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	for round := 1; ; round++ {
		var lr login.LoginReply
		if err := ca.CallThrift(ctx, "login.Login", &login.LoginRequest{Username: user, Password: "correct-horse"}, &lr); err != nil {
			t.Fatalf("login on %s: %v", a, err)
		}
		o := client.DefaultOptions()
		o.Push, o.ResumeToken = true, lr.SessionToken
		cb, err := client.Dial(ctx, b, o)
		if err != nil || cb.HelloReply().GetUserID() != lr.UserID {
			t.Fatalf("resume on %s: %v", b, err)
		}
		if err := ca.CallThrift(ctx, "login.Logout", &login.LogoutRequest{SessionToken: &lr.SessionToken}, &login.LogoutReply{}); err != nil {
			t.Fatalf("logout on %s: %v", a, err)
		}
		start := time.Now()
		select {
		case p := <-cb.Pushes():
			if p.Type != "edge.LoggedOut" {
				t.Fatalf("push @%s, want @edge.LoggedOut", p.Type)
			}
			err := cb.CallThrift(ctx, "login.LogoutAll", &login.LogoutAllRequest{}, &login.LogoutAllReply{})
			if err == nil || !strings.HasPrefix(err.Error(), "unauthenticated: ") {
				t.Fatalf("the logged-out connection on %s: login.LogoutAll %v, want unauthenticated", b, err)
			}
			t.Logf("logout on %s reached %s in %v (round %d)", a, b, time.Since(start).Round(time.Microsecond), round)
			cb.Close()
			return
		case <-time.After(5 * time.Second):
			cb.Close()
			if ctx.Err() != nil || round == 5 {
				t.Fatalf("no @edge.LoggedOut on %s after %d logouts on %s", b, round, a)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// redisAddr is host:port of the test Redis.
func redisAddr(t *testing.T) string {
	u := testenv.RedisURL()
	u = strings.TrimPrefix(u, "redis://")
	if i := strings.IndexByte(u, '/'); i >= 0 {
		u = u[:i]
	}
	if i := strings.LastIndexByte(u, '@'); i >= 0 {
		u = u[i+1:]
	}
	return u
}

// TestNoonCluster starts `noon cluster` (yellow, the BrokerList, two
// brokers and one instance of every service as processes, mutual TLS on
// every internal link from the cluster's ephemeral CA) on free ports and
// the real Postgres and Redis, and runs the cluster checks on it (all but
// the broker's death: the supervisor stops the cluster when a process
// dies).
func TestNoonCluster(t *testing.T) {
	testenv.Postgres(t)
	testenv.Redis(t)
	c, listURL, brokers := startCluster(t, "-set", "broker.drain_grace=100ms")
	if l := c.out.find("internal links: mutual TLS"); l == "" {
		t.Fatal("noon cluster did not turn TLS on")
	}
	// The supervisor stops the cluster when a process dies, so a broker's
	// death is tested by TestClusterBrokerFailover.
	clusterChecks(t, listURL, brokers, nil)
	c.stop(t, 60*time.Second)
}

// startCluster starts `noon cluster` with two brokers and one instance of
// every service on free ports, the real Postgres and Redis and the extra
// arguments (-set overrides), waits until it is up, and returns it, its
// BrokerList URL and its brokers' TCP addresses. It is stopped with a
// signal when the test ends.
func startCluster(t *testing.T, extra ...string) (c *proc, listURL string, brokers []string) {
	t.Helper()
	testenv.Postgres(t)
	testenv.Redis(t)
	// Broker i's ports are 1055+2i+offset...; yellow's admin 1062+offset.
	// All of them below 32768, where Linux never picks the local port of
	// an outgoing connection (ip_local_port_range starts there): a port
	// chosen in that range can be taken by any connection before the
	// cluster binds it.
	offset := freePort(t)%10000 + 20000
	// The cluster's own ports, 1053+offset to 1072+offset (BrokerList and
	// yellow admin, brokers' TCP, WebSocket and admin, the control
	// endpoint: cmd/noon/cluster.go): no -set port below may be one.
	freeport.Reserve(1053+offset, 1072+offset)
	blPort, yPort := freePort(t), freePort(t)
	yellowEP := fmt.Sprintf("tcp://127.0.0.1:%d", yPort)
	args := append([]string{"cluster", "-config", "../../configs/cluster.yaml",
		"-brokers", "2", "-instances", "1", "-port-offset", strconv.Itoa(offset),
		"-set", "postgres.url=" + testenv.PostgresURL(),
		"-set", "redis.addrs=" + redisAddr(t),
		"-set", "yellows=" + yellowEP,
		"-set", "yellow.router_addr=" + yellowEP,
		"-set", fmt.Sprintf("yellow.pub_addr=tcp://127.0.0.1:%d", freePort(t)),
		"-set", fmt.Sprintf("brokerlist.addr=127.0.0.1:%d", blPort),
		"-set", fmt.Sprintf("services.login.http_addr=127.0.0.1:%d", freePort(t)),
		"-set", "services.login.argon2.memory_kib=1024", "-set", "services.login.argon2.time=1",
		"-set", "services.login.postgres_schema=login_e2e"}, extra...)
	c = startDaemon(t, "cluster", args...)
	// Stop the supervisor with a signal, so it stops its children (they
	// run in their own process groups) before startDaemon's kill.
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(os.Interrupt)
		select {
		case <-c.done:
		case <-time.After(60 * time.Second):
		}
	})
	c.waitLine(t, "cluster up", 60*time.Second)
	return c, fmt.Sprintf("http://127.0.0.1:%d/brokerlist", blPort),
		[]string{fmt.Sprintf("127.0.0.1:%d", 1055+offset), fmt.Sprintf("127.0.0.1:%d", 1057+offset)}
}
