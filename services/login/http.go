package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/wire"
)

// Limits of the HTTP API.
const (
	// MaxHTTPBody bounds a request body: the largest valid request (a
	// 1 KiB password and a nickname, every character \u-escaped) is under
	// 8 KiB.
	MaxHTTPBody = 16 << 10
	// HTTPRequestTimeout bounds one request's work (queueing for a hash
	// slot included), like the wire's default deadline with room for a
	// slower client.
	HTTPRequestTimeout = 10 * time.Second
	// httpReadHeaderTimeout and httpReadTimeout bound a slow client;
	// httpWriteTimeout covers HTTPRequestTimeout plus writing the reply;
	// httpIdleTimeout closes idle keep-alive connections; httpMaxHeader
	// bounds the header block (no cookies, no large headers expected).
	httpReadHeaderTimeout = 5 * time.Second
	httpReadTimeout       = 10 * time.Second
	httpWriteTimeout      = HTTPRequestTimeout + 5*time.Second
	httpIdleTimeout       = 2 * time.Minute
	httpMaxHeader         = 16 << 10
)

// The HTTP API's paths (pandaparty's loginserver, plus register and
// logout).
const (
	PathRegister        = "/api/register"
	PathLogin           = "/api/login"
	PathValidateSession = "/api/validate_session"
	PathLogout          = "/api/logout"
	PathLogoutAll       = "/api/logout_all"
)

// The HTTP API's request and reply bodies. Replies are snake_case; requests
// are snake_case or camelCase (sessionToken, userId), and an unknown field is
// a 400.
type (
	// RegisterBody is POST /api/register's request.
	RegisterBody struct {
		Username string `json:"username"`           // the login name
		Password string `json:"password"`           // the password
		Nickname string `json:"nickname,omitempty"` // the display name; "" = the username
	}
	// RegisterResult is POST /api/register's reply (201 Created).
	RegisterResult struct {
		UserID   string `json:"user_id"`  // the new account's id
		Nickname string `json:"nickname"` // its nickname
	}
	// LoginBody is POST /api/login's request.
	LoginBody struct {
		Username string `json:"username"` // the login name, any case
		Password string `json:"password"` // the password
	}
	// LoginResult is POST /api/login's reply.
	LoginResult struct {
		Success      bool   `json:"success"`       // always true (pandaparty's loginserver)
		UserID       string `json:"user_id"`       // the account's id
		Nickname     string `json:"nickname"`      // its nickname
		SessionToken string `json:"session_token"` // the new session's token
		ExpiresUnix  int64  `json:"expires_unix"`  // when the token expires, Unix seconds
	}
	// ValidateBody is POST /api/validate_session's request.
	ValidateBody struct {
		SessionToken string `json:"session_token"`     // the token to check (sessionToken accepted)
		UserID       string `json:"user_id,omitempty"` // optional: the session must be this user's (userId accepted)
	}
	// ValidateResult is POST /api/validate_session's reply: 200 for a
	// live token, 401 with valid and is_valid false for an unknown,
	// expired or logged-out token (or another user's, with user_id).
	ValidateResult struct {
		Valid    bool   `json:"valid"`              // whether the token is live
		IsValid  bool   `json:"is_valid"`           // the same, pandaparty's name
		UserID   string `json:"user_id,omitempty"`  // its user's id, when valid
		Nickname string `json:"nickname,omitempty"` // its user's nickname at login, when valid
	}
	// LogoutBody is POST /api/logout's request.
	LogoutBody struct {
		SessionToken string `json:"session_token"` // the token to end (sessionToken accepted)
	}
	// LogoutAllResult is POST /api/logout_all's reply; its request is a
	// LogoutBody naming a live token of the user.
	LogoutAllResult struct {
		Sessions int `json:"sessions"` // the number of the user's sessions ended
	}
	// ErrorResult is the body of every error reply; success and
	// error_message are pandaparty's loginserver's fields.
	ErrorResult struct {
		Error        string `json:"error"`         // "<code>: <text>", as on the wire
		Success      bool   `json:"success"`       // always false
		ErrorMessage string `json:"error_message"` // the text, without the code
	}
)

// HTTPHandler returns the pandaparty HTTP/JSON API: POST /api/register,
// /api/login, /api/validate_session, /api/logout and /api/logout_all. Status codes: 200
// (201 for register), 400 bad input, 401 bad credentials, 404 unknown
// path, 405 another method (with Allow), 409 a taken username, 413 a body
// over MaxHTTPBody, 415 a Content-Type other than application/json (with
// http_require_json), 429 throttled (with Retry-After), 500, 503, 504.
// Behind trusted_proxies, a request's address (what the per-address
// throttle counts) is the client's from X-Forwarded-For.
func (s *Service) HTTPHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(PathRegister, s.post(s.httpRegister))
	mux.Handle(PathLogin, s.post(s.httpLogin))
	mux.Handle(PathValidateSession, s.post(s.httpValidate))
	mux.Handle(PathLogout, s.post(s.httpLogout))
	mux.Handle(PathLogoutAll, s.post(s.httpLogoutAll))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorResult(wire.CodeNotFound+": no such endpoint"))
	})
	trusted, _ := realip.ParseTrusted(s.opts.TrustedProxies) // New validated the list
	if trusted.Empty() {
		return mux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r2 := *r // a shallow copy, as Request.WithContext makes: handlers do not modify r
		r2.RemoteAddr = trusted.RemoteAddr(r)
		mux.ServeHTTP(w, &r2)
	})
}

