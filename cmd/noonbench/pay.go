package main

// The pay scenario: store purchases validated and granted through the
// whole platform, and webhook intakes, on the real Postgres (when it
// answers; else the memory stores, said in the report).
//
// In this process: yellow, one broker, the BrokerList, the login service
// (cheap argon2), one game instance and one pay instance with the test
// provider, every internal link mutual TLS, as `noon dev` and `noon
// cluster` run. Login, game and pay each get a fresh Postgres schema
// (dropped at the end) and login and game a Redis key prefix of their
// own (deleted at the end).
//
//   - validate: logged-in clients call pay.Validate through the broker,
//     each call a distinct purchase (its own transaction id and key), in a
//     closed loop at 1 and 16 connections (or -conns); a call answers
//     after the purchase and its outbox row are written and the grant is
//     delivered to game.Grant inline;
//   - webhook: payWebhookCallers HTTP clients POST /webhooks/test, each a
//     refund notification of a distinct purchase signed as the test
//     provider signs (Noon-Signature: t=...,v1=...): verified,
//     deduplicated by notification id and recorded.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/brokerlist"
	"github.com/noonhq/noon/edge/client"
	loginpb "github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/gen/login/loginrpc"
	paypb "github.com/noonhq/noon/idl/gen/pay"
	"github.com/noonhq/noon/idl/gen/pay/payrpc"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/platform"
	"github.com/noonhq/noon/services"
	"github.com/noonhq/noon/services/game"
	"github.com/noonhq/noon/services/login"
	"github.com/noonhq/noon/services/pay"
	"github.com/noonhq/noon/services/pay/provider"
	"github.com/noonhq/noon/services/pay/testprovider"
	"github.com/noonhq/noon/yellow"
)

// Settings of the pay scenario.
const (
	// paySecret is the test provider's secret of the run.
	paySecret = "noonbench-pay-test-secret"
	// payProduct is the product every purchase buys.
	payProduct = "gems_100"
	// payWebhookCallers are the concurrent webhook senders.
	payWebhookCallers = 16
)

// defaultPayConns are the validate case's connection counts without
// -conns.
var defaultPayConns = []int{1, 16}

// payReport is the pay scenario in the JSON file.
type payReport struct {
	Postgres string       `json:"postgres"`
	Redis    string       `json:"redis"`
	Setup    string       `json:"setup"`
	Results  []gameResult `json:"results,omitempty"`
	Cleanup  string       `json:"cleanup,omitempty"`
	Skipped  string       `json:"skipped,omitempty"`
}

// payStack is the platform of the scenario and the stores it cleans up.
type payStack struct {
	p       *platform.Platform
	pool    *pgxpool.Pool // nil: memory stores
	rdb     *redis.Client
	prefix  string
	schemas []string
	mains   []chan error
	webhook string // URL of POST /webhooks/test
}

// startPayStack starts yellow, a broker, login, game and pay.
func startPayStack(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool, rdb *redis.Client) (_ *payStack, err error) {
	ps := &payStack{pool: pool, rdb: rdb, prefix: "noonbench:" + randomHex(6) + ":"}
	defer func() {
		if err != nil {
			ps.close(ctx)
		}
	}()
	ca, err := pki.NewEphemeral()
	if err != nil {
		return nil, err
	}
	yopts := yellow.NewOptions()
	yopts.RouterAddr, yopts.PubAddr = "tcp://127.0.0.1:0", "tcp://127.0.0.1:0"
	bopts := broker.NewOptions()
	bopts.Edge.TCPAddr = "127.0.0.1:0"
	bopts.Edge.WSAddr = ""
	bopts.Edge.Rate = 0
	bopts.Edge.IdleTimeout = benchIdleTimeout
	blopts := brokerlist.NewOptions()
	blopts.Addr = "127.0.0.1:0"

	suffix := randomHex(4)
	lsec := login.Module.NewSection().(*services.Config[login.Options])
	lsec.Service.HTTPAddr = ""
	lsec.Service.Argon2 = argonOptions(argonCheap)
	lsec.Service.Throttle.PerAccount.Max = 0
	lsec.Service.Throttle.PerAddress.Max = 0
	lsec.Service.Throttle.PerAccountAddress.Max, lsec.Service.Throttle.ShedQueue, lsec.Service.Throttle.MaxQueue = 0, 0, login.MaxShedQueue
	lsec.Service.RedisPrefix = ps.prefix + "login:"
	lsec.Service.SessionTTL = loginSessionTTL
	lsec.Service.PostgresSchema = "noonbench_login_" + suffix
	gsec := game.Module.NewSection().(*services.Config[game.Options])
	gsec.Service.RedisPrefix = ps.prefix + "game:"
	gsec.Service.PostgresSchema = "noonbench_game_" + suffix
	psec := pay.Module.NewSection().(*services.Config[pay.Options])
	psec.Service.PostgresSchema = "noonbench_pay_" + suffix
	psec.Service.HTTPAddr = "127.0.0.1:0"
	psec.Service.TestProvider = pay.TestProviderOptions{Enabled: true, Secret: paySecret}
	psec.Service.Products = []pay.Product{{ID: payProduct, Currencies: map[string]int64{"coins": 100}}}
	if pool != nil {
		ps.schemas = []string{lsec.Service.PostgresSchema, gsec.Service.PostgresSchema, psec.Service.PostgresSchema}
	}
	for _, sec := range []services.Section{lsec, gsec, psec} {
		sec.Runtime().Concurrency = 4096
	}
	if ps.p, err = platform.New(ctx, platform.Options{
		Yellow:     yopts,
		Broker:     bopts,
		BrokerList: blopts,
		Modules:    []services.Module{login.Module, game.Module, pay.Module},
		Sections:   map[string]services.Section{login.Name: lsec, game.Name: gsec, pay.Name: psec},
		Env:        services.Env{Redis: rdb, Postgres: pool},
		Log:        log,
		TLS:        ca,
	}); err != nil {
		return nil, err
	}
	for _, l := range ps.p.Banner {
		if url, ok := strings.CutPrefix(l, "pay webhooks "); ok {
			ps.webhook = strings.TrimSuffix(url, "<provider>") + testprovider.Name
		}
	}
	if ps.webhook == "" {
		return nil, fmt.Errorf("pay serves no webhooks (banner %q)", ps.p.Banner)
	}
	for _, d := range ps.p.Daemons {
		done := make(chan error, 1)
		ps.mains = append(ps.mains, done)
		go func() { done <- d.Main() }()
	}
	rctx, cancel := context.WithTimeout(ctx, routableTimeout)
	defer cancel()
	if err := ps.p.Ready(rctx); err != nil {
		return nil, fmt.Errorf("the platform is not ready after %v: %w", routableTimeout, err)
	}
	return ps, nil
}

