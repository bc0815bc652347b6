package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	edgepb "github.com/noonhq/noon/idl/gen/edge"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// ErrBadCredentials is the error of every failed login that is not
// throttled: an unknown username and a wrong password get the same text, and
// take as long (an unknown username is checked against a dummy hash), so
// that logging in reveals nothing about which usernames exist.
var ErrBadCredentials = wire.NewError(wire.CodeUnauthenticated, "wrong username or password")

// Service is the login service: accounts in a Store, sessions and throttle
// counters in Redis. Its methods are what the wire handlers (Handlers) and
// the HTTP API (HTTPHandler) call; they return *wire.Error for anything
// a client caused, and plain errors for failures of Redis or the store. It
// is safe for concurrent use.
type Service struct {
	opts  Options
	store Store
	rdb   redis.UniversalClient
	log   *slog.Logger
	hash  *hasher
	// dummyHash is verified for unknown usernames, so that they cost as
	// much as a wrong password.
	dummyHash string
	now       func() time.Time
	m         serviceMetrics
	// pub publishes the service's events (Revoked); nil until SetPublisher.
	pub atomic.Pointer[Publisher]
	// bans says whether a player is banned; nil checks nothing (set
	// before serving, see SetBanChecker).
	bans BanChecker
}

// Publisher publishes an event of eventType with payload on topic: a
// services.Server's Publish.
type Publisher func(topic, eventType string, payload []byte) error

// serviceMetrics are the service's metrics.
type serviceMetrics struct {
	requests metrics.CounterVec   // by method and result (ok or wire code)
	hashes   metrics.HistogramVec // argon2id durations
	// banChecks counts ban checks by result (ok, banned, error).
	banChecks metrics.CounterVec
	// throttled counts attempts refused rate_limited, by reason;
	// shed those refused overloaded; queue is the hash queue's length.
	throttled metrics.CounterVec
	shed      metrics.Counter
	queue     metrics.Gauge
}

