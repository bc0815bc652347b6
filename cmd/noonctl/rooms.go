package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services"
)

// roomsUsage lists the rooms subcommands.
const roomsUsage = `usage: rooms [-limit N] [-instance ID] | rooms prune [-older-than D] [-dry-run] [-limit N]`

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
	if len(args) == 0 || args[0] != "prune" {
		return cmdRoomsList(ctx, o, args, stdout)
	}
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

// roomsListArgs are the arguments of `rooms` without a subcommand.
type roomsListArgs struct {
	limit    int
	instance string
}

// parseRoomsList reads the arguments of `rooms` (the placement list).
func parseRoomsList(args []string) (roomsListArgs, error) {
	var a roomsListArgs
	fs := flag.NewFlagSet("rooms", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.IntVar(&a.limit, "limit", 0, "list at most `N` rooms per instance (default 100, at most 1000)")
	fs.StringVar(&a.instance, "instance", "", "list the rooms of this room instance `ID` only")
	if err := fs.Parse(args); err != nil {
		return a, fmt.Errorf("rooms: %v\n%s", err, roomsUsage)
	}
	switch {
	case fs.NArg() != 0:
		return a, fmt.Errorf("rooms: unexpected %q\n%s", fs.Arg(0), roomsUsage)
	case a.limit < 0 || a.limit > 1000:
		return a, fmt.Errorf("rooms: -limit must be in [0, 1000], got %d", a.limit)
	}
	return a, nil
}

// cmdRoomsList is `noonctl rooms`: placement. It asks every room instance
// yellow lists (or -instance) for its active rooms with room.Rooms, an
// admin method, and prints which room is on which instance, with its
// status, seq and members.
func cmdRoomsList(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	a, err := parseRoomsList(args)
	if err != nil {
		return err
	}
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	c := services.NewClient(services.ClientOptions{Yellows: strings.Split(o.yellows, ","), Peer: link.PeerOptions{TLS: creds}})
	defer c.Close()
	pool := c.Pool()
	if err := pool.WaitSynced(ctx); err != nil {
		return fmt.Errorf("yellow %s: %w", o.yellows, err)
	}
	insts := pool.Instances(roomrpc.Service)
	sort.Slice(insts, func(i, j int) bool { return insts[i].GetId() < insts[j].GetId() })
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tROOM\tSTATUS\tGAME\tSEQ\tMEMBERS")
	var notes []string
	found := false
	for _, in := range insts {
		if a.instance != "" && in.GetId() != a.instance {
			continue
		}
		found = true
		var rep roompb.RoomsReply
		err := c.CallTo(ctx, router.Target{Service: "room", Instance: in.GetId()}, roomrpc.MethodRooms, &roompb.RoomsRequest{Limit: int32(a.limit)}, &rep)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s: %v", in.GetId(), err))
			continue
		}
		for _, r := range rep.GetRooms() {
			seq := fmt.Sprint(r.GetSeq())
			if r.GetSeq() < 0 {
				seq = "-"
			}
			members := strings.Join(r.GetMembers(), ",")
			if members == "" {
				members = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.GetId(), r.GetID(), r.GetStatus(), dash(r.GetGame()), seq, members)
		}
		notes = append(notes, fmt.Sprintf("%s: %d active rooms, %d listed", in.GetId(), rep.GetActive(), len(rep.GetRooms())))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if a.instance != "" && !found {
		return fmt.Errorf("rooms: no room instance %q in yellow", a.instance)
	}
	if len(insts) == 0 {
		notes = append(notes, "no room instance in yellow")
	}
	for _, n := range notes {
		fmt.Fprintln(stdout, n)
	}
	return nil
}
