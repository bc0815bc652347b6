package placement

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrHeld is returned (wrapped in *HeldError) when another instance holds
// the lease.
var ErrHeld = errors.New("lease held by another instance")

// ErrLost is returned when a renewal or release finds the lease is no longer
// ours (it expired and was taken over, or was released).
var ErrLost = errors.New("lease lost")

// HeldError names the instance that holds a lease we asked for.
type HeldError struct {
	Key   string
	Owner string
	Epoch int64
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("lease of %q held by %s (epoch %d)", e.Key, e.Owner, e.Epoch)
}

// Unwrap makes errors.Is(err, ErrHeld) true.
func (e *HeldError) Unwrap() error { return ErrHeld }

// DefaultLeaseTTL is how long a lease lives without renewal. It bounds how
// long a dead owner's keys stay unserved (failover time), against how long a
// Redis hiccup may last before a live owner loses its keys; renewals run at
// a third of it.
const DefaultLeaseTTL = 5 * time.Second

// Leases acquires, renews and releases the leases of one instance of one
// stateful service in Redis. It is safe for concurrent use.
//
// Keys in Redis: <prefix>lease:<service>:<key> = "<instance>|<epoch>" with a
// TTL, and <prefix>epoch:<service>:<key> = the last epoch handed out (kept
// forever, so epochs of a key only grow).
type Leases struct {
	rdb      redis.UniversalClient
	prefix   string
	service  string
	instance string
	ttl      time.Duration
}

// NewLeases returns the lease manager of instance for service. prefix
// namespaces the Redis keys ("noon:" by default when empty).
func NewLeases(rdb redis.UniversalClient, prefix, service, instance string, ttl time.Duration) *Leases {
	if prefix == "" {
		prefix = "noon:"
	}
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	return &Leases{rdb: rdb, prefix: prefix, service: service, instance: instance, ttl: ttl}
}

// TTL is the lease lifetime.
func (l *Leases) TTL() time.Duration { return l.ttl }

// Instance is the id of the instance the leases are taken for.
func (l *Leases) Instance() string { return l.instance }

func (l *Leases) leaseKey(key string) string { return l.prefix + "lease:" + l.service + ":" + key }
func (l *Leases) epochKey(key string) string { return l.prefix + "epoch:" + l.service + ":" + key }

// acquireScript takes the lease when free (with a fresh epoch) or extends it
// when already ours; otherwise it returns the holder.
var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local sep = string.find(cur, '|', 1, true)
  local owner = string.sub(cur, 1, sep - 1)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {1, cur}
  end
  return {0, cur}
end
local epoch = redis.call('INCR', KEYS[2])
local val = ARGV[1] .. '|' .. epoch
redis.call('SET', KEYS[1], val, 'PX', ARGV[2])
return {1, val}
`)

// renewScript extends the lease only if it is still exactly ours.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
`)

// releaseScript deletes the lease only if it is still exactly ours.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`)

func parseValue(v string) (owner string, epoch int64, err error) {
	i := strings.LastIndexByte(v, '|')
	if i < 0 {
		return "", 0, fmt.Errorf("placement: malformed lease value %q", v)
	}
	epoch, err = strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("placement: malformed lease epoch %q", v)
	}
	return v[:i], epoch, nil
}

func (l *Leases) value(epoch int64) string {
	return l.instance + "|" + strconv.FormatInt(epoch, 10)
}

// Acquire takes the lease of key, or extends it if this instance already
// holds it, and returns its epoch. When another instance holds it, the error
// is a *HeldError naming the owner.
func (l *Leases) Acquire(ctx context.Context, key string) (int64, error) {
	res, err := acquireScript.Run(ctx, l.rdb, []string{l.leaseKey(key), l.epochKey(key)}, l.instance, l.ttl.Milliseconds()).Slice()
	if err != nil {
		return 0, fmt.Errorf("placement: acquire %q: %w", key, err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("placement: acquire %q: unexpected reply %v", key, res)
	}
	ok, _ := res[0].(int64)
	val, _ := res[1].(string)
	owner, epoch, err := parseValue(val)
	if err != nil {
		return 0, err
	}
	if ok != 1 {
		return 0, &HeldError{Key: key, Owner: owner, Epoch: epoch}
	}
	return epoch, nil
}

// Renew extends the lease of key taken at epoch; ErrLost when it is no
// longer ours.
func (l *Leases) Renew(ctx context.Context, key string, epoch int64) error {
	n, err := renewScript.Run(ctx, l.rdb, []string{l.leaseKey(key)}, l.value(epoch), l.ttl.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("placement: renew %q: %w", key, err)
	}
	if n != 1 {
		return fmt.Errorf("placement: renew %q epoch %d: %w", key, epoch, ErrLost)
	}
	return nil
}

// Release gives the lease of key taken at epoch up, so another instance can
// take the key at once; ErrLost when it was no longer ours.
func (l *Leases) Release(ctx context.Context, key string, epoch int64) error {
	n, err := releaseScript.Run(ctx, l.rdb, []string{l.leaseKey(key)}, l.value(epoch)).Int()
	if err != nil {
		return fmt.Errorf("placement: release %q: %w", key, err)
	}
	if n != 1 {
		return fmt.Errorf("placement: release %q epoch %d: %w", key, epoch, ErrLost)
	}
	return nil
}

// Holder returns the instance holding key's lease and its epoch, or "" when
// the lease is free.
func (l *Leases) Holder(ctx context.Context, key string) (string, int64, error) {
	v, err := l.rdb.Get(ctx, l.leaseKey(key)).Result()
	if errors.Is(err, redis.Nil) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, fmt.Errorf("placement: holder of %q: %w", key, err)
	}
	return parseValue(v)
}

// advanceScript moves the epoch of a lease we hold past a floor: the epoch
// counter becomes max(counter, floor) + 1 and the lease is rewritten with
// it (TTL renewed). It fails (0) unless the lease is still exactly ours.
var advanceScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, ''}
end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
local floor = tonumber(ARGV[3])
if cur < floor then
  redis.call('SET', KEYS[2], floor)
end
local epoch = redis.call('INCR', KEYS[2])
local val = ARGV[2] .. '|' .. epoch
redis.call('SET', KEYS[1], val, 'PX', ARGV[4])
return {1, val}
`)

// Advance moves the lease of key, held by this instance at epoch, to an
// epoch above floor (and above every epoch handed out), and returns it.
// It repairs a Redis that lost its data (restarted without persistence):
// its epoch counter starts again at 1 while the store fencing a key's
// writes holds a higher epoch, so every new lease would be fenced. Call it
// only while holding the lease (Acquire succeeded: no other instance holds
// one), with floor the epoch the store holds; a write fenced by the new
// epoch cannot come from anyone but a holder whose lease is gone. ErrLost
// when the lease is no longer ours.
func (l *Leases) Advance(ctx context.Context, key string, epoch, floor int64) (int64, error) {
	res, err := advanceScript.Run(ctx, l.rdb, []string{l.leaseKey(key), l.epochKey(key)},
		l.value(epoch), l.instance, floor, l.ttl.Milliseconds()).Slice()
	if err != nil {
		return 0, fmt.Errorf("placement: advance %q: %w", key, err)
	}
	if len(res) != 2 {
		return 0, fmt.Errorf("placement: advance %q: unexpected reply %v", key, res)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		return 0, fmt.Errorf("placement: advance %q epoch %d: %w", key, epoch, ErrLost)
	}
	val, _ := res[1].(string)
	_, next, err := parseValue(val)
	return next, err
}
