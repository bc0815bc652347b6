package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

func TestAdminReadyz(t *testing.T) {
	a := startAdmin(t, nil, nil, slog.New(slog.DiscardHandler))
	base := "http://" + a.Addr()
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz without checks: %d %q", code, body)
	}
	var registered atomic.Bool
	a.AddReady("service echo", func() error {
		if !registered.Load() {
			return errors.New("not registered in yellow yet")
		}
		return nil
	})
	a.AddHealth("service echo", func() error { return nil })
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "service echo: not registered in yellow yet\n" {
		t.Errorf("/readyz unready: %d %q", code, body)
	}
	// Readiness is not liveness.
	if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz of an unready daemon: %d %q", code, body)
	}
	registered.Store(true)
	if code, body := get(t, base+"/readyz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz ready: %d %q", code, body)
	}
	a.SetDraining()
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Errorf("/readyz draining: %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz draining: %d", code)
	}
}

// drainHook is what a process gives OnDrain: start counts the requests,
// finish closes done.
type drainHook struct {
	started atomic.Int32
	once    sync.Once
	done    chan struct{}
}

func newDrainHook(a *Admin) *drainHook {
	h := &drainHook{done: make(chan struct{})}
	a.OnDrain(func() { h.started.Add(1) }, h.done)
	return h
}

func (h *drainHook) finish() { h.once.Do(func() { close(h.done) }) }

func post(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAdminDrain(t *testing.T) {
	a := startAdmin(t, nil, nil, slog.New(slog.DiscardHandler))
	base := "http://" + a.Addr()
	if code, _ := post(t, http.DefaultClient, base+"/drain"); code != http.StatusNotFound {
		t.Errorf("POST /drain without OnDrain: %d, want 404", code)
	}
	h := newDrainHook(a)

	// GET /drain waits, without starting anything, until the drain is done.
	waited := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/drain")
		if err != nil {
			waited <- err.Error()
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		waited <- resp.Status + " " + string(body)
	}()

	if code, body := post(t, http.DefaultClient, base+"/drain"); code != http.StatusAccepted || body != "draining\n" {
		t.Errorf("POST /drain: %d %q, want 202 draining", code, body)
	}
	if n := h.started.Load(); n != 1 {
		t.Errorf("drain started %d times, want 1", n)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || body != "draining\n" {
		t.Errorf("/readyz after POST /drain: %d %q", code, body)
	}
	select {
	case got := <-waited:
		t.Fatalf("GET /drain answered before the drain was done: %s", got)
	default:
	}
	// POST ?wait=1 starts (again: start is idempotent) and waits.
	waitedPost := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/drain?wait=1", "text/plain", nil)
		if err != nil {
			waitedPost <- 0
			return
		}
		resp.Body.Close()
		waitedPost <- resp.StatusCode
	}()
	h.finish()
	if got := <-waited; got != "200 OK drained\n" {
		t.Errorf("GET /drain: %q, want 200 drained", got)
	}
	if code := <-waitedPost; code != http.StatusOK {
		t.Errorf("POST /drain?wait=1: %d, want 200", code)
	}
}

// TestAdminDrainLoopbackOnly: POST /drain from an address that is not
// loopback gets 403 and starts nothing.
func TestAdminDrainLoopbackOnly(t *testing.T) {
	t.Run("hook", func(t *testing.T) {
		// The admin takes only 127.0.0.1 for loopback; the client comes
		// from 127.0.0.2.
		a := startAdmin(t, nil, nil, slog.New(slog.DiscardHandler))
		a.allowDrain = func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }
		h := newDrainHook(a)
		from2 := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)},
		}).DialContext}}
		defer from2.CloseIdleConnections()
		if code, _ := post(t, from2, "http://"+a.Addr()+"/drain"); code != http.StatusForbidden {
			t.Errorf("POST /drain from 127.0.0.2: %d, want 403", code)
		}
		if h.started.Load() != 0 || a.Draining() {
			t.Error("a refused POST /drain started the drain")
		}
		if code, _ := post(t, http.DefaultClient, "http://"+a.Addr()+"/drain"); code != http.StatusAccepted {
			t.Errorf("POST /drain from 127.0.0.1: %d, want 202", code)
		}
	})
	t.Run("network", func(t *testing.T) {
		ip := nonLoopbackIP(t)
		a, err := NewAdmin(net.JoinHostPort(ip.String(), "0"), nil, nil, nil)
		if err != nil {
			t.Skipf("cannot listen on %s: %v", ip, err)
		}
		go func() { _ = a.Main() }()
		defer a.Exit()
		h := newDrainHook(a)
		if code, body := post(t, http.DefaultClient, "http://"+a.Addr()+"/drain"); code != http.StatusForbidden {
			t.Errorf("POST /drain from %s: %d %q, want 403", ip, code, body)
		}
		if h.started.Load() != 0 {
			t.Error("a refused POST /drain started the drain")
		}
		// Reading is not refused.
		if code, _ := get(t, "http://"+a.Addr()+"/readyz"); code != http.StatusOK {
			t.Errorf("/readyz from %s: %d", ip, code)
		}
	})
	t.Run("handler", func(t *testing.T) {
		a, err := NewAdmin("127.0.0.1:0", nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Exit()
		h := newDrainHook(a)
		for addr, want := range map[string]int{
			"192.0.2.7:4000": http.StatusForbidden, "[2001:db8::1]:4000": http.StatusForbidden, "garbage": http.StatusForbidden,
			"[::1]:4000": http.StatusAccepted, "127.9.9.9:4000": http.StatusAccepted,
		} {
			rec := &recorder{header: http.Header{}}
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "/drain", nil)
			req.RemoteAddr = addr
			a.Handler().ServeHTTP(rec, req)
			if rec.code != want {
				t.Errorf("POST /drain from %s: %d, want %d", addr, rec.code, want)
			}
		}
		if n := h.started.Load(); n != 2 {
			t.Errorf("drain started %d times, want 2 (the loopback ones)", n)
		}
	})
}

// nonLoopbackIP returns an IPv4 address of this host that is not loopback,
// or skips the test.
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("no interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP
		}
	}
	t.Skip("this host has no non-loopback IPv4 address")
	return nil
}

// recorder is a minimal http.ResponseWriter.
type recorder struct {
	header http.Header
	code   int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return len(b), nil
}
func (r *recorder) WriteHeader(code int) { r.code = code }
