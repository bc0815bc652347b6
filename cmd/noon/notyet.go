package main

import (
	"context"
	"fmt"
	"io"
)

// notYet registers a command whose issue has not landed yet: it parses the
// shared config flags (so -h works) and says so.
func notYet(name, summary, issue string) {
	register(command{name: name, summary: summary + " (not yet: " + issue + ")", run: func(_ context.Context, args []string, _, stderr io.Writer) error {
		fs := newFlagSet(name, summary, stderr)
		var cf configFlags
		cf.register(fs, "")
		if err := parse(fs, args); err != nil {
			return err
		}
		return fmt.Errorf("not yet: %s arrives with %s", name, issue)
	}})
}

func init() {
	notYet("migrate", "run the embedded Postgres migrations", "the login / noon dev issue")
}
