package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/noonhq/noon/internal/pki"
)

func init() {
	register(command{
		name:    "certs",
		summary: "make the cluster CA and the certificates of yellow, brokers, services and noonctl",
		run:     runCerts,
	})
}

// certsUsage is what `noon certs` and `noon certs -h` print.
const certsUsage = `Usage: noon certs <ca | issue> [flags]

Every internal link (ZeroMQ, yellow included) is mutual TLS 1.3 with
certificates of one cluster CA; a certificate names the role its holder
runs as. noon dev and noon cluster make their own; for anything else:

  noon certs ca -out DIR
      makes the CA: DIR/ca.crt (ship it everywhere) and DIR/ca.key (0600;
      keep it off the hosts that run noon).
  noon certs issue -ca DIR -role ROLE [-name NAME] -out DIR
      issues a certificate: OUT/<role>[-<name>].crt and .key (0600), and
      copies ca.crt to OUT (unless OUT has one). Roles: yellow, broker
      (the BrokerList too), service (-name: the service, e.g. login),
      admin (noonctl).

Each process then reads its files from the tls block of its config:

  tls: {ca: OUT/ca.crt, cert: OUT/service-login.crt, key: OUT/service-login.key}

Run 'noon certs ca -h' or 'noon certs issue -h' for their flags.
`

func runCerts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, certsUsage)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	switch args[0] {
	case "ca":
		return runCertsCA(args[1:], stdout, stderr)
	case "issue":
		return runCertsIssue(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "noon certs: unknown subcommand %q\n\n%s", args[0], certsUsage)
	return errUsage
}

func runCertsCA(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("certs ca", "Makes a cluster CA (ECDSA P-256, self-signed): OUT/ca.crt and OUT/ca.key (0600). It refuses to overwrite an existing CA key.", stderr)
	out := fs.String("out", "", "`directory` to write ca.crt and ca.key to (created 0700; required)")
	name := fs.String("name", "noon cluster CA", "the CA's common `name`")
	days := fs.Int("days", int(pki.DefaultCAValidity/(24*time.Hour)), "validity in `days`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *days <= 0 {
		fmt.Fprintln(stderr, "noon certs ca: -out is required and -days must be positive")
		fs.Usage()
		return errUsage
	}
	ca, err := pki.NewCA(*name, time.Duration(*days)*24*time.Hour)
	if err != nil {
		return err
	}
	if err := ca.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "CA written: %s (certificate: ship it everywhere), %s (key: keep it safe)\n",
		filepath.Join(*out, pki.CACertFile), filepath.Join(*out, pki.CAKeyFile))
	return nil
}

func runCertsIssue(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("certs issue", "Issues a certificate of the CA in -ca for one role: OUT/<role>[-<name>].crt and .key (0600), plus a copy of ca.crt unless OUT has one. Re-issuing replaces the files (rotation: restart instances one at a time).", stderr)
	caDir := fs.String("ca", "", "`directory` of the CA (ca.crt, ca.key; required)")
	role := fs.String("role", "", "`role`: yellow, broker, service or admin (required)")
	name := fs.String("name", "", "the service's `name` for -role service (required there); an optional host or instance label otherwise")
	out := fs.String("out", "", "`directory` to write the files to (default: the -ca directory)")
	hosts := fs.String("hosts", strings.Join(pki.DefaultHosts, ","), "comma-separated DNS names and IP `addresses` put in the certificate (for TLS tools; noon verifies the CA and the role, not host names)")
	days := fs.Int("days", int(pki.DefaultCertValidity/(24*time.Hour)), "validity in `days`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *caDir == "" || *role == "" || *days <= 0 {
		fmt.Fprintln(stderr, "noon certs issue: -ca and -role are required and -days must be positive")
		fs.Usage()
		return errUsage
	}
	id := pki.Identity{Role: pki.Role(*role), Name: *name}
	if err := id.Validate(); err != nil {
		return err
	}
	if *out == "" {
		*out = *caDir
	}
	ca, err := pki.LoadCA(*caDir)
	if err != nil {
		return err
	}
	var hostList []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hostList = append(hostList, h)
		}
	}
	is, err := ca.Issue(id, pki.IssueOptions{Hosts: hostList, Validity: time.Duration(*days) * 24 * time.Hour})
	if err != nil {
		return err
	}
	certFile, keyFile, err := is.Save(*out)
	if err != nil {
		return err
	}
	// Copy the CA certificate next to the new files, unless a CA file is
	// there already (it may be a rotation's bundle of old and new CA).
	caFile := filepath.Join(*out, pki.CACertFile)
	if _, err := os.Stat(caFile); os.IsNotExist(err) {
		if err := os.WriteFile(caFile, ca.CertPEM(), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "issued %s: %s, %s\nconfig:\n  tls: {ca: %s, cert: %s, key: %s}\n", id, certFile, keyFile, caFile, certFile, keyFile)
	return nil
}

// ephemeralFiles writes what the processes of noon dev or noon cluster need
// of the ephemeral CA e to dir: ca.crt, and a certificate and key for each
// of ids (pki.CertFiles names). It returns the tls block of each identity.
func ephemeralFiles(e *pki.Ephemeral, dir string, ids ...pki.Identity) (map[pki.Identity]pki.Config, error) {
	caFile := filepath.Join(dir, pki.CACertFile)
	if err := os.WriteFile(caFile, e.CA().CertPEM(), 0o644); err != nil {
		return nil, err
	}
	out := make(map[pki.Identity]pki.Config, len(ids))
	for _, id := range ids {
		if _, ok := out[id]; ok {
			continue
		}
		is, err := e.Issue(id)
		if err != nil {
			return nil, err
		}
		cert, key, err := is.Save(dir)
		if err != nil {
			return nil, err
		}
		out[id] = pki.Config{CA: caFile, Cert: cert, Key: key}
	}
	return out, nil
}

// adminIdentity is the identity noon dev and noon cluster issue for
// noonctl (admin.crt: what `noonctl -tls DIR` reads).
var adminIdentity = pki.Identity{Role: pki.RoleAdmin}
