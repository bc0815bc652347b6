package match

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Bounds of one script run.
const (
	// tickBatch bounds the tickets timed out or cancelled, the claims
	// expired and the sessions readied by one tick of a queue: a tick
	// stays well under a millisecond of Redis time, and a backlog drains
	// at tickBatch per tick.
	tickBatch = 256
	// tickReady bounds the ready sessions one tick hands to placement.
	tickReady = 64
	// mergeEvery is how often an open session checks whether its widened
	// window now covers younger sessions: the window widens by the second.
	mergeEvery = time.Second
)

// store runs the scripts of the model for one service.
type store struct {
	rdb  redis.UniversalClient
	opts Options
	// onErr is told of every failed script run (a metric).
	onErr func(script string, err error)
}

// errScript marks a script's error reply: a bug, not Redis being away.
var errScript = errors.New("match: script error")

// run runs script (named name, for errors) on q's keys with the common
// arguments at now followed by args.
func (st *store) run(ctx context.Context, s *redis.Script, name string, q *queue, now time.Time, keys []string, args ...any) (any, error) {
	v, err := s.Run(ctx, st.rdb, keys, append(st.head(q, now), args...)...).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		if st.onErr != nil {
			st.onErr(name, err)
		}
		if isScriptError(err) {
			return nil, fmt.Errorf("%w: %s: %v", errScript, name, err)
		}
		return nil, fmt.Errorf("match: %s: %w", name, err)
	}
	return v, nil
}

// isScriptError reports whether err is a script's own failure (a Lua
// error), as opposed to Redis being unreachable, loading or failing over.
func isScriptError(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	msg := re.Error()
	return strings.Contains(msg, "script") || strings.Contains(msg, "Lua") || strings.Contains(msg, "user_script")
}

// head returns the arguments every script starts with (libHead).
func (st *store) head(q *queue, now time.Time) []any {
	rng := "0"
	if q.hasRange {
		rng = "1"
	}
	return []any{
		q.base, ms(now), q.MinPlayers, q.MaxPlayers, rng,
		fmtFloat(q.width0), fmtFloat(q.widen), fmtFloat(q.w),
		q.AcceptMinAfter.Milliseconds(), q.TimeLimit.Milliseconds(), st.opts.TicketRetention.Milliseconds(),
		mergeEvery.Milliseconds(), st.opts.ClaimTTL.Milliseconds(), st.opts.BrokerGrace.Milliseconds(),
	}
}

// wireError turns a store error into the error a handler answers: Redis
// away is unavailable (the request may be retried), a script's own error
// internal, a deadline timeout.
func wireError(err error) error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, errScript):
		return wire.Errorf(wire.CodeInternal, "matchmaker store error")
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeTimeout, "matchmaker store did not answer in time")
	case stores.IsOutage(err):
		return services.StoreError(context.TODO(), Name, err)
	}
	return wire.Errorf(wire.CodeUnavailable, "matchmaker store unavailable")
}

// ended is a ticket a script ended (or matched): who to tell.
type ended struct {
	ticket, user, conn, broker string
	started                    int64
}

// endedList decodes a flat list of 5 strings per ticket.
func endedList(v any) []ended {
	s := strs(v)
	out := make([]ended, 0, len(s)/5)
	for i := 0; i+4 < len(s); i += 5 {
		st, _ := strconv.ParseInt(s[i+4], 10, 64)
		out = append(out, ended{ticket: s[i], user: s[i+1], conn: s[i+2], broker: s[i+3], started: st})
	}
	return out
}

// strs returns a script's array reply as strings (numbers formatted).
func strs(v any) []string {
	a, _ := v.([]any)
	out := make([]string, len(a))
	for i, x := range a {
		switch x := x.(type) {
		case string:
			out[i] = x
		case int64:
			out[i] = strconv.FormatInt(x, 10)
		}
	}
	return out
}

// startResult is what startScript answered.
type startResult struct {
	conflict string // the ticket already searching, if any
	session  string
	ready    bool
}

