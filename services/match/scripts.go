package match

import "github.com/redis/go-redis/v9"

// The scripts. Every change to the model is one of them, so it is atomic
// (EVALSHA; go-redis loads a script on NOSCRIPT).
//
// Cluster: each script declares as KEYS the queue's keys it knows before
// running (go-redis routes by KEYS[1]); the keys it can only name while
// running (Session:<sid> of a session it finds, Player:<user> of a
// session's members, ...) it derives from ARGV[1], the queue's key base
// "<prefix>{<queue>}:", so they carry the same hash tag and live in the
// same slot as the declared ones. A script never touches two queues.
//
// Every script starts with the same arguments (libHead): ARGV[1] the base,
// ARGV[2] now (Unix ms, the caller's clock), then the queue's parameters;
// its own arguments start at ARGV[A].

// libHead reads the common arguments and defines the shared functions.
const libHead = `
local B = ARGV[1]
local NOW = tonumber(ARGV[2])
local MIN, MAX = tonumber(ARGV[3]), tonumber(ARGV[4])
local RANGE = ARGV[5] == '1'
local W0, WIDEN, WMAX = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local ACCEPT, LIMIT, RETAIN = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local MERGE_EVERY, CLAIM_TTL, BROKER_GRACE = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local A = 15
-- SCAN bounds the sessions one search or merge looks at.
local SCAN = 64

local function fmt(x) return string.format('%.17g', x) end
-- nz returns a hash value, or nil for a missing or empty one.
local function nz(x) if x and x ~= '' then return x end return nil end
local function skey(sid) return B .. 'Session:' .. sid end
local function spkey(sid) return B .. 'SessionPlayers:' .. sid end
local function pkey(user) return B .. 'Player:' .. user end

-- width is the half-width of the range window of a session created at
-- created (ms).
local function width(created)
  return math.min(WMAX, W0 + WIDEN * (NOW - created) / 1000)
end

-- index_open adds an open session to the indexes of open sessions. A
-- session checks for merges (SessionsMergeAt) in a queue with a range, or
-- when it reopened: without a range, a bucket has a second open session
-- only after one reopened (Start fills the oldest first).
local function index_open(sid, created, bucket, center, reopened)
  redis.call('ZADD', B .. 'SessionsPerMatchmaking:' .. bucket, created, sid)
  redis.call('ZADD', B .. 'SessionsCreationTime', created, sid)
  if RANGE then redis.call('ZADD', B .. 'SessionsByRange:' .. bucket, center, sid) end
  if RANGE or reopened then redis.call('ZADD', B .. 'SessionsMergeAt', NOW + MERGE_EVERY, sid) end
end

-- unindex_open removes a session from the indexes of open sessions.
local function unindex_open(sid, bucket)
  redis.call('ZREM', B .. 'SessionsPerMatchmaking:' .. bucket, sid)
  redis.call('ZREM', B .. 'SessionsCreationTime', sid)
  if RANGE then redis.call('ZREM', B .. 'SessionsByRange:' .. bucket, sid) end
  -- With min_players = max_players a session is ready before it could
  -- be "at min".
  if MIN < MAX then redis.call('ZREM', B .. 'SessionsAtMin', sid) end
  redis.call('ZREM', B .. 'SessionsMergeAt', sid)
end

-- make_ready moves an open session to SessionsReady.
local function make_ready(sid, bucket)
  unindex_open(sid, bucket)
  redis.call('HSET', skey(sid), 'ready_at', NOW)
  redis.call('ZADD', B .. 'SessionsReady', NOW, sid)
end

-- settle puts an open session of count players where it belongs: ready
-- when full or when it has min_players and is accept_min_after old, in
-- SessionsAtMin when it has min_players, else neither (grew: it only
-- gained players, so it cannot have been there). It reports whether the
-- session became ready.
local function settle(sid, created, bucket, count, grew)
  if count >= MAX or (count >= MIN and NOW - created >= ACCEPT) then
    make_ready(sid, bucket)
    return true
  end
  if count >= MIN then
    redis.call('ZADD', B .. 'SessionsAtMin', created, sid)
  elseif not grew then
    redis.call('ZREM', B .. 'SessionsAtMin', sid)
  end
  return false
end

-- release_server gives a server a (stale) claim took back to
-- ServersAvailable.
local function release_server(sid)
  local srv = nz(redis.call('HGET', skey(sid), 'server'))
  if srv then
    redis.call('HDEL', skey(sid), 'server', 'addr')
    if redis.call('HEXISTS', B .. 'Servers', srv) == 1 then
      redis.call('SADD', B .. 'ServersAvailable', srv)
    end
  end
end

-- span recomputes a session's lo and hi (the range of its players'
-- values).
local function span(sid)
  local lo, hi
  for _, u in ipairs(redis.call('ZRANGE', spkey(sid), 0, -1)) do
    local v = tonumber(redis.call('HGET', pkey(u), 'value'))
    if v then
      if not lo or v < lo then lo = v end
      if not hi or v > hi then hi = v end
    end
  end
  if lo then redis.call('HSET', skey(sid), 'lo', fmt(lo), 'hi', fmt(hi)) end
end

-- leave takes user out of session sid (not claimed). An empty session is
-- deleted; a ready one whose members changed forgets its room id and
-- reopens unless it still qualifies as ready.
local function leave(user, sid)
  local sk = skey(sid)
  redis.call('ZREM', spkey(sid), user)
  local s = redis.call('HMGET', sk, 'created', 'bucket', 'center', 'ready_at')
  if not s[1] then return end
  local created, bucket = tonumber(s[1]), s[2]
  local count = redis.call('HINCRBY', sk, 'count', -1)
  if count <= 0 then
    unindex_open(sid, bucket)
    redis.call('ZREM', B .. 'SessionsReady', sid)
    release_server(sid)
    redis.call('DEL', sk, spkey(sid))
    return
  end
  if RANGE then span(sid) end
  redis.call('HDEL', sk, 'room')
  if s[4] then
    if count >= MIN and NOW - created >= ACCEPT then return end
    redis.call('ZREM', B .. 'SessionsReady', sid)
    redis.call('HDEL', sk, 'ready_at')
    release_server(sid)
    index_open(sid, created, bucket, s[3], true)
  end
  settle(sid, created, bucket, count, false)
end

-- finish ends ticket tid of user (already out of its session).
local function finish(user, tid, state, reason, broker)
  local tk = B .. 'Ticket:' .. tid
  redis.call('HSET', tk, 'state', state, 'reason', reason, 'ended', NOW)
  redis.call('PEXPIRE', tk, RETAIN)
  redis.call('DEL', pkey(user))
  redis.call('ZREM', B .. 'PlayersTimeStartedMatchmaking', user)
  redis.call('ZREM', B .. 'PlayersGone', user)
  if broker and broker ~= '' then
    redis.call('SREM', B .. 'BrokerPlayers:' .. broker, user)
  end
end

-- end_player ends user's searching ticket: nil when there is none, false
-- when its session is being placed (it cannot end now), else the ended
-- ticket as {ticket, user, conn, broker, started}.
local function end_player(user, state, reason)
  local p = redis.call('HMGET', pkey(user), 'ticket', 'session', 'conn', 'broker', 'started')
  if not p[1] then return nil end
  if redis.call('ZSCORE', B .. 'SessionsPlacing', p[2]) then return false end
  leave(user, p[2])
  finish(user, p[1], state, reason, p[4])
  return {p[1], user, p[3] or '', p[4] or '', p[5] or ''}
end

-- mark_gone marks user's ticket gone since at, to be cancelled at
-- deadline unless the player comes back; an earlier mark stands.
local function mark_gone(user, at, deadline, by)
  local pk = pkey(user)
  if redis.call('EXISTS', pk) == 0 or redis.call('HEXISTS', pk, 'gone_at') == 1 then return end
  redis.call('HSET', pk, 'gone_at', at, 'gone_by', by)
  redis.call('ZADD', B .. 'PlayersGone', deadline, user)
end
`

