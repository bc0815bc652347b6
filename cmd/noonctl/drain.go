package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/yellow"
)

// drainUsage is noonctl drain's usage line.
const drainUsage = "usage: drain [-no-wait] INSTANCE (an id noonctl instances lists)"

// cmdDrain is `noonctl drain [-no-wait] INSTANCE`: it finds the instance in
// yellow and asks it, over the internal link with the admin certificate
// (the platform's admin-only method wire.MethodDrain), to drain as on
// SIGTERM: the process it runs in leaves yellow (and, for a broker, the
// BrokerList), finishes its requests in flight and exits. Then it waits
// until the instance has left yellow, unless -no-wait (bounded by
// -timeout). A service instance answers on its ROUTER, a broker on its
// control socket.
func cmdDrain(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	noWait := fs.Bool("no-wait", false, "return once the instance accepted the request, without waiting for it to leave yellow")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return errors.New(drainUsage)
	}
	id := fs.Arg(0)
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	w := yellow.Watch(yellow.ClientOptions{Yellows: strings.Split(o.yellows, ","), TLS: creds, Logger: slog.New(slog.DiscardHandler)})
	defer w.Close()
	if err := w.WaitSynced(ctx); err != nil {
		return fmt.Errorf("yellow %s: %w", o.yellows, err)
	}
	inst := findInstance(w, id)
	if inst == nil {
		return fmt.Errorf("instance %q is not in yellow (noonctl instances lists them)", id)
	}
	if inst.GetState() == platformpb.InstanceState_INSTANCE_STATE_DRAINING {
		fmt.Fprintf(stdout, "%s %s is already draining\n", inst.GetService(), id)
	} else {
		if err := router.RequestDrain(ctx, inst, link.PeerOptions{TLS: creds, ExpectIdentity: router.ExpectedIdentity(inst), Logger: slog.New(slog.DiscardHandler)}); err != nil {
			return fmt.Errorf("%s %s: %w", inst.GetService(), id, err)
		}
		fmt.Fprintf(stdout, "%s %s is draining\n", inst.GetService(), id)
	}
	if *noWait {
		return nil
	}
	if err := w.WaitFor(ctx, func() bool { return findInstance(w, id) == nil }); err != nil {
		return fmt.Errorf("%s %s has not left yellow yet: %w (noonctl instances shows its state)", inst.GetService(), id, err)
	}
	fmt.Fprintf(stdout, "%s %s drained: it left yellow\n", inst.GetService(), id)
	return nil
}

// findInstance returns the record of instance id in w's view, or nil.
func findInstance(w *yellow.Watcher, id string) *platformpb.Instance {
	for _, in := range w.All() {
		if in.GetId() == id {
			return in
		}
	}
	return nil
}