// start runs startScript.
func (st *store) start(ctx context.Context, q *queue, now time.Time, user, tid, conn, broker, bucket, label string, value float64) (startResult, error) {
	sid := newSessionID()
	keys := []string{
		q.playerKey(user), q.ticketKey(tid), q.key(keyPlayersStarted),
		q.key(keySessionsBucket + bucket), q.key(keySessionsByRange + bucket),
		q.key(keyBrokers), q.key(keyBrokerPlayers + broker),
		q.sessionKey(sid), q.key("SessionPlayers:" + sid),
	}
	v, err := st.run(ctx, startScript, "start", q, now, keys, user, tid, conn, broker, bucket, label, fmtFloat(value), sid)
	if err != nil {
		return startResult{}, err
	}
	r := strs(v)
	switch {
	case len(r) == 2 && r[0] == "conflict":
		return startResult{conflict: r[1]}, nil
	case len(r) == 3 && r[0] == "ok":
		return startResult{session: r[1], ready: r[2] == "1"}, nil
	}
	return startResult{}, fmt.Errorf("%w: start answered %q", errScript, r)
}

// ticketFields are a Ticket:<id> hash.
type ticketFields map[string]string

// cancelResult is what cancelScript answered.
type cancelResult struct {
	status string // ok, not_found, ended, placing
	ended  ended  // status ok
	ticket ticketFields
}

// cancel runs cancelScript: user "" cancels any user's ticket.
func (st *store) cancel(ctx context.Context, q *queue, now time.Time, tid, user, reason string) (cancelResult, error) {
	keys := []string{q.ticketKey(tid), q.key(keySessionsPlacing)}
	v, err := st.run(ctx, cancelScript, "cancel", q, now, keys, tid, user, reason)
	if err != nil {
		return cancelResult{}, err
	}
	r := strs(v)
	if len(r) == 0 {
		return cancelResult{}, fmt.Errorf("%w: cancel answered nothing", errScript)
	}
	res := cancelResult{status: r[0]}
	rest := r[1:]
	if res.status == "ok" && len(rest) >= 5 {
		res.ended = endedList(toAny(rest[:5]))[0]
		rest = rest[5:]
	}
	if len(rest) > 0 && rest[0] == "" {
		rest = rest[1:]
	}
	res.ticket = pairs(rest)
	return res, nil
}

// toAny returns s as a script reply, for endedList.
func toAny(s []string) any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// pairs returns a flat field/value list as a map.
func pairs(s []string) ticketFields {
	m := make(ticketFields, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		m[s[i]] = s[i+1]
	}
	return m
}

