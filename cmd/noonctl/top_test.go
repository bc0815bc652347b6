package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	roompb "github.com/noonhq/noon/idl/gen/room"
	"github.com/noonhq/noon/idl/gen/room/roomrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/room"
)

// adminDir writes the test CA's certificate and an admin certificate where
// -tls reads them, and a service certificate in another directory (not an
// admin: refused).
func adminDir(t *testing.T, id pki.Identity) string {
	t.Helper()
	dir := t.TempDir()
	eph := testenv.PKI(t)
	if err := os.WriteFile(filepath.Join(dir, pki.CACertFile), eph.CA().CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	is, err := eph.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := is.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	// -tls reads admin.crt / admin.key whatever the identity: a test of a
	// wrong role renames its files so.
	acert, akey := pki.CertFiles(dir, pki.Identity{Role: pki.RoleAdmin})
	if cert != acert {
		if err := os.Rename(cert, acert); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(key, akey); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestTopAndRooms runs noonctl top -once and noonctl rooms against a real
// platform (echo, login, room) with an admin endpoint, after a player made
// a room.
func TestTopAndRooms(t *testing.T) {
	opts := platformtest.Options(t, echo.Module, login.Module, room.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = "127.0.0.1:0"
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	platformtest.Admin(t, &opts)
	p := platformtest.Start(t, opts)
	dir := adminDir(t, pki.Identity{Role: pki.RoleAdmin})
	yellows := p.Yellow.RouterEndpoint()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.CallThrift(ctx, loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: "topuser", Password: "password1"}, &loginpb.RegisterReply{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CallThrift(ctx, loginrpc.MethodLogin, &loginpb.LoginRequest{Username: "topuser", Password: "password1"}, &loginpb.LoginReply{}); err != nil {
		t.Fatal(err)
	}
	var st roompb.RoomState
	if err := c.CallThrift(ctx, roomrpc.MethodCreate, &roompb.CreateRequest{Name: "top's"}, &st); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	code := run(ctx, []string{"-yellows", yellows, "-tls", dir, "top", "-once", "-interval", "200ms"}, nil, &out, &errOut)
	if code != 0 {
		t.Fatalf("top -once: %d %s", code, errOut.String())
	}
	top := out.String()
	t.Logf("noonctl top -once:\n%s", top)
	for _, want := range []string{"SERVICE", "echo", "login", "room", "BROKER", p.Broker.ID(), "rates over ", "scale-out: no"} {
		if !strings.Contains(top, want) {
			t.Errorf("top does not show %q", want)
		}
	}
	if strings.Contains(top, "\x1b[") || strings.Contains(top, "unreachable") {
		t.Errorf("top -once: escapes or unreachable endpoints:\n%q", top)
	}
	// The room service's row counts the room; the broker's the connection.
	if !hasRow(top, "room", "1", "1", "1") {
		t.Errorf("room row without its room:\n%s", top)
	}

	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"-yellows", yellows, "-tls", dir, "rooms"}, nil, &out, &errOut); code != 0 {
		t.Fatalf("rooms: %d %s", code, errOut.String())
	}
	rooms := out.String()
	t.Logf("noonctl rooms:\n%s", rooms)
	if !strings.Contains(rooms, st.ID) || !strings.Contains(rooms, "1 active rooms, 1 listed") {
		t.Fatalf("rooms does not list %s:\n%s", st.ID, rooms)
	}
	for _, l := range strings.Split(rooms, "\n") {
		if strings.Contains(l, st.ID) {
			f := strings.Fields(l)
			if len(f) != 6 || !strings.HasPrefix(f[0], "room-") || f[4] == "-" || f[5] == "-" {
				t.Errorf("room line %q", l)
			}
		}
	}

	// room.Rooms is an admin method: a service certificate is refused.
	svcDir := adminDir(t, pki.Identity{Role: pki.RoleService, Name: "echo"})
	out.Reset()
	errOut.Reset()
	run(ctx, []string{"-yellows", yellows, "-tls", svcDir, "rooms"}, nil, &out, &errOut)
	if !strings.Contains(out.String()+errOut.String(), "admin") {
		t.Errorf("rooms with a service certificate: %s %s", out.String(), errOut.String())
	}
}

// hasRow reports whether a line of out starts with first and holds want in
// order after it.
func hasRow(out, first string, want ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != first {
			continue
		}
		i := 1
		for _, w := range want {
			for i < len(f) && f[i] != w {
				i++
			}
			if i == len(f) {
				return false
			}
		}
		return true
	}
	return false
}

func TestParseTopAndRooms(t *testing.T) {
	var out, errOut bytes.Buffer
	for _, args := range [][]string{{"top", "-interval", "1ms"}, {"top", "x"}, {"rooms", "-limit", "5000"}, {"rooms", "x"}} {
		errOut.Reset()
		if code := run(context.Background(), args, nil, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), args[0]) {
			t.Errorf("%q: %d %s", args, code, errOut.String())
		}
	}
}
