package methods

import (
	"strings"
	"testing"
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
