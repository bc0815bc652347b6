package room

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/idl/gen/platformpb"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/wire"
)

// loadPlayer is a client sending tally actions "0", "1", ... until stopped,
// keeping what was acknowledged and what failed.
type loadPlayer struct {
	c       *client
	timeout time.Duration
	mu      sync.Mutex
	acked   []int          // action numbers acknowledged
	ackedAt []time.Time    // when
	errs    map[string]int // failures by wire code
	first   string         // the first failure: when it was sent, how long it took, its text
	slowest time.Duration
}

// failures describes p's failures for a test's error: the counts by code
// and the first one whole (which wait ran out, and when).
func (p *loadPlayer) failures() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%v, the first %s", p.errs, p.first)
}

func (p *loadPlayer) run(stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		sent := time.Now()
		_, err := p.c.act(ctx, strconv.Itoa(n))
		took := time.Since(sent)
		cancel()
		p.mu.Lock()
		p.slowest = max(p.slowest, took)
		if err == nil {
			p.acked = append(p.acked, n)
			p.ackedAt = append(p.ackedAt, time.Now())
		} else {
			if p.errs == nil {
				p.errs = map[string]int{}
			}
			if len(p.errs) == 0 {
				p.first = fmt.Sprintf("sent at %s, failed after %v: %v", sent.Format("15:04:05.000"), took.Round(time.Millisecond), err)
			}
			p.errs[wire.CodeOf(err)]++
		}
		p.mu.Unlock()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// waitProgress waits until every player had an action acknowledged after
// t: play is under way (or carries on) for all of them.
func waitProgress(tb testing.TB, what string, ps []*loadPlayer, t time.Time) {
	tb.Helper()
	checkFor(tb, 20*time.Second, what, func() bool {
		for _, p := range ps {
			if firstAckAfter([]*loadPlayer{p}, t).IsZero() {
				return false
			}
		}
		return true
	})
}

// firstAckAfter returns the earliest acknowledgement after t.
func firstAckAfter(ps []*loadPlayer, t time.Time) time.Time {
	var first time.Time
	for _, p := range ps {
		p.mu.Lock()
		for _, at := range p.ackedAt {
			if at.After(t) && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
		p.mu.Unlock()
	}
	return first
}

// checkAcked checks that every action a player had acknowledged is in the
// tally, and that each loadPlayer's actions are in the order sent.
func checkAcked(t *testing.T, items []string, ps []*loadPlayer) {
	t.Helper()
	for _, p := range ps {
		user := p.c.sess.UserId
		var mine []int
		for _, it := range items {
			if u, n, _ := strings.Cut(it, ":"); u == user {
				v, _ := strconv.Atoi(n)
				mine = append(mine, v)
			}
		}
		if !slices.IsSorted(mine) {
			t.Fatalf("%s's actions out of order: %v", user, mine)
		}
		for _, n := range p.acked {
			if _, ok := slices.BinarySearch(mine, n); !ok {
				t.Fatalf("%s's acknowledged action %d is not in the room", user, n)
			}
		}
	}
}

// TestOwnerKilledUnderLoad: the owner of a busy room dies (no drain, no
// deregistration, leases left to expire): another instance takes the room
// over once the lease expires, rebuilt from Postgres with every
// acknowledged action; clients get replies or clear errors within their
// deadline, never a hang.
func TestOwnerKilledUnderLoad(t *testing.T) {
	t.Parallel()
	c := newCluster(t, newPGStore(t), 0)
	ins := []*instance{c.start(nil, true), c.start(nil, true), c.start(nil, true)}
	r := newRouter(c)
	cs, id := startTally(t, r, 4, "k0", "k1", "k2", "k3")
	owner := ownerIn(id, ins...)

	const timeout = 3 * time.Second
	ps := make([]*loadPlayer, len(cs))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, cl := range cs {
		ps[i] = &loadPlayer{c: cl, timeout: timeout}
		wg.Add(1)
		go ps[i].run(stop, &wg)
	}
	waitProgress(t, "every player acknowledged before the kill", ps, time.Time{})
	killed := time.Now()
	owner.kill()
	var recovered time.Time
	checkFor(t, 20*time.Second, "room serves again after the kill", func() bool {
		recovered = firstAckAfter(ps, killed.Add(10*time.Millisecond))
		return !recovered.IsZero()
	})
	waitProgress(t, "every player acknowledged after the recovery", ps, recovered)
	close(stop)
	wg.Wait()

	var others []*instance
	for _, in := range ins {
		if in != owner {
			others = append(others, in)
		}
	}
	next := ownerIn(id, others...)
	if next == nil {
		t.Fatal("no live instance has the room")
	}
	st := getState(t, cs[0], id)
	items := tallyOf(t, st).Items
	checkAcked(t, items, ps)
	acked, errs := 0, map[string]int{}
	for _, p := range ps {
		acked += len(p.acked)
		for code, n := range p.errs {
			errs[code] += n
			if code != wire.CodeTimeout && code != wire.CodeUnavailable {
				t.Errorf("%s got %d %q errors", p.c.sess.UserId, n, code)
			}
		}
		if p.slowest > timeout+time.Second {
			t.Errorf("%s waited %v for a reply (deadline %v)", p.c.sess.UserId, p.slowest, timeout)
		}
	}
	t.Logf("failover: owner %s killed, %s served again after %v (lease TTL %v, yellow expiry %v); %d acknowledged, %d in the room, errors %v",
		owner.id, next.id, recovered.Sub(killed).Round(time.Millisecond), testLeaseTTL, expiry, acked, len(items), errs)
}

// TestStaleOwnerCannotAppend: an owner that stalls (no lease renewals, no
// heartbeats) loses the room to another instance; when it wakes up with
// the room still in memory and gets a request, its write is fenced: it
// drops the room and answers moved to the new owner, and the room's log
// has nothing of it.
func TestStaleOwnerCannotAppend(t *testing.T) {
	t.Parallel()
	c := newCluster(t, newPGStore(t), 0)
	a, b := c.start(nil, true), c.start(nil, true)
	r := newRouter(c)
	cs, id := startTally(t, r, 2, "s0", "s1")
	ctx := context.Background()
	if _, err := cs[0].act(ctx, "before"); err != nil {
		t.Fatal(err)
	}
	old, other := ownerIn(id, a, b), a
	if other == old {
		other = b
	}
	old.svc.pauseRenewal.Store(true)
	old.reg.Abandon()
	checkFor(t, 5*time.Second, "stalled owner expires from yellow and the router's view", func() bool {
		return !c.listed(old.id) && !r.isLive(old.id)
	})
	checkFor(t, 5*time.Second, "stalled owner's lease expires", func() bool {
		h, _, err := other.svc.att.Load().leases.Holder(ctx, id)
		return err == nil && h == ""
	})
	start := time.Now()
	if _, err := cs[1].act(ctx, "takeover"); err != nil {
		t.Fatalf("action after the stall: %v", err)
	}
	t.Logf("took over in %v once the stalled owner's lease expired", time.Since(start).Round(time.Millisecond))
	if ownerIn(id, other) == nil {
		t.Fatal("the other instance does not have the room")
	}
	if ownerIn(id, old) == nil {
		t.Fatal("the stalled owner forgot the room (it should still believe it owns it)")
	}

	// The stalled owner wakes and is asked directly.
	payload, _ := thriftx.Marshal(&roompb.ActionRequest{Action: []byte("stale")})
	p := link.Dial(old.srv.Endpoint(), link.PeerOptions{HeartbeatInterval: hb, DeadAfter: expiry, Logger: c.log})
	defer p.Close()
	checkFor(t, 5*time.Second, "link to the stalled owner", p.Alive)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rep, err := p.Call(cctx, &platformpb.Envelope{Method: roomrpc.MethodAct, Payload: payload,
		Session: &platformpb.Session{Id: "s-s0", UserId: "s0", Bindings: map[string]string{BindingKey: id}}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetErrorCode() != wire.CodeMoved || rep.GetErrorMessage() != other.id {
		t.Fatalf("stale owner answered %q %q, want moved %q", rep.GetErrorCode(), rep.GetErrorMessage(), other.id)
	}
	if old.svc.Stats().Fenced == 0 {
		t.Fatal("the stale write was not fenced")
	}
	if ownerIn(id, old) != nil {
		t.Fatal("the stale owner kept the room")
	}
	items := tallyOf(t, getState(t, cs[0], id)).Items
	if !slices.Equal(items, []string{"s0:before", "s1:takeover"}) {
		t.Fatalf("tally = %v", items)
	}
}

// TestDrainDuringPlay: an instance drains while its rooms are played: its
// rooms move to other instances, play continues, nothing acknowledged is
// lost, and no client sees an error.
func TestDrainDuringPlay(t *testing.T) {
	t.Parallel()
	c := newCluster(t, newPGStore(t), 0)
	ins := []*instance{c.start(nil, false), c.start(nil, false), c.start(nil, false)}
	r := newRouter(c)
	const rooms = 6
	var ps []*loadPlayer
	ids := make([]string, rooms)
	for i := range ids {
		cs, id := startTally(t, r, 2, fmt.Sprintf("d%da", i), fmt.Sprintf("d%db", i))
		ids[i] = id
		for _, cl := range cs {
			ps = append(ps, &loadPlayer{c: cl, timeout: 5 * time.Second})
		}
	}
	// Drain the instance with the most rooms.
	victim, most := ins[0], -1
	for _, in := range ins {
		if n := in.svc.Stats().Rooms; n > most {
			victim, most = in, n
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go p.run(stop, &wg)
	}
	waitProgress(t, "every player acknowledged before the drain", ps, time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	drained := time.Now()
	if err := victim.svc.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	drainTook := time.Since(drained)
	victim.srv.Exit()
	waitProgress(t, "every player acknowledged after the drain", ps, drained.Add(drainTook))
	close(stop)
	wg.Wait()

	for _, p := range ps {
		if len(p.errs) > 0 {
			t.Errorf("%s got errors %s", p.c.sess.UserId, p.failures())
		}
	}
	var total int
	for i, id := range ids {
		if ownerIn(id, victim) != nil {
			t.Fatalf("room %s still on the drained instance", id)
		}
		items := tallyOf(t, getState(t, ps[2*i].c, id)).Items
		checkAcked(t, items, ps[2*i:2*i+2])
		total += len(items)
	}
	t.Logf("drained %d rooms of %s in %v; %d actions in %d rooms", most, victim.id, drainTook.Round(time.Millisecond), total, rooms)
}
