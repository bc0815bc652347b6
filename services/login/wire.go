package login

import (
	"context"
	"log/slog"
	"math"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// The login service's methods are service Login in idl/login.thrift: the
// constants loginrpc.MethodRegister, MethodLogin, MethodValidate,
// MethodLogout, MethodLogoutAll and MethodLookupUser.

// LookupServices are the services that may call login.LookupUser (an
// internal method; admins may too): the friends service finds the users
// its players name.
var LookupServices = []string{"friends"}

// UserBinding is the session binding a successful login.Login sets to the
// user id: the broker authenticates the connection by it.
const UserBinding = "user"

// Handlers returns the service's wire handlers, keyed by method.
func (s *Service) Handlers() map[string]services.HandlerFunc {
	return loginrpc.Handlers[*services.Session](api{s: s})
}

// api serves service Login (loginrpc.Server) by calling s: the generated
// Handlers decode each request, api's methods call s and shape the reply.
type api struct{ s *Service }

// NewServer returns a services.Server serving s's handlers, and makes its
// PUB socket (opts.PubBind) s's publisher; an empty opts.Name becomes
// Name.
func NewServer(opts services.Options, s *Service, log *slog.Logger) (*services.Server, error) {
	if opts.Name == "" {
		opts.Name = Name
	}
	srv, err := services.NewServer(opts, s.Handlers(), log)
	if err != nil {
		return nil, err
	}
	s.attach(srv)
	return srv, nil
}

// attach makes srv's PUB socket, if it has one, s's publisher.
func (s *Service) attach(srv *services.Server) {
	if srv.Options().PubBind != "" {
		s.SetPublisher(srv.Publish)
	}
}

// Register creates an account; the caller's address counts toward the
// registration throttle.
func (a api) Register(ctx context.Context, sess *services.Session, req *loginpb.RegisterRequest) (*loginpb.RegisterReply, error) {
	acct, err := a.s.Register(ctx, req.Username, req.Password, req.GetNickname(), sess.RemoteAddr())
	if err != nil {
		return nil, err
	}
	return &loginpb.RegisterReply{UserID: acct.ID, Nickname: acct.Nickname}, nil
}

// Login creates a session and binds the user on the caller's session.
func (a api) Login(ctx context.Context, sess *services.Session, req *loginpb.LoginRequest) (*loginpb.LoginReply, error) {
	ls, err := a.s.Login(ctx, req.Username, req.Password, sess.RemoteAddr())
	if err != nil {
		return nil, err
	}
	sess.BindUser(ls.UserID, ls.ID(), ls.Expires)
	return &loginpb.LoginReply{UserID: ls.UserID, Nickname: ls.Nickname, SessionToken: ls.Token, ExpiresUnix: ls.Expires.Unix()}, nil
}

// Validate says whether a session token is live. With a resume_holder
// (a broker resuming the session: internal, see state.go) it also makes
// that broker the holder of the session's state and returns the state.
func (a api) Validate(ctx context.Context, sess *services.Session, req *loginpb.ValidateRequest) (*loginpb.ValidateReply, error) {
	var (
		ls    Session
		state []byte
		ok    bool
		err   error
	)
	if req.IsSetResumeHolder() {
		if err := requireBroker(sess); err != nil {
			a.s.count("validate", err)
			return nil, err
		}
		ls, state, ok, err = a.s.Resume(ctx, req.SessionToken, req.GetResumeHolder())
	} else {
		ls, ok, err = a.s.Validate(ctx, req.SessionToken)
	}
	if err != nil {
		return nil, err
	}
	if !ok {
		return &loginpb.ValidateReply{}, nil
	}
	exp := ls.Expires.Unix()
	return &loginpb.ValidateReply{Valid: true, UserID: ls.UserID, Nickname: ls.Nickname, ExpiresUnix: &exp, State: state}, nil
}

// Logout ends a session; the caller's own connection is logged out too
// when it logged in with that token (the broker knows which it did).
func (a api) Logout(ctx context.Context, sess *services.Session, req *loginpb.LogoutRequest) (*loginpb.LogoutReply, error) {
	uid, err := a.s.logout(ctx, req.GetSessionToken())
	if err != nil {
		return nil, err
	}
	if uid != "" && uid == sess.UserID() {
		sess.UnbindUser(wire.SessionID(req.GetSessionToken()))
	}
	return &loginpb.LogoutReply{}, nil
}

// LogoutAll ends every session of the caller's user and logs the caller's
// connection out.
func (a api) LogoutAll(ctx context.Context, sess *services.Session, _ *loginpb.LogoutAllRequest) (*loginpb.LogoutAllReply, error) {
	uid := sess.UserID()
	if uid == "" {
		return nil, wire.Errorf(wire.CodeUnauthenticated, "%s requires login", loginrpc.MethodLogoutAll)
	}
	n, err := a.s.LogoutAll(ctx, uid)
	if err != nil {
		return nil, err
	}
	sess.Unbind(UserBinding)
	return &loginpb.LogoutAllReply{Sessions: int32(min(n, math.MaxInt32))}, nil
}

// LookupUser finds an account by username (ignoring case) or user id, for
// the services of LookupServices: found is false when none matches.
func (a api) LookupUser(ctx context.Context, sess *services.Session, req *loginpb.LookupUserRequest) (*loginpb.LookupUserReply, error) {
	if err := sess.RequireService(LookupServices...); err != nil {
		return nil, err
	}
	acct, ok, err := a.s.LookupUser(ctx, req.GetUsername(), req.GetUserID())
	if err != nil || !ok {
		return &loginpb.LookupUserReply{}, err
	}
	return &loginpb.LookupUserReply{Found: true, UserID: acct.ID, Username: acct.Username, Nickname: acct.Nickname}, nil
}
