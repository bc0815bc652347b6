package game

// Leaderboards: Postgres (the Store's scores) is the record of truth;
// Redis holds each board's current season as a sorted set for ranks.
//
// Keys of board B's season S, all in one Redis Cluster slot (the hash tag
// {B:S}):
//
//	<prefix>lb:{B:S}       zset  user -> score (negated on a desc board, so
//	                             that ZRANGE is always best first and ties
//	                             go by user id ascending)
//	<prefix>lb:{B:S}:v     hash  user -> version of the row the zset holds
//	<prefix>lb:{B:S}:ok    the marker: the zset holds every row of the store
//	<prefix>lb:{B:S}:lock  held by the instance rebuilding it
//
// A submit writes the store first, then the row into Redis with a script
// that applies it only while the marker exists and only if its version is
// newer than the one held (so two submits racing cannot leave the older
// score). Without the marker (a Redis flush or failover, a new season, an
// eviction) the first reader or writer takes the lock and rebuilds: the
// zset from the store's rows page by page, the marker, then the rows
// updated since shortly before it began (a submit that committed while it
// ran, but found no marker, is in there); everyone else waits for the
// marker.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	gamepb "github.com/noonhq/noon/idl/gen/game"
)

// Leaderboard bounds.
const (
	// rebuildPage is how many rows a rebuild reads and loads at once.
	rebuildPage = 1000
	// rebuildLockTTL bounds how long a dead rebuilder keeps others waiting.
	rebuildLockTTL = 30 * time.Second
	// rebuildPoll is how often a reader waiting for another instance's
	// rebuild looks for the marker.
	rebuildPoll = 20 * time.Millisecond
	// clockSkew is how far instances' clocks may disagree: a rebuild
	// re-reads rows updated from (its start - store_timeout - clockSkew).
	clockSkew = 5 * time.Second
	// seasonKeep is how long a season's keys outlive the season.
	seasonKeep = time.Hour
)

// board is a configured leaderboard.
type board struct {
	BoardOptions
	op ScoreOp
}

func newBoard(o BoardOptions) *board {
	o = o.withDefaults()
	return &board{BoardOptions: o, op: ScoreOp{Operator: o.Operator, Asc: o.Order == gamepb.ORDER_ASC}}
}

// season returns the board's season at now and when it ends (zero for a
// board that never resets).
func (b *board) season(now time.Time) (string, time.Time) {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch b.Reset {
	case gamepb.RESET_DAILY:
		return "d" + now.Format("20060102"), day.AddDate(0, 0, 1)
	case gamepb.RESET_WEEKLY:
		y, w := now.ISOWeek()
		monday := day.AddDate(0, 0, -((int(now.Weekday()) + 6) % 7))
		return fmt.Sprintf("w%04d%02d", y, w), monday.AddDate(0, 0, 7)
	case gamepb.RESET_MONTHLY:
		return "m" + now.Format("200601"), time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
	}
	return "all", time.Time{}
}

// redisScore is a score as the zset holds it: best first in ZRANGE order.
func (b *board) redisScore(score int64) float64 {
	if b.op.Asc {
		return float64(score)
	}
	return -float64(score)
}

// score is the board's score of a zset score.
func (b *board) score(z float64) int64 {
	if b.op.Asc {
		return int64(z)
	}
	return -int64(z)
}

// boardKeys are the Redis keys of a board's season.
type boardKeys struct{ z, v, ok, lock string }

// leaderboards are the Redis side of the boards.
type leaderboards struct {
	s   *Service
	rdb redis.UniversalClient
	pfx string
}

func (l *leaderboards) keys(b *board, season string) boardKeys {
	z := l.pfx + "lb:{" + b.ID + ":" + season + "}"
	return boardKeys{z: z, v: z + ":v", ok: z + ":ok", lock: z + ":lock"}
}

// submitScript applies one row if the marker exists and the row is newer
// than the one held, and returns the user's rank (0-based); -1 without the
// marker. KEYS: z, v, ok. ARGV: user, score, version.
var submitScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local cur = redis.call('HGET', KEYS[2], ARGV[1])
if not cur or tonumber(cur) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
return redis.call('ZRANK', KEYS[1], ARGV[1])
`)

// loadScript applies rows (user, score, version triples) that are newer
// than those held. KEYS: z, v.
var loadScript = redis.NewScript(`
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[2], ARGV[i])
  if not cur or tonumber(cur) < tonumber(ARGV[i+2]) then
    redis.call('ZADD', KEYS[1], ARGV[i+1], ARGV[i])
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+2])
  end
