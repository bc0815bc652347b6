package login

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/noonhq/noon/internal/realip"
	"github.com/noonhq/noon/wire"
	"github.com/redis/go-redis/v9"
)

// backoffScript is one back-off throttle (Limit) at KEYS[1], a hash of n
// (failures in the window) and u (the Unix ms until which attempts wait).
// ARGV: now (Unix ms), max, window ms, backoff ms, max backoff ms, mode:
//   - "check": the ms left to wait (0: go ahead);
//   - "count": as check, and when it may go ahead, count a failure now
//     (an attempt counted from its start);
//   - "fail": count a failure, whatever the wait;
//   - "undo": take back one failure "count" counted for an attempt that
//     ended without a verdict on its password (a store outage, a shed):
//     below max failures, no wait is left.
//
// Counting the max-th failure and each one after sets the wait: backoff,
// doubled per failure past max, at most max backoff. The key expires
// window after its first failure, or window after a wait's end.
var backoffScript = redis.NewScript(`
local k = KEYS[1]
local now = tonumber(ARGV[1])
local mode = ARGV[6]
if mode == 'undo' then
  if tonumber(redis.call('HGET', k, 'n') or '0') > 0 and redis.call('HINCRBY', k, 'n', -1) < tonumber(ARGV[2]) then
    redis.call('HDEL', k, 'u')
  end
  return 0
end
local u = tonumber(redis.call('HGET', k, 'u') or '0')
if mode ~= 'fail' and u > now then
  return u - now
end
if mode == 'check' then
  return 0
end
local n = redis.call('HINCRBY', k, 'n', 1)
local max = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
if n == 1 then
  redis.call('PEXPIRE', k, window)
end
if n >= max then
  local d = math.min(tonumber(ARGV[4]) * 2 ^ math.min(n - max, 40), tonumber(ARGV[5]))
  if now + d > u then
    redis.call('HSET', k, 'u', now + d)
  end
  if redis.call('PTTL', k) < d + window then
    redis.call('PEXPIRE', k, d + window)
  end
end
return 0
`)

// Throttle modes of backoffScript.
const (
	modeCheck = "check"
	modeCount = "count"
	modeFail  = "fail"
	modeUndo  = "undo"
)

// Reasons of login_throttled_total and of the rate_limited texts.
const (
	reasonPair    = "account_address"
	reasonAccount = "account"
	reasonAddress = "address"
)

// throttleText is the rate_limited text of each reason.
var throttleText = map[string]string{
	reasonPair:    "too many failed logins for this account from your address",
	reasonAccount: "too many failed logins for this account from new addresses",
	reasonAddress: "too many attempts from your address",
}

// throttle runs mode against l under key ("" or a disabled limit: nothing)
// and returns a rate_limited error, counted by reason, when the attempt
// must wait.
func (s *Service) throttle(ctx context.Context, key string, l Limit, mode, reason string) error {
	if key == "" || l.Max == 0 {
		return nil
	}
	wait, err := backoffScript.Run(ctx, s.rdb, []string{key},
		s.now().UnixMilli(), l.Max, l.Window.Milliseconds(), l.Backoff.Milliseconds(), l.MaxBackoff.Milliseconds(), mode).Int64()
	if err != nil {
		return fmt.Errorf("login: throttle: %w", err)
	}
	if wait > 0 {
		s.m.throttled.With(reason).Inc()
		return &rateLimited{msg: throttleText[reason], retry: time.Duration(wait) * time.Millisecond}
	}
	return nil
}

// knownScript remembers a prefix an account logged in from: KEYS[1] is
// the account's sorted set (member prefix, score the last login's Unix
// ms); ARGV: now, prefix, how many to keep, TTL ms.
var knownScript = redis.NewScript(`
local k = KEYS[1]
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[4])
redis.call('ZADD', k, now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', k, '-inf', now - ttl)
redis.call('ZREMRANGEBYRANK', k, 0, -tonumber(ARGV[3]) - 1)
redis.call('PEXPIRE', k, ttl)
return 0
`)

