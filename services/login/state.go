package login

import (
	"context"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Session state: what a broker keeps of a client session beyond its login
// (its bindings, such as room = r42, and the push topics services
// subscribed it to), stored with the session in Redis (sessions.go) so that
// any broker can restore it when the client resumes the session there
// (edge.Hello with the token, after its broker died or drained). The
// broker saves it with login.SaveSessionState whenever it changes, and
// gets it back from login.Validate with a resume_holder. Both are
// internal: only a broker may make them (requireBroker).

// maxHolderLen bounds a state holder (a broker's instance id): yellow's
// bound on instance ids.
const maxHolderLen = 128

// maxStateUserID bounds the user id of a save: the broker's own bound on
// the user ids it binds.
const maxStateUserID = 128

// requireBroker refuses a request that did not come from a broker itself:
// one carrying a client session (a client's call through a broker), or,
// over TLS, from a process without a broker certificate. On a plain link
// (loopback development) a request with no client session is accepted.
func requireBroker(sess *services.Session) error {
	if sess.ID() != "" {
		return wire.Errorf(wire.CodeUnauthenticated, "an internal request: clients may not make it")
	}
	if id, ok := sess.Caller(); ok && id.Role != pki.RoleBroker {
		return wire.Errorf(wire.CodeUnauthenticated, "an internal request: %s may not make it (brokers may)", id)
	}
	return nil
}

// SaveSessionState stores a login session's state for a resume on another
// broker (internal: brokers only).
func (a api) SaveSessionState(ctx context.Context, sess *services.Session, req *loginpb.SaveSessionStateRequest) (*loginpb.SaveSessionStateReply, error) {
	if err := requireBroker(sess); err != nil {
		a.s.count("save_session_state", err)
		return nil, err
	}
	result, err := a.s.SaveSessionState(ctx, req)
	if err != nil {
		return nil, err
	}
	return &loginpb.SaveSessionStateReply{Result_: result}, nil
}

// SaveSessionState checks and stores req's state and returns the result:
// loginpb.SAVE_STATE_SAVED, _GONE (the session is not live, or another
// user's) or _STALE (another broker holds the state, or a later save was
// stored). A request over the bounds is bad_request.
func (s *Service) SaveSessionState(ctx context.Context, req *loginpb.SaveSessionStateRequest) (result string, err error) {
	defer func() { err = s.finish(ctx, "save_session_state", err) }()
	if err := checkStateRequest(req); err != nil {
		return "", err
	}
	n, err := s.saveState(ctx, req.GetSessionID(), req.GetUserID(), req.GetHolder(), req.GetSeq(), req.GetState())
	if err != nil {
		return "", err
	}
	switch n {
	case saveStateSaved:
		return loginpb.SAVE_STATE_SAVED, nil
	case saveStateStale:
		return loginpb.SAVE_STATE_STALE, nil
	}
	return loginpb.SAVE_STATE_GONE, nil
}

// checkStateRequest checks a SaveSessionStateRequest: a well-formed
// session id, a user id and holder within bounds, a positive seq, and a
// state that decodes as a SessionState of that user within the
// MAX_SESSION_STATE_ bounds.
func checkStateRequest(req *loginpb.SaveSessionStateRequest) error {
	bad := func(format string, args ...any) error {
		return wire.Errorf(wire.CodeBadRequest, "%s: "+format, append([]any{loginrpc.MethodSaveSessionState}, args...)...)
	}
	switch {
	case !wellFormedToken(req.GetSessionID()): // a session id has a token's shape
		return bad("session_id is not a session id")
	case req.GetUserID() == "" || len(req.GetUserID()) > maxStateUserID:
		return bad("user_id must be 1..%d bytes", maxStateUserID)
	case req.GetHolder() == "" || len(req.GetHolder()) > maxHolderLen:
		return bad("holder must be 1..%d bytes", maxHolderLen)
	case req.GetSeq() <= 0:
		return bad("seq must be positive")
	case len(req.GetState()) > loginpb.MAX_SESSION_STATE_BYTES:
		return bad("state of %d bytes exceeds %d", len(req.GetState()), loginpb.MAX_SESSION_STATE_BYTES)
	}
	var st loginpb.SessionState
	if err := thriftx.Unmarshal(req.GetState(), &st); err != nil {
		return bad("state does not decode: %v", err)
	}
	switch {
	case st.GetUserID() != req.GetUserID():
		return bad("state is another user's")
	case len(st.GetBindings()) > loginpb.MAX_SESSION_STATE_BINDINGS:
		return bad("state has %d bindings, limit %d", len(st.GetBindings()), loginpb.MAX_SESSION_STATE_BINDINGS)
	case len(st.GetTopics()) > loginpb.MAX_SESSION_STATE_TOPICS:
		return bad("state has %d topics, limit %d", len(st.GetTopics()), loginpb.MAX_SESSION_STATE_TOPICS)
	}
	return nil
}

// Resume is Validate for a broker resuming the session of token: it also
// makes holder (the broker's instance id) the holder of the session's
// state and returns the state (nil when none was saved).
func (s *Service) Resume(ctx context.Context, token, holder string) (sess Session, state []byte, ok bool, err error) {
	defer func() { err = s.validated(ctx, ok, err) }()
	switch {
	case token == "":
		return Session{}, nil, false, wire.Errorf(wire.CodeBadRequest, "session_token is required")
	case holder == "" || len(holder) > maxHolderLen:
		return Session{}, nil, false, wire.Errorf(wire.CodeBadRequest, "resume_holder must be 1..%d bytes", maxHolderLen)
	}
	return s.resumeSession(ctx, token, holder)
}
