package broker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// The test services: a fake login (login.Login binds the user and its
// session, wire.SessionID of the token; tokens are "tok-<user>"), a "game" service that reports the session it sees and
// tries bindings and subscriptions, and "kv", a small stateful service whose
// keys are owned through placement leases in (mini)Redis.

// loginHandlers are the fake login service's handlers.
func loginHandlers() map[string]services.HandlerFunc {
	return map[string]services.HandlerFunc{
		"login.Login": wire.Typed(loginpb.NewLoginRequest, func(_ context.Context, s *services.Session, req *loginpb.LoginRequest) (*loginpb.LoginReply, error) {
			if req.Password != "pw" {
				return nil, wire.NewError(wire.CodeUnauthenticated, "wrong username or password")
			}
			s.BindUser(req.Username, wire.SessionID("tok-"+req.Username), time.Time{})
			return &loginpb.LoginReply{UserID: req.Username, Nickname: req.Username, SessionToken: "tok-" + req.Username}, nil
		}),
		// login.Logout logs the caller out if the token is its own.
		"login.Logout": wire.Typed(loginpb.NewLogoutRequest, func(_ context.Context, s *services.Session, req *loginpb.LogoutRequest) (*loginpb.LogoutReply, error) {
			if user, _ := strings.CutPrefix(req.GetSessionToken(), "tok-"); user == s.UserID() {
				s.UnbindUser(wire.SessionID(req.GetSessionToken()))
			}
			return &loginpb.LogoutReply{}, nil
		}),
		// login.Register is public but does not authenticate: its attempt
		// to bind the user must be ignored.
		"login.Register": wire.Typed(loginpb.NewRegisterRequest, func(_ context.Context, s *services.Session, req *loginpb.RegisterRequest) (*loginpb.RegisterReply, error) {
			s.Bind("user", req.Username)
			return &loginpb.RegisterReply{UserID: req.Username}, nil
		}),
		"login.Validate": wire.Typed(loginpb.NewValidateRequest, func(_ context.Context, _ *services.Session, req *loginpb.ValidateRequest) (*loginpb.ValidateReply, error) {
			user, ok := strings.CutPrefix(req.SessionToken, "tok-")
			return &loginpb.ValidateReply{Valid: ok && user != "", UserID: user}, nil
		}),
	}
}

// loginPayload encodes a login request for user with password pw.
func loginPayload(t testing.TB, user, pw string) []byte {
	return encode(t, &loginpb.LoginRequest{Username: user, Password: pw})
}

// gameHandlers are the fake game service's handlers.
func gameHandlers() map[string]services.HandlerFunc {
	return map[string]services.HandlerFunc{
		// game.Whoami answers "<user>|<kv binding>|<broker>|<session id>".
		"game.Whoami": func(_ context.Context, s *services.Session, _ []byte) ([]byte, error) {
			return fmt.Appendf(nil, "%s|%s|%s|%s", s.UserID(), s.Binding("kv"), s.Broker(), s.ID()), nil
		},
		// game.Evil tries bindings a stateless route may not make.
		"game.Evil": func(_ context.Context, s *services.Session, _ []byte) ([]byte, error) {
			s.Bind("user", "evil")
			s.Bind("kv", "stolen")
			return []byte("ok"), nil
		},
		"game.Sub": func(_ context.Context, s *services.Session, p []byte) ([]byte, error) {
			s.Subscribe(string(p))
			return nil, nil
		},
		"game.Unsub": func(_ context.Context, s *services.Session, p []byte) ([]byte, error) {
			s.Unsubscribe(string(p))
			return nil, nil
		},
	}
}

// kvLeaseTTL is the lease of a kv key: miniredis expires keys only when
// told (FastForward), so a dead owner's lease lasts until the test moves
// time on.
const kvLeaseTTL = 10 * time.Second

// kvPrefix namespaces the kv test keys in Redis.
const kvPrefix = "noontest:"

// kvServer is an instance of the kv test service:
//
//   - kv.Open (payload: the key) takes the key's lease and binds kv = key;
//   - kv.Incr increments the counter of the bound key and answers
//     "<count> <instance id>";
//   - kv.Who answers the instance id.
//
// An instance that finds the key's lease held by another answers
// "moved" with the holder's id.
type kvServer struct {
	*testServer
	leases atomic.Pointer[placement.Leases]
}

// mustStartKV starts a kv instance on rdb.
func mustStartKV(t testing.TB, rdb redis.UniversalClient, y *testYellow) *kvServer {
	t.Helper()
	kv := &kvServer{}
	own := func(ctx context.Context, key string) error {
		l := kv.leases.Load()
		_, err := l.Acquire(ctx, key)
		var held *placement.HeldError
		if errors.As(err, &held) {
			return wire.NewError(wire.CodeMoved, held.Owner)
		}
		return err
	}
	h := map[string]services.HandlerFunc{
		"kv.Open": func(ctx context.Context, s *services.Session, p []byte) ([]byte, error) {
			key := string(p)
			if key == "" {
				return nil, wire.NewError(wire.CodeBadRequest, "empty key")
			}
			if err := own(ctx, key); err != nil {
				return nil, err
			}
			s.Bind("kv", key)
			return []byte(kv.leases.Load().Instance()), nil
		},
		"kv.Incr": func(ctx context.Context, s *services.Session, _ []byte) ([]byte, error) {
			key := s.Binding("kv")
			if key == "" {
				return nil, wire.NewError(wire.CodeBadRequest, "no kv bound")
			}
			if err := own(ctx, key); err != nil {
				return nil, err
			}
			n, err := rdb.Incr(ctx, kvPrefix+"count:"+key).Result()
			if err != nil {
				return nil, err
			}
			return fmt.Appendf(nil, "%d %s", n, kv.leases.Load().Instance()), nil
		},
		"kv.Who": func(context.Context, *services.Session, []byte) ([]byte, error) {
			return []byte(kv.leases.Load().Instance()), nil
		},
	}
	srv := newService(t, "kv", h, y, func(o *services.Options) { o.Kind = services.KindStateful })
	kv.leases.Store(placement.NewLeases(rdb, kvPrefix, "kv", srv.InstanceID(), kvLeaseTTL))
	kv.testServer = start(t, srv, y)
	return kv
}

// newMiniredis returns a miniredis and a client of it.
func newMiniredis(t testing.TB) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return mr, rdb
}

// parseIncr splits a kv.Incr reply.
func parseIncr(t testing.TB, b []byte) (int, string) {
	t.Helper()
	n, id, ok := strings.Cut(string(b), " ")
	if !ok {
		t.Fatalf("kv.Incr reply %q", b)
	}
	v, err := strconv.Atoi(n)
	if err != nil {
		t.Fatalf("kv.Incr reply %q: %v", b, err)
	}
	return v, id
}