// apiFunc serves one endpoint: it gets the body, read and bounded, and
// returns the status and reply, or an error.
type apiFunc func(ctx context.Context, r *http.Request, body []byte) (int, any, error)

// post wraps an endpoint: POST only, the body bounded, a deadline, errors
// mapped to statuses.
func (s *Service) post(fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store") // replies carry tokens
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method != http.MethodPost {
			h.Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, errorResult(wire.CodeBadRequest+": method "+wire.Snippet(r.Method)+" not allowed; use POST"))
			return
		}
		if ct := r.Header.Get("Content-Type"); s.opts.HTTPRequireJSON && !isJSON(ct) {
			writeJSON(w, http.StatusUnsupportedMediaType, errorResult(fmt.Sprintf("%s: Content-Type must be application/json, got %q", wire.CodeBadRequest, wire.Snippet(ct))))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxHTTPBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeJSON(w, http.StatusRequestEntityTooLarge, errorResult(fmt.Sprintf("%s: body over %d bytes", wire.CodeBadRequest, MaxHTTPBody)))
				return
			}
			writeJSON(w, http.StatusBadRequest, errorResult(wire.CodeBadRequest+": reading body: "+err.Error()))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), HTTPRequestTimeout)
		defer cancel()
		status, reply, err := fn(ctx, r, body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, status, reply)
	})
}

// isJSON reports whether a Content-Type is application/json (any
// parameters, such as charset, allowed).
func isJSON(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == "application/json"
}

// writeError replies with err's status and wire form; an internal error
// is logged and its text replaced, as on the wire.
func (s *Service) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var rl *rateLimited
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(int(rl.retryAfter()/time.Second)))
		writeJSON(w, http.StatusTooManyRequests, errorResult(rl.wire().Error()))
		return
	}
	var se *wire.Error
	if !errors.As(err, &se) || wire.CodeOf(se) == wire.CodeInternal {
		s.log.Error("login: http request failed", "path", r.URL.Path, "err", err)
		se = wire.NewError(wire.CodeInternal, "internal error")
	}
	writeJSON(w, httpStatus(wire.CodeOf(se)), errorResult(se.Error()))
}