// startScript queues a player: the oldest open session of the bucket that
// takes the ticket's value, else a new session.
//
// KEYS: Player:<user>, Ticket:<tid>, PlayersTimeStartedMatchmaking,
// SessionsPerMatchmaking:<bucket>, SessionsByRange:<bucket>, Brokers,
// BrokerPlayers:<broker>, Session:<new sid>, SessionPlayers:<new sid>.
// ARGV[A..]: user, tid, conn, broker, bucket key, bucket label, value, new
// sid. Returns {"conflict", ticket} or {"ok", sid, ready "0"|"1"}.
var startScript = redis.NewScript(libHead + `
local user, tid, conn, broker = ARGV[A], ARGV[A+1], ARGV[A+2], ARGV[A+3]
local bucket, label, vs, newsid = ARGV[A+4], ARGV[A+5], ARGV[A+6], ARGV[A+7]
local existing = redis.call('HGET', KEYS[1], 'ticket')
if existing then return {'conflict', existing} end
local v = tonumber(vs) or 0
local sid, created
if RANGE then
  local c = redis.call('ZRANGEBYSCORE', KEYS[5], fmt(v - WMAX), fmt(v + WMAX), 'WITHSCORES', 'LIMIT', 0, SCAN)
  for i = 1, #c, 2 do
    local cr = tonumber(redis.call('HGET', skey(c[i]), 'created'))
    if cr and math.abs(v - tonumber(c[i + 1])) <= width(cr) and (not created or cr < created) then
      sid, created = c[i], cr
    end
  end
else
  -- The oldest open session of the bucket (scored by creation).
  local c = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
  if c[1] then sid, created = c[1], tonumber(c[2]) end
end
if not sid then
  sid, created = newsid, NOW
  redis.call('HSET', KEYS[8], 'created', NOW, 'bucket', bucket, 'center', vs, 'lo', vs, 'hi', vs, 'count', 0)
  index_open(sid, NOW, bucket, vs, false)
end
local sk = skey(sid)
redis.call('ZADD', spkey(sid), NOW, user)
local count = redis.call('HINCRBY', sk, 'count', 1)
if RANGE then
  local s = redis.call('HMGET', sk, 'lo', 'hi')
  if v < tonumber(s[1]) then redis.call('HSET', sk, 'lo', vs) end
  if v > tonumber(s[2]) then redis.call('HSET', sk, 'hi', vs) end
end
redis.call('HSET', KEYS[1], 'ticket', tid, 'session', sid, 'value', vs, 'bucket', bucket,
  'conn', conn, 'broker', broker, 'started', NOW)
redis.call('HSET', KEYS[2], 'user', user, 'state', 'searching', 'started', NOW,
  'conn', conn, 'broker', broker, 'bucket', label)
redis.call('ZADD', KEYS[3], NOW, user)
if broker ~= '' then
  redis.call('SADD', KEYS[6], broker)
  redis.call('SADD', KEYS[7], user)
end
local ready = settle(sid, created, bucket, count, true)
return {'ok', sid, ready and '1' or '0'}
`)

