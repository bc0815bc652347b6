package methods

import (
	"strings"
	"testing"

	"github.com/noonhq/noon/idl/gen/edge/edgerpc"
	"github.com/noonhq/noon/wire"
)

func TestRoundTrip(t *testing.T) {
	m, ok := Lookup("login.Login")
	if !ok {
		t.Fatal("login.Login not in the catalogue")
	}
	p, err := m.EncodeJSON([]byte(`{"username":"ann","password":"secret-pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	// A request payload decodes as the request struct: check through the
	// request side by swapping constructors.
	back, err := Method{Name: m.Name, NewReply: m.NewReq}.DecodeJSON(p)
	if err != nil || !strings.Contains(string(back), `"username":"ann"`) {
		t.Fatalf("round trip = %s, %v", back, err)
	}
	raw, _ := Lookup("echo.Echo")
	p, err = raw.EncodeJSON([]byte(`"hi"`))
	if err != nil || string(p) != "hi" {
		t.Fatalf("echo.Echo payload = %q, %v", p, err)
	}
	if _, err := raw.EncodeJSON([]byte(`{}`)); err == nil {
		t.Fatal("echo.Echo accepted a non-string")
	}
	if len(Names()) < 8 {
		t.Fatalf("Names() = %v", Names())
	}
}

// TestTables checks the generated union: each method sits in its service's
// table, and wire's edge.Hello (below the generated code in the import
// graph, so a constant of its own) is the one idl/edge.thrift declares.
func TestTables(t *testing.T) {
	n := 0
	for _, table := range tables {
		for _, m := range table {
			n++
			if got, ok := Lookup(m.Name); !ok || got.Name != m.Name {
				t.Errorf("%s is not in the catalogue", m.Name)
			}
			if wire.ServiceOf(m.Name) != wire.ServiceOf(table[0].Name) {
				t.Errorf("%s is in the table of %s", m.Name, wire.ServiceOf(table[0].Name))
			}
		}
	}
	if n != len(Names()) {
		t.Errorf("the tables hold %d methods, the catalogue %d", n, len(Names()))
	}
	if edgerpc.MethodHello != wire.MethodHello {
		t.Errorf("idl/edge.thrift declares %s, wire.MethodHello is %s", edgerpc.MethodHello, wire.MethodHello)
	}
	if _, ok := Lookup(wire.MethodHello); !ok {
		t.Errorf("%s is not in the catalogue", wire.MethodHello)
	}
}
