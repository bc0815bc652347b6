package login_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// fakeBans is a BanChecker answering from a map, or failing with err.
type fakeBans struct {
	mu     sync.Mutex
	banned map[string]login.Ban
	err    error
	asked  []string
}

func (f *fakeBans) BanStatus(_ context.Context, user string) (login.Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, user)
	return f.banned[user], f.err
}

// TestLoginBanCheck: with a ban checker, a banned player's right password
// is refused with a clear error and no session; a wrong password is
// refused without asking; an unreachable checker lets the login through
// (fail open); without a ban the login works.
func TestLoginBanCheck(t *testing.T) {
	rdb, _ := newRedis(t, miniRedis)
	svc := newService(t, testOptions(t), login.NewMemoryStore(), rdb)
	bans := &fakeBans{banned: map[string]login.Ban{}}
	svc.SetBanChecker(bans)
	ctx := context.Background()
	name := username(t)
	acct, err := svc.Register(ctx, name, "password1", "", "")
	if err != nil {
		t.Fatal(err)
	}
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	bans.banned[acct.ID] = login.Ban{Banned: true, Until: until, Reason: "cheating"}
	_, err = svc.Login(ctx, name, "password1", "")
	const want = "unauthenticated: banned until 2030-01-02T03:04:05Z: cheating"
	if err == nil || err.Error() != want || wire.CodeOf(err) != wire.CodeUnauthenticated {
		t.Fatalf("a banned player's login = %v, want %s", err, want)
	}
	bans.asked = nil
	if _, err := svc.Login(ctx, name, "wrong-password", ""); !errors.Is(err, login.ErrBadCredentials) {
		t.Fatalf("a wrong password = %v", err)
	}
	if len(bans.asked) != 0 {
		t.Fatalf("a wrong password asked about bans: %v", bans.asked)
	}
	delete(bans.banned, acct.ID)
	if s, err := svc.Login(ctx, name, "password1", ""); err != nil || s.UserID != acct.ID {
		t.Fatalf("after the ban: %+v, %v", s, err)
	}
	bans.err = wire.Errorf(wire.CodeUnavailable, "no instance of game")
	bans.banned[acct.ID] = login.Ban{Banned: true, Until: until, Reason: "cheating"}
	if _, err := svc.Login(ctx, name, "password1", ""); err != nil {
		t.Fatalf("with the ban check failing: %v; want the login let through", err)
	}
}