// cancelScript cancels a searching ticket, unless its session is being
// placed.
//
// KEYS: Ticket:<tid>, SessionsPlacing. ARGV[A..]: tid, user ("" for any
// user: an operator), reason. Returns {status, ended..., "", ticket
// fields...}: status "ok" (cancelled now; ended is {ticket, user, conn,
// broker, started}), "not_found", "ended" (no longer searching) or
// "placing".
var cancelScript = redis.NewScript(libHead + `
local tid, user, reason = ARGV[A], ARGV[A+1], ARGV[A+2]
local t = redis.call('HMGET', KEYS[1], 'user', 'state')
if not t[1] or (user ~= '' and t[1] ~= user) then return {'not_found'} end
local out
if t[2] ~= 'searching' then
  out = {'ended'}
else
  local p = redis.call('HMGET', pkey(t[1]), 'ticket', 'session')
  if p[1] ~= tid then
    -- A searching ticket whose player record is gone (never, unless the
    -- keys were edited by hand): end it.
    finish(t[1], tid, 'cancelled', reason, nil)
    out = {'ok', tid, t[1], '', '', ''}
  elseif redis.call('ZSCORE', KEYS[2], p[2]) then
    out = {'placing'}
  else
    local r = end_player(t[1], 'cancelled', reason)
    out = {'ok', r[1], r[2], r[3], r[4], r[5]}
  end
end
table.insert(out, '')
for _, f in ipairs(redis.call('HGETALL', KEYS[1])) do table.insert(out, f) end
return out
`)

