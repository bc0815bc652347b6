// Command noon runs the daemons of the noon platform, each as a subcommand,
// and `noon dev`: the whole platform in one process.
//
// Usage:
//
//	noon <command> [flags]
//
// Every command accepts -h to list its flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/noonhq/noon/internal/gctune"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// command is one `noon` subcommand.
type command struct {
	name    string
	summary string
	// run parses args with its own FlagSet and runs until ctx is done or a
	// fatal error occurs.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) { commands[c.name] = c }

func usage(w io.Writer) {
	fmt.Fprintf(w, "noon %s: a service-oriented game backend platform\n\nUsage: noon <command> [flags]\n\nCommands:\n", version)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'noon <command> -h' for the flags of a command.\n")
}

func main() {
	// Every daemon (and noon dev) runs with the GC policy of gctune
	// unless GOGC or GOMEMLIMIT say otherwise.
	gctune.Apply()
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "noon: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	ctx, stop := signalContext()
	defer stop()
	err := c.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "noon %s: %v\n", c.name, err)
		return 1
	}
}

// errUsage marks a command-line error already reported by the FlagSet.
var errUsage = errors.New("usage")

// signalContext returns a context cancelled on the first SIGINT or SIGTERM;
// a second signal exits at once, skipping the grace period.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(os.Stderr, "noon: second signal, exiting now")
			os.Exit(130)
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

func init() {
	register(command{name: "version", summary: "print the version", run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet("version", "", stderr)
		if err := parse(fs, args); err != nil {
			return err
		}
		fmt.Fprintln(stdout, version)
		return nil
	}})
}

// newFlagSet makes a FlagSet whose -h prints the command's summary and flags.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("noon "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: noon %s [flags]\n", name)
		if summary != "" {
			fmt.Fprintf(stderr, "\n%s\n", summary)
		}
		fmt.Fprintf(stderr, "\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping a bad command line to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}
