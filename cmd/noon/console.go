package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/noonhq/noon/internal/daemon"
	"github.com/noonhq/noon/internal/link"
	"github.com/noonhq/noon/internal/ops"
	"github.com/noonhq/noon/internal/ops/console"
	"github.com/noonhq/noon/internal/pki"
	"github.com/noonhq/noon/router"
	"github.com/noonhq/noon/yellow"
)

func init() {
	register(command{
		name:    "console",
		summary: "serve the web console: the platform at a glance, graphs, drain buttons",
		run:     runConsole,
	})
}

// Default admin address of `noon console` (its own /metrics, /healthz).
const adminConsole = "127.0.0.1:1064"

// Timeouts of the console's HTTP server: small requests, answered from
// memory, but a drain may take up to the console's drain timeout (30 s).
const (
	consoleReadHeaderTimeout = 5 * time.Second
	consoleReadTimeout       = 10 * time.Second
	consoleWriteTimeout      = 40 * time.Second
	consoleIdleTimeout       = 2 * time.Minute
	consoleMaxHeaderBytes    = 16 << 10
)

func runConsole(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("console", "Serves the web console at /console/ on -listen: every instance yellow knows with what its admin /metrics says (noonctl top in a browser), graphs of the last ten minutes and drain buttons. It needs an admin certificate (the tls block) to follow yellow; the page wants the bearer token console.token (generated and logged when empty).", stderr)
	var cf configFlags
	cf.register(fs, "")
	listen := fs.String("listen", "", "console HTTP `addr` (overrides console.listen)")
	admin := fs.String("admin", "", "admin HTTP `addr` for /metrics and /healthz (overrides admin.addr)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.loadWith(func(c *Config) {
		setIf(&c.Console.Listen, *listen)
		setIf(&c.Admin.Addr, *admin)
	})
	if err != nil {
		return err
	}
	rt, err := newRuntime(cfg, adminConsole, stderr)
	if err != nil {
		return err
	}
	creds, err := cfg.credentials()
	if err != nil {
		return err
	}
	if creds != nil {
		if err := creds.Require(adminIdentity); err != nil {
			return fmt.Errorf("console: tls: %w (the console follows yellow as an admin)", err)
		}
	}
	con, err := newConsole(cfg, cfg.Yellows, creds, rt.log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Console.Listen)
	if err != nil {
		con.Exit()
		return fmt.Errorf("console: %w", err)
	}
	srv := &http.Server{
		Handler:           con.Handler(),
		ReadHeaderTimeout: consoleReadHeaderTimeout,
		ReadTimeout:       consoleReadTimeout,
		WriteTimeout:      consoleWriteTimeout,
		IdleTimeout:       consoleIdleTimeout,
		MaxHeaderBytes:    consoleMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(rt.log.Handler(), slog.LevelWarn),
	}
	hs := daemon.NewHTTPServer("console", ln, srv, rt.log.With("daemon", "console"))
	url := "http://" + hostPort(ln.Addr()) + console.Path
	if cfg.Console.Token == "" {
		// Generated: the operator learns it here. A configured one is
		// not logged.
		rt.log.Info("console listening", "url", url, "token", con.Token())
	} else {
		rt.log.Info("console listening", "url", url, "token", "console.token")
	}
	return rt.run(ctx, daemon.Named{Name: "console", Daemon: con}, daemon.Named{Name: "console http", Daemon: hs})
}

// consoleDaemon is a console with the yellow watcher it reads: Exit closes
// both.
type consoleDaemon struct {
	*console.Console
	w *yellow.Watcher
}

// Exit implements daemon.Daemon.
func (c consoleDaemon) Exit() {
	c.Console.Exit()
	c.w.Close()
}

// Drain implements daemon.Daemon.
func (c consoleDaemon) Drain(context.Context) error {
	c.Exit()
	return nil
}

// newConsole returns a console over the given yellows, followed with creds
// (an admin certificate; nil: plain links).
func newConsole(cfg *Config, yellows []string, creds *pki.Credentials, log *slog.Logger) (consoleDaemon, error) {
	w := yellow.Watch(yellow.ClientOptions{Yellows: yellows, TLS: creds, Logger: log.With("component", "console watcher")})
	col, err := ops.New(ops.Options{Directory: w})
	if err != nil {
		w.Close()
		return consoleDaemon{}, err
	}
	// A Drain button asks the instance, with the console's admin
	// certificate, what noonctl drain asks (router.RequestDrain).
	drain := func(ctx context.Context, id string) error {
		for _, inst := range w.All() {
			if inst.GetId() == id {
				return router.RequestDrain(ctx, inst, link.PeerOptions{TLS: creds, ExpectIdentity: router.ExpectedIdentity(inst), Logger: slog.New(slog.DiscardHandler)})
			}
		}
		return fmt.Errorf("instance %q is not in yellow", id)
	}
	con, err := console.New(console.Options{Collector: col, Token: cfg.Console.Token, Drainer: drain, Log: log.With("component", "console")})
	if err != nil {
		w.Close()
		return consoleDaemon{}, err
	}
	return consoleDaemon{Console: con, w: w}, nil
}