// tickScript is a queue's periodic work, bounded per call: stale claims
// become claimable, tickets past the time limit time out, brokers gone
// from yellow mark their players gone (and players of brokers that came
// back are kept), tickets gone past their grace are cancelled, sessions
// with min_players old enough become ready, open sessions due for a merge
// check absorb the younger sessions their window covers; then it lists
// the claimable ready sessions and the queue's figures.
//
// KEYS: PlayersTimeStartedMatchmaking, SessionsCreationTime,
// SessionsAtMin, SessionsReady, SessionsPlacing, PlayersGone,
// SessionsMergeAt, Brokers, BrokersGone. ARGV[A..]: batch, ready limit,
// live brokers known "1"|"0", live broker ids... Returns {timed out
// (flat, 5 per ticket), cancelled (flat), ready sids, {tickets, oldest
// started, open sessions, ready sessions, oldest ready, placing}}.
var tickScript = redis.NewScript(libHead + `
local batch, readyLimit, liveKnown = tonumber(ARGV[A]), tonumber(ARGV[A+1]), ARGV[A+2] == '1'
local live = {}
for i = A + 3, #ARGV do live[ARGV[i]] = true end
local function append(list, r) for _, x in ipairs(r) do table.insert(list, x) end end

-- Stale claims: the claimer died (or is too slow); claimable again.
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', NOW - CLAIM_TTL, 'LIMIT', 0, batch)) do
  redis.call('ZREM', KEYS[5], sid)
  local ra = redis.call('HGET', skey(sid), 'ready_at')
  redis.call('HDEL', skey(sid), 'placing_by', 'claim', 'placing_at')
  if ra then redis.call('ZADD', KEYS[4], ra, sid) end
end

-- Time limit.
local timedOut = {}
for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', NOW - LIMIT, 'LIMIT', 0, batch)) do
  local r = end_player(u, 'timed_out', '')
  if r then append(timedOut, r) elseif r == nil then redis.call('ZREM', KEYS[1], u) end
end

-- Brokers: a broker no longer in yellow marks its players gone; one that
-- is back unmarks the players it marked.
if liveKnown then
  for _, b in ipairs(redis.call('SMEMBERS', KEYS[8])) do
    local bp = B .. 'BrokerPlayers:' .. b
    if redis.call('SCARD', bp) == 0 then
      redis.call('SREM', KEYS[8], b)
      redis.call('HDEL', KEYS[9], b)
    elseif live[b] then
      if redis.call('HDEL', KEYS[9], b) == 1 then
        for _, u in ipairs(redis.call('SMEMBERS', bp)) do
          if redis.call('HGET', pkey(u), 'gone_by') == 'broker' then
            redis.call('HDEL', pkey(u), 'gone_at', 'gone_by')
            redis.call('ZREM', KEYS[6], u)
          end
        end
      end
    elseif redis.call('HSETNX', KEYS[9], b, NOW) == 1 then
      for _, u in ipairs(redis.call('SMEMBERS', bp)) do
        mark_gone(u, NOW, NOW + BROKER_GRACE, 'broker')
      end
    end
  end
end

-- Gone past their grace.
local cancelled = {}
for _, u in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', NOW, 'LIMIT', 0, batch)) do
  local r = end_player(u, 'cancelled', 'disconnected')
  if r then append(cancelled, r) elseif r == nil then redis.call('ZREM', KEYS[6], u) end
end

-- min_players accepted after the wait.
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', NOW - ACCEPT, 'LIMIT', 0, batch)) do
  local s = redis.call('HMGET', skey(sid), 'count', 'bucket')
  if s[1] and tonumber(s[1]) >= MIN then make_ready(sid, s[2]) else redis.call('ZREM', KEYS[3], sid) end
end

-- Merges, oldest session first: a session absorbs the younger open
-- sessions of its bucket whose players all lie in its window, while they
-- fit.
local due = {}
for _, sid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', NOW, 'LIMIT', 0, SCAN)) do
  local cr = redis.call('ZSCORE', KEYS[2], sid)
  if cr then table.insert(due, {sid, tonumber(cr)}) else redis.call('ZREM', KEYS[7], sid) end
end
table.sort(due, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
for _, d in ipairs(due) do
  local sid, created = d[1], d[2]
  local sk = skey(sid)
  local s = redis.call('HMGET', sk, 'bucket', 'center', 'count')
  if s[1] and redis.call('ZSCORE', KEYS[2], sid) then
    local bucket, center, count = s[1], tonumber(s[2]), tonumber(s[3])
    local lo_w, hi_w, cands
    if RANGE then
      local w = width(created)
      lo_w, hi_w = center - w, center + w
      cands = redis.call('ZRANGEBYSCORE', B .. 'SessionsByRange:' .. bucket, fmt(lo_w), fmt(hi_w), 'LIMIT', 0, SCAN)
    else
      cands = redis.call('ZRANGE', B .. 'SessionsPerMatchmaking:' .. bucket, 0, SCAN - 1)
    end
    local list = {}
    for _, o in ipairs(cands) do
      if o ~= sid then
        local oc = redis.call('HMGET', skey(o), 'created', 'count', 'lo', 'hi')
        local ocr = tonumber(oc[1])
        if ocr and (ocr > created or (ocr == created and o > sid)) then
          table.insert(list, {o, ocr, tonumber(oc[2]), tonumber(oc[3]), tonumber(oc[4])})
        end
      end
    end
    table.sort(list, function(a, b) return a[2] < b[2] or (a[2] == b[2] and a[1] < b[1]) end)
    local merged = false
    for _, o in ipairs(list) do
      if count + o[3] <= MAX and (not RANGE or (o[4] >= lo_w and o[5] <= hi_w)) then
        local members = redis.call('ZRANGE', spkey(o[1]), 0, -1, 'WITHSCORES')
        for i = 1, #members, 2 do
          redis.call('ZADD', spkey(sid), members[i + 1], members[i])
          redis.call('HSET', pkey(members[i]), 'session', sid)
        end
        unindex_open(o[1], bucket)
        redis.call('DEL', skey(o[1]), spkey(o[1]))
        count = count + o[3]
        merged = true
        if count >= MAX then break end
      end
    end
    if merged then
      redis.call('HSET', sk, 'count', count)
      if RANGE then span(sid) end
    end
    if not settle(sid, created, bucket, count, true) then
      redis.call('ZADD', KEYS[7], NOW + MERGE_EVERY, sid)
    end
  end
end

local ready = redis.call('ZRANGE', KEYS[4], 0, readyLimit - 1)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] or ''
local oldestReady = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')[2] or ''
local stats = {tostring(redis.call('ZCARD', KEYS[1])), oldest, tostring(redis.call('ZCARD', KEYS[2])),
  tostring(redis.call('ZCARD', KEYS[4])), oldestReady, tostring(redis.call('ZCARD', KEYS[5]))}
return {timedOut, cancelled, ready, stats}
`)

