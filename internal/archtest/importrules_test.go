package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// graph is the module's import graph, from go list: packages by path
// relative to the module ("broker", "internal/link"; "" is the module's
// root package), each with the module packages it imports directly.
type graph struct {
	module  string
	imports map[string][]string
}

// loadGraph runs go list -deps -json over every package of the module.
func loadGraph(t *testing.T) *graph {
	t.Helper()
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("the go command is not in PATH (%v): the import rules are checked with go list", err)
	}
	module := strings.TrimSpace(string(run(t, gocmd, "list", "-m", "-f", "{{.Path}}")))
	out := run(t, gocmd, "list", "-deps", "-json", module+"/...")
	g := &graph{module: module, imports: map[string][]string{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list -json output: %v", err)
		}
		rel, ok := g.rel(p.ImportPath)
		if !ok {
			continue // the standard library or another module
		}
		if p.Error != nil {
			t.Fatalf("go list: %s: %s", p.ImportPath, p.Error.Err)
		}
		var imps []string
		for _, imp := range p.Imports {
			if r, ok := g.rel(imp); ok {
				imps = append(imps, r)
			}
		}
		g.imports[rel] = imps
	}
	if len(g.imports) == 0 {
		t.Fatalf("go list found no package of %s", module)
	}
	return g
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// rel returns path relative to the module, and whether it is in it.
func (g *graph) rel(path string) (string, bool) {
	if path == g.module {
		return "", true
	}
	rest, ok := strings.CutPrefix(path, g.module+"/")
	return rest, ok
}

// packages returns the module's packages matching keep, sorted.
func (g *graph) packages(keep func(string) bool) []string {
	var ps []string
	for p := range g.imports {
		if keep(p) {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

// chains returns, for every package that from imports directly or through
// others and that bad reports, the shortest import chain to it
// ("from -> a -> b"); the search stops at a bad package, so each chain
// names the first one on its way.
func (g *graph) chains(from string, bad func(string) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	var found []string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, imp := range g.imports[p] {
			if _, seen := prev[imp]; seen {
				continue
			}
			prev[imp] = p
			if !bad(imp) {
				queue = append(queue, imp)
				continue
			}
			chain := []string{imp}
			for q := p; q != from; q = prev[q] {
				chain = append(chain, q)
			}
			chain = append(chain, from)
			slices.Reverse(chain)
			found = append(found, strings.Join(chain, " -> "))
		}
	}
	slices.Sort(found)
	return found
}

// under reports whether p is dir or a package below it.
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// isDaemon reports whether p is a daemon's package or a command.
func isDaemon(p string) bool {
	return p == "broker" || p == "yellow" || under(p, "edge") || under(p, "services") || under(p, "cmd")
}

// service returns the name of the service p belongs to (services/<name>/...),
// or "" if p is not a service's package (the runtime itself is not).
func service(p string) string {
	rest, ok := strings.CutPrefix(p, "services/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

func TestImportRules(t *testing.T) {
	g := loadGraph(t)

	t.Run("internal imports no daemon package", func(t *testing.T) {
		for _, p := range g.packages(func(p string) bool { return under(p, "internal") }) {
			for _, c := range g.chains(p, isDaemon) {
				t.Errorf("%s imports a daemon package: %s", p, c)
			}
		}
	})

	t.Run("broker imports no service runtime", func(t *testing.T) {
		for _, c := range g.chains("broker", func(p string) bool { return p == "services" }) {
			t.Errorf("broker imports the service runtime: %s", c)
		}
	})

	t.Run("services import no other service", func(t *testing.T) {
		for _, p := range g.packages(func(p string) bool { return service(p) != "" }) {
			name := service(p)
			other := func(q string) bool { return service(q) != "" && service(q) != name }
			for _, c := range g.chains(p, other) {
				t.Errorf("%s (service %s) imports another service's package: %s", p, name, c)
			}
			// What a service builds on: the runtime, the wire vocabulary,
			// the contracts, the plumbing, and yellow (its watcher; the
			// runtime imports it too).
			for _, imp := range g.imports[p] {
				if service(imp) != "" && service(imp) != name {
					continue // reported above
				}
				if !(service(imp) == name || imp == "services" || imp == "wire" || imp == "yellow" ||
					under(imp, "idl") || under(imp, "internal")) {
					t.Errorf("%s (service %s) imports %s: a service imports of the module only services, wire, yellow, idl/... and internal/...", p, name, imp)
				}
			}
		}
	})

	t.Run("wire is at the bottom", func(t *testing.T) {
		allowed := func(p string) bool { return p == "idl/gen/platformpb" || p == "internal/thriftx" }
		if _, ok := g.imports["wire"]; !ok {
			t.Fatal("go list did not list wire")
		}
		for _, c := range g.chains("wire", func(p string) bool { return !allowed(p) }) {
			t.Errorf("wire imports more than idl/gen/platformpb and internal/thriftx: %s", c)
		}
	})
}
