package friends

// The state machine of a relation between two users A and B, each change
// one Store.Update (so it is atomic, and serialised with every other
// change involving A or B):
//
//	A requests B:  nothing        -> A invite sent, B invite received (push Request to B)
//	               B invite sent  -> friends both ways (B asked A first; push Accepted to B)
//	               B blocked A    -> nothing, silently (A is told it was sent)
//	B accepts A:   B invite received -> friends both ways (push Accepted to A)
//	B declines A:  B invite received -> nothing
//	A removes B:   friend, invite sent or received -> nothing (both sides)
//	A blocks B:    anything -> A blocked; B's side is deleted unless B blocks A too
//	A unblocks B:  A blocked -> nothing
//
// An invite older than RequestTTL is expired: it counts for nothing and
// reads as no relation (Purge deletes it later).

import (
	"context"
	"time"

	"github.com/noonhq/noon/wire"
)

// expired reports whether e is an invite older than the request TTL at now.
func (s *Service) expired(e Edge, now time.Time) bool {
	return e.State.pending() && e.Updated.Before(now.Add(-s.opts.RequestTTL))
}

// pair reads the edges a -> b and b -> a in tx, expired invites read as
// none.
func (s *Service) pair(ctx context.Context, tx Tx, a, b string, now time.Time) (ab, ba Edge, okAB, okBA bool, err error) {
	if ab, okAB, err = tx.Get(ctx, a, b); err != nil {
		return
	}
	if ba, okBA, err = tx.Get(ctx, b, a); err != nil {
		return
	}
	okAB = okAB && !s.expired(ab, now)
	okBA = okBA && !s.expired(ba, now)
	return
}

// stamp returns now as edges store it.
func stamp(now time.Time) time.Time { return now.UTC().Truncate(time.Microsecond) }

// request is what Request did.
type request struct {
	edge   Edge
	pushed string // PushRequest or PushAccepted to the other user; "" for none
}

// request makes from ask to to (both known users, not the same).
func (s *Service) request(ctx context.Context, from, to string) (request, error) {
	now := s.now()
	var r request
	err := s.store.Update(ctx, from, to, func(tx Tx) error {
		r = request{}
		ab, ba, okAB, okBA, err := s.pair(ctx, tx, from, to, now)
		if err != nil {
			return err
		}
		switch {
		case okAB && ab.State == StateBlocked:
			return wire.Errorf(wire.CodeConflict, "you blocked %s: unblock them first", to)
		case okBA && ba.State == StateBlocked:
			// Dropped silently: the sender learns nothing of the block.
			r.edge = Edge{User: from, Other: to, State: StateInviteSent, Updated: stamp(now)}
			return nil
		case okAB && (ab.State == StateFriend || ab.State == StateInviteSent):
			r.edge = ab // already friends, or already asked: nothing changes
			return nil
		case okAB && ab.State == StateInviteReceived:
			// to asked first: a request is an answer.
			r.edge = Edge{User: from, Other: to, State: StateFriend, Updated: stamp(now)}
			r.pushed = PushAccepted
			return s.befriend(ctx, tx, from, to, now)
		}
		if err := s.checkRoom(ctx, tx, from, to, now); err != nil {
			return err
		}
		r.edge = Edge{User: from, Other: to, State: StateInviteSent, Updated: stamp(now)}
		r.pushed = PushRequest
		if err := tx.Put(ctx, r.edge); err != nil {
			return err
		}
		return tx.Put(ctx, Edge{User: to, Other: from, State: StateInviteReceived, Updated: stamp(now)})
	})
	return r, err
}

// checkRoom checks that a new request from -> to fits both users' limits:
// friends and pending requests together under MaxFriends, pending requests
// under MaxPending.
func (s *Service) checkRoom(ctx context.Context, tx Tx, from, to string, now time.Time) error {
	since := now.Add(-s.opts.RequestTTL)
	cf, err := tx.Count(ctx, from, since)
	if err != nil {
		return err
	}
	switch {
	case cf.Friends+cf.Pending() >= s.opts.MaxFriends:
		return wire.Errorf(wire.CodeBadRequest, "you have %d friends and pending requests, the most allowed: remove some first", s.opts.MaxFriends)
	case cf.Pending() >= s.opts.MaxPending:
		return wire.Errorf(wire.CodeBadRequest, "you have %d pending requests, the most allowed: wait for answers or withdraw some", s.opts.MaxPending)
	}
	ct, err := tx.Count(ctx, to, since)
	if err != nil {
		return err
	}
	if ct.Friends+ct.Pending() >= s.opts.MaxFriends || ct.Pending() >= s.opts.MaxPending {
		return wire.Errorf(wire.CodeBadRequest, "%s cannot take more friend requests now", to)
	}
	return nil
}