// New returns the login service over store and rdb (a single Redis,
// Sentinel or Cluster client; miniredis in `noon dev`). It validates opts and
// computes one hash to check the argon2 parameters. It starts nothing: serve
// Handlers with a services.Server (NewServer) and HTTPHandler with an
// HTTPServer.
func New(opts Options, store Store, rdb redis.UniversalClient, log *slog.Logger) (*Service, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if store == nil || rdb == nil {
		return nil, errors.New("login: New needs a store and a Redis client")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sink := opts.Metrics
	if sink == nil {
		sink = metrics.Nop()
	}
	s := &Service{
		opts:  opts,
		store: store,
		rdb:   rdb,
		log:   log,
		hash:  newHasher(opts.Argon2, opts.Throttle.ShedQueue, opts.Throttle.MaxQueue),
		now:   time.Now,
		m: serviceMetrics{
			requests: sink.Counter("login_requests_total", "Login service calls (wire and HTTP), by method and result (ok or the wire error code).", "method", "result"),
			hashes: sink.Histogram("login_hash_seconds", "Time to compute one argon2id hash.",
				[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}),
			banChecks: sink.Counter("login_ban_checks_total", "Ban checks of logins with the right password, by result (ok, banned, error: let through).", "result"),
			throttled: sink.Counter("login_throttled_total", "Logins and registrations refused rate_limited, by throttle (account_address, account, address).", "reason"),
			shed:      sink.Counter("login_shed_total", "Logins and registrations refused overloaded because the password-hash queue was long.").With(),
			queue:     sink.Gauge("login_hash_queue", "Password checks waiting for a hash slot.").With(),
		},
	}
	if opts.Clock != nil {
		s.now = opts.Clock
	}
	hist := s.m.hashes.With()
	s.hash.observe = func(d time.Duration) { hist.Observe(d.Seconds()) }
	s.hash.queued = func(n int) { s.m.queue.Set(float64(n)) }
	var pw [16]byte
	_, _ = rand.Read(pw[:])
	var err error
	if s.dummyHash, err = s.hash.Hash(context.Background(), base64.RawURLEncoding.EncodeToString(pw[:])); err != nil {
		return nil, fmt.Errorf("login: argon2: %w", err)
	}
	opts.warnings(log)
	return s, nil
}

// Options returns the service's options.
func (s *Service) Options() Options { return s.opts }

// HashLoad returns the password hashes running and the password checks
// waiting for a hash slot (the latter is the login_hash_queue gauge). A
// request whose caller went away keeps its place until its deadline:
// noonbench waits for 0, 0 between runs, so that one run's leftovers do
// not slow the next.
func (s *Service) HashLoad() (running, waiting int) { return s.hash.load() }

// SetPublisher sets where the service publishes its Revoked events (the
// PUB socket of its services.Server; NewServer and the module set it).
// Without one, logouts end sessions in Redis but live connections learn it
// only at their session's expiry.
func (s *Service) SetPublisher(p Publisher) { s.pub.Store(&p) }

// count records the result of a call of method.
func (s *Service) count(method string, err error) {
	result := "ok"
	if err != nil {
		result = wire.CodeOf(err)
	}
	s.m.requests.With(method, result).Inc()
}

// finish ends a call of method: it maps a failure of Redis or the store to
// what a client is answered (unavailable for an outage, never internal:
// services.StoreError), counts the result and returns the error.
func (s *Service) finish(ctx context.Context, method string, err error) error {
	err = services.StoreError(ctx, Name, err)
	s.count(method, err)
	return err
}

// validated ends a Validate or a Resume as finish does, counting a live
// session as ok and any other as invalid.
func (s *Service) validated(ctx context.Context, ok bool, err error) error {
	err = services.StoreError(ctx, Name, err)
	switch {
	case err != nil:
		s.count("validate", err)
	case ok:
		s.m.requests.With("validate", "ok").Inc()
	default:
		s.m.requests.With("validate", "invalid").Inc()
	}
	return err
}

// hashErr converts a hasher's failure: the queue too long, or ctx ended
// while waiting for a slot or hashing.
func (s *Service) hashErr(err error) error {
	switch {
	case errors.Is(err, errShed):
		s.m.shed.Inc()
		return wire.Errorf(wire.CodeOverloaded, "too many logins in progress; retry in a few seconds")
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "deadline passed waiting to check the password")
	case errors.Is(err, context.Canceled):
		return wire.Errorf(wire.CodeUnavailable, "canceled waiting to check the password")
	}
	return err
}

// Register creates an account. username must follow the username rules
// (Options.UsernameMin..UsernameMax of [a-zA-Z0-9_.-]) and not be taken,
// ignoring case (else conflict); password the password rules; nickname
// ("" = the username) the nickname rules. addr is the caller's address
// ("" for none), throttled with logins by Options.Throttle.PerAddress.
func (s *Service) Register(ctx context.Context, username, password, nickname, addr string) (a Account, err error) {
	defer func() { err = s.finish(ctx, "register", err) }()
	if err := s.throttle(ctx, s.addressKey(addr), s.opts.Throttle.PerAddress, modeCount, reasonAddress); err != nil {
		return Account{}, err
	}
	if err := s.opts.checkUsername(username); err != nil {
		return Account{}, err
	}
	if err := s.opts.checkPassword(password); err != nil {
		return Account{}, err
	}
	if nickname == "" {
		nickname = username
	}
	if err := s.opts.checkNickname(nickname); err != nil {
		return Account{}, err
	}
	taken := wire.Errorf(wire.CodeConflict, "username %q is taken", username)
	// Look first, so that a taken name costs no hash; Create still decides.
	switch _, err := s.store.ByUsername(ctx, username); {
	case err == nil:
		return Account{}, taken
	case !errors.Is(err, ErrNotFound):
		return Account{}, err
	}
	h, err := s.hash.Hash(ctx, password)
	if err != nil {
		return Account{}, s.hashErr(err)
	}
	a = Account{ID: NewAccountID(), Username: username, Nickname: nickname, PasswordHash: h, CreatedAt: s.now()}
	switch err := s.store.Create(ctx, a); {
	case errors.Is(err, ErrExists):
		return Account{}, taken
	case err != nil:
		return Account{}, err
	}
	s.log.Info("login: registered", "user_id", a.ID, "username", a.Username)
	return a, nil
}

