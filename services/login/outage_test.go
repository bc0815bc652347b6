package login_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/stores/storestest"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// outageLogin logs user in over the wire from a fixed address and returns
// the error.
func outageLogin(t *testing.T, p *platform, user string) error {
	t.Helper()
	_, _, err := p.login(t, "192.0.2.40:1", user, "password1")
	return err
}

// TestLoginRedisOutage: while Redis is down, login answers unavailable
// (before: internal), and it logs in again once Redis is back.
func TestLoginRedisOutage(t *testing.T) {
	r := storestest.StartRedis(t)
	ctx := context.Background()
	rdb, err := stores.OpenRedis(ctx, stores.RedisOptions{Addrs: []string{r.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	svc := newService(t, testOptions(t), pgStore(t), rdb)
	p := startPlatform(t, svc)
	url := startHTTP(t, svc)
	user := username(t)
	p.register(t, user, "password1")
	rep, _, err := p.login(t, "192.0.2.40:1", user, "password1")
	if err != nil {
		t.Fatal(err)
	}
	r.Stop()
	for range 3 {
		err := outageLogin(t, p, user)
		if wire.CodeOf(err) != wire.CodeUnavailable {
			t.Fatalf("login with Redis down: %v, want unavailable", err)
		}
		wantErr(t, "login with Redis down", err, "unavailable: login store unavailable")
	}
	status, _, body := post(t, http.MethodPost, url+login.PathLogin, `{"username":"`+user+`","password":"password1"}`)
	wantStatus(t, "HTTP login with Redis down", status, body, http.StatusServiceUnavailable, "unavailable: login store unavailable")
	if _, _, err := p.svc.Validate(ctx, rep.SessionToken); wire.CodeOf(err) != wire.CodeUnavailable {
		t.Fatalf("Validate with Redis down: %v, want unavailable", err)
	}
	r.Start() // an empty Redis: the user's throttles and sessions are gone, the account is not
	tries := 0
	checkFor(t, 10*time.Second, "login to work again after Redis returns", func() bool {
		tries++
		return outageLogin(t, p, user) == nil
	})
	t.Logf("logged in on try %d after Redis returned", tries)
}

// TestLoginPostgresOutage: while Postgres is unreachable (a proxy in
// front of the shared one, cut), login answers unavailable, and it logs
// in again once the proxy lets connections through.
func TestLoginPostgresOutage(t *testing.T) {
	_, schema := pgSchema(t)
	proxy, url := storestest.PostgresProxy(t)
	ctx := context.Background()
	pool, err := stores.OpenPostgres(ctx, stores.PostgresOptions{URL: url, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store, err := login.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	rdb, _ := newRedis(t, realRedis)
	p := startPlatform(t, newService(t, testOptions(t), store, rdb))
	user := username(t)
	p.register(t, user, "password1")
	if err := outageLogin(t, p, user); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	for range 3 {
		err := outageLogin(t, p, user)
		wantErr(t, "login with Postgres down", err, "unavailable: login store unavailable")
	}
	proxy.Restore()
	tries := 0
	checkFor(t, 10*time.Second, "login to work again after Postgres returns", func() bool {
		tries++
		return outageLogin(t, p, user) == nil
	})
	t.Logf("logged in on try %d after Postgres returned", tries)
}

// TestOutageIsNoFailedLogin: logins that fail because Postgres is down are
// no failed logins of their (account, address) pair. Before, each counted
// (an attempt counts from its start) and, past per_account_address.max, the
// owner's right password was answered rate_limited after the outage (the
// chaos suite's Postgres outage).
func TestOutageIsNoFailedLogin(t *testing.T) {
	_, schema := pgSchema(t)
	proxy, url := storestest.PostgresProxy(t)
	ctx := context.Background()
	pool, err := stores.OpenPostgres(ctx, stores.PostgresOptions{URL: url, MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store, err := login.NewPostgresStore(pool, schema)
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t)
	p := startPlatform(t, newService(t, opts, store, ownRedis(t)))
	user := username(t)
	p.register(t, user, "password1")
	if err := outageLogin(t, p, user); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	for range 2 * opts.Throttle.PerAccountAddress.Max {
		err := outageLogin(t, p, user)
		wantErr(t, "login with Postgres down", err, "unavailable: login store unavailable")
	}
	proxy.Restore()
	checkFor(t, 10*time.Second, "login to work again after Postgres returns", func() bool {
		err := outageLogin(t, p, user)
		if code := wire.CodeOf(err); code == wire.CodeRateLimited {
			t.Fatalf("login after the outage: %v; want no throttle", err)
		}
		return err == nil
	})
}
