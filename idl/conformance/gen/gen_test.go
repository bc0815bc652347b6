package main

import (
	"context"
	"testing"
)

// TestGeneratedFilesFresh fails when regenerating would change a file of
// idl/conformance: run `make gen` (or go run ./idl/conformance/gen) and
// commit. The sessions are recorded again from a fresh in-process
// platform; -short skips them.
func TestGeneratedFilesFresh(t *testing.T) {
	files, err := generate(context.Background(), !testing.Short())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range compare("..", files) {
		t.Error(d)
	}
}
