package main

import (
	"context"

	"github.com/noonhq/noon/idl/conformance"
)

func recordSessions(ctx context.Context) ([]conformance.Session, error) { return nil, nil }
