// Command noonctl is the operator's and developer's tool: call any method
// through a broker with a JSON body (the grpcurl of noon), list the
// instances yellow knows, print the route table.
//
//	noonctl [-brokerlist URL | -broker host:port] [-user U -password P] call METHOD [JSON]
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] instances [SERVICE]
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] drain [-no-wait] INSTANCE
//	noonctl [-config FILE] routes
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] match [queues | tickets QUEUE | cancel TICKET]
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] game get USER | grant | take | set-stat | ban | unban | audit
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] pay list USER | replay ID|PROVIDER:TXID
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] rooms [-limit N] [-instance ID]
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] rooms prune [-older-than D] [-dry-run] [-limit N]
//	noonctl [-cluster URL] [-tls DIR] scale SERVICE N | deploy [POOL...]
//	noonctl [-yellows tcp://...] [-tls DIR | -config FILE] top [-interval D] [-once]
//
// instances talks to yellow over the internal links, which are mutual TLS:
// noonctl presents an admin certificate, from -tls DIR (ca.crt, admin.crt,
// admin.key: what noon certs, noon dev and noon cluster write) or from the
// tls block of -config.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/edge/client"
	"github.com/noonhq/noon/idl/gen/login"
	"github.com/noonhq/noon/idl/methods"
	"github.com/noonhq/noon/internal/config"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/yellow"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// opts are noonctl's global flags.
