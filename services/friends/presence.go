package friends

// Presence in Redis: who is online, cluster-wide, kept from the brokers'
// presence events by every friends instance (each hears every broker), so
// that each change is applied once per instance and must be idempotent,
// and each transition (a user's first connection, the end of its last one
// plus the grace) is declared by exactly one instance: the one whose
// script flipped the user's online flag, which alone pushes it.
//
// Keys. Users are spread over presenceShards shards by a hash of their id;
// a shard's keys share a hash tag, so every script touches one Redis
// Cluster slot:
//
//	<prefix>{p<n>}:u:<user>     hash: "!on" = "1" while the user is declared
//	                            online; one field per connection,
//	                            "<broker>|<session>" =
//	                            "<at_ms>:<seq>:<live>:<seen_ms>"
//	<prefix>{p<n>}:online       set: the shard's users declared online (the
//	                            users whose hash has "!on"): List reads a
//	                            page's presence with one SMISMEMBER a shard
//	<prefix>{p<n>}:gone         zset: users whose last connection ended,
//	                            scored by the end of their grace
//	<prefix>{p<n>}:brokers      set: brokers that have (had) connections of
//	                            the shard's users
//	<prefix>{p<n>}:b:<broker>   set: the shard's users with a live
//	                            connection on broker
//
// A connection's value orders its events: at_ms and seq are the broker's
// (Presence.at_unix_ms, the broker's Event.seq), so an event older than
// what a connection has already seen (an instance that lags behind
// another) is stale and changes nothing. An ended connection stays as a
// tombstone (live 0) for tombstoneKeep, against such late events, and is
// then pruned; a user key with no live connection and no flag expires
// after tombstoneKeep.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence limits.
const (
	// presenceShards spreads the users' presence over that many hash
	// tags: in Redis Cluster, sixteen slots (so sixteen nodes at most
	// share the work); on one node, sixteen small sweeps a tick.
	presenceShards = 16
	// tombstoneKeep is how long an ended connection's record outlives it,
	// so that an instance lagging behind the others cannot bring it back:
	// instances lag by milliseconds; two minutes is far past that.
	tombstoneKeep = 2 * time.Minute
	// sweepBatch bounds the users one sweep of a shard declares offline:
	// a backlog drains at that many per tick.
	sweepBatch = 256
	// brokerGoneBatch bounds the users one run of the broker-gone script
	// visits: a broker with many players is ended in several short runs.
	brokerGoneBatch = 512
	// maxGrace bounds a presence event's grace.
	maxGrace = time.Hour
	// storeTimeout bounds one script run or read.
	storeTimeout = 2 * time.Second
)

// goneOrder is the order key of a connection ended because its broker left:
// after any event the broker could still have published (2^53 - 1, the
// largest integer a Lua number holds exactly).
const goneOrder = "9007199254740991"

// Results of the connection script.
const (
	connApplied = 0 // the event changed the connection; no transition
	connOnline  = 1 // the user's first connection: this instance declares it online
	connStale   = 2 // older than what the connection has seen: nothing changed
)

// connScript applies one presence event to a connection.
//
// KEYS: user hash, shard's gone, shard's brokers, shard's broker users,
// shard's online.
// ARGV: user, field (broker|session), broker, at_ms, seq, live (1/0),
// now_ms, deadline_ms (now + grace), keep_ms.
var connScript = redis.NewScript(`
local at, seq, now, keep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[7]), tonumber(ARGV[9])
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if cur then
  local cat, cseq = string.match(cur, '^(%d+):(%d+):')
  cat, cseq = tonumber(cat), tonumber(cseq)
  if cat and (cat > at or (cat == at and cseq >= seq)) then return 2 end
end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4] .. ':' .. ARGV[5] .. ':' .. ARGV[6] .. ':' .. ARGV[7])
local live, onBroker = 0, 0
local prefix = ARGV[3] .. '|'
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f, v = all[i], all[i + 1]
  if f ~= '!on' then
    local l, seen = string.match(v, ':(%d):(%d+)$')
    if l == '1' then
      live = live + 1
      if string.sub(f, 1, #prefix) == prefix then onBroker = onBroker + 1 end
    elseif seen == nil or tonumber(seen) < now - keep then
      redis.call('HDEL', KEYS[1], f)
    end
  end
end
if ARGV[6] == '1' then
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('PERSIST', KEYS[1])
  if redis.call('HSETNX', KEYS[1], '!on', '1') == 1 then
    redis.call('SADD', KEYS[5], ARGV[1])
    return 1
  end
  return 0
end
if onBroker == 0 then redis.call('SREM', KEYS[4], ARGV[1]) end
if live == 0 then
  if redis.call('HEXISTS', KEYS[1], '!on') == 1 then
    redis.call('ZADD', KEYS[2], 'NX', ARGV[8], ARGV[1])
  else
    redis.call('PEXPIRE', KEYS[1], keep)
  end
end
return 0
`)