// httpStatus maps a wire code to an HTTP status.
func httpStatus(code string) int {
	switch code {
	case wire.CodeBadRequest:
		return http.StatusBadRequest
	case wire.CodeUnauthenticated:
		return http.StatusUnauthorized
	case wire.CodeNotFound:
		return http.StatusNotFound
	case wire.CodeConflict:
		return http.StatusConflict
	case wire.CodeRateLimited:
		return http.StatusTooManyRequests
	case wire.CodeUnavailable, wire.CodeOverloaded:
		return http.StatusServiceUnavailable
	case wire.CodeTimeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// errorResult is the error reply of text ("<code>: <message>").
func errorResult(text string) ErrorResult {
	msg := text
	if _, m, ok := strings.Cut(text, ": "); ok {
		msg = m
	}
	return ErrorResult{Error: text, ErrorMessage: msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // the reply types always encode
		b, status = []byte(`{"error":"internal: encoding reply"}`), http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (s *Service) httpRegister(ctx context.Context, r *http.Request, body []byte) (int, any, error) {
	req, err := decodeRegister(body)
	if err != nil {
		return 0, nil, err
	}
	a, err := s.Register(ctx, req.Username, req.Password, req.Nickname, r.RemoteAddr)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, RegisterResult{UserID: a.ID, Nickname: a.Nickname}, nil
}

func (s *Service) httpLogin(ctx context.Context, r *http.Request, body []byte) (int, any, error) {
	req, err := decodeLogin(body)
	if err != nil {
		return 0, nil, err
	}
	ls, err := s.Login(ctx, req.Username, req.Password, r.RemoteAddr)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, LoginResult{Success: true, UserID: ls.UserID, Nickname: ls.Nickname, SessionToken: ls.Token, ExpiresUnix: ls.Expires.Unix()}, nil
}

func (s *Service) httpValidate(ctx context.Context, _ *http.Request, body []byte) (int, any, error) {
	req, err := decodeValidate(body)
	if err != nil {
		return 0, nil, err
	}
	ls, ok, err := s.Validate(ctx, req.SessionToken)
	if err != nil {
		return 0, nil, err
	}
	if !ok || req.UserID != "" && req.UserID != ls.UserID {
		return http.StatusUnauthorized, ValidateResult{}, nil
	}
	return http.StatusOK, ValidateResult{Valid: true, IsValid: true, UserID: ls.UserID, Nickname: ls.Nickname}, nil
}

func (s *Service) httpLogout(ctx context.Context, _ *http.Request, body []byte) (int, any, error) {
	req, err := decodeLogout(body)
	if err != nil {
		return 0, nil, err
	}
	if err := s.Logout(ctx, req.SessionToken); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// httpLogoutAll ends every session of the user whose live token the body
// names: the token is the credential (401 when it is not live).
func (s *Service) httpLogoutAll(ctx context.Context, _ *http.Request, body []byte) (int, any, error) {
	req, err := decodeLogout(body)
	if err != nil {
		return 0, nil, err
	}
	ls, ok, err := s.Validate(ctx, req.SessionToken)
	if err != nil {
		return 0, nil, err
	}
	if !ok {
		return 0, nil, wire.Errorf(wire.CodeUnauthenticated, "session_token is not a live session")
	}
	n, err := s.LogoutAll(ctx, ls.UserID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, LogoutAllResult{Sessions: n}, nil
}

// jsonField is one string field of a request body: its snake_case name,
// the camelCase alias accepted too ("" if the same), and where it goes.
type jsonField struct {
	name, alias string
	dst         *string
}

func decodeRegister(body []byte) (RegisterBody, error) {
	var b RegisterBody
	return b, decodeFields(body, []jsonField{{"username", "", &b.Username}, {"password", "", &b.Password}, {"nickname", "", &b.Nickname}})
}

func decodeLogin(body []byte) (LoginBody, error) {
	var b LoginBody
	return b, decodeFields(body, []jsonField{{"username", "", &b.Username}, {"password", "", &b.Password}})
}

func decodeValidate(body []byte) (ValidateBody, error) {
	var b ValidateBody
	return b, decodeFields(body, []jsonField{{"session_token", "sessionToken", &b.SessionToken}, {"user_id", "userId", &b.UserID}})
}

func decodeLogout(body []byte) (LogoutBody, error) {
	var b LogoutBody
	return b, decodeFields(body, []jsonField{{"session_token", "sessionToken", &b.SessionToken}})
}

// decodeFields decodes a JSON object of string fields into fields: each by
// its name or its alias (not both), a null as absent; anything else (not
// an object, another key, a value of another type, trailing data) is a
// bad_request naming the problem.
func decodeFields(body []byte, fields []jsonField) error {
	bad := func(format string, args ...any) error {
		return wire.Errorf(wire.CodeBadRequest, format, args...)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return bad("empty body: send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return bad("body is not JSON: %v at offset %d", syn, syn.Offset)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return bad("body is not JSON: unexpected end")
		}
		return bad("body must be a JSON object")
	}
	if raw == nil {
		return bad("body must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("body has data after the JSON object")
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic errors
	seen := make([]bool, len(fields))
	for _, k := range keys {
		i := fieldIndex(fields, k)
		if i < 0 {
			return bad("unknown field %q", wire.Snippet(k))
		}
		if seen[i] {
			return bad("both %q and %q given", fields[i].name, fields[i].alias)
		}
		seen[i] = true
		v := raw[k]
		if string(v) == "null" {
			continue
		}
		if err := json.Unmarshal(v, fields[i].dst); err != nil {
			return bad("%s must be a string", fields[i].name)
		}
	}
	return nil
}

func fieldIndex(fields []jsonField, key string) int {
	for i, f := range fields {
		if key == f.name || f.alias != "" && key == f.alias {
			return i
		}
	}
	return -1
}

var _ daemon.Daemon = (*HTTPServer)(nil)

// HTTPServer serves the HTTP API: a daemon.Daemon (Main serves until Drain
// or Exit).
type HTTPServer struct {
	*daemon.HTTPServer
}

// NewHTTPServer binds addr ("host:port"; port 0 picks a free port, see
// Addr) for s's HTTP API and returns the server, not yet serving: over
// HTTPS when s's options set http_tls.
func NewHTTPServer(addr string, s *Service, log *slog.Logger) (*HTTPServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("login: http: %w", err)
	}
	tlsConfig, err := s.opts.HTTPTLS.ServerConfig()
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("login: http: %w", err)
	}
	return &HTTPServer{daemon.NewHTTPServer("login: http api", ln, &http.Server{
		Handler:           s.HTTPHandler(),
		ReadHeaderTimeout: httpReadHeaderTimeout,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    httpMaxHeader,
		TLSConfig:         tlsConfig,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}, log)}, nil
}