type opts struct {
	brokerList string
	broker     string
	user, pass string
	token      string
	yellows    string
	config     string
	tlsDir     string
	cluster    string
	timeout    time.Duration
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o opts
	fs := flag.NewFlagSet("noonctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.brokerList, "brokerlist", "http://127.0.0.1:1050/brokerlist", "BrokerList `URL` to pick a broker from")
	fs.StringVar(&o.broker, "broker", "", "broker `host:port` or ws:// URL (instead of -brokerlist)")
	fs.StringVar(&o.user, "user", "", "log in as `username` before the call")
	fs.StringVar(&o.pass, "password", "", "`password` for -user (or NOON_PASSWORD)")
	fs.StringVar(&o.token, "token", "", "resume an existing session `token` instead of logging in")
	fs.StringVar(&o.yellows, "yellows", "tcp://127.0.0.1:1060", "comma-separated yellow `endpoints` (instances)")
	fs.StringVar(&o.config, "config", "", "noon config `file` (routes, and the tls block for instances; default: built-in routes, plain links)")
	fs.StringVar(&o.tlsDir, "tls", "", "`directory` of ca.crt, admin.crt and admin.key for TLS to yellow (instances; noon dev and noon cluster print theirs)")
	fs.StringVar(&o.cluster, "cluster", "https://127.0.0.1:1065", "noon cluster's control `URL` (scale, deploy; http:// for a cluster with tls.insecure)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "overall `timeout` (scale and deploy: at least 10 minutes)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: noonctl [flags] <command>\n\nCommands:\n"+
			"  call METHOD [JSON]   call METHOD with a JSON body (read from stdin when JSON is -); prints the reply as JSON\n"+
			"  methods              list the methods call knows\n"+
			"  instances [SERVICE]  list the instances yellow knows, with state and load\n"+
			"  drain [-no-wait] INSTANCE  drain an instance (a service's or a broker) as on SIGTERM, and wait until it left yellow (admin)\n"+
			"  routes               print the broker's route table\n"+
			"  match [queues]       the matchmaker's queues and the scale-out signal (admin)\n"+
			"  match tickets QUEUE  a queue's searching tickets, oldest first (admin)\n"+
			"  match cancel TICKET  cancel a ticket (admin)\n"+
			"  game get USER        a player's profile, ban, wallet, inventory and stats (admin)\n"+
			"  game grant|take|set-stat|ban|unban ... -reason WHY   GM actions, audited (admin; noonctl game for usage)\n"+
			"  game audit [USER]    the GM audit log, newest first (admin)\n"+
			"  pay list USER        a player's purchases, newest first (admin)\n"+
			"  pay replay ID|PROVIDER:TXID  deliver a purchase's pending grant now (admin)\n"+
			"  rooms [-limit N] [-instance ID]  placement: each room instance's active rooms, their seq and members (admin)\n"+
			"  rooms prune [-older-than D] [-dry-run] [-limit N]  delete or archive rooms closed longer than D (admin)\n"+
			"  top [-interval D] [-once]  live view: services, instances, load, in-flight, req/s, errors, p99, rooms, brokers, match queues (admin)\n"+
			"  scale SERVICE N      noon cluster: start or drain instances of SERVICE until N run, each new one ready in yellow (admin)\n"+
			"  deploy [POOL...]     noon cluster: restart every pool (or these; \"broker\" for the brokers) one process at a time with the binary now on disk (admin)\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.pass == "" {
		o.pass = os.Getenv("NOON_PASSWORD")
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return 2
	}
	if (rest[0] == "scale" || rest[0] == "deploy") && o.timeout < 10*time.Minute {
		o.timeout = 10 * time.Minute // each step waits for a process to come up or drain
	}
	if rest[0] != "top" { // top runs until interrupted; -timeout bounds its yellow sync
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.timeout)
		defer cancel()
	}
	var err error
	switch rest[0] {
	case "call":
		err = cmdCall(ctx, o, rest[1:], stdin, stdout)
	case "methods":
		for _, n := range methods.Names() {
			fmt.Fprintln(stdout, n)
		}
	case "instances":
		err = cmdInstances(ctx, o, rest[1:], stdout)
	case "drain":
		err = cmdDrain(ctx, o, rest[1:], stdout)
	case "routes":
		err = cmdRoutes(o, stdout)
	case "match":
		err = cmdMatch(ctx, o, rest[1:], stdout)
	case "game":
		err = cmdGame(ctx, o, rest[1:], stdout)
	case "pay":
		err = cmdPay(ctx, o, rest[1:], stdout)
	case "rooms":
		err = cmdRooms(ctx, o, rest[1:], stdout)
	case "scale":
		err = cmdScale(ctx, o, rest[1:], stdout)
	case "deploy":
		err = cmdDeploy(ctx, o, rest[1:], stdout)
	case "top":
		err = cmdTop(ctx, o, rest[1:], stdout)
	default:
		fmt.Fprintf(stderr, "noonctl: unknown command %q\n", rest[0])
		fs.Usage()
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "noonctl: %v\n", err)
		return 1
	}
	return 0
}

func cmdCall(ctx context.Context, o opts, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) < 1 || len(args) > 2 {
		return errors.New("usage: call METHOD [JSON]")
	}
	m, ok := methods.Lookup(args[0])
	if !ok {
		return fmt.Errorf("unknown method %q (noonctl methods lists them)", args[0])
	}
	body := []byte("{}")
	if m.NewReq == nil {
		body = []byte(`""`)
	}
	if len(args) == 2 {
		body = []byte(args[1])
		if args[1] == "-" {
			b, err := io.ReadAll(io.LimitReader(stdin, 1<<20))
			if err != nil {
				return err
			}
			body = b
		}
	}
	payload, err := m.EncodeJSON(body)
	if err != nil {
		return err
	}
	c, err := dialBroker(ctx, o)
	if err != nil {
		return err
	}
	defer c.Close()
	if o.user != "" {
		var rep login.LoginReply
		if err := c.CallThrift(ctx, "login.Login", &login.LoginRequest{Username: o.user, Password: o.pass}, &rep); err != nil {
			return fmt.Errorf("login: %w", err)
		}
	}
	out, err := c.Call(ctx, m.Name, payload)
	if err != nil {
		return err
	}
	js, err := m.DecodeJSON(out)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(js))
	return nil
}

