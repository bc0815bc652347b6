package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	echopb "github.com/noonhq/noon/idl/gen/echo"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// adminGet GETs path on an admin endpoint; err is a transport error.
func adminGet(admin, path string) (int, string, error) {
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// waitAdmin polls GET path on admin until ok holds for its answer, within
// timeout (the processes start on their own time).
func waitAdmin(t *testing.T, admin, path string, timeout time.Duration, what string, ok func(code int, body string) bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		code, body, err := adminGet(admin, path)
		if err == nil && ok(code, body) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET %s%s after %v: %d %q %v", what, admin, path, timeout, code, body, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitReady waits until admin's /readyz answers 200.
func waitReady(t *testing.T, admin, what string) {
	t.Helper()
	waitAdmin(t, admin, "/readyz", 30*time.Second, what+" ready", func(code int, _ string) bool { return code == http.StatusOK })
}

// instanceIDRe finds the instance id in a service's JSON log line.
var instanceIDRe = regexp.MustCompile(`"instance":"([a-z0-9_-]+-[0-9a-f]{12})"`)

// exitCode waits for d to exit within timeout and returns its exit code.
func (d *proc) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", d.name, timeout)
	}
	return d.cmd.ProcessState.ExitCode()
}

// TestReadyAndDrain runs yellow, a broker and two echo instances as
// processes with mutual TLS, and checks readiness and the three ways to
// drain: /readyz is 503 before a daemon is registered (it starts before
// yellow) and 200 after; POST /drain from loopback drains an instance
// (503 "draining", it leaves yellow, its request in flight finishes, it
// exits 0) and is refused (403) from another address; noonctl drain drains
// an instance through the admin-only method, which refuses a service
// identity; noon drain drains the broker.
func TestReadyAndDrain(t *testing.T) {
	yport := freePort(t)
	yellowEP := fmt.Sprintf("tcp://127.0.0.1:%d", yport)
	common := []string{"-config", "../../configs/cluster.yaml", "-set", "yellows=" + yellowEP}
	with := func(extra ...string) []string { return append(append([]string{}, common...), extra...) }
	issue := certs(t)
	adminOf := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }

	// Started before yellow: alive, not ready.
	echo1Admin, brokerAdmin, yellowAdmin := adminOf(), adminOf(), adminOf()
	echo1 := startDaemon(t, "echo-1", append([]string{"service", "echo", "-admin", echo1Admin}, with(issue("service", "echo")...)...)...)
	b := startDaemon(t, "broker", append([]string{"broker", "-admin", brokerAdmin}, with(append(issue("broker", "b1"),
		"-tcp", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "-set", "broker.edge.ws_addr=", "-set", "broker.drain_grace=100ms")...)...)...)
	waitAdmin(t, echo1Admin, "/readyz", 30*time.Second, "echo-1 unready", func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(body, "service echo: not registered in yellow yet")
	})
	waitAdmin(t, brokerAdmin, "/readyz", 30*time.Second, "broker unready", func(code int, body string) bool {
		return code == http.StatusServiceUnavailable && strings.Contains(body, "broker: routes not synced")
	})
	if code, body, err := adminGet(echo1Admin, "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("/healthz of an unready instance: %d %q %v, want 200 (alive)", code, body, err)
	}

	y := startDaemon(t, "yellow", append([]string{"yellow", "-admin", yellowAdmin}, with(append(issue("yellow", ""),
		"-router", yellowEP, "-pub", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)))...)...)...)
	waitReady(t, yellowAdmin, "yellow")
	waitReady(t, echo1Admin, "echo-1")
	waitReady(t, brokerAdmin, "broker")

	// echo-2's admin listens on every interface, as in a pod.
	echo2Port := freePort(t)
	echo2 := startDaemon(t, "echo-2", append([]string{"service", "echo", "-admin", fmt.Sprintf("0.0.0.0:%d", echo2Port)}, with(issue("service", "echo")...)...)...)
	echo2Admin := fmt.Sprintf("127.0.0.1:%d", echo2Port)
	waitReady(t, echo2Admin, "echo-2")
	if ip := hostIP(); ip != nil {
		resp, err := http.Post(fmt.Sprintf("http://%s/drain", net.JoinHostPort(ip.String(), fmt.Sprint(echo2Port))), "text/plain", nil)
		if err != nil {
			t.Fatalf("POST /drain from %s: %v", ip, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST /drain from %s: %d, want 403", ip, resp.StatusCode)
		}
	} else {
		t.Log("no non-loopback address: the 403 of a remote POST /drain is not checked here")
	}

	id1 := instanceIDRe.FindStringSubmatch(echo1.waitLine(t, `"instance":"echo-`, 10*time.Second))[1]
	id2 := instanceIDRe.FindStringSubmatch(echo2.waitLine(t, `"instance":"echo-`, 10*time.Second))[1]
	certDir := tlsDir(issue("admin", ""))
	creds := loadCreds(t, certDir, pki.Identity{Role: pki.RoleAdmin})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := services.NewClient(services.ClientOptions{Yellows: []string{yellowEP}, Peer: link.PeerOptions{TLS: creds}})
	defer c.Close()
	if !c.Pool().WaitFor(ctx, func() bool { return c.Pool().Ready("echo", id1) && c.Pool().Ready("echo", id2) }) {
		t.Fatal("yellow never listed both echo instances")
	}

	// POST /drain from loopback, with a request in flight.
	slept := make(chan error, 1)
	go func() {
		slept <- c.CallTo(ctx, services.Target{Service: "echo", Instance: id1}, "echo.Sleep", &echopb.SleepRequest{Ms: 1500}, &echopb.SleepReply{})
	}()
	waitAdmin(t, echo1Admin, "/metrics", 10*time.Second, "the sleep in flight", func(_ int, body string) bool {
		return strings.Contains(body, `noon_service_in_flight{daemon="service_echo"} 1`)
	})
	resp, err := http.Post("http://"+echo1Admin+"/drain", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /drain: %d, want 202", resp.StatusCode)
	}
	if code, body, err := adminGet(echo1Admin, "/readyz"); err != nil || code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Errorf("/readyz while draining: %d %q %v, want 503 draining", code, body, err)
	}
	if !c.Pool().WaitFor(ctx, func() bool { return !c.Pool().Ready("echo", id1) }) {
		t.Error("the drained instance stayed in yellow")
	}
	if err := <-slept; err != nil {
		t.Errorf("the request in flight during the drain: %v", err)
	}
	if code := echo1.exitCode(t, 30*time.Second); code != 0 {
		t.Errorf("echo-1 exited with %d after POST /drain", code)
	}

	// noonctl drain: a service identity is refused by the instance itself
	// (noonctl presents only admin certificates).
	var rec *platformpb.Instance
	for _, in := range c.Pool().Instances("echo") {
		if in.GetId() == id2 {
			rec = in
		}
	}
	if rec == nil {
		t.Fatal("echo-2 left yellow")
	}
	peer := link.Dial(rec.GetRouter(), link.PeerOptions{TLS: loadCreds(t, certDir, pki.Identity{Role: pki.RoleService, Name: "echo"}), ExpectIdentity: router.ExpectedIdentity(rec)})
	select {
	case <-peer.Up():
	case <-ctx.Done():
		t.Fatalf("no link to echo-2 at %s", rec.GetRouter())
	}
	rep, err := peer.Call(ctx, &platformpb.Envelope{Method: wire.MethodDrain})
	peer.Close()
	if err != nil || rep.GetErrorCode() != wire.CodeUnauthenticated {
		t.Errorf("drain request as service:echo: %v %s: %s, want %s", err, rep.GetErrorCode(), rep.GetErrorMessage(), wire.CodeUnauthenticated)
	}
	if code, _, _ := adminGet(echo2Admin, "/readyz"); code != http.StatusOK {
		t.Errorf("echo-2 after a refused drain request: /readyz %d", code)
	}
	out, err := noonctl(t, "-yellows", yellowEP, "-tls", certDir, "-timeout", "30s", "drain", id2)
	if err != nil || !strings.Contains(out, "echo "+id2+" is draining") || !strings.Contains(out, "drained: it left yellow") {
		t.Errorf("noonctl drain %s: %v\n%s", id2, err, out)
	}
	if code := echo2.exitCode(t, 30*time.Second); code != 0 {
		t.Errorf("echo-2 exited with %d after noonctl drain", code)
	}
	out, err = noonctl(t, "-yellows", yellowEP, "-tls", certDir, "-timeout", "10s", "drain", id2)
	if err == nil || !strings.Contains(out, "not in yellow") {
		t.Errorf("noonctl drain of a gone instance: %v\n%s", err, out)
	}

	// noon drain: the broker.
	drainOut, err := exec.Command(noonBinary(t), "drain", "-admin", brokerAdmin, "-timeout", "30s").CombinedOutput()
	if err != nil || !strings.Contains(string(drainOut), "drained") {
		t.Errorf("noon drain -admin %s: %v\n%s", brokerAdmin, err, drainOut)
	}
	if code := b.exitCode(t, 10*time.Second); code != 0 {
		t.Errorf("the broker exited with %d after noon drain", code)
	}
	// Nothing listens there any more: a clear error.
	drainOut, err = exec.Command(noonBinary(t), "drain", "-admin", brokerAdmin, "-timeout", "5s").CombinedOutput()
	if err == nil || !strings.Contains(string(drainOut), "is a noon process's admin endpoint there?") {
		t.Errorf("noon drain of nothing: %v\n%s", err, drainOut)
	}
	y.stop(t, 10*time.Second)
}

// tlsDir returns the directory of the tls.ca flag of a certs() result.
func tlsDir(flags []string) string {
	for _, f := range flags {
		if ca, ok := strings.CutPrefix(f, "tls.ca="); ok {
			return filepath.Dir(ca)
		}
	}
	return ""
}

// loadCreds loads id's credentials from a `noon certs` directory.
func loadCreds(t *testing.T, dir string, id pki.Identity) *pki.Credentials {
	t.Helper()
	cfg := pki.Config{CA: filepath.Join(dir, pki.CACertFile)}
	cfg.Cert, cfg.Key = pki.CertFiles(dir, id)
	creds, err := cfg.Load()
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// hostIP returns an IPv4 address of this host that is not loopback, or nil.
func hostIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	return nil
}
