package login

import (
	"context"
	"log/slog"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// The login service's methods; requests and replies are the structs of
// idl/login.thrift.
const (
	// MethodRegister creates an account: RegisterRequest -> RegisterReply.
	MethodRegister = "login.Register"
	// MethodLogin checks a username and password and creates a session:
	// LoginRequest -> LoginReply. On success the reply binds "user" to the
	// user id on the caller's session, which logs the broker connection in.
	MethodLogin = "login.Login"
	// MethodValidate says whether a session token is live:
	// ValidateRequest -> ValidateReply. The broker calls it to resume a
	// session in edge.Hello.
	MethodValidate = "login.Validate"
	// MethodLogout ends the session of a token: LogoutRequest ->
	// LogoutReply.
	MethodLogout = "login.Logout"
)

// UserBinding is the session binding a successful login.Login sets to the
// user id: the broker authenticates the connection by it.
const UserBinding = "user"

// Handlers returns the service's wire handlers, keyed by method.
func (s *Service) Handlers() map[string]services.HandlerFunc {
	return map[string]services.HandlerFunc{
		MethodRegister: wire.Typed(loginpb.NewRegisterRequest, s.handleRegister),
		MethodLogin:    wire.Typed(loginpb.NewLoginRequest, s.handleLogin),
		MethodValidate: wire.Typed(loginpb.NewValidateRequest, s.handleValidate),
		MethodLogout:   wire.Typed(loginpb.NewLogoutRequest, s.handleLogout),
	}
}

// NewServer returns a services.Server serving s's handlers; an empty
// opts.Name becomes Name.
func NewServer(opts services.Options, s *Service, log *slog.Logger) (*services.Server, error) {
	if opts.Name == "" {
		opts.Name = Name
	}
	return services.NewServer(opts, s.Handlers(), log)
}

func (s *Service) handleRegister(ctx context.Context, sess *services.Session, req *loginpb.RegisterRequest) (*loginpb.RegisterReply, error) {
	a, err := s.Register(ctx, req.Username, req.Password, req.GetNickname(), sess.RemoteAddr())
	if err != nil {
		return nil, err
	}
	return &loginpb.RegisterReply{UserID: a.ID, Nickname: a.Nickname}, nil
}

func (s *Service) handleLogin(ctx context.Context, sess *services.Session, req *loginpb.LoginRequest) (*loginpb.LoginReply, error) {
	ls, err := s.Login(ctx, req.Username, req.Password, sess.RemoteAddr())
	if err != nil {
		return nil, err
	}
	sess.Bind(UserBinding, ls.UserID)
	return &loginpb.LoginReply{UserID: ls.UserID, Nickname: ls.Nickname, SessionToken: ls.Token, ExpiresUnix: ls.Expires.Unix()}, nil
}

func (s *Service) handleValidate(ctx context.Context, _ *services.Session, req *loginpb.ValidateRequest) (*loginpb.ValidateReply, error) {
	ls, ok, err := s.Validate(ctx, req.SessionToken)
	if err != nil {
		return nil, err
	}
	if !ok {
		return &loginpb.ValidateReply{}, nil
	}
	return &loginpb.ValidateReply{Valid: true, UserID: ls.UserID, Nickname: ls.Nickname}, nil
}

func (s *Service) handleLogout(ctx context.Context, sess *services.Session, req *loginpb.LogoutRequest) (*loginpb.LogoutReply, error) {
	// Whose session is it? If the caller's, its connection is logged out
	// too (the broker drops the user binding).
	ls, ok, _ := s.Validate(ctx, req.GetSessionToken())
	if err := s.Logout(ctx, req.GetSessionToken()); err != nil {
		return nil, err
	}
	if ok && ls.UserID != "" && ls.UserID == sess.UserID() {
		sess.Unbind(UserBinding)
	}
	return &loginpb.LogoutReply{}, nil
}