// LookupUser returns the account named by username (ignoring case) or by
// userID; exactly one must be set (else bad_request). ok is false when no
// account matches; err is for the store failing.
func (s *Service) LookupUser(ctx context.Context, username, userID string) (a Account, ok bool, err error) {
	defer func() { err = s.finish(ctx, "lookup_user", err) }()
	switch {
	case (username == "") == (userID == ""):
		return Account{}, false, wire.Errorf(wire.CodeBadRequest, "name the user by username or by user_id, not both or neither")
	case username != "":
		a, err = s.store.ByUsername(ctx, username)
	default:
		a, err = s.store.ByID(ctx, userID)
	}
	if errors.Is(err, ErrNotFound) {
		return Account{}, false, nil
	}
	if err != nil {
		return Account{}, false, err
	}
	return a, true, nil
}

// Login checks username (ignoring case) and password and creates a
// session. A wrong password and an unknown username both fail with
// ErrBadCredentials; a failed login changes nothing but the throttle
// counters. Throttling (rate_limited, with the time to retry; see
// ThrottleOptions) comes first: the source address addr ("" = none, a
// call from another service) and the (account, address) pair, and, unless
// the account logged in from addr's prefix before, the account. Then the
// password check queues for a hash slot, a known prefix ahead of the
// others, which are shed (overloaded) when the queue is long.
func (s *Service) Login(ctx context.Context, username, password, addr string) (sess Session, err error) {
	defer func() { err = s.finish(ctx, "login", err) }()
	if username == "" || password == "" {
		return Session{}, wire.Errorf(wire.CodeBadRequest, "username and password are required")
	}
	if len(username) > MaxUsernameLen {
		return Session{}, wire.Errorf(wire.CodeBadRequest, "username is longer than %d bytes", MaxUsernameLen)
	}
	if len(password) > s.opts.PasswordMax {
		return Session{}, wire.Errorf(wire.CodeBadRequest, "password is longer than %d bytes", s.opts.PasswordMax)
	}
	t := s.opts.Throttle
	prefix := knownPrefix(addr)
	known, err := s.known(ctx, username, prefix)
	if err != nil {
		return Session{}, err
	}
	// A login from a known prefix checks its password first.
	prio := prioLow
	if known {
		prio = prioHigh
	}
	addrKey, acctKey, pairKey := s.addressKey(addr), s.accountKey(username), s.pairKey(username, addr)
	if err := s.throttle(ctx, addrKey, t.PerAddress, modeCheck, reasonAddress); err != nil {
		return Session{}, err
	}
	if !known {
		if err := s.throttle(ctx, acctKey, t.PerAccount, modeCheck, reasonAccount); err != nil {
			return Session{}, err
		}
	}
	// The attempt counts as a failure of its pair until it succeeds:
	// parallel guesses from one address cannot all pass the check before
	// any of them is counted.
	if err := s.throttle(ctx, pairKey, t.PerAccountAddress, modeCount, reasonPair); err != nil {
		return Session{}, err
	}
	// An attempt that ends without a verdict on its password (the store
	// or Redis down, the hash queue shed, the deadline) is no failure of
	// its pair: an outage must not slow the owner afterwards.
	defer func() {
		if err != nil && !errors.Is(err, ErrBadCredentials) {
			if uerr := s.throttle(context.WithoutCancel(ctx), pairKey, t.PerAccountAddress, modeUndo, reasonPair); uerr != nil {
				s.log.Warn("login: taking back a throttle count", "err", uerr)
			}
		}
	}()
	a, err := s.store.ByUsername(ctx, username)
	hash := a.PasswordHash
	switch {
	case errors.Is(err, ErrNotFound):
		hash = s.dummyHash
	case err != nil:
		return Session{}, err
	}
	ok, verr := s.hash.Verify(ctx, prio, password, hash)
	switch {
	case verr != nil && errors.Is(verr, errBadHash):
		return Session{}, fmt.Errorf("login: account %s: %w", a.ID, verr)
	case verr != nil:
		return Session{}, s.hashErr(verr)
	case !ok || err != nil: // err: ErrNotFound
		if err := s.throttle(ctx, addrKey, t.PerAddress, modeFail, reasonAddress); err != nil {
			return Session{}, err
		}
		if !known {
			if err := s.throttle(ctx, acctKey, t.PerAccount, modeFail, reasonAccount); err != nil {
				return Session{}, err
			}
		}
		return Session{}, ErrBadCredentials
	}
	if err := s.checkBan(ctx, a.ID); err != nil {
		return Session{}, err
	}
	var reset []string
	if pairKey != "" && t.PerAccountAddress.Max > 0 {
		reset = append(reset, pairKey)
	}
	sess, err = s.createSession(ctx, a, reset...)
	if err != nil {
		return Session{}, err
	}
	if err := s.remember(ctx, username, prefix); err != nil {
		s.log.Warn("login: remembering the address prefix of a login", "user_id", a.ID, "err", err)
	}
	return sess, nil
}

