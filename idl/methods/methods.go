// Package methods is the catalogue of client-callable methods: for each, the
// Thrift request and reply structs (nil for raw bytes). noonctl uses it to
// translate JSON to and from the wire; documentation and tests use it to
// list the API. It is the union of the method tables `make gen` writes from
// the service blocks of idl/*.thrift (methods_gen.go).
package methods

import (
	"sort"

	"github.com/noonhq/noon/wire"
)

// Method describes one method's payloads (wire.Method).
type Method = wire.Method

var catalogue = map[string]Method{}

// Register adds m to the catalogue: for methods declared outside
// idl/*.thrift, from an init function.
func Register(m Method) { catalogue[m.Name] = m }

func init() {
	for _, t := range tables {
		for _, m := range t {
			Register(m)
		}
	}
}

// Lookup returns the named method.
func Lookup(name string) (Method, bool) {
	m, ok := catalogue[name]
	return m, ok
}

// Names lists every method, sorted.
func Names() []string {
	out := make([]string, 0, len(catalogue))
	for n := range catalogue {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
