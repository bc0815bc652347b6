package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	matchpb "github.com/noonhq/noon/idl/gen/match"
	"github.com/noonhq/noon/idl/gen/match/matchrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
)

// cmdMatch is `noonctl match`: the matchmaker's queues (with the
// scale-out signal), a queue's searching tickets, and cancelling a ticket.
// It calls the match service's admin methods over the internal links with
// the admin certificate, as instances talks to yellow.
//
//	noonctl match [queues]
//	noonctl match tickets [-limit N] QUEUE
//	noonctl match cancel TICKET
func cmdMatch(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	sub := "queues"
	if len(args) > 0 {
		sub, args = args[0], args[1:]
	}
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	c := services.NewClient(services.ClientOptions{Yellows: strings.Split(o.yellows, ","), Peer: link.PeerOptions{TLS: creds}})
	defer c.Close()
	mc := matchrpc.NewClient(c.Call)
	switch sub {
	case "queues":
		if len(args) != 0 {
			return errors.New("usage: match [queues]")
		}
		rep, err := mc.Queues(ctx, &matchpb.QueuesRequest{})
		if err != nil {
			return err
		}
		return printQueues(stdout, rep)
	case "tickets":
		fs := flag.NewFlagSet("match tickets", flag.ContinueOnError)
		limit := fs.Int("limit", 100, "at most `N` tickets (1000 at most)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: match tickets [-limit N] QUEUE")
		}
		rep, err := mc.Tickets(ctx, &matchpb.TicketsRequest{Queue: fs.Arg(0), Limit: int32(min(*limit, 1000))})
		if err != nil {
			return err
		}
		return printTickets(stdout, rep, time.Now())
	case "cancel":
		if len(args) != 1 {
			return errors.New("usage: match cancel TICKET")
		}
		rep, err := mc.AdminCancel(ctx, &matchpb.AdminCancelRequest{Ticket: args[0]})
		if err != nil {
			return err
		}
		t := rep.GetTicket()
		fmt.Fprintf(stdout, "%s %s %s\n", t.GetID(), t.GetState(), t.GetReason())
		return nil
	default:
		return fmt.Errorf("unknown match command %q (queues, tickets, cancel)", sub)
	}
}

// printQueues writes the queues as a table and the scale-out signal.
func printQueues(w io.Writer, rep *matchpb.QueuesReply) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "QUEUE\tPLACEMENT\tPLAYERS\tTICKETS\tOPEN\tREADY\tOLDEST_TICKET\tOLDEST_READY\tSERVERS")
	for _, q := range rep.GetQueues() {
		servers := "-"
		if q.GetPlacement() == matchpb.PLACEMENT_SERVER {
			servers = fmt.Sprintf("%d/%d", q.GetServersAvailable(), q.GetServers())
		}
		fmt.Fprintf(tw, "%s\t%s\t%d-%d\t%d\t%d\t%d\t%s\t%s\t%s\n", q.GetName(), q.GetPlacement(),
			q.GetMinPlayers(), q.GetMaxPlayers(), q.GetTickets(), q.GetOpenSessions(), q.GetReadySessions(),
			ms(q.GetOldestTicketMs()), ms(q.GetOldestReadyMs()), servers)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	signal := "no: every ready session has found capacity"
	if rep.GetScaleOut() {
		signal = "YES: ready sessions wait for a room instance or server with capacity"
	}
	_, err := fmt.Fprintf(w, "scale-out signal: %s\n", signal)
	return err
}

// printTickets writes a queue's tickets as a table.
func printTickets(w io.Writer, rep *matchpb.TicketsReply, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TICKET\tUSER\tSTATE\tAGE\tBUCKET\tSESSION")
	for _, ti := range rep.GetTickets() {
		t := ti.GetTicket()
		age := now.Sub(time.UnixMilli(t.GetStartedUnixMs())).Milliseconds()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.GetID(), ti.GetUserID(), t.GetState(), ms(age), ti.GetBucket(), ti.GetSession())
	}
	return tw.Flush()
}

// ms formats a duration in milliseconds, "-" for none.
func ms(v int64) string {
	if v <= 0 {
		return "-"
	}
	return (time.Duration(v) * time.Millisecond).Round(time.Millisecond).String()
}
