package login

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/wire"
)

// Session tokens are 256 random bits (crypto/rand), sent as unpadded
// base64url: 43 characters.
const (
	tokenBytes = 32
	// TokenLen is the length of a session token in characters.
	TokenLen = 43
)

// Session is a logged-in session, as Login creates it and Validate finds
// it.
type Session struct {
	// Token is the session token: what the client presents to Validate,
	// edge.Hello's resume and Logout.
	Token string
	// UserID is the account's id.
	UserID string
	// Nickname is the account's nickname at login.
	Nickname string
	// Expires is when the token stops being valid: login time plus
	// SessionTTL, to the second. Nothing extends it.
	Expires time.Time
}

// newToken returns a fresh session token.
func newToken() (string, error) {
	var b [tokenBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// wellFormedToken reports whether tok could be a token newToken made, so
// that anything else is refused without a Redis round trip.
func wellFormedToken(tok string) bool {
	if len(tok) != TokenLen {
		return false
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ID returns the session's id: wire.SessionID of its token, the name the
// session goes by in Redis and in revocations.
func (sess Session) ID() string { return wire.SessionID(sess.Token) }

// Sessions in Redis:
//
//   - <prefix>login:session:<id>, a hash (user_id, nickname, expires) that
//     expires with the session; <id> is wire.SessionID of the token, so
//     that whoever reads Redis (a dump, a replica, a MONITOR) learns no
//     usable token;
//   - <prefix>login:user_sessions:<user id>, the user's index: a sorted set
//     of session ids scored by their expiry (Unix ms), which lives as long
//     as its latest session. LogoutAll reads it.
//
// Invariant: a session hash exists only while its id is in its user's
// index. createSession indexes the id (and extends the index's TTL) before
// it writes the hash, and the deletes remove the hash before the id. Each
// step is one atomic script on one key, so the invariant holds at every
// instant and after a crash between steps, and the keys may live on
// different Redis Cluster slots (a script over both could not).

// sessionKey is the Redis key of the session with id.
func (s *Service) sessionKey(id string) string {
	return s.opts.RedisPrefix + "login:session:" + id
}

// userSessionsKey is the Redis key of a user's index.
func (s *Service) userSessionsKey(userID string) string {
	return s.opts.RedisPrefix + "login:user_sessions:" + userID
}

// Session hash fields.
const (
	fieldUserID   = "user_id"
	fieldNickname = "nickname"
	fieldExpires  = "expires"
)

// indexSessionScript adds a session id to a user's index (KEYS[1]) with
// its expiry (ARGV[2], Unix ms), drops the ids that expired before now
// (ARGV[1], Unix ms), and makes the index live at least as long as the
// session (ARGV[3], ms from now): the index never outlives its last session
// by more than it must, and never dies before one.
var indexSessionScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
`)

// createSessionScript writes a session hash and its expiry in one atomic
// step: a session never exists without its TTL.
var createSessionScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'nickname', ARGV[2], 'expires', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
`)

// deleteSessionScript deletes a session hash and returns its user id, or
// false when there was none.
var deleteSessionScript = redis.NewScript(`
local uid = redis.call('HGET', KEYS[1], 'user_id')
if not uid then return false end
redis.call('DEL', KEYS[1])
return uid
`)

// createSession stores a new session of a and returns it; in the same round
// trip as the session hash it deletes the keys in also (the account's
// failure counter).
func (s *Service) createSession(ctx context.Context, a Account, also ...string) (Session, error) {
	tok, err := newToken()
	if err != nil {
		return Session{}, fmt.Errorf("login: token: %w", err)
	}
	now := s.now()
	exp := now.Add(s.opts.SessionTTL).Truncate(time.Second)
	sess := Session{Token: tok, UserID: a.ID, Nickname: a.Nickname, Expires: exp}
	id := sess.ID()
	// The index first: see the invariant above.
	if err := indexSessionScript.Run(ctx, s.rdb, []string{s.userSessionsKey(a.ID)},
		now.UnixMilli(), exp.UnixMilli(), max(exp.Sub(now).Milliseconds(), 1), id).Err(); err != nil {
		return Session{}, fmt.Errorf("login: index session: %w", err)
	}
	var create *redis.Cmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		create = createSessionScript.Eval(ctx, p, []string{s.sessionKey(id)},
			a.ID, a.Nickname, exp.Unix(), exp.UnixMilli())
		if len(also) > 0 {
			p.Del(ctx, also...)
		}
		return nil
	})
	if err == nil {
		err = create.Err()
	}
	if err != nil {
		return Session{}, fmt.Errorf("login: store session: %w", err)
	}
	return sess, nil
}

// lookupSession returns the live session of tok, or ok = false.
func (s *Service) lookupSession(ctx context.Context, tok string) (_ Session, ok bool, _ error) {
	if !wellFormedToken(tok) {
		return Session{}, false, nil
	}
	vals, err := s.rdb.HMGet(ctx, s.sessionKey(wire.SessionID(tok)), fieldUserID, fieldNickname, fieldExpires).Result()
	if err != nil {
		return Session{}, false, fmt.Errorf("login: read session: %w", err)
	}
	uid, _ := vals[0].(string)
	if uid == "" {
		return Session{}, false, nil
	}
	nick, _ := vals[1].(string)
	expStr, _ := vals[2].(string)
	exp, _ := strconv.ParseInt(expStr, 10, 64)
	return Session{Token: tok, UserID: uid, Nickname: nick, Expires: time.Unix(exp, 0)}, true, nil
}

// deleteSession deletes tok's session, if any, and returns its user id ("",
// when there was none).
func (s *Service) deleteSession(ctx context.Context, tok string) (string, error) {
	if !wellFormedToken(tok) {
		return "", nil
	}
	id := wire.SessionID(tok)
	uid, err := deleteSessionScript.Run(ctx, s.rdb, []string{s.sessionKey(id)}).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("login: delete session: %w", err)
	}
	if err := s.rdb.ZRem(ctx, s.userSessionsKey(uid), id).Err(); err != nil {
		// The session is gone; a stale id in the index only costs
		// LogoutAll a delete of nothing, and expires with the index.
		s.log.Warn("login: unindex session", "user_id", uid, "err", err)
	}
	return uid, nil
}

