package login_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	"github.com/noonhq/noon/internal/thriftx"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/services/login"
)

// Benchmarks of the login path against the real Postgres and Redis
// (testenv; skipped without them): through the service runtime (a
// services.Client calling a login instance over ZeroMQ, found through
// yellow) and through the HTTP API over loopback. Each reports ops/s and
// the p50 / p99 latency of one call, queueing included, at the stated
// number of concurrent clients.
//
//	go test -run '^$' -bench . -benchtime 5s ./services/login/
//
// argon2 parameters: "owasp" is the default, argon2id m=19 MiB, t=2, p=1
// (OWASP's minimum), hashed on GOMAXPROCS slots; "cheap" is m=1 MiB, t=1,
// to show what the rest of the path costs.

// benchArgon2 are the argon2 settings benchmarked.
var benchArgon2 = []struct {
	name string
	p    login.Argon2Options
}{
	{"argon2=owasp", login.NewOptions().Argon2},
	{"argon2=cheap", login.Argon2Options{Time: 1, MemoryKiB: 1024, Threads: 1, KeyLen: 32, SaltLen: 16}},
}

// benchClients are the numbers of concurrent callers benchmarked.
var benchClients = []int{1, 16}

// benchEnv is a login service on real Postgres and Redis with accounts
// registered, throttling set far above what a benchmark does.
type benchEnv struct {
	svc   *login.Service
	users []string
}

const benchPassword = "correct horse battery staple"

func newBenchEnv(b *testing.B, argon login.Argon2Options, accounts int) *benchEnv {
	b.Helper()
	rdb, _ := newRedis(b, realRedis)
	store := pgStore(b)
	opts := testOptions(b)
	opts.Argon2 = argon
	opts.Throttle.PerAccount.Max = 1 << 30
	opts.Throttle.PerAddress.Max = 1 << 30
	svc, err := login.New(opts, store, rdb, nil)
	if err != nil {
		b.Fatal(err)
	}
	env := &benchEnv{svc: svc}
	for i := 0; i < accounts; i++ {
		u := fmt.Sprintf("bench%d_%s", i, unique(b))
		if len(u) > 32 {
			u = u[:32]
		}
		if _, err := svc.Register(context.Background(), u, benchPassword, "", ""); err != nil {
			b.Fatal(err)
		}
		env.users = append(env.users, u)
	}
	return env
}

// runLatency runs op from clients goroutines b.N times in all, and reports
// ops/s (named unit) and the p50 and p99 latency in ms.
func runLatency(b *testing.B, clients int, unit string, op func(i int) error) {
	b.Helper()
	var (
		mu   sync.Mutex
		all  = make([]time.Duration, 0, b.N)
		next atomic.Int64
		wg   sync.WaitGroup
		fail atomic.Value
	)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, b.N/clients+1)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					break
				}
				t0 := time.Now()
				if err := op(int(i)); err != nil {
					fail.CompareAndSwap(nil, err)
					break
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err, _ := fail.Load().(error); err != nil {
		b.Fatal(err)
	}
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		return float64(all[min(len(all)-1, int(float64(len(all))*p))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), unit)
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkLogin measures login.Login through the service runtime.
func BenchmarkLogin(b *testing.B) {
	for _, a := range benchArgon2 {
		// One environment for every round of the sub-benchmarks.
		env := newBenchEnv(b, a.p, 16)
		p := startPlatformHB(b, env.svc, time.Second)
		for _, clients := range benchClients {
			b.Run(fmt.Sprintf("%s/clients=%d", a.name, clients), func(b *testing.B) {
				runLatency(b, clients, "logins/s", func(i int) error {
					_, _, err := p.login(b, "198.51.100.1:1", env.users[i%len(env.users)], benchPassword)
					return err
				})
			})
		}
	}
}

// BenchmarkValidate measures login.Validate (no hashing: one Redis read)
// through the service runtime.
func BenchmarkValidate(b *testing.B) {
	env := newBenchEnv(b, benchArgon2[1].p, 1)
	s, err := env.svc.Login(context.Background(), env.users[0], benchPassword, "")
	if err != nil {
		b.Fatal(err)
	}
	p := startPlatformHB(b, env.svc, time.Second)
	req, _ := thriftx.Marshal(&loginpb.ValidateRequest{SessionToken: s.Token})
	for _, clients := range benchClients {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			runLatency(b, clients, "validations/s", func(int) error {
				env, err := p.client.CallRaw(context.Background(), router.Target{}, loginrpc.MethodValidate, nil, req)
				if err != nil {
					return err
				}
				var rep loginpb.ValidateReply
				if err := thriftx.Unmarshal(env.GetPayload(), &rep); err != nil || !rep.Valid {
					return fmt.Errorf("validate: %v %v", &rep, err)
				}
				return nil
			})
		})
	}
}

// BenchmarkHTTP measures POST /api/login and /api/validate_session over
// loopback HTTP (keep-alive connections).
func BenchmarkHTTP(b *testing.B) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(url string, body []byte) error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", url, resp.StatusCode, buf.Bytes())
		}
		return nil
	}
	for _, a := range benchArgon2 {
		env := newBenchEnv(b, a.p, 16)
		url := startHTTP(b, env.svc) + login.PathLogin
		bodies := make([][]byte, len(env.users))
		for i, u := range env.users {
			bodies[i] = []byte(`{"username":"` + u + `","password":"` + benchPassword + `"}`)
		}
		for _, clients := range benchClients {
			b.Run(fmt.Sprintf("login/%s/clients=%d", a.name, clients), func(b *testing.B) {
				runLatency(b, clients, "logins/s", func(i int) error { return post(url, bodies[i%len(bodies)]) })
			})
		}
	}
	venv := newBenchEnv(b, benchArgon2[1].p, 1)
	s, err := venv.svc.Login(context.Background(), venv.users[0], benchPassword, "")
	if err != nil {
		b.Fatal(err)
	}
	vurl := startHTTP(b, venv.svc) + login.PathValidateSession
	vbody := []byte(`{"session_token":"` + s.Token + `"}`)
	for _, clients := range benchClients {
		b.Run(fmt.Sprintf("validate/clients=%d", clients), func(b *testing.B) {
			runLatency(b, clients, "validations/s", func(int) error { return post(vurl, vbody) })
		})
	}
}