// ticket reads a Ticket:<id> hash; nil when there is none.
func (st *store) ticket(ctx context.Context, q *queue, tid string) (ticketFields, error) {
	m, err := st.rdb.HGetAll(ctx, q.ticketKey(tid)).Result()
	if err != nil {
		return nil, fmt.Errorf("match: ticket: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// queueFigures are a queue's figures, as a tick or Queues reads them.
type queueFigures struct {
	tickets, open, ready, placing int64
	// oldestStarted and oldestReady are Unix ms, 0 for none.
	oldestStarted, oldestReady int64
}

// tickResult is what tickScript answered.
type tickResult struct {
	timedOut, cancelled []ended
	ready               []string
	figures             queueFigures
}

// tick runs tickScript; live lists the brokers in yellow (nil with
// liveKnown false: no view yet, so no broker is judged gone).
func (st *store) tick(ctx context.Context, q *queue, now time.Time, liveKnown bool, live []string) (tickResult, error) {
	keys := []string{
		q.key(keyPlayersStarted), q.key(keySessionsCreated), q.key(keySessionsAtMin),
		q.key(keySessionsReady), q.key(keySessionsPlacing), q.key(keyPlayersGone),
		q.key(keySessionsMergeAt), q.key(keyBrokers), q.key(keyBrokersGone),
	}
	args := []any{tickBatch, tickReady, boolArg(liveKnown)}
	for _, b := range live {
		args = append(args, b)
	}
	v, err := st.run(ctx, tickScript, "tick", q, now, keys, args...)
	if err != nil {
		return tickResult{}, err
	}
	a, _ := v.([]any)
	if len(a) != 4 {
		return tickResult{}, fmt.Errorf("%w: tick answered %d items", errScript, len(a))
	}
	f := strs(a[3])
	num := func(i int) int64 {
		if i >= len(f) {
			return 0
		}
		n, _ := strconv.ParseFloat(f[i], 64)
		return int64(n)
	}
	return tickResult{
		timedOut:  endedList(a[0]),
		cancelled: endedList(a[1]),
		ready:     strs(a[2]),
		figures: queueFigures{
			tickets: num(0), oldestStarted: num(1), open: num(2), ready: num(3), oldestReady: num(4), placing: num(5),
		},
	}, nil
}

// boolArg is a script's "1" or "0".
func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// claimResult is what claimScript answered.
type claimResult struct {
	status             string // ok, gone, busy, open, nocap
	room, server, addr string
	players            []string
}

// claim runs claimScript.
func (st *store) claim(ctx context.Context, q *queue, now time.Time, sid, me, token, proposed string) (claimResult, error) {
	keys := []string{
		q.sessionKey(sid), q.key(keySessionsReady), q.key(keySessionsPlacing),
		q.key("SessionPlayers:" + sid), q.key(keyServersAvailable), q.key(keyServers),
	}
	v, err := st.run(ctx, claimScript, "claim", q, now, keys, sid, me, token, proposed, boolArg(q.serverMode()))
	if err != nil {
		return claimResult{}, err
	}
	a, _ := v.([]any)
	if len(a) == 0 {
		return claimResult{}, fmt.Errorf("%w: claim answered nothing", errScript)
	}
	head := strs(a)
	r := claimResult{status: head[0]}
	if r.status == "ok" && len(a) == 5 {
		r.room, r.server, r.addr, r.players = head[1], head[2], head[3], strs(a[4])
	}
	return r, nil
}

// unclaim runs unclaimScript.
func (st *store) unclaim(ctx context.Context, q *queue, now time.Time, sid, token string, resetRoom bool) error {
	keys := []string{q.sessionKey(sid), q.key(keySessionsReady), q.key(keySessionsPlacing)}
	_, err := st.run(ctx, unclaimScript, "unclaim", q, now, keys, sid, token, boolArg(resetRoom))
	return err
}

// placedResult is what placedScript answered.
type placedResult struct {
	lost    bool
	players []string
	tickets []ended
}

// placed runs placedScript.
func (st *store) placed(ctx context.Context, q *queue, now time.Time, sid, token string) (placedResult, error) {
	keys := []string{
		q.sessionKey(sid), q.key(keySessionsPlacing), q.key("SessionPlayers:" + sid),
		q.key(keyPlayersStarted), q.key(keyPlayersGone),
	}
	v, err := st.run(ctx, placedScript, "placed", q, now, keys, sid, token)
	if err != nil {
		return placedResult{}, err
	}
	r := strs(v)
	if len(r) == 1 && r[0] == "lost" {
		return placedResult{lost: true}, nil
	}
	if len(r) < 2 || r[0] != "ok" {
		return placedResult{}, fmt.Errorf("%w: placed answered %q", errScript, r)
	}
	res := placedResult{tickets: endedList(toAny(r[2:]))}
	if err := json.Unmarshal([]byte(r[1]), &res.players); err != nil {
		return placedResult{}, fmt.Errorf("%w: placed players %q: %v", errScript, r[1], err)
	}
	return res, nil
}

// presence applies a presence event to every queue in one pipeline of
// EVALSHA; a queue whose reply is NOSCRIPT (Redis restarted) is run again
// with Run, which loads the script.
func (st *store) presence(ctx context.Context, qs []*queue, now time.Time, user, conn, broker string, online bool, at, graceMs int64, liveKnown bool, live []string) error {
	type call struct {
		q    *queue
		keys []string
		args []any
		cmd  *redis.Cmd
	}
	calls := make([]call, len(qs))
	p := st.rdb.Pipeline()
	for i, q := range qs {
		keys := []string{q.playerKey(user), q.key(keyPlayersGone), q.key(keyBrokers), q.key(keyBrokerPlayers + broker)}
		args := []any{user, conn, broker, boolArg(online), at, graceMs, boolArg(liveKnown)}
		for _, b := range live {
			args = append(args, b)
		}
		calls[i] = call{q: q, keys: keys, args: args}
		calls[i].cmd = presenceScript.EvalSha(ctx, p, keys, append(st.head(q, now), args...)...)
	}
	_, _ = p.Exec(ctx)
	var first error
	for _, c := range calls {
		err := c.cmd.Err()
		if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			_, err = st.run(ctx, presenceScript, "presence", c.q, now, c.keys, c.args...)
		} else if err != nil && st.onErr != nil {
			st.onErr("presence", err)
		}
		if err != nil && first == nil {
			first = fmt.Errorf("match: presence: %w", err)
		}
	}
	return first
}

// server runs one of the dedicated server scripts; it reports the
// script's integer reply.
func (st *store) server(ctx context.Context, s *redis.Script, name string, q *queue, now time.Time, args ...any) (int64, error) {
	v, err := st.run(ctx, s, name, q, now, []string{q.key(keyServers), q.key(keyServersAvailable)}, args...)
	if err != nil {
		return 0, err
	}
	n, _ := v.(int64)
	return n, nil
}

// figures reads a queue's figures (match.Queues) in one pipeline.
func (st *store) figures(ctx context.Context, q *queue) (queueFigures, int64, int64, error) {
	p := st.rdb.Pipeline()
	tickets := p.ZCard(ctx, q.key(keyPlayersStarted))
	oldest := p.ZRangeWithScores(ctx, q.key(keyPlayersStarted), 0, 0)
	open := p.ZCard(ctx, q.key(keySessionsCreated))
	ready := p.ZCard(ctx, q.key(keySessionsReady))
	oldestReady := p.ZRangeWithScores(ctx, q.key(keySessionsReady), 0, 0)
	placing := p.ZCard(ctx, q.key(keySessionsPlacing))
	servers := p.HLen(ctx, q.key(keyServers))
	avail := p.SCard(ctx, q.key(keyServersAvailable))
	if _, err := p.Exec(ctx); err != nil {
		return queueFigures{}, 0, 0, fmt.Errorf("match: figures: %w", err)
	}
	f := queueFigures{tickets: tickets.Val(), open: open.Val(), ready: ready.Val(), placing: placing.Val()}
	if z := oldest.Val(); len(z) > 0 {
		f.oldestStarted = int64(z[0].Score)
	}
	if z := oldestReady.Val(); len(z) > 0 {
		f.oldestReady = int64(z[0].Score)
	}
	return f, servers.Val(), avail.Val(), nil
}

// searching lists up to limit searching tickets of q, oldest first, with
// their player records.
func (st *store) searching(ctx context.Context, q *queue, limit int) ([]ticketFields, error) {
	users, err := st.rdb.ZRange(ctx, q.key(keyPlayersStarted), 0, int64(limit-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("match: tickets: %w", err)
	}
	if len(users) == 0 {
		return nil, nil
	}
	p := st.rdb.Pipeline()
	players := make([]*redis.MapStringStringCmd, len(users))
	for i, u := range users {
		players[i] = p.HGetAll(ctx, q.playerKey(u))
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("match: tickets: %w", err)
	}
	p = st.rdb.Pipeline()
	type pending struct {
		user   string
		player map[string]string
		t      *redis.MapStringStringCmd
	}
	var list []pending
	for i, c := range players {
		m := c.Val()
		if m["ticket"] == "" {
			continue // ended meanwhile
		}
		list = append(list, pending{user: users[i], player: m, t: p.HGetAll(ctx, q.ticketKey(m["ticket"]))})
	}
	if len(list) > 0 {
		if _, err := p.Exec(ctx); err != nil {
			return nil, fmt.Errorf("match: tickets: %w", err)
		}
	}
	out := make([]ticketFields, 0, len(list))
	for _, x := range list {
		t := ticketFields(x.t.Val())
		if len(t) == 0 {
			continue
		}
		t["id"] = x.player["ticket"]
		t["msession"] = x.player["session"]
		out = append(out, t)
	}
	return out, nil
}
