package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/apache/thrift/lib/go/thrift"
	"github.com/redis/go-redis/v9"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// fuzzService is a service on a memory store and miniredis with cheap
// argon2 parameters and one registered account ("fuzzer" / "password1").
func fuzzService(f *testing.F) *Service {
	mr := miniredis.RunT(f)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	f.Cleanup(func() { rdb.Close() })
	o := NewOptions()
	o.Argon2.Time, o.Argon2.MemoryKiB = 1, 64
	s, err := New(o, NewMemoryStore(), rdb, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.Register(context.Background(), "fuzzer", "password1", "", ""); err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzHTTPJSON feeds arbitrary bodies to the HTTP API's request decoders,
// and through the whole handler of every endpoint: a decoder either
// returns a bad_request or a value that survives a JSON round trip, and the
// handler answers a known status with a JSON body. Each input is also fed
// in two halves' worth (its first half), as a truncated body.
func FuzzHTTPJSON(f *testing.F) {
	for _, seed := range []string{
		`{"username":"fuzzer","password":"password1"}`,
		`{"username":"newbie","password":"password1","nickname":"Zoë"}`,
		`{"session_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}`,
		`{"sessionToken":"x","userId":"y"}`,
		`{"session_token":"a","sessionToken":"b"}`,
		`{"username":null,"password":"\u0000\ud800"}`,
		`{} {}`, `[]`, `null`, `"str"`, `{"a":1}`, ``, `{`,
	} {
		f.Add([]byte(seed))
	}
	s := fuzzService(f)
	h := s.HTTPHandler()
	decoders := []func([]byte) (any, error){
		func(b []byte) (any, error) { return decodeRegister(b) },
		func(b []byte) (any, error) { return decodeLogin(b) },
		func(b []byte) (any, error) { return decodeValidate(b) },
		func(b []byte) (any, error) { return decodeLogout(b) },
	}
	redecode := []func([]byte) (any, error){decoders[0], decoders[1], decoders[2], decoders[3]}
	paths := []string{PathRegister, PathLogin, PathValidateSession, PathLogout}
	statuses := map[int]bool{200: true, 201: true, 400: true, 401: true, 409: true, 413: true, 429: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, in := range [][]byte{body, body[:len(body)/2]} {
			for i, dec := range decoders {
				v, err := dec(in)
				if err != nil {
					var se *wire.Error
					if !errors.As(err, &se) || se.Code != wire.CodeBadRequest {
						t.Fatalf("decoder %d(%q) = %v, want bad_request", i, in, err)
					}
				} else {
					enc, err := json.Marshal(v)
					if err != nil {
						t.Fatalf("re-encoding %+v: %v", v, err)
					}
					v2, err := redecode[i](enc)
					if err != nil || !reflect.DeepEqual(v, v2) {
						t.Fatalf("decoder %d: %q -> %+v -> %s -> %+v, %v", i, in, v, enc, v2, err)
					}
				}
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodPost, paths[i], bytes.NewReader(in))
				req.RemoteAddr = "192.0.2.1:1"
				req.Header.Set("Content-Type", "application/json")
				h.ServeHTTP(rec, req)
				if !statuses[rec.Code] {
					t.Fatalf("POST %s %q: status %d %s", paths[i], in, rec.Code, rec.Body)
				}
				if !json.Valid(rec.Body.Bytes()) {
					t.Fatalf("POST %s %q: reply %q is not JSON", paths[i], in, rec.Body)
				}
			}
		}
	})
}

// FuzzThriftRequests feeds arbitrary payloads to every wire method of the
// service through its real handlers (the Typed decoder included): each
// answers a reply that decodes or an error with a known wire code, and only
// a successful login.Login binds the user.
func FuzzThriftRequests(f *testing.F) {
	tok := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	nick := "Zoë"
	for _, seed := range []thrift.TStruct{
		&loginpb.RegisterRequest{Username: "newbie", Password: "password1", Nickname: &nick},
		&loginpb.RegisterRequest{Username: "x", Password: ""},
		&loginpb.LoginRequest{Username: "fuzzer", Password: "password1"},
		&loginpb.LoginRequest{Username: "FUZZER", Password: "wrong"},
		&loginpb.ValidateRequest{SessionToken: tok},
		&loginpb.LogoutRequest{SessionToken: &tok},
		&loginpb.LogoutRequest{},
		&loginpb.LookupUserRequest{Username: thrift.StringPtr("FUZZER")},
		&loginpb.LookupUserRequest{UserID: thrift.StringPtr("01890a5d-ac96-774b-bcce-b302099a8057")},
		&loginpb.LookupUserRequest{Username: thrift.StringPtr("a"), UserID: thrift.StringPtr("b")},
	} {
		b, err := thriftx.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x18, 0xff, 0xff, 0xff, 0xff, 0x0f})
	s := fuzzService(f)
	handlers := s.Handlers()
	replies := map[string]func() thrift.TStruct{
		loginrpc.MethodRegister: func() thrift.TStruct { return loginpb.NewRegisterReply() },
		loginrpc.MethodLogin:    func() thrift.TStruct { return loginpb.NewLoginReply() },
		loginrpc.MethodValidate: func() thrift.TStruct { return loginpb.NewValidateReply() },
		loginrpc.MethodLogout:   func() thrift.TStruct { return loginpb.NewLogoutReply() },
	}
	lookup := handlers[loginrpc.MethodLookupUser]
	f.Fuzz(func(t *testing.T, b []byte) {
		// LookupUser refuses a client session (below); as a service's call
		// (no session) it must answer a reply that decodes, or bad_request.
		for _, in := range [][]byte{b, b[:len(b)/2]} {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err := lookup(ctx, services.NewSession(nil), in)
			cancel()
			if err != nil {
				if wire.CodeOf(err) != wire.CodeBadRequest {
					t.Fatalf("LookupUser(%x) as a service = %v", in, err)
				}
			} else if err := thriftx.Unmarshal(out, loginpb.NewLookupUserReply()); err != nil {
				t.Fatalf("LookupUser(%x) reply does not decode: %v", in, err)
			}
		}
		for _, in := range [][]byte{b, b[:len(b)/2]} {
			for m, h := range handlers {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				sess := services.NewSession(&platformpb.Session{Id: "s", RemoteAddr: "192.0.2.1:1"})
				out, err := h(ctx, sess, in)
				cancel()
				binds, _ := sess.Changes()
				if err != nil {
					if !wire.KnownCode(wire.CodeOf(err)) || wire.CodeOf(err) == wire.CodeInternal {
						t.Fatalf("%s(%x) = %v", m, in, err)
					}
					if len(binds) != 0 {
						t.Fatalf("%s(%x) failed but bound %v", m, in, binds)
					}
					continue
				}
				rep := replies[m]()
				if err := thriftx.Unmarshal(out, rep); err != nil {
					t.Fatalf("%s(%x) reply does not decode: %v", m, in, err)
				}
				if m == loginrpc.MethodLogin {
					lr := rep.(*loginpb.LoginReply)
					if len(binds) != 1 || binds[0].GetKey() != UserBinding || binds[0].GetValue() != lr.UserID {
						t.Fatalf("login %x succeeded with bindings %v", in, binds)
					}
				} else if len(binds) != 0 {
					t.Fatalf("%s(%x) bound %v", m, in, binds)
				}
			}
		}
	})
}
