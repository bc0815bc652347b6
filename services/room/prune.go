package room

import (
	"context"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Retention: closed rooms' rows, logs and snapshots are deleted (or
// archived) once closed for Retention.ClosedAfter, by a sweep every
// Retention.SweepEvery that one room instance at a time runs (a Redis
// lock), in batches of Retention.Batch whose rows concurrent sweeps never
// share (the store's SKIP LOCKED); and on demand by room.Prune (noonctl
// rooms prune).

// Limits of pruning.
const (
	// defaultPruneLimit and maxPruneLimit bound one room.Prune: a call
	// deletes rooms in batches, each a short transaction; 100,000 rooms is
	// minutes of work at most.
	defaultPruneLimit = 1000
	maxPruneLimit     = 100_000
	// maxPruneIDs bounds the ids a PruneReply lists.
	maxPruneIDs = 100
	// sweepLimit bounds one sweep: the rest waits for the next.
	sweepLimit = 100_000
	// pruneTimeout bounds one batch.
	pruneTimeout = 30 * time.Second
)

// Prune removes or archives rooms closed longer than the request's age
// (admins only).
func (s api) Prune(ctx context.Context, sess *services.Session, req *roompb.PruneRequest) (*roompb.PruneReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	age := time.Duration(req.OlderThanMs) * time.Millisecond
	switch {
	case req.OlderThanMs < 0 || req.OlderThanMs > int64(100*365*24*time.Hour/time.Millisecond):
		return nil, wire.Errorf(wire.CodeBadRequest, "older_than_ms must be >= 0 and at most a century, got %d", req.OlderThanMs)
	case req.OlderThanMs == 0 && s.opts.Retention.ClosedAfter == 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "retention.closed_after is 0 (keep forever): name older_than_ms")
	case req.OlderThanMs == 0:
		age = s.opts.Retention.ClosedAfter
	}
	limit := int(req.Limit)
	switch {
	case limit < 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "limit must be >= 0, got %d", limit)
	case limit == 0:
		limit = defaultPruneLimit
	case limit > maxPruneLimit:
		limit = maxPruneLimit
	}
	ids, err := s.prune(ctx, age, limit, req.DryRun)
	if err != nil && len(ids) == 0 {
		return nil, wire.Errorf(wire.CodeUnavailable, "pruning rooms failed")
	}
	out := &roompb.PruneReply{Rooms: int32(len(ids)), RoomIds: ids[:min(len(ids), maxPruneIDs)], Mode: s.opts.Retention.Mode}
	return out, nil
}

// prune prunes up to limit rooms closed for age, in batches; it returns
// the rooms pruned, and the error that stopped it early, if any.
func (s *Service) prune(ctx context.Context, age time.Duration, limit int, dryRun bool) ([]string, error) {
	before := time.Now().Add(-age)
	batch := s.opts.Retention.Batch
	if dryRun {
		batch = limit
	}
	var all []string
	for len(all) < limit {
		n := min(batch, limit-len(all))
		bctx, cancel := context.WithTimeout(ctx, pruneTimeout)
		ids, err := s.store.Prune(bctx, PruneQuery{Before: before, Limit: n, Archive: s.opts.Retention.Mode == RetentionArchive, DryRun: dryRun})
		cancel()
		if err != nil {
			s.log.Warn("room: prune", "err", err)
			return all, err
		}
		all = append(all, ids...)
		if !dryRun {
			s.st.pruned.Add(uint64(len(ids)))
		}
		if dryRun || len(ids) < n {
			break
		}
	}
	if len(all) > 0 && !dryRun {
		s.log.Info("room: pruned closed rooms", "rooms", len(all), "mode", s.opts.Retention.Mode, "closed_before", before)
	}
	return all, nil
}

// sweepLoop runs the retention sweep every Retention.SweepEvery until the
// service stops: the instance that takes the sweep lock (a Redis key
// living one period) prunes; the others skip this period.
func (s *Service) sweepLoop(a *attachment) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.Retention.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.sweep(a)
		case <-s.ctx.Done():
			return
		}
	}
}

// sweep prunes once if this instance takes the period's lock.
func (s *Service) sweep(a *attachment) {
	if s.opts.Retention.ClosedAfter <= 0 || s.draining.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, quotaTimeout)
	ok, err := s.rdb.SetNX(ctx, s.opts.RedisPrefix+"room:sweep:"+a.service, a.self, s.opts.Retention.SweepEvery).Result()
	cancel()
	if err != nil || !ok {
		return
	}
	_, _ = s.prune(s.ctx, s.opts.Retention.ClosedAfter, sweepLimit, false)
}
