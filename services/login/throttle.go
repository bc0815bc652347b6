package login

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/noonhq/noon/wire"
	"github.com/redis/go-redis/v9"
)

// hitScript counts one event in a fixed window: it increments KEYS[1] and,
// when the counter has no expiry yet (the window's first event), sets it to
// ARGV[1] ms. It returns the count and the milliseconds left in the window.
var hitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// hit counts one event against l under key and returns a rate_limited
// error (with what, and when the window ends) when the count passes l.Max.
// A disabled limit counts nothing.
func (s *Service) hit(ctx context.Context, key string, l Limit, what string) error {
	if l.Max == 0 {
		return nil
	}
	res, err := hitScript.Run(ctx, s.rdb, []string{key}, l.Window.Milliseconds()).Int64Slice()
	if err != nil || len(res) != 2 {
		return fmt.Errorf("login: throttle: %v %w", res, err)
	}
	if res[0] > int64(l.Max) {
		return &rateLimited{msg: what, retry: time.Duration(res[1]) * time.Millisecond}
	}
	return nil
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
	return wire.Errorf(wire.CodeRateLimited, "%s; try again in %v", e.msg, e.retryAfter())
}

// retryAfter is the wait rounded up to a whole second (at least one).
func (e *rateLimited) retryAfter() time.Duration {
	return max(time.Second, (e.retry + time.Second - 1).Truncate(time.Second))
}

// accountKey is the failure counter of username, ASCII-case-folded like
// usernames are.
func (s *Service) accountKey(username string) string {
	return s.opts.RedisPrefix + "login:throttle:account:" + usernameKey(username)
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

// addressBucket returns what a source address is throttled as: the IPv4
// address, or the IPv6 /64 (one host or home gets a /64, and can pick any
// address in it); an unparsable address as given, at most 64 bytes; "" for
// none.
func addressBucket(remote string) string {
	if remote == "" {
		return ""
	}
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return wire.Snippet(remote)
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}
