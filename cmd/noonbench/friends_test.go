package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noonhq/noon/internal/testenv"
)

// TestQuickFriends runs the friends scenario with -quick against the test
// Postgres and Redis (skipped without them, unless
// NOON_REQUIRE_SERVICES=1), checks that the numbers are sane and that the
// schemas and the keys are gone afterwards.
func TestQuickFriends(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the friends scenario for a few seconds")
	}
	pool := testenv.Postgres(t)
	rdb := testenv.Redis(t)
	path := filepath.Join(t.TempDir(), "results.json")
	var stdout, stderr syncBuffer
	code := realMain(context.Background(), []string{"-quick", "-only", "friends",
		"-postgres", testenv.PostgresURL(), "-redis", testenv.RedisURL(), "-json", path}, &stdout, &stderr)
	t.Logf("stdout:\n%s", stdout.String())
	if code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"friends.List of 200 friends with presence", "lists/s", "@friends.Online: p50"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("results JSON: %v", err)
	}
	fr := rep.Friends
	if fr == nil || fr.Skipped != "" || len(rep.Unavailable) > 0 {
		t.Fatalf("friends: %+v, unavailable %v", fr, rep.Unavailable)
	}
	if len(fr.List) != len(defaultFriendsConns) {
		t.Fatalf("%d List results, want %d", len(fr.List), len(defaultFriendsConns))
	}
	for i, r := range fr.List {
		if r.Conns != defaultFriendsConns[i] || r.Errors != 0 || r.RPS <= 0 || !(0 < r.P50Us && r.P50Us <= r.P99Us) {
			t.Errorf("implausible List result %+v", r)
		}
	}
	if o := fr.Online; o == nil || o.Samples != quickPresenceSamples || !(0 < o.P50Ms && o.P50Ms <= o.P99Ms) {
		t.Errorf("implausible presence result %+v", fr.Online)
	}
	// Nothing left behind.
	ctx := context.Background()
	for _, s := range fr.Schemas {
		var exists bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, s).Scan(&exists); err != nil || exists {
			t.Errorf("schema %s still exists (%v)", s, err)
		}
	}
	if keys, err := rdb.Keys(ctx, fr.RedisPrefix+"*").Result(); err != nil || len(keys) > 0 || fr.RedisPrefix == "" {
		t.Errorf("%d keys left under %q (%v)", len(keys), fr.RedisPrefix, err)
	}
}
