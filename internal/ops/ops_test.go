package ops_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/idl/gen/platformpb"
	"github.com/noonhq/noon/internal/ops"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/internal/testenv"
	"github.com/noonhq/noon/platform/platformtest"
	"github.com/noonhq/noon/services/echo"
	"github.com/noonhq/noon/services/match"
	"github.com/noonhq/noon/services/room"
	"github.com/noonhq/noon/wire"
	"github.com/noonhq/noon/yellow"
)

// TestSnapshot starts a real platform with an admin endpoint, follows its
// yellow with the admin certificate, makes echo calls through the broker
// and checks what two snapshots say.
func TestSnapshot(t *testing.T) {
	opts := platformtest.Options(t, echo.Module, room.Module, match.Module)
	adm := platformtest.Admin(t, &opts)
	p := platformtest.Start(t, opts)

	creds, err := testenv.PKI(t).Credentials(pki.Identity{Role: pki.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	w := yellow.Watch(yellow.ClientOptions{Yellows: []string{p.Yellow.RouterEndpoint()}, TLS: creds})
	t.Cleanup(w.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Every instance and the broker registered with their admin label.
	if err := w.WaitFor(ctx, func() bool {
		n := 0
		for _, in := range w.All() {
			if in.GetMeta()[wire.MetaAdmin] == adm.Addr() {
				n++
			}
		}
		return n == 4
	}); err != nil {
		t.Fatalf("instances with admin=%s: %v (%v)", adm.Addr(), err, w.All())
	}

	col, err := ops.New(ops.Options{Directory: w})
	if err != nil {
		t.Fatal(err)
	}
	first, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first.Interval != 0 || len(first.Errors) != 0 {
		t.Fatalf("first snapshot: interval %v, errors %v", first.Interval, first.Errors)
	}

	c, err := client.Dial(ctx, p.Broker.TCPAddr().String(), client.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const calls = 20
	for i := range calls {
		if _, err := c.Call(ctx, echo.MethodEcho, []byte(fmt.Sprint("hello ", i))); err != nil {
			t.Fatalf("echo: %v", err)
		}
	}
	second, err := col.Collect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if second.Interval <= 0 || len(second.Errors) != 0 {
		t.Fatalf("second snapshot: interval %v, errors %v", second.Interval, second.Errors)
	}
	svc := map[string]*ops.Service{}
	for _, s := range second.Services {
		svc[s.Name] = s
	}
	for _, name := range []string{"echo", "room", "match"} {
		s := svc[name]
		if s == nil || len(s.Instances) != 1 || s.Ready != 1 || !s.Instances[0].Scraped {
			t.Fatalf("service %s: %+v", name, s)
		}
		in := s.Instances[0]
		if in.Admin != adm.Addr() || in.State != "ready" || in.Capacity == 0 {
			t.Errorf("%s instance: %+v", name, in)
		}
	}
	e := svc["echo"]
	if got := e.Instances[0].Requests; got < calls {
		t.Errorf("echo requests %v, want >= %d", got, calls)
	}
	if want := float64(calls) / second.Interval; e.ReqRate < want*0.99 {
		t.Errorf("echo req/s %v, want >= %v", e.ReqRate, want)
	}
	if e.ErrRate != 0 {
		t.Errorf("echo errors/s %v", e.ErrRate)
	}
	if e.P99 <= 0 || e.P99 > 10 {
		t.Errorf("echo p99 %v s", e.P99)
	}
	if len(second.Brokers) != 1 {
		t.Fatalf("brokers %+v", second.Brokers)
	}
	b := second.Brokers[0]
	if b.Connections != 1 || b.ClientAddr == "" || b.Requests < calls {
		t.Errorf("broker %+v", b)
	}
	if second.ScaleOut {
		t.Error("scale-out signal on an idle platform")
	}
}

// staticDir is a Directory of fixed instances.
type staticDir []*platformpb.Instance

func (d staticDir) All() []*platformpb.Instance { return d }

// TestScrapeLimits checks the bounds of a scrape: a body over MaxBody, a
// slow endpoint, a malformed admin label and a bad status each fail that
// endpoint alone, within the timeout.
func TestScrapeLimits(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 2048 { // 2 MiB of comments
			fmt.Fprintln(w, "# "+strings.Repeat("x", 1000))
		}
	}))
	defer big.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers within the timeout
	}))
	defer slow.Close()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer bad.Close()
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, `noon_service_requests_total{daemon="service_echo"} 7`)
		fmt.Fprintln(w, `noon_service_in_flight{daemon="service_echo"} 2`)
	}))
	defer good.Close()
	inst := func(id, admin string) *platformpb.Instance {
		return &platformpb.Instance{Service: "echo", Id: id, Meta: map[string]string{wire.MetaAdmin: admin}}
	}
	host := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }
	dir := staticDir{
		inst("a-big", host(big)), inst("b-slow", host(slow)), inst("c-bad", host(bad)),
		inst("d-label", "evil.example/x?y"), inst("e-good", host(good)),
	}
	col, err := ops.New(ops.Options{Directory: dir, MaxBody: 64 << 10, ScrapeTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	snap, err := col.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("snapshot took %v", d)
	}
	if len(snap.Errors) != 4 {
		t.Fatalf("errors %q, want 4", snap.Errors)
	}
	for _, want := range []string{"bad admin address", "too large", "deadline exceeded", "503"} {
		found := false
		for _, e := range snap.Errors {
			found = found || strings.Contains(e, want)
		}
		if !found {
			t.Errorf("no error says %q: %q", want, snap.Errors)
		}
	}
	s := snap.Services[0]
	if s.Name != "echo" || len(s.Instances) != 5 || s.InFlight != 2 {
		t.Fatalf("service %+v", s)
	}
	if g := s.Instances[4]; !g.Scraped || g.Requests != 7 {
		t.Errorf("good instance %+v", g)
	}
}