func dialBroker(ctx context.Context, o opts) (*client.Client, error) {
	addr := o.broker
	if addr == "" {
		list, err := client.FetchBrokerList(ctx, o.brokerList)
		if err != nil {
			return nil, fmt.Errorf("brokerlist %s: %w", o.brokerList, err)
		}
		if addr, err = client.PickBroker(list); err != nil {
			return nil, err
		}
	}
	co := client.DefaultOptions()
	co.ClientName = "noonctl"
	co.ResumeToken = o.token
	c, err := client.Dial(ctx, addr, co)
	if err != nil {
		return nil, fmt.Errorf("broker %s: %w", addr, err)
	}
	return c, nil
}

// adminCredentials loads noonctl's admin certificate from -tls or the
// config's tls block; nil when neither names one (plain links).
func adminCredentials(o opts) (*pki.Credentials, error) {
	var tc pki.Config
	switch {
	case o.tlsDir != "":
		admin := pki.Identity{Role: pki.RoleAdmin}
		tc.CA = filepath.Join(o.tlsDir, pki.CACertFile)
		tc.Cert, tc.Key = pki.CertFiles(o.tlsDir, admin)
	case o.config != "":
		var file struct {
			TLS  *pki.Config    `yaml:"tls"`
			Rest map[string]any `yaml:",inline"`
		}
		file.TLS = &tc
		if err := config.LoadFile(o.config, &file); err != nil {
			return nil, err
		}
	}
	creds, err := tc.Load()
	if err != nil || creds == nil {
		return nil, err
	}
	if err := creds.Require(pki.Identity{Role: pki.RoleAdmin}); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return creds, nil
}

func cmdInstances(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	creds, err := adminCredentials(o)
	if err != nil {
		return err
	}
	w := yellow.Watch(yellow.ClientOptions{Yellows: strings.Split(o.yellows, ","), TLS: creds})
	defer w.Close()
	if err := w.WaitSynced(ctx); err != nil {
		return fmt.Errorf("yellow %s: %w", o.yellows, err)
	}
	all := w.All()
	sort.Slice(all, func(i, j int) bool {
		if all[i].GetService() != all[j].GetService() {
			return all[i].GetService() < all[j].GetService()
		}
		return all[i].GetId() < all[j].GetId()
	})
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tID\tSTATE\tLOAD\tCAPACITY\tROUTER\tCLIENT\tMETA")
	for _, in := range all {
		if len(args) > 0 && in.GetService() != args[0] {
			continue
		}
		state := strings.TrimPrefix(in.GetState().String(), "INSTANCE_STATE_")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%d\t%s\t%s\t%s\n", in.GetService(), in.GetId(), strings.ToLower(state), in.GetLoad(), in.GetCapacity(), in.GetRouter(), in.GetClientAddr(), formatMeta(in.GetMeta()))
	}
	return tw.Flush()
}

// routesConfig is the part of a noon config file noonctl reads.
type routesConfig struct {
	Broker broker.Options `yaml:"broker"`
}

func cmdRoutes(o opts, stdout io.Writer) error {
	cfg := routesConfig{Broker: broker.NewOptions()}
	if o.config != "" {
		// Only the broker section matters here; the rest is the daemons'.
		if err := config.LoadFile(o.config, &struct {
			Broker *broker.Options `yaml:"broker"`
			Rest   map[string]any  `yaml:",inline"`
		}{Broker: &cfg.Broker}); err != nil {
			return err
		}
	}
	aliases := cfg.Broker.Aliases
	if aliases == nil {
		aliases = broker.DefaultAliases()
	}
	return broker.FormatRoutes(stdout, cfg.Broker.Routes, aliases, cfg.Broker.DefaultTimeout)
}

// formatMeta writes an instance's labels as "k=v,k=v" in key order (a room
// instance's rooms_free, a match instance's scale-out signal), "-" for
// none.
func formatMeta(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + m[k])
	}
	return b.String()
}