// befriend makes a and b friends both ways.
func (s *Service) befriend(ctx context.Context, tx Tx, a, b string, now time.Time) error {
	if err := tx.Put(ctx, Edge{User: a, Other: b, State: StateFriend, Updated: stamp(now)}); err != nil {
		return err
	}
	return tx.Put(ctx, Edge{User: b, Other: a, State: StateFriend, Updated: stamp(now)})
}

// accept makes user accept other's request; accepted is false when they
// were friends already (nothing changed).
func (s *Service) accept(ctx context.Context, user, other string) (e Edge, accepted bool, err error) {
	now := s.now()
	err = s.store.Update(ctx, user, other, func(tx Tx) error {
		accepted = false
		ab, _, okAB, _, err := s.pair(ctx, tx, user, other, now)
		if err != nil {
			return err
		}
		switch {
		case okAB && ab.State == StateFriend:
			e = ab
			return nil
		case !okAB || ab.State != StateInviteReceived:
			return wire.Errorf(wire.CodeNotFound, "no friend request from %s", other)
		}
		e, accepted = Edge{User: user, Other: other, State: StateFriend, Updated: stamp(now)}, true
		return s.befriend(ctx, tx, user, other, now)
	})
	return e, accepted, err
}

// decline makes user decline other's request.
func (s *Service) decline(ctx context.Context, user, other string) error {
	now := s.now()
	return s.store.Update(ctx, user, other, func(tx Tx) error {
		ab, _, okAB, _, err := s.pair(ctx, tx, user, other, now)
		if err != nil {
			return err
		}
		if !okAB || ab.State != StateInviteReceived {
			return wire.Errorf(wire.CodeNotFound, "no friend request from %s", other)
		}
		return s.unlink(ctx, tx, user, other)
	})
}

// unlink deletes both sides of a relation.
func (s *Service) unlink(ctx context.Context, tx Tx, a, b string) error {
	if err := tx.Delete(ctx, a, b); err != nil {
		return err
	}
	return tx.Delete(ctx, b, a)
}

// remove ends user's friendship or request with other.
func (s *Service) remove(ctx context.Context, user, other string) error {
	now := s.now()
	return s.store.Update(ctx, user, other, func(tx Tx) error {
		ab, _, okAB, _, err := s.pair(ctx, tx, user, other, now)
		if err != nil {
			return err
		}
		switch {
		case !okAB:
			return wire.Errorf(wire.CodeNotFound, "no friendship or request with %s", other)
		case ab.State == StateBlocked:
			return wire.Errorf(wire.CodeConflict, "you blocked %s: unblock them instead", other)
		}
		return s.unlink(ctx, tx, user, other)
	})
}

// block makes user block other (a known user, not user).
func (s *Service) block(ctx context.Context, user, other string) (Edge, error) {
	now := s.now()
	var e Edge
	err := s.store.Update(ctx, user, other, func(tx Tx) error {
		ab, ba, okAB, okBA, err := s.pair(ctx, tx, user, other, now)
		if err != nil {
			return err
		}
		if okAB && ab.State == StateBlocked {
			e = ab
			return nil
		}
		c, err := tx.Count(ctx, user, now.Add(-s.opts.RequestTTL))
		if err != nil {
			return err
		}
		if c.Blocked >= s.opts.MaxBlocked {
			return wire.Errorf(wire.CodeBadRequest, "you block %d users, the most allowed: unblock some first", s.opts.MaxBlocked)
		}
		e = Edge{User: user, Other: other, State: StateBlocked, Updated: stamp(now)}
		if err := tx.Put(ctx, e); err != nil {
			return err
		}
		if !okBA || ba.State != StateBlocked {
			return tx.Delete(ctx, other, user) // their friendship or request ends too
		}
		return nil
	})
	return e, err
}

// unblock makes user unblock other.
func (s *Service) unblock(ctx context.Context, user, other string) error {
	return s.store.Update(ctx, user, other, func(tx Tx) error {
		ab, ok, err := tx.Get(ctx, user, other)
		if err != nil {
			return err
		}
		if !ok || ab.State != StateBlocked {
			return wire.Errorf(wire.CodeNotFound, "%s is not blocked", other)
		}
		return tx.Delete(ctx, user, other)
	})
}

// friendOf returns user's relation with other when they are friends.
func (s *Service) friendOf(ctx context.Context, user, other string) (bool, error) {
	var friends bool
	err := s.store.Update(ctx, user, other, func(tx Tx) error {
		e, ok, err := tx.Get(ctx, user, other)
		friends = ok && e.State == StateFriend
		return err
	})
	return friends, err
}
