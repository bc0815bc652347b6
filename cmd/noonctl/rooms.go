package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
)

// roomsUsage lists the rooms subcommands.
const roomsUsage = `usage: rooms prune [-older-than D] [-dry-run] [-limit N]`

// cmdRooms is `noonctl rooms`: the room service's retention by hand. It
// calls room.Prune over the internal links with the admin certificate.
//
//	noonctl rooms prune [-older-than D] [-dry-run] [-limit N]
//
// prune deletes (or archives, per the room service's retention.mode) the
// rooms closed for longer than -older-than (default: the service's
// retention.closed_after, 168h), at most -limit of them (default 1,000);
// -dry-run only counts them.
func cmdRooms(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	req, err := parsePrune(args)
	if err != nil {
		return err
	}
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	c := services.NewClient(services.ClientOptions{Yellows: strings.Split(o.yellows, ","), Peer: link.PeerOptions{TLS: creds}})
	defer c.Close()
	rep, err := roomrpc.NewClient(c.Call).Prune(ctx, req)
	if err != nil {
		return err
	}
	return printPrune(stdout, req, rep)
}

// parsePrune reads the arguments of `rooms prune`.
func parsePrune(args []string) (*roompb.PruneRequest, error) {
	if len(args) == 0 || args[0] != "prune" {
		return nil, errors.New(roomsUsage)
	}
	fs := flag.NewFlagSet("rooms prune", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	older := fs.Duration("older-than", 0, "prune rooms closed longer than `D` (default: the service's retention.closed_after)")
	dry := fs.Bool("dry-run", false, "count the rooms, prune nothing")
	limit := fs.Int("limit", 0, "prune at most `N` rooms (default 1000, at most 100000)")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, fmt.Errorf("rooms prune: %v\n%s", err, roomsUsage)
	}
	switch {
	case fs.NArg() != 0:
		return nil, fmt.Errorf("rooms prune: unexpected %q\n%s", fs.Arg(0), roomsUsage)
	case *older < 0:
		return nil, fmt.Errorf("rooms prune: -older-than must be >= 0, got %v", *older)
	case *older > 0 && *older < time.Millisecond:
		return nil, fmt.Errorf("rooms prune: -older-than must be at least 1ms, got %v", *older)
	case *limit < 0 || *limit > 100_000:
		return nil, fmt.Errorf("rooms prune: -limit must be in [0, 100000], got %d", *limit)
	}
	return &roompb.PruneRequest{OlderThanMs: older.Milliseconds(), DryRun: *dry, Limit: int32(*limit)}, nil
}

// printPrune writes what a prune did (or would do).
func printPrune(w io.Writer, req *roompb.PruneRequest, rep *roompb.PruneReply) error {
	verb := map[string]string{"delete": "deleted", "archive": "archived"}[rep.GetMode()]
	if verb == "" {
		verb = "pruned"
	}
	if req.GetDryRun() {
		verb = "would be " + verb
	}
	if _, err := fmt.Fprintf(w, "%d closed rooms %s\n", rep.GetRooms(), verb); err != nil {
		return err
	}
	for _, id := range rep.GetRoomIds() {
		if _, err := fmt.Fprintln(w, id); err != nil {
			return err
		}
	}
	if n := int(rep.GetRooms()) - len(rep.GetRoomIds()); n > 0 {
		_, err := fmt.Fprintf(w, "... and %d more\n", n)
		return err
	}
	return nil
}
