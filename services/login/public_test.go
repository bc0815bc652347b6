package login_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/services/login"
)

// TestHTTPS serves the API over TLS with a certificate made for the test:
// HTTPS works, plain HTTP and TLS 1.1 do not.
func TestHTTPS(t *testing.T) {
	certFile, keyFile, pool := testenv.SelfSigned(t)
	rdb, _ := newRedis(t, miniRedis)
	opts := testOptions(t)
	opts.HTTPTLS = login.NewOptions().HTTPTLS
	opts.HTTPTLS.CertFile, opts.HTTPTLS.KeyFile = certFile, keyFile
	url := startHTTP(t, newService(t, opts, login.NewMemoryStore(), rdb))
	if !strings.HasPrefix(url, "https://127.0.0.1:") {
		t.Fatalf("URL %q, want https://", url)
	}
	client := func(maxVersion uint16) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion},
		}}
	}
	json := http.Header{"Content-Type": {"application/json"}}
	user := username(t)
	status, _, body := send(t, client(0), http.MethodPost, url+login.PathRegister, `{"username":"`+user+`","password":"hunter2hunter2"}`, json)
	wantStatus(t, "register over https", status, body, http.StatusCreated, "")
	status, _, body = send(t, client(tls.VersionTLS12), http.MethodPost, url+login.PathLogin, `{"username":"`+user+`","password":"hunter2hunter2"}`, json)
	wantStatus(t, "login over TLS 1.2", status, body, http.StatusOK, "")

	req, _ := http.NewRequest(http.MethodPost, url+login.PathLogin, strings.NewReader(`{}`))
	req.Header = json
	if resp, err := client(tls.VersionTLS11).Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a TLS 1.1 client was served")
	}
	resp, err := http.Post("http://"+strings.TrimPrefix(url, "https://")+login.PathLogin, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatalf("plain HTTP to the HTTPS port: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "HTTP request to an HTTPS server") {
		t.Fatalf("plain HTTP to the HTTPS port: %d %q, want 400", resp.StatusCode, b)
	}

	opts.HTTPTLS.KeyFile = certFile // not a key
	svc := newService(t, opts, login.NewMemoryStore(), rdb)
	if _, err := login.NewHTTPServer("127.0.0.1:0", svc, nil); err == nil || !strings.Contains(err.Error(), "login: http: tls:") {
		t.Fatalf("NewHTTPServer with a bad key: %v", err)
	}
}

// TestHTTPContentType: with http_require_json (the default) a POST must say
// it is JSON; without, anything goes.
func TestHTTPContentType(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	for _, require := range []bool{true, false} {
		opts := testOptions(t)
		if !opts.HTTPRequireJSON {
			t.Fatal("http_require_json is off by default")
		}
		opts.HTTPRequireJSON = require
		url := startHTTP(t, newService(t, opts, login.NewMemoryStore(), rdb))
		for _, tc := range []struct {
			contentType string
			json        bool
		}{
			{"", false},
			{"text/plain", false},
			{"application/x-www-form-urlencoded", false},
			{"multipart/form-data; boundary=x", false},
			{"application/jsonp", false},
			{"application/json", true},
			{"application/json; charset=utf-8", true},
			{"Application/JSON", true},
		} {
			h := http.Header{}
			if tc.contentType != "" {
				h.Set("Content-Type", tc.contentType)
			}
			status, _, body := send(t, http.DefaultClient, http.MethodPost, url+login.PathValidateSession, `{"session_token":"nope"}`, h)
			if require && !tc.json {
				wantStatus(t, tc.contentType, status, body, http.StatusUnsupportedMediaType,
					`bad_request: Content-Type must be application/json, got "`+tc.contentType+`"`)
				continue
			}
			// Accepted: an unknown token is a 401 with valid false.
			wantStatus(t, tc.contentType, status, body, http.StatusUnauthorized, "")
		}
	}
}

// TestHTTPTrustedProxies: behind a trusted proxy the per-address throttle
// counts the X-Forwarded-For client; anyone else's header is ignored.
func TestHTTPTrustedProxies(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	for _, tc := range []struct {
		name    string
		trusted []string
		// separate: players with different forwarded addresses have
		// throttles of their own.
		separate bool
	}{
		{"trusted", []string{"127.0.0.0/8"}, true},
		{"untrusted", []string{"192.0.2.0/24"}, false},
		{"nobody", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions(t)
			opts.TrustedProxies = tc.trusted
			opts.Throttle.PerAddress = login.Limit{Max: 2, Window: time.Minute, Backoff: time.Minute, MaxBackoff: time.Minute}
			url := startHTTP(t, newService(t, opts, login.NewMemoryStore(), rdb))
			attempt := func(xff string) (int, map[string]any) {
				h := http.Header{"Content-Type": {"application/json"}, realip.HeaderForwardedFor: {xff}}
				status, _, body := send(t, http.DefaultClient, http.MethodPost, url+login.PathLogin, `{"username":"nobody","password":"wrong-password"}`, h)
				return status, body
			}
			// A spoofed left part does not make a new address.
			for _, xff := range []string{"198.51.100.1", "10.0.0.1, 198.51.100.1"} {
				status, body := attempt(xff)
				wantStatus(t, "attempt from "+xff, status, body, http.StatusUnauthorized, "")
			}
			status, body := attempt("192.0.2.99, 198.51.100.1")
			wantStatus(t, "third attempt", status, body, http.StatusTooManyRequests, "rate_limited: too many attempts from your address; retry in 60s")
			status, body = attempt("198.51.100.2")
			if tc.separate {
				wantStatus(t, "another player", status, body, http.StatusUnauthorized, "")
			} else {
				wantStatus(t, "another forwarded address, not believed", status, body, http.StatusTooManyRequests, "")
			}
		})
	}
}

func TestOptionsPublicSide(t *testing.T) {
	o := login.NewOptions()
	if o.HTTPAddr != "127.0.0.1:8081" || !o.HTTPRequireJSON || o.HTTPTLS.Enabled() || len(o.TrustedProxies) != 0 {
		t.Fatalf("defaults: %+v", o)
	}
	o.HTTPTLS.CertFile = "cert.pem"
	o.TrustedProxies = []string{"10.0.0.0/8", "nope"}
	err := o.Validate()
	for _, want := range []string{"http_tls.key_file: must be set when cert_file is", `trusted_proxies[1]: must be a CIDR (10.0.0.0/8) or an address, got "nope"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v; want %q", err, want)
		}
	}
}
