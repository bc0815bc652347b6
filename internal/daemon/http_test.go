package daemon_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/noonhq/noon/internal/daemon"
)

func newHTTP(t *testing.T) *daemon.HTTPServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return daemon.NewHTTPServer("test", ln, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})}, nil)
}

func TestHTTPServerLifecycle(t *testing.T) {
	h := newHTTP(t)
	done := make(chan error, 1)
	go func() { done <- h.Main() }()
	resp, err := http.Get("http://" + h.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
	if err := h.Drain(context.Background()); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Main: %v", err)
	}
	h.Exit()
	h.Exit()
}

func TestHTTPServerExitBeforeMain(t *testing.T) {
	h := newHTTP(t)
	h.Exit()
	h.Exit()
	if err := h.Main(); err != nil {
		t.Fatalf("Main after Exit = %v, want nil", err)
	}
	if c, err := net.Dial("tcp", h.Addr()); err == nil {
		c.Close()
		t.Fatal("listener open after Exit")
	}
}
