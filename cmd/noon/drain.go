package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

func init() {
	register(command{
		name:    "drain",
		summary: "drain a noon process on this host as SIGTERM does, through its admin endpoint, and wait until it has (a preStop hook)",
		run:     runDrain,
	})
}

// drainTimeout is noon drain's default -timeout: the daemons' shutdown
// grace and a little more for the process to answer and exit.
const drainTimeout = shutdownGrace + 5*time.Second

// maxDrainBody bounds what noon drain reads of an admin endpoint's answer.
const maxDrainBody = 4 << 10

func runDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("drain", "POSTs /drain to the admin endpoint of a noon process on this host (it accepts it from loopback only), which drains every daemon of the process as the first SIGTERM does: it leaves yellow and the BrokerList, finishes the requests in flight and exits. Then waits until the process has drained (its admin endpoint says so, or stops answering). Exits 0 once drained. For a Kubernetes preStop hook: exec noon drain -admin 127.0.0.1:<admin port>. Remote operators use noonctl drain <instance>.", stderr)
	admin := fs.String("admin", adminDev, "admin `host:port` of the process to drain (its -admin flag or admin.addr)")
	timeout := fs.Duration("timeout", drainTimeout, "give up waiting after `D`")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if err := drainAdmin(ctx, *admin); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "noon drain: %s drained\n", *admin)
	return nil
}

// drainAdmin asks the process whose admin endpoint is admin to drain and
// waits until it has: GET /drain answers "drained", or the endpoint stops
// answering (the process exited).
func drainAdmin(ctx context.Context, admin string) error {
	base := "http://" + strings.TrimPrefix(admin, "http://")
	// One connection per request: the process closes its endpoint as it
	// goes, and a kept-alive connection would only mislead.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	code, body, err := adminRequest(ctx, hc, http.MethodPost, base+"/drain")
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w (is a noon process's admin endpoint there?)", admin, err)
	case code == http.StatusForbidden:
		return fmt.Errorf("%s refused: %s (POST /drain is for loopback callers: run noon drain on the process's host, or noonctl drain)", admin, body)
	case code != http.StatusAccepted:
		return fmt.Errorf("%s: POST /drain: %d %s", admin, code, body)
	}
	code, body, err = adminRequest(ctx, hc, http.MethodGet, base+"/drain")
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%s: not drained within the timeout: %w", admin, ctx.Err())
	case err != nil:
		// It stopped answering mid-wait or before: the process exited.
		return nil
	case code == http.StatusOK:
		return nil
	default:
		return fmt.Errorf("%s: GET /drain: %d %s", admin, code, body)
	}
}

// adminRequest sends one bodyless request and returns the status and the
// start of the body, trimmed.
func adminRequest(ctx context.Context, hc *http.Client, method, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDrainBody))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return resp.StatusCode, strings.TrimSpace(string(b)), err
	}
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}
