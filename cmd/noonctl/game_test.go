package main

import (
	"strings"
	"testing"

	gamepb "github.com/noonhq/noon/idl/gen/game"
)

func TestParseAmounts(t *testing.T) {
	cur, items, stats, err := parseAmounts([]string{"coins=10", "item:potion=3", "stat:wins=-1"}, true)
	if err != nil || cur["coins"] != 10 || items["potion"] != 3 || stats["wins"] != -1 || len(cur)+len(items)+len(stats) != 3 {
		t.Fatalf("grant: %v %v %v %v", cur, items, stats, err)
	}
	for _, tc := range []struct {
		args  []string
		grant bool
		want  string
	}{
		{nil, true, "say what"},
		{[]string{"coins"}, true, "want CURRENCY=N"},
		{[]string{"coins=x"}, true, "want CURRENCY=N"},
		{[]string{"=5"}, true, "want CURRENCY=N"},
		{[]string{"stat:wins=1"}, false, "take changes no stats"},
	} {
		if _, _, _, err := parseAmounts(tc.args, tc.grant); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseAmounts(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestBanText(t *testing.T) {
	if got := banText(&gamepb.BanStatusReply{}); got != "not banned" {
		t.Fatal(got)
	}
	got := banText(&gamepb.BanStatusReply{Banned: true, UntilUnixMs: 1_800_000_000_000, Reason: "cheating"})
	if got != "banned until 2027-01-15T08:00:00Z: cheating" {
		t.Fatal(got)
	}
}
