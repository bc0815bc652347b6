package friends

import (
	"context"
	"testing"

	friendspb "github.com/noonhq/noon/idl/gen/friends"
	"github.com/noonhq/noon/idl/gen/friends/friendsrpc"
	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/internal/testenv"
)

// TestMetrics: calls are counted by method and result, presence events by
// result, transitions and pushes by kind.
func TestMetrics(t *testing.T) {
	e := newEnv(t, NewMemoryStore())
	reg := metrics.NewRegistry("friends")
	s, err := New(e.opts, Deps{Store: e.store, Redis: e.rdb, Users: e.dir, Publisher: e.pub, Now: e.clock.Now,
		Logger: testenv.Logger(t), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	u := e.users(2)
	_ = call(t, s, sessionOf(u[0]), friendsrpc.MethodRequest, &friendspb.RequestRequest{UserID: &u[1]}, nil)
	_ = call(t, s, sessionOf(u[0]), friendsrpc.MethodAccept, &friendspb.AcceptRequest{UserID: u[1]}, nil)
	_ = call(t, s, sessionOf(u[1]), friendsrpc.MethodAccept, &friendspb.AcceptRequest{UserID: u[0]}, nil)
	presence(t, s, "b1", 1, u[0], "s0", true, e.clock.Now(), 0)
	presence(t, s, "b1", 2, u[1], "s1", true, e.clock.Now(), 0)
	presence(t, s, "b1", 2, u[1], "s1", true, e.clock.Now(), 0) // again: stale
	presence(t, s, "b1", 3, u[1], "s1", false, e.clock.Now(), 0)
	if err := s.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				if l.GetName() != "daemon" {
					key += " " + l.GetName() + "=" + l.GetValue()
				}
			}
			got[key] = m.GetCounter().GetValue()
		}
	}
	for key, want := range map[string]float64{
		"noon_friends_requests_total method=request result=ok":       1,
		"noon_friends_requests_total method=accept result=not_found": 1,
		"noon_friends_requests_total method=accept result=ok":        1,
		"noon_friends_presence_events_total result=online":           2,
		"noon_friends_presence_events_total result=stale":            1,
		"noon_friends_presence_events_total result=applied":          1,
		"noon_friends_transitions_total to=online":                   2,
		"noon_friends_transitions_total to=offline":                  1,
		"noon_friends_pushes_total type=friends.Request":             1,
		"noon_friends_pushes_total type=friends.Accepted":            1,
		"noon_friends_pushes_total type=friends.Online":              1, // u1's, to u0; u0 came first, alone
		"noon_friends_pushes_total type=friends.Offline":             1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}
