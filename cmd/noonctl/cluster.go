package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/noonhq/noon/internal/pki"
)

// clusterIdentity is the certificate of noon cluster's control endpoint.
var clusterIdentity = pki.Identity{Role: pki.RoleAdmin, Name: "cluster"}

// maxClusterReply bounds the control endpoint's answer.
const maxClusterReply = 1 << 20

// cmdScale runs `scale SERVICE N` against noon cluster's control endpoint.
func cmdScale(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return errors.New("usage: scale SERVICE N")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return fmt.Errorf("scale: N: %w", err)
	}
	return clusterOp(ctx, o, "/cluster/scale", map[string]any{"service": args[0], "n": n}, stdout)
}

// cmdDeploy runs `deploy [POOL...]`.
func cmdDeploy(ctx context.Context, o opts, args []string, stdout io.Writer) error {
	return clusterOp(ctx, o, "/cluster/deploy", map[string]any{"pools": args}, stdout)
}

// clusterOp posts body to path of the control endpoint and prints what
// the cluster did.
func clusterOp(ctx context.Context, o opts, path string, body any, stdout io.Writer) error {
	hc := &http.Client{}
	if strings.HasPrefix(o.cluster, "https://") {
		creds, err := adminCredentials(o)
		if err != nil {
			return err
		}
		if creds == nil {
			return errors.New("an https control endpoint needs the admin certificate: -tls DIR (what noon cluster printed)")
		}
		hc.Transport = &http.Transport{TLSClientConfig: creds.ClientConfig(clusterIdentity)}
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(o.cluster, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("cluster %s: %w", o.cluster, err)
	}
	defer resp.Body.Close()
	var rep struct {
		Done  []string `json:"done"`
		Error string   `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxClusterReply)).Decode(&rep); err != nil {
		return fmt.Errorf("cluster %s: %s: %w", o.cluster, resp.Status, err)
	}
	for _, d := range rep.Done {
		fmt.Fprintln(stdout, d)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return nil
}
