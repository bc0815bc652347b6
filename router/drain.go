package router

import (
	"context"
	"fmt"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/wire"
)

// RequestDrain asks instance inst to drain as on SIGTERM: it calls the
// platform's admin method wire.MethodDrain on inst's ROUTER (a broker's:
// its control socket) over a link of its own made with po (an admin
// certificate, and ExpectIdentity: ExpectedIdentity(inst)), and returns the
// refusal or the transport's error, if any. What noonctl drain and the
// console's Drain buttons call.
func RequestDrain(ctx context.Context, inst *platformpb.Instance, po link.PeerOptions) error {
	peer := link.Dial(inst.GetRouter(), po)
	defer peer.Close()
	select {
	case <-peer.Up():
	case <-ctx.Done():
		return fmt.Errorf("no link to %s: %w", inst.GetRouter(), ctx.Err())
	}
	rep, err := peer.Call(ctx, &platformpb.Envelope{Method: wire.MethodDrain})
	if err != nil {
		return err
	}
	return wire.FromEnvelope(rep)
}