// Validate returns the session of token and whether it is live. It
// refreshes nothing: a session ends SessionTTL after its login whatever
// Validate is asked. An empty token is bad_request; any other unknown,
// expired, logged-out or malformed token is simply not valid.
func (s *Service) Validate(ctx context.Context, token string) (sess Session, ok bool, err error) {
	defer func() { err = s.validated(ctx, ok, err) }()
	if token == "" {
		return Session{}, false, wire.Errorf(wire.CodeBadRequest, "session_token is required")
	}
	return s.lookupSession(ctx, token)
}

// Logout ends the session of token. It is idempotent: logging out an
// unknown, expired or already logged-out token succeeds. An empty token is
// bad_request. Every connection authenticated with the token, on every
// broker, is logged out (a Revoked event).
func (s *Service) Logout(ctx context.Context, token string) error {
	_, err := s.logout(ctx, token)
	return err
}

// logout is Logout, returning the user id of the session it ended ("" if
// none).
func (s *Service) logout(ctx context.Context, token string) (uid string, err error) {
	defer func() { err = s.finish(ctx, "logout", err) }()
	if token == "" {
		return "", wire.Errorf(wire.CodeBadRequest, "session_token is required")
	}
	uid, err = s.deleteSession(ctx, token)
	if err != nil || uid == "" {
		return "", err
	}
	s.revoke(uid, []string{wire.SessionID(token)}, edgepb.LOGGED_OUT_LOGOUT)
	return uid, nil
}

// LogoutAll ends every session of userID ("log out everywhere") and
// returns how many were live. Every connection authenticated with one of
// them, on every broker, is logged out (Revoked events).
func (s *Service) LogoutAll(ctx context.Context, userID string) (n int, err error) {
	defer func() { err = s.finish(ctx, "logout_all", err) }()
	if userID == "" {
		return 0, wire.Errorf(wire.CodeBadRequest, "user id is required")
	}
	n, err = s.deleteUserSessions(ctx, userID, func(ids []string) {
		s.revoke(userID, ids, edgepb.LOGGED_OUT_LOGOUT_ALL)
	})
	if n > 0 {
		s.log.Info("login: logged out everywhere", "user_id", userID, "sessions", n)
	}
	return n, err
}

// revoke publishes that the sessions ids of userID ended, for the brokers
// to log their connections out. The topic is wire.TopicRevoked, one every
// broker subscribes to on every login instance, rather than user/<id>:
// a broker subscribes to user/<id> only for connections that asked for
// pushes, and only once they log in, while it follows TopicRevoked from
// the moment it sees the instance, for every connection. Publishing is
// best effort (a PUB socket drops what no one takes in time); a connection
// whose broker missed it is logged out at its session's expiry.
func (s *Service) revoke(userID string, ids []string, reason string) {
	p := s.pub.Load()
	if p == nil {
		return
	}
	payload, err := thriftx.Marshal(&loginpb.Revoked{UserID: userID, Sessions: ids, Reason: reason})
	if err == nil {
		err = (*p)(wire.TopicRevoked, wire.EventRevoked, payload)
	}
	if err != nil {
		s.log.Warn("login: publishing revoked sessions", "user_id", userID, "sessions", len(ids), "err", err)
	}
}
