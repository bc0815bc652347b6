package main

import (
	"fmt"
	"strings"

	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/services/friends"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/match"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/room"
)

// modules are the services noon runs, in the order `noon dev` starts them
// and `noon migrate` migrates them. Adding a service is one line here:
// `noon service`, `noon dev`, `noon cluster`, `noon migrate`, the services
// section of the config and the banner all follow from this list.
var modules = []services.Module{
	echo.Module,
	login.Module,
	room.Module,
	match.Module,
	game.Module,
	friends.Module,
	pay.Module,
}

// findModule returns the module named name.
func findModule(name string) (services.Module, bool) {
	for _, m := range modules {
		if m.Name() == name {
			return m, true
		}
	}
	return nil, false
}

// moduleNames lists the services, comma-separated.
func moduleNames() string {
	names := make([]string, len(modules))
	for i, m := range modules {
		names[i] = m.Name()
	}
	return strings.Join(names, ", ")
}

// moduleList is the services with their summaries, one per line, for -h.
func moduleList() string {
	var b strings.Builder
	b.WriteString("Services:")
	for _, m := range modules {
		fmt.Fprintf(&b, "\n  %-8s %-9s %s", m.Name(), m.Kind(), m.Summary())
	}
	return b.String()
}

// firstExample is the first module's example call, or "".
func firstExample() string {
	for _, m := range modules {
		if ex := m.Example(); ex != "" {
			return ex
		}
	}
	return ""
}

// needsOf is what the modules need together.
func needsOf(ms ...services.Module) services.Needs {
	var n services.Needs
	for _, m := range ms {
		mn := m.Needs()
		n.Postgres = n.Postgres || mn.Postgres
		n.Redis = n.Redis || mn.Redis
		n.Pub = n.Pub || mn.Pub
	}
	return n
}
