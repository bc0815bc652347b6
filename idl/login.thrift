// The login service: accounts and sessions (services/login).
// Errors are wire errors "<code>: <text>": bad_request (input breaks a rule),
// conflict (username taken), unauthenticated ("wrong username or password",
// the same for an unknown user), rate_limited (throttled; the text says
// when to try again).
namespace go login

// RegisterRequest creates an account: username 3..32 of [a-zA-Z0-9_.-],
// unique ignoring case; password 8..128 bytes; nickname 1..32 printable
// characters, the username when absent (limits configurable).
struct RegisterRequest {
  1: string username
  2: string password
  3: optional string nickname
}

struct RegisterReply {
  1: string user_id
  2: string nickname
}

// LoginRequest: on success the reply binds "user" = user_id on the
// caller's session, which logs the broker connection in.
struct LoginRequest {
  1: string username
  2: string password
}

struct LoginReply {
  1: string user_id
  2: string nickname
  3: string session_token
  // expires_unix is when the session token expires.
  4: i64 expires_unix
}

// ValidateRequest asks whether a session token is live; it does not extend
// the session. An unknown, expired or logged-out token is valid = false.
struct ValidateRequest {
  1: string session_token
  // resume_holder, set only by a broker resuming the session in
  // edge.Hello (its instance id; an internal field: a request carrying it
  // must come from a broker, with no client session), makes that broker
  // the holder of the session's state (SaveSessionState) and returns the
  // state in the reply.
  2: optional string resume_holder
}

struct ValidateReply {
  1: bool valid
  2: string user_id
  3: string nickname
  // expires_unix is when the session token expires (Unix seconds), when
  // valid; the broker ends a resumed connection's login then.
  4: optional i64 expires_unix
  // state is the session's state as a broker last saved it (a SessionState
  // in Thrift compact), returned only to a resume_holder, when there is
  // one.
  5: optional binary state
}

// Bounds of a session state (SaveSessionState), checked by the login
// service before it stores one and by the broker when it restores one.
// MAX_SESSION_STATE_BYTES bounds the encoded state (16 KiB: 32 bindings
// and 64 topics of a few dozen bytes each fit many times over);
// MAX_SESSION_STATE_BINDINGS and MAX_SESSION_STATE_TOPICS are the broker's
// own bounds on one session's bindings and push topics.
const i32 MAX_SESSION_STATE_BYTES = 16384
const i32 MAX_SESSION_STATE_BINDINGS = 32
const i32 MAX_SESSION_STATE_TOPICS = 64

// SessionState is what a broker keeps of a client session beyond its
// login, so that another broker can restore it when the client resumes
// the session there: the stateful keys bound (room = r42) and the push
// topics a service subscribed the session to, beyond those of the user
// and of the bindings (which follow from them).
struct SessionState {
  // user_id is the user the state belongs to; a broker restores it only
  // on a connection resumed as that user.
  1: string user_id
  2: map<string, string> bindings
  3: list<string> topics
}

// SaveSessionStateRequest stores the state of a login session, for a
// resume on any broker (internal: brokers only). The state expires with
// the session. Saves are fenced: a save is stored only when holder is the
// session's state holder (the broker that last resumed it; any broker
// before the first resume) and seq is above the last stored seq.
struct SaveSessionStateRequest {
  // session_id is the login session's id: wire.SessionID of its token.
  1: string session_id
  2: string user_id
  // holder is the saving broker's instance id.
  3: string holder
  // seq orders one holder's saves (increasing).
  4: i64 seq
  // state is a SessionState in Thrift compact, at most
  // MAX_SESSION_STATE_BYTES.
  5: binary state
}

// Results of SaveSessionState.
const string SAVE_STATE_SAVED = "saved"
// SAVE_STATE_GONE: the session is not live (logged out, expired) or is
// another user's.
const string SAVE_STATE_GONE = "gone"
// SAVE_STATE_STALE: another broker holds the state now (the session was
// resumed there), or a later save was stored already.
const string SAVE_STATE_STALE = "stale"

struct SaveSessionStateReply {
  // result is one of the SAVE_STATE_ constants.
  1: string result
}

// LogoutRequest ends the session of session_token (idempotent). The token
// is required (empty = bad_request): the request names the session to end,
// which need not be the caller's. Every connection authenticated with the
// token, on every broker, is logged out (a Revoked event), the caller's
// own at once by the reply when it logged in with that token.
struct LogoutRequest {
  1: optional string session_token
}

struct LogoutReply {
}

// LogoutAllRequest ends every session of the caller's user ("log out
// everywhere"): every token, and every connection authenticated with one,
// the caller's included.
struct LogoutAllRequest {
}

struct LogoutAllReply {
  // sessions is the number of session tokens ended.
  1: i32 sessions
}

// Revoked is the login service's internal event telling the brokers that
// sessions ended before their expiry: published on its PUB socket on the
// topic "_noon/revoked" (wire.TopicRevoked) with type "login.Revoked".
// Brokers take it only from the login service's instances and never push
// it to a client; they log out every connection authenticated with one of
// the sessions.
struct Revoked {
  1: string user_id
  // sessions are the ended sessions' ids: the SHA-256 of each token,
  // unpadded base64url (wire.SessionID); never a token.
  2: list<string> sessions
  // reason is why: "logout" or "logout_all" (edge.thrift's LOGGED_OUT_*).
  3: string reason
}

// LookupUserRequest names one account, by username (ignoring case) or by
// user id; exactly one of the two. An internal method: only the services
// that need a user directory (friends) and admins may call it.
struct LookupUserRequest {
  1: optional string username
  2: optional string user_id
}

struct LookupUserReply {
  // found is false when no account matches (the other fields are empty).
  1: bool found
  2: string user_id
  3: string username
  4: string nickname
}

// Login is the login service's API.
service Login {
  // Register creates an account.
  RegisterReply Register(1: RegisterRequest req)
  // Login checks a username and password and creates a session; on
  // success the reply binds "user" = user_id on the caller's session.
  LoginReply Login(1: LoginRequest req)
  // Validate says whether a session token is live. The broker calls it to
  // resume a session in edge.Hello.
  ValidateReply Validate(1: ValidateRequest req)
  // Logout ends the session of a token.
  LogoutReply Logout(1: LogoutRequest req)
  // LogoutAll ends every session of the caller's user.
  LogoutAllReply LogoutAll(1: LogoutAllRequest req)
  // LookupUser finds an account by username or id (internal: friends).
  LookupUserReply LookupUser(1: LookupUserRequest req)
  // SaveSessionState stores a login session's state for resuming it on
  // another broker (internal: brokers only).
  SaveSessionStateReply SaveSessionState(1: SaveSessionStateRequest req)
}