// logoutAllBatch is how many sessions LogoutAll deletes per round trip and
// names per Revoked event: 256 ids of 43 bytes make an event of about
// 11 KiB, far below the link's message bound, and a round trip that stays
// short.
const logoutAllBatch = 256

// deleteUserSessions deletes every session of userID and returns the ids of
// those that were live, in batches of logoutAllBatch, calling revoked with
// each batch as it is deleted.
func (s *Service) deleteUserSessions(ctx context.Context, userID string, revoked func(ids []string)) (int, error) {
	idx := s.userSessionsKey(userID)
	// The ids indexed now; a session created while this runs was created
	// after the logout and stays.
	ids, err := s.rdb.ZRange(ctx, idx, 0, -1).Result()
	if err != nil {
		return 0, fmt.Errorf("login: read sessions of %s: %w", userID, err)
	}
	n := 0
	for len(ids) > 0 {
		batch := ids[:min(len(ids), logoutAllBatch)]
		ids = ids[len(batch):]
		dels := make([]*redis.IntCmd, len(batch))
		// One DEL per key, pipelined: a DEL of several keys fails across
		// Redis Cluster slots.
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range batch {
				dels[i] = p.Del(ctx, s.sessionKey(id))
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("login: delete sessions of %s: %w", userID, err)
		}
		live := make([]string, 0, len(batch))
		for i, d := range dels {
			if d.Val() > 0 {
				live = append(live, batch[i])
			}
		}
		members := make([]any, len(batch))
		for i, id := range batch {
			members[i] = id
		}
		if err := s.rdb.ZRem(ctx, idx, members...).Err(); err != nil {
			s.log.Warn("login: unindex sessions", "user_id", userID, "err", err)
		}
		n += len(live)
		if len(live) > 0 {
			revoked(live)
		}
	}
	return n, nil
}

