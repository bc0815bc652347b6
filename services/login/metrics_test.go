package login_test

import (
	"context"
	"testing"

	"github.com/noonhq/noon/internal/metrics"
	"github.com/noonhq/noon/services/login"
)

// TestMetrics: every call is counted by method and result.
func TestMetrics(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	reg := metrics.NewRegistry("login")
	opts := testOptions(t)
	opts.Metrics = reg
	svc := newService(t, opts, login.NewMemoryStore(), rdb)
	ctx := context.Background()
	user := username(t)
	if _, err := svc.Register(ctx, user, "password1", "", ""); err != nil {
		t.Fatal(err)
	}
	s, err := svc.Login(ctx, user, "password1", "")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = svc.Login(ctx, user, "wrong", "")
	_, _, _ = svc.Validate(ctx, s.Token)
	_, _, _ = svc.Validate(ctx, "nope")
	_ = svc.Logout(ctx, "")
	for _, tc := range []struct {
		method, result string
		want           float64
	}{
		{"register", "ok", 1}, {"login", "ok", 1}, {"login", "unauthenticated", 1},
		{"validate", "ok", 1}, {"validate", "invalid", 1}, {"logout", "bad_request", 1},
	} {
		var got float64
		mfs, err := reg.Gatherer().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "noon_login_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["method"] == tc.method && labels["result"] == tc.result {
					got = m.GetCounter().GetValue()
				}
			}
		}
		if got != tc.want {
			t.Errorf("login_requests_total{method=%q,result=%q} = %v, want %v", tc.method, tc.result, got, tc.want)
		}
	}
	mfs, err := reg.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	hashes := uint64(0)
	for _, mf := range mfs {
		if mf.GetName() == "noon_login_hash_seconds" {
			hashes = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if hashes != 4 { // the dummy hash, register, two logins
		t.Errorf("login_hash_seconds counted %d hashes, want 4", hashes)
	}
}
