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

	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
)

// cmdPay is `noonctl pay`: a player's purchases, and replaying a stuck
// grant. It calls the pay service's admin methods over the internal links
// with the admin certificate.
//
//	noonctl pay list [-limit N] [-cursor C] USER
//	noonctl pay replay ID|PROVIDER:TXID
func cmdPay(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: pay list [-limit N] [-cursor C] USER | pay replay ID|PROVIDER:TXID")
	}
	sub, args := args[0], args[1:]
	var run func(pc *payrpc.Client) error
	switch sub {
	case "list":
		fs := flag.NewFlagSet("pay list", flag.ContinueOnError)
		limit := fs.Int("limit", 50, "at most `N` purchases (200 at most)")
		cursor := fs.String("cursor", "", "the next_cursor of a previous page")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return errors.New("usage: pay list [-limit N] [-cursor C] USER")
		}
		run = func(pc *payrpc.Client) error {
			rep, err := pc.AdminList(ctx, &paypb.AdminListRequest{UserID: fs.Arg(0), Cursor: *cursor, Limit: int32(min(max(*limit, 1), 200))})
			if err != nil {
				return err
			}
			return printPurchases(stdout, rep)
		}
	case "replay":
		if len(args) != 1 {
			return errors.New("usage: pay replay ID|PROVIDER:TXID")
		}
		run = func(pc *payrpc.Client) error {
			rep, err := pc.Replay(ctx, &paypb.ReplayRequest{Ref: args[0]})
			if err != nil {
				return err
			}
			p := rep.GetPurchase()
			fmt.Fprintf(stdout, "purchase %s (%s:%s) %s, delivered %v\n", p.GetID(), p.GetProvider(), p.GetTransactionID(), p.GetState(), rep.GetDelivered())
			return nil
		}
	default:
		return fmt.Errorf("unknown pay command %q (list, replay)", sub)
	}
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	c := services.NewClient(services.ClientOptions{Yellows: strings.Split(o.yellows, ","), Peer: link.PeerOptions{TLS: creds}})
	defer c.Close()
	return run(payrpc.NewClient(c.Call))
}

// printPurchases writes purchases as a table, then the next cursor.
func printPurchases(w io.Writer, rep *paypb.ListReply) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROVIDER\tTRANSACTION\tPRODUCT\tQTY\tSTATE\tGOODS\tCREATED")
	for _, p := range rep.GetPurchases() {
		var goods []string
		for k, v := range p.GetCurrencies() {
			goods = append(goods, fmt.Sprintf("%s=%d", k, v))
		}
		for k, v := range p.GetItems() {
			goods = append(goods, fmt.Sprintf("item:%s=%d", k, v))
		}
		sort.Strings(goods)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", p.GetID(), p.GetProvider(), p.GetTransactionID(), p.GetProduct(),
			p.GetQuantity(), p.GetState(), strings.Join(goods, ","), time.UnixMilli(p.GetCreatedUnixMs()).UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if c := rep.GetNextCursor(); c != "" {
		_, err := fmt.Fprintf(w, "more: -cursor %s\n", c)
		return err
	}
	return nil
}
