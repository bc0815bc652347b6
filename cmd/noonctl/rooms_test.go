package main

import (
	"strings"
	"testing"

	roompb "github.com/noonhq/noon/idl/gen/room"
)

func TestParsePrune(t *testing.T) {
	req, err := parsePrune([]string{"prune", "-older-than", "48h", "-dry-run", "-limit", "10"})
	if err != nil || req.OlderThanMs != 48*3600*1000 || !req.DryRun || req.Limit != 10 {
		t.Fatalf("parse: %+v, %v", req, err)
	}
	if req, err := parsePrune([]string{"prune"}); err != nil || req.OlderThanMs != 0 || req.DryRun || req.Limit != 0 {
		t.Fatalf("defaults: %+v, %v", req, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "rooms prune [-older-than D]"},
		{[]string{"list"}, "rooms prune [-older-than D]"},
		{[]string{"prune", "-older-than", "-1h"}, "must be >= 0"},
		{[]string{"prune", "-older-than", "1us"}, "at least 1ms"},
		{[]string{"prune", "-limit", "-1"}, "-limit must be"},
		{[]string{"prune", "-limit", "100001"}, "-limit must be"},
		{[]string{"prune", "extra"}, `unexpected "extra"`},
		{[]string{"prune", "-bogus"}, "flag provided but not defined"},
	} {
		if _, err := parsePrune(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parsePrune(%q) = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestPrintPrune(t *testing.T) {
	var b strings.Builder
	if err := printPrune(&b, &roompb.PruneRequest{DryRun: true}, &roompb.PruneReply{Rooms: 3, RoomIds: []string{"ra", "rb"}, Mode: "archive"}); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), "3 closed rooms would be archived\nra\nrb\n... and 1 more\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	b.Reset()
	_ = printPrune(&b, &roompb.PruneRequest{}, &roompb.PruneReply{Mode: "delete"})
	if got := b.String(); got != "0 closed rooms deleted\n" {
		t.Fatalf("got %q", got)
	}
}
