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

	"github.com/noonhq/noon/internal/ops"
	"github.com/noonhq/noon/yellow"
)

// topUsage is `noonctl top`'s usage.
const topUsage = `usage: top [-interval D] [-once]`

// clearScreen moves the cursor home and clears the terminal (ANSI).
const clearScreen = "\x1b[H\x1b[2J"

// cmdTop is `noonctl top`: the platform at a glance, redrawn every
// -interval (default 2s) until interrupted; -once prints one snapshot
// (rates over one -interval) and exits. It follows yellow with the admin
// certificate and scrapes every instance's admin /metrics (the meta label
// admin).
func cmdTop(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	interval := fs.Duration("interval", 2*time.Second, "refresh every `D`")
	once := fs.Bool("once", false, "print one snapshot and exit")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("top: %v\n%s", err, topUsage)
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("top: unexpected %q\n%s", fs.Arg(0), topUsage)
	}
	if *interval < 100*time.Millisecond || *interval > time.Hour {
		return fmt.Errorf("top: -interval must be in [100ms, 1h], got %v", *interval)
	}
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	w := yellow.Watch(yellow.ClientOptions{Yellows: strings.Split(o.yellows, ","), TLS: creds})
	defer w.Close()
	sctx, cancel := context.WithTimeout(ctx, o.timeout)
	err = w.WaitSynced(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("yellow %s: %w", o.yellows, err)
	}
	col, err := ops.New(ops.Options{Directory: w})
	if err != nil {
		return err
	}
	// The first snapshot has no rates: take it, wait an interval, then
	// show the second and every one after.
	if _, err := col.Collect(ctx); err != nil {
		return err
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if *once {
				return ctx.Err()
			}
			return nil
		case <-t.C:
		}
		snap, err := col.Collect(ctx)
		if errors.Is(err, context.Canceled) && !*once {
			return nil
		}
		if err != nil {
			return err
		}
		if !*once {
			if _, err := io.WriteString(stdout, clearScreen); err != nil {
				return err
			}
		}
		if err := printTop(stdout, snap); err != nil || *once {
			return err
		}
	}
}

// printTop writes a snapshot as tables: services, instances, brokers,
// match queues, the scale-out signal and the endpoints not scraped.
func printTop(w io.Writer, s *ops.Snapshot) error {
	scale := "no"
	if s.ScaleOut {
		scale = "YES: ready sessions wait for room capacity"
	}
	fmt.Fprintf(w, "noon top  %s  rates over %.1fs  scale-out: %s\n\n", s.Time.Format("15:04:05"), s.Interval, scale)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SERVICE\tINSTANCES\tREADY\tLOAD\tIN-FLIGHT\tREQ/S\tERR/S\tP99 ms\tROOMS\t")
	for _, svc := range s.Services {
		rooms := ""
		if svc.Name == "room" {
			rooms = fmt.Sprintf("%.0f", svc.Rooms)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%.0f\t%.1f\t%.2f\t%s\t%s\t\n", svc.Name, len(svc.Instances), svc.Ready, svc.Load, svc.InFlight, svc.ReqRate, svc.ErrRate, millis(svc.P99), rooms)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tSTATE\tVERSION\tLOAD\tCAPACITY\tIN-FLIGHT\tREQ/S\tERR/S\tROOMS\tADMIN")
	for _, svc := range s.Services {
		for _, in := range svc.Instances {
			inflight, req, errs, rooms := "-", "-", "-", ""
			if in.Scraped {
				inflight, req, errs = fmt.Sprintf("%.0f", in.InFlight), fmt.Sprintf("%.1f", in.ReqRate), fmt.Sprintf("%.2f", in.ErrRate)
				if svc.Name == "room" {
					rooms = fmt.Sprintf("%.0f", in.Rooms)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%d\t%s\t%s\t%s\t%s\t%s\n", in.ID, in.State, dash(in.Version), in.Load, in.Capacity, inflight, req, errs, rooms, dash(in.Admin))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BROKER\tSTATE\tCLIENT\tLOAD\tCONNECTIONS\tIN-FLIGHT\tREQ/S\tERR/S\tP99 ms")
	for _, b := range s.Brokers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%.0f\t%.0f\t%.1f\t%.2f\t%s\n", b.ID, b.State, dash(b.ClientAddr), b.Load, b.Connections, b.InFlight, b.ReqRate, b.ErrRate, millis(b.P99))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Queues) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "MATCH QUEUE\tTICKETS\tOLDEST s\tREADY SESSIONS\tREADY WAIT s")
		for _, q := range s.Queues {
			fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.0f\t%.1f\n", q.Name, q.Tickets, q.Oldest, q.Ready, q.ReadyWait)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, e := range s.Errors {
		fmt.Fprintf(w, "unreachable: %s\n", e)
	}
	if s.Truncated {
		fmt.Fprintln(w, "(truncated: more instances or queues than shown)")
	}
	return nil
}

// millis formats seconds as milliseconds, "-" for none (negative).
func millis(s float64) string {
	if s < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", s*1000)
}

// dash returns s, or "-" when empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