// close stops the platform, drops the schemas and deletes the run's keys;
// it says what it cleaned.
func (ps *payStack) close(ctx context.Context) string {
	if ps.p != nil {
		ps.p.Exit()
	}
	for _, done := range ps.mains {
		waitDone(done)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	var out string
	for _, s := range ps.schemas {
		if _, err := ps.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			out += fmt.Sprintf("dropping schema %s: %v; ", s, err)
		}
	}
	n, err := deleteKeys(ctx, ps.rdb, ps.prefix)
	if err != nil {
		return out + fmt.Sprintf("deleting the keys under %s: %v (%d deleted)", ps.prefix, err, n)
	}
	if len(ps.schemas) > 0 {
		out += fmt.Sprintf("dropped schemas %v; ", ps.schemas)
	}
	return out + fmt.Sprintf("deleted %d keys under %s", n, ps.prefix)
}

// payConns returns the validate case's connection counts.
func payConns(cfg config) []int {
	if cfg.connsGiven {
		return cfg.conns
	}
	return defaultPayConns
}

// payClients connects n players through the broker and logs them in.
func payClients(ctx context.Context, addr, run string, n int) ([]*client.Client, error) {
	conns := make([]*client.Client, n)
	err := forEach(ctx, n, 8, func(ctx context.Context, i int64) error {
		c, err := client.Dial(ctx, addr, client.DefaultOptions())
		if err != nil {
			return err
		}
		conns[i] = c
		name := fmt.Sprintf("pb%s_%d", run, i)
		lc := loginrpc.NewClient(c.CallThrift)
		if _, err := lc.Register(ctx, &loginpb.RegisterRequest{Username: name, Password: loginPassword}); err != nil {
			return fmt.Errorf("register %s: %w", name, err)
		}
		if _, err := lc.Login(ctx, &loginpb.LoginRequest{Username: name, Password: loginPassword}); err != nil {
			return fmt.Errorf("login %s: %w", name, err)
		}
		return nil
	})
	var out []*client.Client
	for _, c := range conns {
		if c != nil {
			out = append(out, c)
		}
	}
	return out, err
}