// claimScript claims a ready session for placement by this instance:
// refused while another instance's claim is fresh. The first claim stores
// the room id (or takes a server from ServersAvailable); later claims
// reuse it, so a retry creates the same room.
//
// KEYS: Session:<sid>, SessionsReady, SessionsPlacing,
// SessionPlayers:<sid>, ServersAvailable, Servers. ARGV[A..]: sid, me,
// token, proposed room id, server mode "1"|"0". Returns {"ok", room,
// server, addr, {players oldest first}} or {"gone"|"busy"|"open"|"nocap"}.
var claimScript = redis.NewScript(libHead + `
local sid, me, token, proposed, serverMode = ARGV[A], ARGV[A+1], ARGV[A+2], ARGV[A+3], ARGV[A+4] == '1'
local h = redis.call('HMGET', KEYS[1], 'created', 'placing_by', 'room', 'server', 'addr')
if not h[1] then return {'gone'} end
local ps = redis.call('ZSCORE', KEYS[3], sid)
if ps then
  if h[2] ~= me and NOW - tonumber(ps) < CLAIM_TTL then return {'busy'} end
elseif not redis.call('ZSCORE', KEYS[2], sid) then
  return {'open'}
end
local room, srv, addr = '', '', ''
if serverMode then
  if nz(h[4]) then
    srv, addr = h[4], h[5]
  else
    while true do
      srv = redis.call('SPOP', KEYS[5])
      if not srv then return {'nocap'} end
      addr = redis.call('HGET', KEYS[6], srv)
      if addr then break end
    end
  end
else
  room = nz(h[3]) or proposed
end
redis.call('HSET', KEYS[1], 'room', room, 'server', srv, 'addr', addr, 'placing_by', me, 'claim', token, 'placing_at', NOW)
redis.call('ZREM', KEYS[2], sid)
redis.call('ZADD', KEYS[3], NOW, sid)
return {'ok', room, srv, addr, redis.call('ZRANGE', KEYS[4], 0, -1)}
`)

