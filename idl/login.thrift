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
}

struct ValidateReply {
  1: bool valid
  2: string user_id
  3: string nickname
}

// LogoutRequest ends the session of session_token (idempotent). The token
// is required (empty = bad_request): the service does not know which token
// a connection logged in with. The connection itself stays authenticated
// until it closes.
struct LogoutRequest {
  1: optional string session_token
}

struct LogoutReply {
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
}