// runPay runs the pay scenario.
func runPay(ctx context.Context, cfg config, log *slog.Logger, prog *progress) (*payReport, error) {
	pr := &payReport{Redis: redisName(cfg.redisAddr), Postgres: "none: the memory stores"}
	ropts, err := redisOptions(cfg.redisAddr)
	if err != nil {
		return pr, err
	}
	ropts.PoolSize = 64
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		pr.Skipped = fmt.Sprintf("pay: skipped, no Redis at %s: %v", pr.Redis, err)
		return pr, nil
	}
	var pool *pgxpool.Pool
	if cfg.postgresURL != "" {
		pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
		p, err := pgxpool.New(pctx, cfg.postgresURL)
		if err == nil {
			err = p.Ping(pctx)
		}
		cancel()
		switch {
		case err == nil:
			pool = p
			defer pool.Close()
			pr.Postgres = postgresName(cfg.postgresURL)
		case p != nil:
			p.Close()
			prog.logf("pay: no Postgres (%v): the memory stores", err)
		}
	}
	prog.logf("pay: starting yellow, a broker, login, game and pay on Postgres %s and Redis %s (TLS links)", pr.Postgres, pr.Redis)
	ps, err := startPayStack(ctx, log, pool, rdb)
	if err != nil {
		return pr, fmt.Errorf("starting the platform: %w", err)
	}
	defer func() { pr.Cleanup = ps.close(ctx); prog.logf("pay: %s", pr.Cleanup) }()
	pr.Setup = fmt.Sprintf("one pay, one game and one login instance, one broker, GOMAXPROCS %d; Postgres %s; Redis %s; the test provider",
		runtime.GOMAXPROCS(0), pr.Postgres, pr.Redis)
	report := func(r gameResult) {
		pr.Results = append(pr.Results, r)
		prog.logf("pay: %-22s %3d callers: %8.0f/s  p50 %.1f ms  p99 %.1f ms  errors %d %s",
			r.Case, r.Callers, r.OpsPerSec, r.P50Ms, r.P99Ms, r.Errors, r.FirstError)
	}
	run := randomHex(4)
	tp := testprovider.New(paySecret, 0, nil)

	maxConns := 0
	for _, n := range payConns(cfg) {
		maxConns = max(maxConns, n)
	}
	conns, err := payClients(ctx, ps.p.Broker.TCPAddr().String(), run, maxConns)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	if err != nil {
		return pr, err
	}
	// Pay's own client finds game through yellow by itself, maybe after
	// the broker does: until then a validation answers "granting" and the
	// outbox grants later. Wait until an inline grant succeeds.
	pc := payrpc.NewClient(conns[0].CallThrift)
	for i := 0; ; i++ {
		signed := tp.Sign(testprovider.Purchase{TransactionID: fmt.Sprintf("nb%s-first-%d", run, i), ProductID: payProduct})
		r, err := pc.Validate(ctx, &paypb.ValidateRequest{Provider: testprovider.Name, Signed: signed, IdempotencyKey: fmt.Sprintf("first-%d", i)})
		if err == nil && r.Purchase.State == pay.StateGranted {
			break
		}
		if i == 100 {
			return pr, fmt.Errorf("no inline grant after %d validations: %v", i+1, err)
		}
		select {
		case <-ctx.Done():
			return pr, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, n := range payConns(cfg) {
		report(gameLoop(ctx, cfg, "validate with grant", n, n, func(ctx context.Context, i int64, w int) error {
			signed := tp.Sign(testprovider.Purchase{TransactionID: fmt.Sprintf("nb%s-%d-%d", run, n, i), ProductID: payProduct})
			r, err := payrpc.NewClient(conns[w].CallThrift).Validate(ctx, &paypb.ValidateRequest{Provider: testprovider.Name, Signed: signed, IdempotencyKey: fmt.Sprintf("k%d-%d", n, i)})
			if err == nil && r.Purchase.State != pay.StateGranted {
				err = fmt.Errorf("purchase %s: state %s, want %s", r.Purchase.ID, r.Purchase.State, pay.StateGranted)
			}
			return err
		}))
	}

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: payWebhookCallers}, Timeout: gameCallTimeout}
	defer hc.CloseIdleConnections()
	report(gameLoop(ctx, cfg, "webhook intake", payWebhookCallers, 0, func(ctx context.Context, i int64, _ int) error {
		body, sig := tp.SignWebhook(testprovider.Notification{
			ID:       fmt.Sprintf("n%s-%d", run, i),
			Type:     provider.TypeRefund,
			Purchase: testprovider.Purchase{TransactionID: fmt.Sprintf("wh%s-%d", run, i), ProductID: payProduct},
		}, time.Now())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ps.webhook, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set(testprovider.SignatureHeader, sig)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("webhook: %s", resp.Status)
		}
		return nil
	}))
	return pr, nil
}

// printPay writes the pay scenario's table.
func printPay(w io.Writer, pr *payReport) {
	if pr == nil {
		return
	}
	fmt.Fprintf(w, "\nPayments (pay service; %s)\n", pr.Setup)
	if pr.Skipped != "" {
		fmt.Fprintln(w, pr.Skipped)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tcallers\tops/s\tp50 ms\tp99 ms\tmax ms\tCPU %\terrors\t")
	for _, r := range pr.Results {
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.2f\t%.2f\t%.1f\t%.0f\t%d\t\n", r.Case, r.Callers, r.OpsPerSec, r.P50Ms, r.P99Ms, r.MaxMs, r.CPUPercent, r.Errors)
	}
	_ = tw.Flush()
	for _, r := range pr.Results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "  %s: first error: %s\n", r.Case, r.FirstError)
		}
	}
	fmt.Fprintln(w, "validate is a client's pay.Validate through the broker, a distinct purchase each, answered after the record and the inline game.Grant; webhook is POST /webhooks/test, a signed refund notification of a distinct purchase each")
}