// unclaimScript gives up this instance's claim after a failed placement:
// the session is ready again (forgetting its room id when resetRoom, so
// the next claim picks another).
//
// KEYS: Session:<sid>, SessionsReady, SessionsPlacing. ARGV[A..]: sid,
// token, reset room "1"|"0". Returns 1, or 0 when the claim was no longer
// this one.
var unclaimScript = redis.NewScript(libHead + `
local sid, token, reset = ARGV[A], ARGV[A+1], ARGV[A+2] == '1'
if redis.call('HGET', KEYS[1], 'claim') ~= token then return 0 end
redis.call('HDEL', KEYS[1], 'placing_by', 'claim', 'placing_at')
if reset then redis.call('HDEL', KEYS[1], 'room') end
redis.call('ZREM', KEYS[3], sid)
redis.call('ZADD', KEYS[2], redis.call('HGET', KEYS[1], 'ready_at') or NOW, sid)
return 1
`)

// placedScript records a placed session, if the claim is still this
// one: every member's ticket is matched (and kept ticket_retention), its
// player record freed, the session deleted.
//
// KEYS: Session:<sid>, SessionsPlacing, SessionPlayers:<sid>,
// PlayersTimeStartedMatchmaking, PlayersGone. ARGV[A..]: sid, token.
// Returns {"ok", players JSON, then 5 per player: ticket, user, conn,
// broker, started} or {"lost"}.
var placedScript = redis.NewScript(libHead + `
local sid, token = ARGV[A], ARGV[A+1]
local s = redis.call('HMGET', KEYS[1], 'claim', 'room', 'addr')
if s[1] ~= token then return {'lost'} end
local players = redis.call('ZRANGE', KEYS[3], 0, -1)
local pj = cjson.encode(players)
local out = {'ok', pj}
for _, u in ipairs(players) do
  local p = redis.call('HMGET', pkey(u), 'ticket', 'conn', 'broker', 'started', 'gone_at')
  if p[1] then
    local tk = B .. 'Ticket:' .. p[1]
    redis.call('HSET', tk, 'state', 'matched', 'ended', NOW, 'session', sid,
      'room', s[2] or '', 'server', s[3] or '', 'players', pj)
    redis.call('PEXPIRE', tk, RETAIN)
    redis.call('DEL', pkey(u))
    redis.call('ZREM', KEYS[4], u)
    if p[5] then redis.call('ZREM', KEYS[5], u) end
    if p[3] and p[3] ~= '' then redis.call('SREM', B .. 'BrokerPlayers:' .. p[3], u) end
    for _, x in ipairs({p[1], u, p[2] or '', p[3] or '', p[4] or ''}) do table.insert(out, x) end
  end
end
redis.call('ZREM', KEYS[2], sid)
redis.call('DEL', KEYS[1], KEYS[3])
return out
`)

