package room

import (
	"context"
	"sort"
	"sync"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Limits of room.Rooms (noonctl rooms, the operator's view of placement).
const (
	// defaultRoomsListed and maxRoomsListed bound the rooms one call lists: a
	// terminal's worth by default; a thousand rooms' ids and members are
	// well within a reply's size.
	defaultRoomsListed = 100
	maxRoomsListed     = 1000
	// roomsConcurrency bounds the rooms read at once: each read is a queued
	// op in the room's controller, between its events.
	roomsConcurrency = 8
	// roomReadTimeout bounds reading one room: a room that does not answer
	// in time (a long queue) is listed without its seq and members.
	roomReadTimeout = 2 * time.Second
)

// Rooms lists the rooms active on this instance (admins only): each with
// its status, seq and members, read through the room's own queue (so
// between two of its events, never concurrently with one).
func (s api) Rooms(ctx context.Context, sess *services.Session, req *roompb.RoomsRequest) (*roompb.RoomsReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	limit := int(req.Limit)
	switch {
	case limit < 0:
		return nil, wire.Errorf(wire.CodeBadRequest, "limit must be >= 0, got %d", limit)
	case limit == 0:
		limit = defaultRoomsListed
	case limit > maxRoomsListed:
		limit = maxRoomsListed
	}
	s.mu.Lock()
	ids := make([]string, 0, len(s.rooms))
	for id := range s.rooms {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	sort.Strings(ids)
	rep := &roompb.RoomsReply{Active: int32(len(ids))}
	if a := s.att.Load(); a != nil {
		rep.Instance = a.self
	}
	if len(ids) > limit {
		ids = ids[:limit]
	}
	rep.Rooms = make([]*roompb.RoomPlacement, len(ids))
	var wg sync.WaitGroup
	sem := make(chan struct{}, roomsConcurrency)
	for i, id := range ids {
		rep.Rooms[i] = &roompb.RoomPlacement{ID: id, Seq: -1}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return nil, wire.Errorf(wire.CodeTimeout, "listing rooms: %v", ctx.Err())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			rctx, cancel := context.WithTimeout(ctx, roomReadTimeout)
			defer cancel()
			r, err := s.submit(rctx, id, &op{kind: opGet, wantState: true}, false)
			if err != nil || r.state == nil {
				rep.Rooms[i].Status = "unknown"
				return
			}
			st := r.state
			p := rep.Rooms[i]
			p.Status, p.Seq, p.Game = st.Status, st.Seq, st.Game
			for _, m := range st.Players {
				p.Members = append(p.Members, m.ID)
			}
		}()
	}
	wg.Wait()
	return rep, nil
}