end
return 0
`)

// unlockScript deletes the lock if it still holds the token. KEYS: lock.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// submit records row (already stored) in Redis and returns the user's
// rank (1-based).
func (l *leaderboards) submit(ctx context.Context, b *board, season string, end time.Time, row ScoreRow) (int64, error) {
	k := l.keys(b, season)
	args := []any{row.UserID, strconv.FormatFloat(b.redisScore(row.Score), 'f', -1, 64), row.Version}
	for range 3 {
		rank, err := submitScript.Run(ctx, l.rdb, []string{k.z, k.v, k.ok}, args...).Int64()
		if err != nil {
			return 0, fmt.Errorf("game: leaderboard %s: %w", b.ID, err)
		}
		if rank >= 0 {
			return rank + 1, nil
		}
		if err := l.ensure(ctx, b, season, end); err != nil {
			return 0, err
		}
	}
	return 0, fmt.Errorf("game: leaderboard %s: its Redis copy keeps disappearing", b.ID)
}

// ensure makes sure the board's season is in Redis: rebuilt from the
// store under the lock when the marker is missing, or waited for while
// another instance rebuilds it.
func (l *leaderboards) ensure(ctx context.Context, b *board, season string, end time.Time) error {
	k := l.keys(b, season)
	for {
		n, err := l.rdb.Exists(ctx, k.ok).Result()
		if err != nil {
			return fmt.Errorf("game: leaderboard %s: %w", b.ID, err)
		}
		if n == 1 {
			return nil
		}
		var tok [12]byte
		_, _ = rand.Read(tok[:])
		token := hex.EncodeToString(tok[:])
		got, err := l.rdb.SetNX(ctx, k.lock, token, rebuildLockTTL).Result()
		if err != nil {
			return fmt.Errorf("game: leaderboard %s: %w", b.ID, err)
		}
		if got {
			err := l.rebuild(ctx, b, season, end, k)
			_ = unlockScript.Run(context.WithoutCancel(ctx), l.rdb, []string{k.lock}, token).Err()
			return err
		}
		t := time.NewTimer(rebuildPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("game: leaderboard %s: waiting for its rebuild: %w", b.ID, ctx.Err())
		case <-t.C:
		}
	}
}

// rebuild loads the board's season from the store into Redis. Caller
// holds the lock.
func (l *leaderboards) rebuild(ctx context.Context, b *board, season string, end time.Time, k boardKeys) error {
	start := l.s.now()
	if err := l.rdb.Del(ctx, k.z, k.v).Err(); err != nil {
		return fmt.Errorf("game: leaderboard %s: rebuild: %w", b.ID, err)
	}
	rows := 0
	after := ""
	for {
		page, err := l.s.st.Scores(ctx, b.ID, season, after, rebuildPage)
		if err != nil {
			return fmt.Errorf("game: leaderboard %s: rebuild: %w", b.ID, err)
		}
		if len(page) == 0 {
			break
		}
		if err := l.load(ctx, b, k, page); err != nil {
			return err
		}
		rows += len(page)
		after = page[len(page)-1].UserID
	}
	pipe := l.rdb.TxPipeline()
	pipe.Set(ctx, k.ok, "1", 0)
	if !end.IsZero() {
		for _, key := range []string{k.z, k.v, k.ok} {
			pipe.ExpireAt(ctx, key, end.Add(seasonKeep))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("game: leaderboard %s: rebuild: %w", b.ID, err)
	}
	// Rows committed while the pages were read, by submits that found no
	// marker, are in the store: apply them (only newer versions land).
	late, err := l.s.st.ScoresSince(ctx, b.ID, season, start.Add(-l.s.opts.StoreTimeout-clockSkew))
	if err != nil {
		return fmt.Errorf("game: leaderboard %s: rebuild: %w", b.ID, err)
	}
	if err := l.load(ctx, b, k, late); err != nil {
		return err
	}
	l.s.m.rebuilds.With(b.ID).Inc()
	l.s.log.Info("game: leaderboard rebuilt from the store", "board", b.ID, "season", season, "rows", rows, "late", len(late))
	return nil
}

// load applies rows to the board's Redis copy.
func (l *leaderboards) load(ctx context.Context, b *board, k boardKeys, rows []ScoreRow) error {
	for len(rows) > 0 {
		n := min(len(rows), rebuildPage)
		args := make([]any, 0, 3*n)
		for _, r := range rows[:n] {
			args = append(args, r.UserID, strconv.FormatFloat(b.redisScore(r.Score), 'f', -1, 64), r.Version)
		}
		if err := loadScript.Run(ctx, l.rdb, []string{k.z, k.v}, args...).Err(); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("game: leaderboard %s: load: %w", b.ID, err)
		}
		rows = rows[n:]
	}
	return nil
}

// ranked are rows of a board read from Redis, best first.
type ranked struct {
	first int64 // rank of the first, 1-based
	rows  []redis.Z
}

// top returns the board's first n rows of season.
func (l *leaderboards) top(ctx context.Context, b *board, season string, end time.Time, n int) (ranked, error) {
	if err := l.ensure(ctx, b, season, end); err != nil {
		return ranked{}, err
	}
	zs, err := l.rdb.ZRangeWithScores(ctx, l.keys(b, season).z, 0, int64(n)-1).Result()
	if err != nil {
		return ranked{}, fmt.Errorf("game: leaderboard %s: %w", b.ID, err)
	}
	return ranked{first: 1, rows: zs}, nil
}

// around returns user's row of season and n rows on each side; none when
// the user has no score.
func (l *leaderboards) around(ctx context.Context, b *board, season string, end time.Time, user string, n int) (ranked, error) {
	if err := l.ensure(ctx, b, season, end); err != nil {
		return ranked{}, err
	}
	z := l.keys(b, season).z
	r, err := l.rdb.ZRank(ctx, z, user).Result()
	if errors.Is(err, redis.Nil) {
		return ranked{}, nil
	}
	if err != nil {
		return ranked{}, fmt.Errorf("game: leaderboard %s: %w", b.ID, err)
	}
	from := max(0, r-int64(n))
	zs, err := l.rdb.ZRangeWithScores(ctx, z, from, r+int64(n)).Result()
	if err != nil {
		return ranked{}, fmt.Errorf("game: leaderboard %s: %w", b.ID, err)
	}
	return ranked{first: from + 1, rows: zs}, nil
}
