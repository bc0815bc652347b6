package game_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apache/thrift/lib/go/thrift"

	"github.com/noonhq/noon/edge/client"
	gamepb "github.com/noonhq/noon/idl/gen/game"
	"github.com/noonhq/noon/idl/gen/game/gamerpc"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// waitLong bounds every wait for something that takes milliseconds.
const waitLong = 15 * time.Second

// startPlatform starts yellow, login (cheap hashes, ban_check: game) and
// game, the BrokerList and a broker, with mutual TLS on every internal
// link.
func startPlatform(t *testing.T) *platform.Platform {
	opts := platformtest.Options(t, login.Module, game.Module)
	lo := &opts.Sections[login.Name].(*services.Config[login.Options]).Service
	lo.HTTPAddr = ""
	lo.Argon2.Time, lo.Argon2.MemoryKiB = 1, 1024
	lo.BanCheck = game.Name
	return platformtest.Start(t, opts)
}

// gamer is a game client through the platform's broker.
type gamer struct {
	t    *testing.T
	c    *client.Client
	id   string
	name string
}

// dial connects a client to the broker and registers name.
func dial(t *testing.T, p *platform.Platform, name string) *gamer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	g := &gamer{t: t, c: c, name: name}
	var rep loginpb.RegisterReply
	if err := g.call(loginrpc.MethodRegister, &loginpb.RegisterRequest{Username: name, Password: "password1"}, &rep); err != nil {
		t.Fatal(err)
	}
	g.id = rep.UserID
	return g
}

// login logs the client in.
func (g *gamer) login() error {
	return g.call(loginrpc.MethodLogin, &loginpb.LoginRequest{Username: g.name, Password: "password1"}, &loginpb.LoginReply{})
}

func (g *gamer) call(method string, req, resp thrift.TStruct) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	return g.c.CallThrift(ctx, method, req, resp)
}

// game returns the game service's stubs over the client's connection.
func (g *gamer) game() *gamerpc.Client { return gamerpc.NewClient(g.c.CallThrift) }

// processClient returns the game service's stubs for a platform process
// holding id's certificate.
func processClient(t *testing.T, p *platform.Platform, id pki.Identity) *gamerpc.Client {
	c := services.NewClient(services.ClientOptions{
		Yellows: []string{p.Yellow.RouterEndpoint()}, Heartbeat: platformtest.Heartbeat,
		Peer: link.PeerOptions{TLS: testenv.Credentials(t, id)}, Logger: testenv.Logger(t),
	})
	t.Cleanup(c.Close)
	return gamerpc.NewClient(c.Call)
}

func ctxLong(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	t.Cleanup(cancel)
	return ctx
}

