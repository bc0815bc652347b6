package login_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/stores"
	"github.com/noonhq/noon/internal/stores/storestest"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/wire"
)

// fakeClock is a service clock that tests move forward: throttle waits
// are measured on it, so that a test skips a back-off without waiting.
type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

var retryRE = regexp.MustCompile(`; retry in (\d+)s$`)

// retryIn returns the wait a rate_limited error names, failing the test
// for any other error.
func retryIn(t testing.TB, what string, err error) time.Duration {
	t.Helper()
	m := retryRE.FindStringSubmatch(fmt.Sprint(err))
	if wire.CodeOf(err) != wire.CodeRateLimited || m == nil {
		t.Fatalf("%s: %v, want rate_limited with a retry time", what, err)
	}
	n, _ := strconv.Atoi(m[1])
	return time.Duration(n) * time.Second
}

// ownRedis starts a redis-server of the test's own and returns a client
// of it: other packages' tests FLUSHALL the shared Redis, which would
// forget the throttles and known prefixes a test builds up.
func ownRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	r := storestest.StartRedis(t)
	rdb, err := stores.OpenRedis(context.Background(), stores.RedisOptions{Addrs: []string{r.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// throttled returns a platform over a Redis of its own with the default
// throttles and a fake clock.
func throttled(t *testing.T, tune func(*login.Options)) (*platform, *fakeClock) {
	rdb := ownRedis(t)
	clk := &fakeClock{}
	opts := testOptions(t)
	opts.Clock = clk.now
	if tune != nil {
		tune(&opts)
	}
	return startPlatform(t, newService(t, opts, login.NewMemoryStore(), rdb)), clk
}

// TestLockoutAttack: an attacker failing many times, from one address and
// from many, cannot keep the owner out. Before, 11 failures from anywhere
// refused the right password from everywhere for 5 minutes.
func TestLockoutAttack(t *testing.T) {
	p, clk := throttled(t, nil)
	owner, pass := username(t), "owner-password"
	p.register(t, owner, pass)
	const addrB, addrC = "192.0.2.10:5000", "203.0.113.5:6000"
	if _, _, err := p.login(t, addrB, owner, pass); err != nil {
		t.Fatalf("owner's first login from B: %v", err)
	}

	// One attacker address: 5 guesses, then waits that double.
	const addrA = "198.51.100.7:4000"
	for i := range login.DefaultPairFailures {
		_, _, err := p.login(t, addrA, owner, fmt.Sprintf("guess-%d", i))
		wantErr(t, "guess", err, "unauthenticated: wrong username or password")
	}
	var waits []time.Duration
	for i := range 4 {
		_, _, err := p.login(t, addrA, owner, "guess-again")
		d := retryIn(t, "guess past the limit", err)
		waits = append(waits, d)
		clk.advance(d)
		_, _, err = p.login(t, addrA, owner, fmt.Sprintf("late-guess-%d", i))
		wantErr(t, "guess after the wait", err, "unauthenticated: wrong username or password")
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] != 2*waits[i-1] {
			t.Fatalf("waits %v: want each twice the last", waits)
		}
	}
	// Many attacker addresses, each under its own limit: the account's
	// failures from unknown addresses pass its limit.
	for i := range 10 {
		for j := range 3 {
			_, _, err := p.login(t, fmt.Sprintf("198.51.%d.%d:1", 101+i, j), owner, "spread-guess")
			if err != nil && wire.CodeOf(err) != wire.CodeUnauthenticated && wire.CodeOf(err) != wire.CodeRateLimited {
				t.Fatalf("spread guess: %v", err)
			}
		}
	}
	_, _, err := p.login(t, "198.51.200.1:1", owner, "spread-guess")
	if d := retryIn(t, "a new address after many failures", err); d > login.DefaultAccountMaxBackoff {
		t.Fatalf("new address waits %v, more than %v", d, login.DefaultAccountMaxBackoff)
	}

	// The owner from B, a prefix it logged in from (another address in
	// the /24), gets in at once.
	if _, _, err := p.login(t, "192.0.2.77:5001", owner, pass); err != nil {
		t.Fatalf("owner from the known prefix: %v", err)
	}
	// The owner from a new address C is at most slowed: a retry time no
	// longer than the account's back-off cap, then in.
	for tries := 0; ; tries++ {
		_, _, err := p.login(t, addrC, owner, pass)
		if err == nil {
			break
		}
		d := retryIn(t, "owner from a new address", err)
		if d > login.DefaultAccountMaxBackoff || tries > 0 {
			t.Fatalf("owner from C: try %d waits %v (cap %v)", tries, d, login.DefaultAccountMaxBackoff)
		}
		clk.advance(d)
	}
	// C is now known: the attackers' failures no longer slow it.
	for range 5 {
		_, _, _ = p.login(t, "198.51.201.1:1", owner, "more-guesses")
	}
	if _, _, err := p.login(t, addrC, owner, pass); err != nil {
		t.Fatalf("owner from C, now known: %v", err)
	}
}

// TestManyLoginsOneAddress: many players behind one address (a NAT) log
// in, their successes never count against the address; a script trying
// many accounts from one address is slowed with doubling waits, counted
// per IPv4 address or IPv6 /64, registrations included; other addresses
// are not.
func TestManyLoginsOneAddress(t *testing.T) {
	p, clk := throttled(t, nil)
	const pass = "password1"
	users := make([]string, login.DefaultAddressAttempts+10)
	for i := range users {
		users[i] = username(t)
		p.register(t, users[i], pass)
	}
	const nat = "192.0.2.50"
	for i, u := range users {
		if _, _, err := p.login(t, fmt.Sprintf("%s:%d", nat, 1000+i), u, pass); err != nil {
			t.Fatalf("player %d behind the NAT: %v", i, err)
		}
	}
	for _, tc := range []struct{ name, addr, other string }{
		{"ipv4", "198.51.100.9:%d", "198.51.100.10:1"},
		{"ipv6", "[2001:db8:5:6::%x]:1", "[2001:db8:5:7::1]:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Credential stuffing: each account once, from the address
			// (any port, any address of the /64); a registration counts.
			_, err := p.call(t, loginrpc.MethodRegister, fmt.Sprintf(tc.addr, 1), &loginpb.RegisterRequest{Username: username(t), Password: pass}, nil)
			if err != nil {
				t.Fatalf("Register: %v", err)
			}
			for i := range login.DefaultAddressAttempts - 1 {
				_, _, err := p.login(t, fmt.Sprintf(tc.addr, 2+i), users[i], "stuffed")
				wantErr(t, "stuffing", err, "unauthenticated: wrong username or password")
			}
			var last time.Duration
			for i := range 3 {
				_, _, err := p.login(t, fmt.Sprintf(tc.addr, 100+i), users[i], pass)
				d := retryIn(t, "stuffing past the limit", err)
				if i > 0 && d != 2*last {
					t.Fatalf("wait %v after %v: want it doubled", d, last)
				}
				last = d
				_, err = p.call(t, loginrpc.MethodRegister, fmt.Sprintf(tc.addr, 200+i), &loginpb.RegisterRequest{Username: username(t), Password: pass}, nil)
				if got := retryIn(t, "register while waiting", err); got > d {
					t.Fatalf("register waits %v, login %v", got, d)
				}
				clk.advance(d)
				_, _, err = p.login(t, fmt.Sprintf(tc.addr, 300+i), users[len(users)-1-i], "stuffed")
				wantErr(t, "stuffing after the wait", err, "unauthenticated: wrong username or password")
			}
			// Another address, and the NAT, are not slowed.
			if _, _, err := p.login(t, tc.other, users[0], pass); err != nil {
				t.Fatalf("login from another address: %v", err)
			}
			if _, _, err := p.login(t, nat+":9", users[1], pass); err != nil {
				t.Fatalf("login from the NAT: %v", err)
			}
		})
	}
	// Calls without an address (from other services) are not limited by
	// address.
	for i := range login.DefaultAddressAttempts + 5 {
		_, _, err := p.login(t, "", users[i], "wrong")
		wantErr(t, "service call", err, "unauthenticated: wrong username or password")
	}
}
