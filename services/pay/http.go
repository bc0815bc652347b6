package pay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/wire"
)

// webhookTimeout bounds a webhook's handling.
const webhookTimeout = 10 * time.Second

// HTTPHandler serves POST /webhooks/<provider>: the body (at most
// MaxPayload bytes) is verified by the provider and handled once per
// notification id. 200: accepted (new or duplicate); 400: refused (not
// recorded); 404: unknown provider; 503: try again.
func (s *Service) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /webhooks/{provider}", s.webhook)
	return mux
}

// webhook handles one delivery.
func (s *Service) webhook(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	p, ok := s.providers[name]
	if !ok {
		s.m.rejections.With("unknown_provider").Inc()
		http.Error(w, "unknown provider", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.opts.MaxPayload)))
	if err != nil {
		s.m.rejections.With("too_large").Inc()
		http.Error(w, "body over the limit", http.StatusRequestEntityTooLarge)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), webhookTimeout)
	defer cancel()
	n, err := p.ParseNotification(ctx, r.Header, body)
	if err != nil {
		werr := s.providerError(err)
		if wire.CodeOf(werr) == wire.CodeUnavailable {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		s.log.Info("pay: webhook refused", "provider", name, "err", err, "body", wire.Snippet(string(body)))
		http.Error(w, werr.Error(), http.StatusBadRequest)
		return
	}
	fresh, err := s.Notify(ctx, name, n)
	if err != nil {
		s.m.storeErrors.Inc()
		s.log.Warn("pay: webhook not recorded", "provider", name, "err", err)
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	result := "new"
	if !fresh {
		result = "duplicate"
	}
	s.m.webhooks.With(name, result).Inc()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true,"result":"`+result+`"}`)
}

// NewHTTPServer listens on addr and serves s's webhooks.
func NewHTTPServer(addr string, s *Service, log *slog.Logger) (*daemon.HTTPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, errors.New("pay: webhooks: " + strings.TrimPrefix(err.Error(), "listen "))
	}
	srv := &http.Server{
		Handler:           s.HTTPHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	return daemon.NewHTTPServer("pay webhooks", ln, srv, log), nil
}
