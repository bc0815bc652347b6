package login

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
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

// sessionKey is the Redis key of a token's session: the SHA-256 of the
// token, so that whoever reads Redis (a dump, a replica, a MONITOR) learns
// no usable token.
func (s *Service) sessionKey(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return s.opts.RedisPrefix + "login:session:" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// Session hash fields.
const (
	fieldUserID   = "user_id"
	fieldNickname = "nickname"
	fieldExpires  = "expires"
)

// createSessionScript writes a session hash and its expiry in one atomic
// step: a session never exists without its TTL.
var createSessionScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'user_id', ARGV[1], 'nickname', ARGV[2], 'expires', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
`)

// createSession stores a new session of a and returns it; in the same round
// trip it deletes the keys in also (the account's failure counter).
func (s *Service) createSession(ctx context.Context, a Account, also ...string) (Session, error) {
	tok, err := newToken()
	if err != nil {
		return Session{}, fmt.Errorf("login: token: %w", err)
	}
	exp := s.now().Add(s.opts.SessionTTL).Truncate(time.Second)
	sess := Session{Token: tok, UserID: a.ID, Nickname: a.Nickname, Expires: exp}
	var create *redis.Cmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		create = createSessionScript.Eval(ctx, p, []string{s.sessionKey(tok)},
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
	vals, err := s.rdb.HMGet(ctx, s.sessionKey(tok), fieldUserID, fieldNickname, fieldExpires).Result()
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

// deleteSession deletes tok's session, if any.
func (s *Service) deleteSession(ctx context.Context, tok string) error {
	if !wellFormedToken(tok) {
		return nil
	}
	if err := s.rdb.Del(ctx, s.sessionKey(tok)).Err(); err != nil {
		return fmt.Errorf("login: delete session: %w", err)
	}
	return nil
}
