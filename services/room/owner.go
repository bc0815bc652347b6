package room

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/placement"
	"github.com/noonhq/noon/wire"
)

// Placement: which instance owns a room. The owner is the holder of the
// room's lease while yellow lists it; otherwise the rendezvous owner of the
// room id among the ready room instances (what brokers compute too), which
// takes the lease (waiting for a dead holder's to expire). An instance
// asked about a room it does not own answers "moved: <owner id>" and the
// broker re-routes.

// Limits of placement.
const (
	// maxIDTries bounds the search for a new room id that hashes to this
	// instance: with n ready instances a try succeeds with probability
	// 1/n, so 10,000 tries fail with less than 1e-4 probability even with
	// 1,000 instances; the last id is used anyway (the lease, not the hash,
	// makes this instance the owner).
	maxIDTries = 10_000
	// renewParallel is how many lease renewals run at once: 1,000 rooms at
	// a Redis round trip of 0.2 ms renew in 25 ms.
	renewParallel = 8
	// renewTimeout bounds one renewal.
	renewTimeout = time.Second
)

// roomIDEncoding spells room ids: lower-case base32, no padding.
var roomIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a random room id: "r" and 16 characters (80 bits).
func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "r" + roomIDEncoding.EncodeToString(b[:])
}

// validRoomID reports whether id may name a room: 1..64 bytes of
// [A-Za-z0-9_-], so it is a safe Redis key part and push topic.
func validRoomID(id string) bool {
	if id == "" || len(id) > maxRoomIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// newRoomID returns a new room id whose rendezvous owner among the ready
// instances is this one, so brokers route its requests here.
func (s *Service) newRoomID(a *attachment) string {
	ids := s.readyIDs(a)
	id := newID()
	for i := 1; i < maxIDTries && placement.Owner(id, ids) != a.self; i++ {
		id = newID()
	}
	return id
}

// readyIDs returns the ids of the ready room instances yellow lists, with
// this instance added unless it is draining (yellow may not list it yet).
func (s *Service) readyIDs(a *attachment) []string {
	insts := s.watcher.Instances(a.service)
	ids := make([]string, 0, len(insts)+1)
	for _, inst := range insts {
		if inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_READY && inst.GetId() != a.self {
			ids = append(ids, inst.GetId())
		}
	}
	if !s.draining.Load() {
		ids = append(ids, a.self)
	}
	return ids
}

// isListed reports whether yellow lists instance id (ready or draining):
// alive, so its leases are its own.
func (s *Service) isListed(a *attachment, id string) bool {
	if id == a.self {
		return true
	}
	for _, inst := range s.watcher.Instances(a.service) {
		if inst.GetId() == id {
			return true
		}
	}
	return false
}

// resolve decides whether this instance should serve room id, which has no
// controller here: nil to take it, moved naming the owner otherwise.
func (s *Service) resolve(ctx context.Context, a *attachment, id string) error {
	holder, _, err := a.leases.Holder(ctx, id)
	if err != nil {
		s.log.Warn("room: lease lookup", "room", id, "err", err)
		return wire.Errorf(wire.CodeUnavailable, "room %s: lease store unavailable", id)
	}
	if holder == a.self {
		return nil
	}
	if holder != "" && s.isListed(a, holder) {
		s.st.moved.Add(1)
		return wire.NewError(wire.CodeMoved, holder)
	}
	// Free, or held by a dead instance: the rendezvous owner takes it.
	owner := placement.Owner(id, s.readyIDs(a))
	switch owner {
	case a.self:
		return nil
	case "":
		return wire.NewError(wire.CodeUnavailable, wire.DrainingMessage)
	}
	s.st.moved.Add(1)
	return wire.NewError(wire.CodeMoved, owner)
}

// heldBy returns the holder named by an Acquire error.
func heldBy(err error) (string, bool) {
	var held *placement.HeldError
	if errors.As(err, &held) {
		return held.Owner, true
	}
	return "", false
}

// renewLoop renews the leases of the active rooms every LeaseTTL/3 until
// the service stops; a room whose lease was lost is dropped.
func (s *Service) renewLoop(a *attachment) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if !s.pauseRenewal.Load() {
				s.renewAll(a)
			}
		case <-s.ctx.Done():
			return
		}
	}
}

func (s *Service) renewAll(a *attachment) {
	s.mu.Lock()
	list := s.controllersLocked()
	s.mu.Unlock()
	sem := make(chan struct{}, renewParallel)
	var wg sync.WaitGroup
	for _, c := range list {
		epoch := c.lease.Load()
		if epoch == 0 {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			ctx, cancel := context.WithTimeout(s.ctx, renewTimeout)
			err := a.leases.Renew(ctx, c.id, epoch)
			cancel()
			switch {
			case err == nil:
			case errors.Is(err, placement.ErrLost):
				if c.lease.Load() == epoch {
					s.log.Warn("room: lease lost", "room", c.id, "epoch", epoch)
					c.signal(stopLost)
				}
			default:
				// Redis unreachable: nobody else can take the lease either;
				// the store's fencing keeps us safe if someone does.
				if !strings.Contains(err.Error(), context.Canceled.Error()) {
					s.log.Warn("room: lease renewal", "room", c.id, "err", err)
				}
			}
		}()
	}
	wg.Wait()
}
