package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/services"
)

// gameUsage lists the game subcommands.
const gameUsage = `usage:
  game get USER
  game grant -reason WHY [-key K] USER [CURRENCY=N | item:ID=N | stat:NAME=N]...
  game take -reason WHY [-key K] USER [CURRENCY=N | item:ID=N]...
  game set-stat -reason WHY [-key K] USER STAT VALUE
  game ban -for DURATION -reason WHY USER
  game unban -reason WHY USER
  game audit [-limit N] [USER]`

// cmdGame is `noonctl game`: an operator's view of a player (profile,
// stats, inventory, wallet, ban) and the GM actions: grant and take items
// and currency, set a stat, ban and unban. It calls the game service's
// admin methods over the internal links with the admin certificate, as
// `noonctl match` does; each change is written to the game service's
// audit log with the certificate's identity and -reason, which is
// required. A change's idempotency key is -key, or a random one: run the
// same command with the same -key to retry it safely.
func cmdGame(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(gameUsage)
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("game "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	reason := fs.String("reason", "", "why (required for changes; written to the audit log)")
	key := fs.String("key", "", "idempotency key (default: a random one)")
	dur := fs.Duration("for", 0, "how long a ban lasts")
	limit := fs.Int("limit", 50, "at most N audit entries")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("game %s: %v\n%s", sub, err, gameUsage)
	}
	args = fs.Args()
	if *key == "" {
		*key = newKey()
	}
	needUser := func(n int) error {
		if len(args) < 1 || n >= 0 && len(args) != n {
			return errors.New(gameUsage)
		}
		return nil
	}
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	c := services.NewClient(services.ClientOptions{Yellows: strings.Split(o.yellows, ","), Peer: link.PeerOptions{TLS: creds}})
	defer c.Close()
	gc := gamerpc.NewClient(c.Call)
	switch sub {
	case "get":
		if err := needUser(1); err != nil {
			return err
		}
		rep, err := gc.GetPlayer(ctx, &gamepb.GetPlayerRequest{UserID: args[0]})
		if err != nil {
			return err
		}
		return printPlayer(stdout, rep.GetPlayer())
	case "grant", "take":
		if err := needUser(-1); err != nil {
			return err
		}
		cur, items, stats, err := parseAmounts(args[1:], sub == "grant")
		if err != nil {
			return err
		}
		var rep *gamepb.ChangeReply
		if sub == "grant" {
			rep, err = gc.AdminGrant(ctx, &gamepb.AdminGrantRequest{Grant: &gamepb.GrantRequest{UserID: args[0], Currencies: cur, Items: items, Stats: stats,
				Reason: *reason, Reference: "noonctl", IdempotencyKey: *key}})
		} else {
			rep, err = gc.AdminTake(ctx, &gamepb.AdminTakeRequest{Take: &gamepb.SpendRequest{UserID: args[0], Currencies: cur, Items: items,
				Reason: *reason, Reference: "noonctl", IdempotencyKey: *key}})
		}
		if err != nil {
			return err
		}
		return printChange(stdout, rep, *key)
	case "set-stat":
		if err := needUser(3); err != nil {
			return err
		}
		v, err := strconv.ParseInt(args[2], 10, 64)
		if err != nil {
			return fmt.Errorf("VALUE %q: %v", args[2], err)
		}
		rep, err := gc.SetStat(ctx, &gamepb.SetStatRequest{UserID: args[0], Stat: args[1], Value: v, Reason: *reason, IdempotencyKey: *key})
		if err != nil {
			return err
		}
		return printChange(stdout, rep, *key)
	case "ban", "unban":
		if err := needUser(1); err != nil {
			return err
		}
		var rep *gamepb.BanReply
		if sub == "ban" {
			if *dur < time.Second {
				return errors.New("game ban: -for DURATION (at least 1s) is required")
			}
			rep, err = gc.Ban(ctx, &gamepb.BanRequest{UserID: args[0], DurationSeconds: int64(*dur / time.Second), Reason: *reason})
		} else {
			rep, err = gc.Unban(ctx, &gamepb.UnbanRequest{UserID: args[0], Reason: *reason})
		}
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s: %s\n", args[0], banText(rep.GetBan()))
		return err
	case "audit":
		if len(args) > 1 {
			return errors.New(gameUsage)
		}
		req := &gamepb.AuditRequest{Limit: int32(min(max(*limit, 1), 500))}
		if len(args) == 1 {
			req.UserID = args[0]
		}
		rep, err := gc.Audit(ctx, req)
		if err != nil {
			return err
		}
		return printAudit(stdout, rep)
	}
	return fmt.Errorf("unknown game command %q\n%s", sub, gameUsage)
}

