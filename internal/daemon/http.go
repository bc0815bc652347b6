package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/noonhq/noon/wire"
)

var _ Daemon = (*HTTPServer)(nil)

// HTTPServer is an http.Server on a listener bound by its constructor, as
// a Daemon: the admin endpoint and the login HTTP API are one. With
// srv.TLSConfig set (its certificates in it) it serves HTTPS only.
type HTTPServer struct {
	name string
	ln   net.Listener
	srv  *http.Server
	log  *slog.Logger
	// tls: srv.TLSConfig was set at construction (net/http sets one of
	// its own on serving, so it is not read after).
	tls bool
}

// NewHTTPServer returns srv serving on ln as a Daemon; name prefixes its
// log line and errors ("admin", "login: http api"). A nil log discards.
func NewHTTPServer(name string, ln net.Listener, srv *http.Server, log *slog.Logger) *HTTPServer {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &HTTPServer{name: name, ln: ln, srv: srv, log: log, tls: srv.TLSConfig != nil}
}

// Addr returns the address the server listens on, with the real port when
// bound to port 0 (e.g. "127.0.0.1:41234").
func (h *HTTPServer) Addr() string { return h.ln.Addr().String() }

// URL returns http://Addr (https:// with TLS), a wildcard host replaced
// by 127.0.0.1.
func (h *HTTPServer) URL() string {
	scheme := "http://"
	if h.tls {
		scheme = "https://"
	}
	return scheme + wire.DialAddr(h.Addr())
}

// Main serves requests until Drain or Exit; it returns nil then, and the
// error otherwise.
func (h *HTTPServer) Main() error {
	h.log.Info(h.name+" listening", "addr", h.Addr())
	serve := h.srv.Serve
	if h.tls {
		serve = func(ln net.Listener) error { return h.srv.ServeTLS(ln, "", "") }
	}
	if err := serve(h.ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s: %w", h.name, err)
	}
	return nil
}

// Drain closes the listener, waits for the requests in flight until ctx is
// done, then closes the connections left, returning ctx's error if it had
// to cut requests short. It may be called before or without Main, and more
// than once.
func (h *HTTPServer) Drain(ctx context.Context) error {
	err := h.srv.Shutdown(ctx)
	if err != nil {
		_ = h.srv.Close()
	}
	_ = h.ln.Close() // when Main never ran
	return err
}

// Exit closes the listener and every connection at once. It is idempotent.
func (h *HTTPServer) Exit() {
	_ = h.srv.Close()
	_ = h.ln.Close()
}
