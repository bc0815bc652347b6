package login

import (
	"context"
	"log/slog"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/services"
)

// The login service's methods are service Login in idl/login.thrift: the
// constants loginrpc.MethodRegister, MethodLogin, MethodValidate and
// MethodLogout.

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

// NewServer returns a services.Server serving s's handlers; an empty
// opts.Name becomes Name.
func NewServer(opts services.Options, s *Service, log *slog.Logger) (*services.Server, error) {
	if opts.Name == "" {
		opts.Name = Name
	}
	return services.NewServer(opts, s.Handlers(), log)
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
	sess.Bind(UserBinding, ls.UserID)
	return &loginpb.LoginReply{UserID: ls.UserID, Nickname: ls.Nickname, SessionToken: ls.Token, ExpiresUnix: ls.Expires.Unix()}, nil
}

// Validate says whether a session token is live.
func (a api) Validate(ctx context.Context, _ *services.Session, req *loginpb.ValidateRequest) (*loginpb.ValidateReply, error) {
	ls, ok, err := a.s.Validate(ctx, req.SessionToken)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &loginpb.ValidateReply{}, nil
	}
	return &loginpb.ValidateReply{Valid: true, UserID: ls.UserID, Nickname: ls.Nickname}, nil
}

// Logout ends a session; the caller's own logs its connection out too.
func (a api) Logout(ctx context.Context, sess *services.Session, req *loginpb.LogoutRequest) (*loginpb.LogoutReply, error) {
	// Whose session is it? If the caller's, its connection is logged out
	// too (the broker drops the user binding).
	ls, ok, _ := a.s.Validate(ctx, req.GetSessionToken())
	if err := a.s.Logout(ctx, req.GetSessionToken()); err != nil {
		return nil, err
	}
	if ok && ls.UserID != "" && ls.UserID == sess.UserID() {
		sess.Unbind(UserBinding)
	}
	return &loginpb.LogoutReply{}, nil
}