// TestServerPathsOnPlatform: on the whole platform with mutual TLS, a
// logged-in client's game.Grant through the broker is refused and grants
// nothing, and so is one from a service the game service does not trust
// (login); a service:room identity's is accepted, and the player sees it
// in game.GetWallet through the broker; an admin's AdminGrant is audited
// under the admin's certificate identity, which a service's is not.
func TestServerPathsOnPlatform(t *testing.T) {
	p := startPlatform(t)
	ann := dial(t, p, "ann")
	if err := ann.login(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxLong(t)
	grant := &gamepb.GrantRequest{UserID: ann.id, Currencies: map[string]int64{"coins": 10}, Stats: map[string]int64{"wins": 1},
		Reason: "room_win", Reference: "room:r1", IdempotencyKey: "room:r1:win"}
	_, err := ann.game().Grant(ctx, grant)
	if err == nil || err.Error() != "unauthenticated: an internal method: clients may not call it" {
		t.Fatalf("a client's game.Grant = %v", err)
	}
	_, err = processClient(t, p, pki.Identity{Role: pki.RoleService, Name: "login"}).Grant(ctx, grant)
	if err == nil || err.Error() != "unauthenticated: an internal method: service:login may not call it (services room, match, pay and admins may)" {
		t.Fatalf("service:login's game.Grant = %v", err)
	}
	w, err := ann.game().GetWallet(ctx, &gamepb.GetWalletRequest{})
	if err != nil || w.Balances["coins"] != 0 {
		t.Fatalf("the refused grants granted: %+v, %v", w, err)
	}

	room := processClient(t, p, pki.Identity{Role: pki.RoleService, Name: "room"})
	rep, err := room.Grant(ctx, grant)
	if err != nil || rep.Balances["coins"] != 10 || rep.Stats["wins"] != 1 || rep.Replayed {
		t.Fatalf("service:room's game.Grant = %+v, %v", rep, err)
	}
	if rep, err = room.Grant(ctx, grant); err != nil || !rep.Replayed || rep.Balances["coins"] != 10 {
		t.Fatalf("service:room's retry = %+v, %v; want the first result", rep, err)
	}
	if w, err = ann.game().GetWallet(ctx, &gamepb.GetWalletRequest{}); err != nil || w.Balances["coins"] != 10 {
		t.Fatalf("ann's wallet through the broker: %+v, %v", w, err)
	}
	if _, err := room.AdminGrant(ctx, &gamepb.AdminGrantRequest{Grant: grant}); err == nil || !strings.Contains(err.Error(), "an admin method: service:room may not call it") {
		t.Fatalf("service:room's AdminGrant = %v", err)
	}

	admin := processClient(t, p, pki.Identity{Role: pki.RoleAdmin})
	if _, err := admin.AdminGrant(ctx, &gamepb.AdminGrantRequest{Grant: &gamepb.GrantRequest{UserID: ann.id,
		Currencies: map[string]int64{"coins": 5}, Reason: "ticket 7", IdempotencyKey: "gm-1"}}); err != nil {
		t.Fatal(err)
	}
	au, err := admin.Audit(ctx, &gamepb.AuditRequest{UserID: ann.id})
	if err != nil || len(au.Entries) != 1 || au.Entries[0].Admin != "admin" || au.Entries[0].Reason != "ticket 7" || au.Entries[0].Action != game.KindAdminGrant {
		t.Fatalf("Audit: %+v, %v", au, err)
	}
	led, err := ann.game().ListLedger(ctx, &gamepb.ListLedgerRequest{})
	if err != nil || len(led.Entries) != 2 || led.Entries[0].Balance != 15 || led.Entries[1].IdempotencyKey != "room:r1:win" {
		t.Fatalf("ann's ledger: %+v, %v", led, err)
	}
}

// TestBanOnPlatform: an operator bans a player; the player's login
// through the broker is refused with the ban's end and reason; unbanned,
// the login works.
func TestBanOnPlatform(t *testing.T) {
	p := startPlatform(t)
	bob := dial(t, p, "bob")
	ctx := ctxLong(t)
	admin := processClient(t, p, pki.Identity{Role: pki.RoleAdmin})
	b, err := admin.Ban(ctx, &gamepb.BanRequest{UserID: bob.id, DurationSeconds: 3600, Reason: "cheating"})
	if err != nil || !b.Ban.Banned {
		t.Fatalf("Ban: %+v, %v", b, err)
	}
	until := time.UnixMilli(b.Ban.UntilUnixMs).UTC().Format(time.RFC3339)
	err = bob.login()
	if want := "unauthenticated: banned until " + until + ": cheating"; err == nil || err.Error() != want {
		t.Fatalf("a banned login = %v, want %s", err, want)
	}
	if _, err := bob.game().GetWallet(ctx, &gamepb.GetWalletRequest{}); wire.CodeOf(err) != wire.CodeUnauthenticated {
		t.Fatalf("the refused login logged the connection in: %v", err)
	}
	if _, err := admin.Unban(ctx, &gamepb.UnbanRequest{UserID: bob.id, Reason: "appeal granted"}); err != nil {
		t.Fatal(err)
	}
	if err := bob.login(); err != nil {
		t.Fatalf("login after Unban: %v", err)
	}
	if _, err := bob.game().GetWallet(ctx, &gamepb.GetWalletRequest{}); err != nil {
		t.Fatalf("after login: %v", err)
	}
	au, err := admin.Audit(ctx, &gamepb.AuditRequest{UserID: bob.id})
	if err != nil || len(au.Entries) != 2 || au.Entries[0].Action != "unban" || au.Entries[1].Action != "ban" {
		t.Fatalf("Audit: %+v, %v", au, err)
	}
}