// newKey returns a random idempotency key for a GM change.
func newKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "noonctl-" + hex.EncodeToString(b[:])
}

// parseAmounts parses CURRENCY=N, item:ID=N and (for a grant) stat:NAME=N
// arguments.
func parseAmounts(args []string, grant bool) (cur, items, stats map[string]int64, err error) {
	cur, items, stats = map[string]int64{}, map[string]int64{}, map[string]int64{}
	if len(args) == 0 {
		return nil, nil, nil, errors.New("say what: CURRENCY=N, item:ID=N or stat:NAME=N")
	}
	for _, a := range args {
		name, num, ok := strings.Cut(a, "=")
		n, perr := strconv.ParseInt(num, 10, 64)
		if !ok || name == "" || perr != nil {
			return nil, nil, nil, fmt.Errorf("%q: want CURRENCY=N, item:ID=N or stat:NAME=N", a)
		}
		switch {
		case strings.HasPrefix(name, "item:"):
			items[strings.TrimPrefix(name, "item:")] = n
		case strings.HasPrefix(name, "stat:") && grant:
			stats[strings.TrimPrefix(name, "stat:")] = n
		case strings.HasPrefix(name, "stat:"):
			return nil, nil, nil, fmt.Errorf("%q: take changes no stats (use set-stat)", a)
		default:
			cur[name] = n
		}
	}
	return cur, items, stats, nil
}

// banText describes a ban.
func banText(b *gamepb.BanStatusReply) string {
	if !b.GetBanned() {
		return "not banned"
	}
	return fmt.Sprintf("banned until %s: %s", time.UnixMilli(b.GetUntilUnixMs()).UTC().Format(time.RFC3339), b.GetReason())
}

// printChange writes a change's result.
func printChange(w io.Writer, rep *gamepb.ChangeReply, key string) error {
	what := "applied"
	if rep.GetReplayed() {
		what = "already applied (the key's first result)"
	}
	fmt.Fprintf(w, "%s as log entry %d (key %s)\n", what, rep.GetSeq(), key)
	for _, part := range []struct {
		name string
		m    map[string]int64
	}{{"balance", rep.GetBalances()}, {"item", rep.GetItems()}, {"stat", rep.GetStats()}} {
		for _, k := range slices.Sorted(maps.Keys(part.m)) {
			fmt.Fprintf(w, "  %s %s = %d\n", part.name, k, part.m[k])
		}
	}
	return nil
}

// printPlayer writes a player's profile, ban, wallet, inventory and stats.
func printPlayer(w io.Writer, p *gamepb.Player) error {
	pr := p.GetProfile()
	fmt.Fprintf(w, "player %s %q (since %s; log at entry %d)\n", pr.GetUserID(), pr.GetDisplayName(),
		time.UnixMilli(pr.GetCreatedUnixMs()).UTC().Format(time.RFC3339), p.GetSeq())
	fmt.Fprintf(w, "ban: %s\n", banText(p.GetBan()))
	if pr.GetAvatar() != "" {
		fmt.Fprintf(w, "avatar: %s\n", pr.GetAvatar())
	}
	fmt.Fprintf(w, "metadata: %s\nprivate metadata: %s\n", pr.GetMetadata(), pr.GetPrivateMetadata())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME\tVALUE")
	for _, k := range slices.Sorted(maps.Keys(p.GetBalances())) {
		fmt.Fprintf(tw, "currency\t%s\t%d\n", k, p.GetBalances()[k])
	}
	for _, it := range p.GetItems() {
		fmt.Fprintf(tw, "item\t%s\t%d\n", it.GetItem(), it.GetCount())
	}
	for _, k := range slices.Sorted(maps.Keys(pr.GetStats())) {
		fmt.Fprintf(tw, "stat\t%s\t%d\n", k, pr.GetStats()[k])
	}
	return tw.Flush()
}

// printAudit writes audit entries as a table.
func printAudit(w io.Writer, rep *gamepb.AuditReply) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tAT\tADMIN\tACTION\tUSER\tREASON\tDETAIL")
	for _, e := range rep.GetEntries() {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", e.GetID(), time.UnixMilli(e.GetAtUnixMs()).UTC().Format(time.RFC3339),
			e.GetAdmin(), e.GetAction(), e.GetUserID(), e.GetReason(), e.GetDetail())
	}
	return tw.Flush()
}
