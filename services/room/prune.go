package room

import (
	"context"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/wire"
)

// Prune removes or archives rooms closed longer than the request's age
// (admins only).
func (s api) Prune(ctx context.Context, sess *services.Session, req *roompb.PruneRequest) (*roompb.PruneReply, error) {
	if err := sess.RequireAdmin(); err != nil {
		return nil, err
	}
	return nil, wire.Errorf(wire.CodeUnavailable, "not yet")
}
