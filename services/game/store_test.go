package game_test

import (
	"testing"

	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/services/game/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) game.Store { return game.NewMemoryStore() })
}

// TestPostgresStore runs the contract against the real Postgres, in a
// schema of its own that the test migrates and drops.
func TestPostgresStore(t *testing.T) {
	s := pgStore(t)
	storetest.Run(t, func(*testing.T) game.Store { return s })
}