// Session state (SaveSessionState, Validate with a resume_holder): three
// more fields of the session hash, so that the state expires with the
// session and is deleted with it:
//
//   - state: the broker's loginpb.SessionState in Thrift compact, at most
//     loginpb.MAX_SESSION_STATE_BYTES;
//   - state_holder: the instance id of the broker that holds the session's
//     state: the one that last resumed the session ("" before any resume:
//     any broker may save);
//   - state_seq: the seq of the holder's last stored save ("0" after a
//     resume).
//
// A save is stored only from the holder and with a seq above state_seq,
// so that the broker that lost the session (it died, or the client moved)
// cannot overwrite what the new holder saves, and a late save cannot
// overwrite a later one.

// Results of saveStateScript.
const (
	saveStateGone  = 0
	saveStateSaved = 1
	saveStateStale = 2
)

// saveStateScript stores a session's state (KEYS[1], the session hash)
// for user ARGV[1] from holder ARGV[2] with seq ARGV[3]: ARGV[4]. It
// returns saveStateGone when the hash is gone or another user's,
// saveStateStale when another broker holds the state or a save with a seq
// as high was stored, else saveStateSaved. HSET keeps the hash's TTL.
var saveStateScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'user_id', 'state_holder', 'state_seq')
if not v[1] or v[1] ~= ARGV[1] then return 0 end
if v[2] and v[2] ~= '' and v[2] ~= ARGV[2] then return 2 end
if v[3] and tonumber(v[3]) and tonumber(v[3]) >= tonumber(ARGV[3]) then return 2 end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'state_holder', ARGV[2], 'state_seq', ARGV[3])
return 1
`)

// resumeStateScript reads a session (KEYS[1]) and makes ARGV[1] the holder
// of its state, whose seq starts over: it returns {user_id, nickname,
// expires, state}, or false when the session is gone.
var resumeStateScript = redis.NewScript(`
local v = redis.call('HMGET', KEYS[1], 'user_id', 'nickname', 'expires', 'state')
if not v[1] then return false end
redis.call('HSET', KEYS[1], 'state_holder', ARGV[1], 'state_seq', '0')
return {v[1], v[2] or '', v[3] or '0', v[4] or ''}
`)

// saveState stores state for the session with id (wire.SessionID of its
// token) of userID, from holder with seq, and returns one of the
// saveState* results.
func (s *Service) saveState(ctx context.Context, id, userID, holder string, seq int64, state []byte) (int64, error) {
	n, err := saveStateScript.Run(ctx, s.rdb, []string{s.sessionKey(id)}, userID, holder, seq, state).Int64()
	if err != nil {
		return 0, fmt.Errorf("login: save session state: %w", err)
	}
	return n, nil
}

// resumeSession returns the live session of tok and its state (nil if
// none was saved), making holder the holder of the state; ok = false when
// the session is not live.
func (s *Service) resumeSession(ctx context.Context, tok, holder string) (_ Session, state []byte, ok bool, _ error) {
	if !wellFormedToken(tok) {
		return Session{}, nil, false, nil
	}
	vals, err := resumeStateScript.Run(ctx, s.rdb, []string{s.sessionKey(wire.SessionID(tok))}, holder).StringSlice()
	switch {
	case errors.Is(err, redis.Nil):
		return Session{}, nil, false, nil
	case err != nil:
		return Session{}, nil, false, fmt.Errorf("login: resume session: %w", err)
	case len(vals) != 4 || vals[0] == "":
		return Session{}, nil, false, nil
	}
	exp, _ := strconv.ParseInt(vals[2], 10, 64)
	if vals[3] != "" {
		state = []byte(vals[3])
	}
	return Session{Token: tok, UserID: vals[0], Nickname: vals[1], Expires: time.Unix(exp, 0)}, state, true, nil
}