// presenceScript applies a broker's presence event to user's ticket in
// the queue. Offline: the ticket held by that connection is gone since
// at, cancelled at at + grace. Online: a ticket that is gone, or held on
// a broker yellow no longer lists, moves to this connection (resumed).
//
// KEYS: Player:<user>, PlayersGone, Brokers, BrokerPlayers:<broker>.
// ARGV[A..]: user, conn, broker, online "1"|"0", at, grace ms, live
// brokers known "1"|"0", live broker ids... Returns 0 (nothing to do), 1
// (marked gone, or back on the same connection) or 2 (moved).
var presenceScript = redis.NewScript(libHead + `
local user, conn, broker, online = ARGV[A], ARGV[A+1], ARGV[A+2], ARGV[A+3] == '1'
local at, grace, liveKnown = tonumber(ARGV[A+4]), tonumber(ARGV[A+5]), ARGV[A+6] == '1'
local live = {}
for i = A + 7, #ARGV do live[ARGV[i]] = true end
local p = redis.call('HMGET', KEYS[1], 'ticket', 'conn', 'broker', 'gone_at')
if not p[1] then return 0 end
if not online then
  if p[2] ~= conn or p[4] then return 0 end
  redis.call('HSET', KEYS[1], 'gone_at', at, 'gone_by', 'conn')
  redis.call('ZADD', KEYS[2], at + grace, user)
  return 1
end
if p[2] == conn and p[3] == broker then
  if not p[4] then return 0 end
  redis.call('HDEL', KEYS[1], 'gone_at', 'gone_by')
  redis.call('ZREM', KEYS[2], user)
  return 1
end
local old = p[3] or ''
if not p[4] and not (liveKnown and old ~= '' and not live[old]) then return 0 end
if old ~= '' then redis.call('SREM', B .. 'BrokerPlayers:' .. old, user) end
if broker ~= '' then
  redis.call('SADD', KEYS[3], broker)
  redis.call('SADD', KEYS[4], user)
end
redis.call('HSET', KEYS[1], 'conn', conn, 'broker', broker)
redis.call('HDEL', KEYS[1], 'gone_at', 'gone_by')
redis.call('ZREM', KEYS[2], user)
redis.call('HSET', B .. 'Ticket:' .. p[1], 'conn', conn, 'broker', broker)
return 2
`)

// registerServerScript adds or updates a dedicated server; available
// false takes it out of ServersAvailable until ServerAvailable.
//
// KEYS: Servers, ServersAvailable. ARGV[A..]: id, addr, available
// "1"|"0". Returns 1.
var registerServerScript = redis.NewScript(libHead + `
redis.call('HSET', KEYS[1], ARGV[A], ARGV[A+1])
if ARGV[A+2] == '1' then redis.call('SADD', KEYS[2], ARGV[A]) else redis.call('SREM', KEYS[2], ARGV[A]) end
return 1
`)

// serverAvailableScript marks a registered server available. KEYS:
// Servers, ServersAvailable. ARGV[A]: id. Returns 0 for an unknown server.
var serverAvailableScript = redis.NewScript(libHead + `
if redis.call('HEXISTS', KEYS[1], ARGV[A]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[A])
return 1
`)

// leaveServerScript removes a server. KEYS: Servers, ServersAvailable.
// ARGV[A]: id. Returns 0 for an unknown server.
var leaveServerScript = redis.NewScript(libHead + `
redis.call('SREM', KEYS[2], ARGV[A])
return redis.call('HDEL', KEYS[1], ARGV[A])
`)
