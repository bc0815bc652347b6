package main

import (
	"bytes"
	"context"
	"testing"
)

// TestDrainArgs: drain wants exactly one instance id, before any connection.
func TestDrainArgs(t *testing.T) {
	for _, args := range [][]string{nil, {"a", "b"}, {"-no-wait"}, {"-nope", "a"}} {
		if err := cmdDrain(context.Background(), opts{}, args, &bytes.Buffer{}); err == nil || err.Error() != drainUsage {
			t.Errorf("drain %q: %v, want the usage", args, err)
		}
	}
}
