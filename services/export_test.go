package services

import (
	"context"

	"github.com/noonhq/noon/idl/gen/platformpb"
)

// Handle hands req to the server as the link would.
func (s *Server) Handle(ctx context.Context, req *platformpb.Envelope, reply func(*platformpb.Envelope)) {
	s.handle(ctx, req, reply)
}

// Kill stops the server as if the process died: no drain, no
// deregistration (yellow expires the record).
func (s *Server) Kill() { s.exit(false) }

// FollowedInstances returns the number of instances f follows, with a
// live link or not.
func FollowedInstances(f *Follower) int { return f.subs.Len() }