// sweepScript declares offline the users of a shard whose grace ended
// with no live connection, and returns them: the caller pushes Offline.
//
// KEYS: shard's gone, shard's online. ARGV: now_ms, limit, user key prefix
// (<prefix>{p<n>}:u:), keep_ms.
var sweepScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, u in ipairs(due) do
  redis.call('ZREM', KEYS[1], u)
  local k = ARGV[3] .. u
  local live = false
  local all = redis.call('HGETALL', k)
  for i = 1, #all, 2 do
    if all[i] ~= '!on' and string.match(all[i + 1], ':(%d):%d+$') == '1' then
      live = true
      break
    end
  end
  if not live and redis.call('HDEL', k, '!on') == 1 then
    redis.call('SREM', KEYS[2], u)
    out[#out + 1] = u
    redis.call('PEXPIRE', k, tonumber(ARGV[4]))
  end
end
return out
`)

// brokerGoneScript ends the connections a broker that left yellow held for
// up to a batch of a shard's users: each becomes a tombstone ordered after
// anything the broker published, and a user left with no live connection
// is due offline at once (its grace was the wait for the broker).
// It returns how many of the broker's users are left in the shard.
//
// KEYS: shard's brokers, shard's broker users, shard's gone.
// ARGV: broker, now_ms, deadline_ms, user key prefix, batch, gone order,
// keep_ms.
var brokerGoneScript = redis.NewScript(`
local users = redis.call('SPOP', KEYS[2], tonumber(ARGV[5]))
local prefix = ARGV[1] .. '|'
for _, u in ipairs(users) do
  local k = ARGV[4] .. u
  local all = redis.call('HGETALL', k)
  local live = 0
  for i = 1, #all, 2 do
    local f, v = all[i], all[i + 1]
    if f ~= '!on' then
      if string.sub(f, 1, #prefix) == prefix then
        redis.call('HSET', k, f, ARGV[6] .. ':0:0:' .. ARGV[2])
      elseif string.match(v, ':(%d):%d+$') == '1' then
        live = live + 1
      end
    end
  end
  if live == 0 then
    if redis.call('HEXISTS', k, '!on') == 1 then
      redis.call('ZADD', KEYS[3], 'NX', ARGV[3], u)
    else
      redis.call('PEXPIRE', k, tonumber(ARGV[7]))
    end
  end
end
local left = redis.call('SCARD', KEYS[2])
if left == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end
return left
`)

// presenceStore runs the presence scripts.
type presenceStore struct {
	rdb    redis.UniversalClient
	prefix string
	// onErr is told of every failed script run (a metric).
	onErr func(script string, err error)
}

// shardOf returns the shard of user.
func shardOf(user string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(user))
	return int(h.Sum32() % presenceShards)
}

// tag returns the key prefix of shard n: "<prefix>{p<n>}:".
func (p *presenceStore) tag(n int) string {
	return p.prefix + "{p" + strconv.Itoa(n) + "}:"
}

// userKey returns the presence hash of user.
func (p *presenceStore) userKey(user string) string {
	return p.tag(shardOf(user)) + "u:" + user
}

// ms returns t in Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// run runs script (named name, for errors and the metric).
func (p *presenceStore) run(ctx context.Context, s *redis.Script, name string, keys []string, args ...any) (any, error) {
	v, err := s.Run(ctx, p.rdb, keys, args...).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		if p.onErr != nil {
			p.onErr(name, err)
		}
		return nil, fmt.Errorf("friends: %s: %w", name, err)
	}
	return v, nil
}

// connEvent is one presence event, as the connection script takes it.
type connEvent struct {
	user, broker, session string
	// at and seq order the broker's events (Presence.at_unix_ms, Event.seq).
	at     int64
	seq    uint64
	online bool
	// grace is how long an offline user may come back before it is
	// declared offline.
	grace time.Duration
}

// conn applies ev at now and returns connApplied, connOnline or
// connStale.
func (p *presenceStore) conn(ctx context.Context, ev connEvent, now time.Time) (int, error) {
	n := shardOf(ev.user)
	tag := p.tag(n)
	live := "0"
	if ev.online {
		live = "1"
	}
	grace := min(max(ev.grace, 0), maxGrace)
	v, err := p.run(ctx, connScript, "conn",
		[]string{tag + "u:" + ev.user, tag + "gone", tag + "brokers", tag + "b:" + ev.broker, tag + "online"},
		ev.user, ev.broker+"|"+ev.session, ev.broker, ev.at, ev.seq, live,
		ms(now), ms(now.Add(grace)), tombstoneKeep.Milliseconds())
	if err != nil {
		return 0, err
	}
	r, _ := v.(int64)
	return int(r), nil
}

// sweep declares offline, in shard n, the users whose grace ended by now
// with no live connection, and returns them.
func (p *presenceStore) sweep(ctx context.Context, n int, now time.Time) ([]string, error) {
	tag := p.tag(n)
	v, err := p.run(ctx, sweepScript, "sweep", []string{tag + "gone", tag + "online"},
		ms(now), sweepBatch, tag+"u:", tombstoneKeep.Milliseconds())
	if err != nil {
		return nil, err
	}
	return stringList(v), nil
}

// brokerGone ends, in shard n, the connections broker held: the users left
// with none are due offline at now (the next sweep declares them). It runs
// the script until the broker has no users left in the shard.
func (p *presenceStore) brokerGone(ctx context.Context, n int, broker string, now time.Time) error {
	tag := p.tag(n)
	for {
		v, err := p.run(ctx, brokerGoneScript, "broker_gone",
			[]string{tag + "brokers", tag + "b:" + broker, tag + "gone"},
			broker, ms(now), ms(now), tag+"u:", brokerGoneBatch, goneOrder, tombstoneKeep.Milliseconds())
		if err != nil {
			return err
		}
		if left, _ := v.(int64); left == 0 {
			return nil
		}
	}
}

// brokers returns the brokers that have (had) connections in any shard.
func (p *presenceStore) brokers(ctx context.Context) (map[string]bool, error) {
	cmds := make([]*redis.StringSliceCmd, presenceShards)
	_, err := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for n := range presenceShards {
			cmds[n] = pipe.SMembers(ctx, p.tag(n)+"brokers")
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("friends: brokers: %w", err)
	}
	out := map[string]bool{}
	for _, c := range cmds {
		for _, b := range c.Val() {
			out[b] = true
		}
	}
	return out, nil
}

// online reports, for each of users, whether it is declared online: one
// SMISMEMBER per shard the users fall in, pipelined.
func (p *presenceStore) online(ctx context.Context, users []string) ([]bool, error) {
	out := make([]bool, len(users))
	if len(users) == 0 {
		return out, nil
	}
	var byShard [presenceShards][]int // indexes into users
	for i, u := range users {
		n := shardOf(u)
		byShard[n] = append(byShard[n], i)
	}
	var cmds [presenceShards]*redis.BoolSliceCmd
	_, err := p.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for n, idx := range byShard {
			if len(idx) == 0 {
				continue
			}
			members := make([]any, len(idx))
			for j, i := range idx {
				members[j] = users[i]
			}
			cmds[n] = pipe.SMIsMember(ctx, p.tag(n)+"online", members...)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("friends: presence: %w", err)
	}
	for n, idx := range byShard {
		if cmds[n] == nil {
			continue
		}
		for j, on := range cmds[n].Val() {
			out[idx[j]] = on
		}
	}
	return out, nil
}

// stringList converts a script's array of strings.
func stringList(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