// known reports whether username logged in from prefix within the known
// TTL.
func (s *Service) known(ctx context.Context, username, prefix string) (bool, error) {
	k := s.opts.Throttle.Known
	if prefix == "" || k.Prefixes == 0 {
		return false, nil
	}
	score, err := s.rdb.ZScore(ctx, s.knownKey(username), prefix).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("login: known addresses: %w", err)
	}
	return s.now().Sub(time.UnixMilli(int64(score))) < k.TTL, nil
}

// remember records a successful login of username from prefix.
func (s *Service) remember(ctx context.Context, username, prefix string) error {
	k := s.opts.Throttle.Known
	if prefix == "" || k.Prefixes == 0 {
		return nil
	}
	return knownScript.Run(ctx, s.rdb, []string{s.knownKey(username)}, s.now().UnixMilli(), prefix, k.Prefixes, k.TTL.Milliseconds()).Err()
}

// rateLimited is a throttled attempt: rate_limited on the wire, 429 with
// Retry-After over HTTP.
type rateLimited struct {
	msg   string
	retry time.Duration
}

// Error returns the wire form.
func (e *rateLimited) Error() string { return e.wire().Error() }

// Unwrap returns the wire error, so that errors.As finds a
// *wire.Error with code rate_limited in the chain, and wire.CodeOf
// says rate_limited.
func (e *rateLimited) Unwrap() error { return e.wire() }

// wire returns the *wire.Error the wire carries.
func (e *rateLimited) wire() *wire.Error {
	return wire.Errorf(wire.CodeRateLimited, "%s; retry in %ds", e.msg, int64(e.retryAfter()/time.Second))
}

// retryAfter is the wait rounded up to a whole second (at least one).
func (e *rateLimited) retryAfter() time.Duration {
	return max(time.Second, (e.retry + time.Second - 1).Truncate(time.Second))
}

// accountKey is the failure counter of username from unknown addresses,
// ASCII-case-folded like usernames are.
func (s *Service) accountKey(username string) string {
	return s.opts.RedisPrefix + "login:throttle:account:" + usernameKey(username)
}

// pairKey is the failure counter of username from the address bucket of
// remote; calls without an address (from other services) share the
// bucket "-".
func (s *Service) pairKey(username, remote string) string {
	a := addressBucket(remote)
	if a == "" {
		a = "-"
	}
	return s.opts.RedisPrefix + "login:throttle:pair:" + usernameKey(username) + ":" + a
}

// knownKey is the set of address prefixes username logged in from.
func (s *Service) knownKey(username string) string {
	return s.opts.RedisPrefix + "login:known:" + usernameKey(username)
}

// addressKey is the attempt counter of a source address, "" when the
// request carries none (a call from another service).
func (s *Service) addressKey(remote string) string {
	a := addressBucket(remote)
	if a == "" {
		return ""
	}
	return s.opts.RedisPrefix + "login:throttle:address:" + a
}

// knownPrefix returns the prefix an address is remembered by: the IPv4
// /24 or the IPv6 /64 (a home's addresses change within it); "" for none
// or an unparsable address.
func knownPrefix(remote string) string {
	ip, ok := remoteIP(remote)
	if !ok {
		return ""
	}
	return realip.Masked(ip, 24, 64).String()
}

// addressBucket returns what a source address is throttled as, the key of
// the edge's per-address limits: the IPv4 address, or the IPv6 /64 (one
// host or home gets a /64, and can pick any address in it); an unparsable
// address as given, at most 64 bytes; "" for none.
func addressBucket(remote string) string {
	if remote == "" {
		return ""
	}
	ip, ok := remoteIP(remote)
	if !ok {
		return wire.Snippet(remote)
	}
	p := realip.Masked(ip, 32, 64)
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// remoteIP parses a remote address, "host:port" or a bare host.
func remoteIP(remote string) (netip.Addr, bool) {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	return ip, err == nil
}
