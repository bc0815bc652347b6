package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/noonhq/noon/internal/freeport"
)

// freePorts returns n TCP ports free on every interface (the pods bind
// ":port"), picked by freeport.Pick: below the ephemeral range, never the
// same twice.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		p, err := freeport.Pick("")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	return ports
}

// TestPodsOnOneHost runs the containers of the chart (one yellow, the
// echo pool, the BrokerList, the brokers) as processes on this host, each
// with its pod's command line: the rendered config file, the certificates
// noon certs writes under the names the pod mounts, $(POD_IP) as
// 127.0.0.1. Three things differ from a pod, as they cannot be the same on
// one host: the files' directory, each process's admin port, and the
// yellows list (the yellow pod's DNS name does not resolve here; given
// with one more -set). The chart's ports are free ones. It checks that
// every daemon starts, passes /healthz, that the broker is registered and
// listed by the BrokerList, and that each exits 0 on SIGTERM.
func TestPodsOnOneHost(t *testing.T) {
	helmBin(t)
	p := freePorts(t, 9)
	values := fmt.Sprintf(`
yellow: {replicas: 1, routerPort: %d, pubPort: %d}
brokers: {tcpPort: %d, wsPort: %d, controlPort: %d, pubPort: %d}
brokerList: {port: %d}
servicePorts: {router: %d, pub: %d}
`, p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8])
	objs := render(t, values)

	dir := t.TempDir()
	noon := noonBinary(t)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(noon, args...).CombinedOutput(); err != nil {
			t.Fatalf("noon %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	ca, certs := filepath.Join(dir, "ca"), filepath.Join(dir, "tls")
	run("certs", "ca", "-out", ca)
	run("certs", "issue", "-ca", ca, "-role", "yellow", "-out", certs)
	run("certs", "issue", "-ca", ca, "-role", "broker", "-out", certs)
	run("certs", "issue", "-ca", ca, "-role", "broker", "-name", "brokerlist", "-out", certs)
	run("certs", "issue", "-ca", ca, "-role", "service", "-name", "echo", "-out", certs)

	var config string
	byComponent := map[string]object{}
	for _, o := range objs {
		if s := str(at(o, "data", "noon.yaml")); s != "" {
			config = s
		}
		if o.kind() == "Deployment" || o.kind() == "StatefulSet" {
			byComponent[o.component()] = o
		}
	}
	configFile := filepath.Join(dir, "noon.yaml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	admins := map[string]string{}
	procs := map[string]*exec.Cmd{}
	order := []string{"yellow", "echo", "brokerlist", "broker"}
	adminPorts := freePorts(t, len(order))
	for i, comp := range order {
		wl, ok := byComponent[comp]
		if !ok {
			t.Fatalf("no workload %s", comp)
		}
		_, c := podContainer(t, wl)
		var args []string
		for _, a := range list(c["args"]) {
			s := str(a)
			s = strings.ReplaceAll(s, "/etc/noon/noon.yaml", configFile)
			s = strings.ReplaceAll(s, "/etc/noon/tls", certs)
			s = strings.ReplaceAll(s, "$(POD_IP)", "127.0.0.1")
			args = append(args, s)
		}
		for j := range args {
			if args[j] == "-admin" && j+1 < len(args) {
				args[j+1] = fmt.Sprintf(":%d", adminPorts[i])
			}
		}
		args = append(args, "-set", fmt.Sprintf("yellows=tcp://127.0.0.1:%d", p[0]))
		admins[comp] = fmt.Sprintf("http://127.0.0.1:%d", adminPorts[i])
		cmd := exec.Command(noon, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs[comp] = cmd
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			if t.Failed() {
				t.Logf("%s: noon %s\n%s", comp, strings.Join(args, " "), log.String())
			}
		})
	}

	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// checkFor polls f until it returns "" or the deadline passes.
	checkFor := func(what string, f func() string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			msg := f()
			if msg == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s", what, msg)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, comp := range order {
		checkFor(comp+" /healthz", func() string {
			if code, body := get(admins[comp] + "/healthz"); code != http.StatusOK {
				return fmt.Sprintf("%d %s", code, body)
			}
			return ""
		})
	}
	// The broker registered in yellow over mutual TLS and is listed.
	wantBroker := fmt.Sprintf("127.0.0.1:%d", p[2])
	checkFor("the BrokerList lists the broker", func() string {
		code, body := get(fmt.Sprintf("http://127.0.0.1:%d/brokerlist", p[6]))
		var bl struct {
			BrokerList map[string]float64 `json:"brokerList"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &bl) != nil {
			return fmt.Sprintf("%d %s", code, body)
		}
		if _, ok := bl.BrokerList[wantBroker]; !ok {
			return fmt.Sprintf("%s, want %s", body, wantBroker)
		}
		return ""
	})
	checkFor("echo registered in yellow", func() string {
		_, body := get(admins["yellow"] + "/metrics")
		for _, l := range strings.Split(body, "\n") {
			f := strings.Fields(l)
			if len(f) == 2 && strings.HasPrefix(f[0], "noon_yellow_instances{") {
				if n, err := strconv.ParseFloat(f[1], 64); err == nil && n >= 2 {
					return ""
				}
			}
		}
		return "yellow holds fewer than 2 instances (the broker and echo)"
	})

	// SIGTERM, edge first: each drains and exits 0.
	for i := len(order) - 1; i >= 0; i-- {
		comp := order[i]
		cmd := procs[comp]
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: exit after SIGTERM: %v", comp, err)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("%s: still running 40s after SIGTERM", comp)
			_ = cmd.Process.Kill()
			<-done
		}
	}
}
