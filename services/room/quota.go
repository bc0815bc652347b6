package room

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/wire"
)

// Quotas of room creation, per user and across instances:
// MaxCreatesPerUser per CreateWindow is a Redis counter here;
// MaxRoomsPerUser (rooms not closed) is counted by the store as it
// creates (Store.Create's maxOpen), atomically.

// createCountScript counts one create in the user's window: the counter
// starts its window (a TTL of the window) on its first create.
var createCountScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// quotaTimeout bounds the Redis round trip of the create counter.
const quotaTimeout = time.Second

// createsKey is the Redis key of user's create counter.
func (s *Service) createsKey(user string) string {
	return s.opts.RedisPrefix + "room:creates:" + user
}

// countCreate counts a room.Create of user against MaxCreatesPerUser per
// CreateWindow: rate_limited past it.
func (s *Service) countCreate(ctx context.Context, user string) error {
	max := s.opts.MaxCreatesPerUser
	if max <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, quotaTimeout)
	defer cancel()
	n, err := createCountScript.Run(ctx, s.rdb, []string{s.createsKey(user)}, s.opts.CreateWindow.Milliseconds()).Int64()
	if err != nil {
		s.log.Warn("room: create counter", "err", err)
		return wire.Errorf(wire.CodeUnavailable, "room creation: quota store unavailable")
	}
	if n > int64(max) {
		s.st.quotaRefused.Add(1)
		ttl, _ := s.rdb.PTTL(ctx, s.createsKey(user)).Result()
		return wire.Errorf(wire.CodeRateLimited, "%d rooms created within %v (max_creates_per_user): retry in %v", max, s.opts.CreateWindow, ttl.Round(time.Second))
	}
	return nil
}
