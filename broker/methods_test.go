package broker_test

import (
	"strings"
	"testing"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/idl/methods"
	"github.com/noonhq/noon/wire"
)

// TestDefaultRoutesCoverMethods checks the default route table against the
// methods of idl/*.thrift (idl/methods): every declared method is routed, to
// the service that declares it; every alias names a declared method; and
// every route of a service that has a thrift file routes at least one of its
// methods (a route no method matches is a typo or a removed method).
func TestDefaultRoutesCoverMethods(t *testing.T) {
	table, err := broker.NewRouteTable(broker.DefaultRoutes(), broker.DefaultAliases())
	if err != nil {
		t.Fatal(err)
	}
	names := methods.Names()
	if len(names) == 0 {
		t.Fatal("idl/methods is empty")
	}
	declared := map[string]bool{} // services with a thrift file
	for _, name := range names {
		svc := wire.ServiceOf(name)
		declared[svc] = true
		full, r, ok := table.Resolve(name)
		switch {
		case !ok:
			t.Errorf("%s is declared in idl/%s.thrift but has no default route", name, svc)
		case full != name:
			t.Errorf("Resolve(%s) = %s: a method name resolved as an alias", name, full)
		case r.Service != svc:
			t.Errorf("%s routes to service %q (prefix %q), want %q", name, r.Service, r.Prefix, svc)
		case svc == "edge" && r.Kind != broker.KindLocal:
			t.Errorf("%s routes %s, want %s: the broker answers edge.*", name, r.Kind, broker.KindLocal)
		}
	}
	for alias, target := range table.Aliases() {
		if _, ok := methods.Lookup(target); !ok {
			t.Errorf("alias %s names %s, which no thrift service declares", alias, target)
		}
	}
	for _, r := range table.Routes() {
		if !declared[r.Service] {
			continue // a service without a thrift file yet (match, friends, ...)
		}
		covers := 0
		for _, name := range names {
			if name == r.Prefix || strings.HasSuffix(r.Prefix, ".") && strings.HasPrefix(name, r.Prefix) {
				covers++
			}
		}
		if covers == 0 {
			t.Errorf("route %q (service %s) matches no method of idl/%s.thrift", r.Prefix, r.Service, r.Service)
		}
	}
}
