package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/noonhq/noon/broker"
	"github.com/noonhq/noon/services"
)

// chartDir is the chart, relative to this package.
const chartDir = "helm/noon"

// helmVersionHint is what CI installs (.ci/run).
const helmVersionHint = "go install helm.sh/helm/v3/cmd/helm@v3.21.4"

// helmBin returns the helm binary: on PATH or in $(go env GOPATH)/bin.
// Without one the test skips, unless NOON_REQUIRE_SERVICES=1 (CI).
func helmBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	if out, err := exec.Command(goBin(), "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "helm")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	msg := "helm not found on PATH or in $(go env GOPATH)/bin; install it with: " + helmVersionHint
	if os.Getenv("NOON_REQUIRE_SERVICES") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// goBin returns the go command: on PATH, else where the Go tarball puts it.
func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// helm runs helm with args and returns its stdout, failing the test with
// its stderr on an error.
func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := helmRun(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func helmRun(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmBin(t), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.Bytes(), nil
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return str(o["kind"]) }
func (o object) name() string { return str(at(o, "metadata", "name")) }
func (o object) component() string {
	return str(at(o, "metadata", "labels", "app.kubernetes.io/component"))
}
func (o object) String() string { return o.kind() + "/" + o.name() }

// at walks maps by key.
func at(v any, keys ...string) any {
	for _, k := range keys {
		switch m := v.(type) {
		case object:
			v = m[k]
		case map[string]any:
			v = m[k]
		default:
			return nil
		}
	}
	return v
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// num returns an integer field, or -1 when it is absent or not a number.
func num(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return -1
}

// decodeObjects parses a multi-document YAML stream.
func decodeObjects(t *testing.T, b []byte) []object {
	t.Helper()
	var objs []object
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var o map[string]any
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered manifests: %v", err)
		}
		if o != nil {
			objs = append(objs, object(o))
		}
	}
	return objs
}

// render runs helm template with the values files and returns the objects.
func render(t *testing.T, valuesYAML string) []object {
	t.Helper()
	args := []string{"template", "noon", chartDir, "--namespace", "games"}
	if valuesYAML != "" {
		p := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(p, []byte(valuesYAML), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-f", p)
	}
	return decodeObjects(t, helm(t, args...))
}

// moduleNames are the services of cmd/noon/modules.go (the package names
// in its modules list, each module named as its package), read from the
// source so that a service added there without a pool here fails.
func moduleNames(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../cmd/noon/modules.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || vs.Names[0].Name != "modules" || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			t.Fatal("cmd/noon/modules.go: modules is not a composite literal")
		}
		for _, e := range lit.Elts {
			sel, ok := e.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Module" {
				t.Fatalf("cmd/noon/modules.go: unexpected element %T in modules", e)
			}
			x, ok := sel.X.(*ast.Ident)
			if !ok {
				t.Fatalf("cmd/noon/modules.go: unexpected element %T.Module in modules", sel.X)
			}
			names = append(names, x.Name)
		}
		return false
	})
	if len(names) == 0 {
		t.Fatal("cmd/noon/modules.go: no modules list found")
	}
	return names
}

// want is what a rendering of the chart must hold beyond the invariants.
type want struct {
	brokerReplicas int
	poolReplicas   map[string]int // by service
	noHPA          []string       // components whose HPA is off
	tlsSecret      string
	storesSecret   string
	advertise      string // broker.advertise in the config; "" = the pod IP flag
	drainTimeout   time.Duration
	brokerGrace    time.Duration
}

// TestChart lints the chart and renders it with the default values and
// with overrides, then checks the manifests: every workload's probes,
// preStop drain, grace period, resources and certificate; a PDB per
// workload, an HPA per service pool and for the brokers; yellow as a
// StatefulSet of 3 named in the yellows list; LoadBalancers only for the
// brokers and the BrokerList; and the config file, with each container's
// -set flags, loaded by noon's own config loader.
func TestChart(t *testing.T) {
	helmBin(t)
	modules := moduleNames(t)
	defaults := want{
		brokerReplicas: 2, poolReplicas: map[string]int{},
		tlsSecret: "noon-tls", storesSecret: "noon-stores",
		drainTimeout: 30 * time.Second, brokerGrace: 10 * time.Second,
	}
	for _, m := range modules {
		defaults.poolReplicas[m] = 2
	}
	override := defaults
	override.poolReplicas = maps.Clone(defaults.poolReplicas)
	override.brokerReplicas, override.poolReplicas["echo"], override.poolReplicas["room"] = 5, 6, 4
	override.noHPA = []string{"broker", "game"}
	override.poolReplicas["game"] = 3
	override.tlsSecret, override.storesSecret = "prod-tls", "prod-stores"
	override.advertise = "play.example.com:1055"
	override.drainTimeout, override.brokerGrace = 45*time.Second, 20*time.Second

	cases := []struct {
		name   string
		values string
		want   want
	}{
		{"defaults", "", defaults},
		{"override", `
brokers:
  replicas: 5
  advertise: play.example.com:1055
  hpa: {enabled: false}
services:
  echo: {replicas: 6}
  room: {replicas: 4}
  game: {replicas: 3, hpa: {enabled: false}}
tls: {existingSecret: prod-tls}
storesExistingSecret: prod-stores
drain: {timeoutSeconds: 45, brokerGraceSeconds: 20, terminationGracePeriodSeconds: 90}
config:
  services:
    match:
      tick_interval: 100ms
`, override},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir}
			if tc.values != "" {
				p := filepath.Join(t.TempDir(), "values.yaml")
				if err := os.WriteFile(p, []byte(tc.values), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "-f", p)
			}
			helm(t, args...)
			checkManifests(t, render(t, tc.values), modules, tc.want)
		})
	}

	// A grace period that does not outlast the drain is refused.
	t.Run("short grace", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "values.yaml")
		if err := os.WriteFile(p, []byte("drain: {timeoutSeconds: 30, terminationGracePeriodSeconds: 30}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := helmRun(t, "template", "noon", chartDir, "-f", p)
		if err == nil || !strings.Contains(err.Error(), "must be longer than drain.timeoutSeconds") {
			t.Fatalf("helm template with a 30s grace for a 30s drain: %v, want the chart to refuse it", err)
		}
	})
}

// checkManifests checks the objects of one rendering.
func checkManifests(t *testing.T, objs []object, modules []string, w want) {
	t.Helper()
	byKind := map[string][]object{}
	for _, o := range objs {
		byKind[o.kind()] = append(byKind[o.kind()], o)
	}

	// The config file.
	var cms []object
	for _, cm := range byKind["ConfigMap"] {
		if str(at(cm, "data", "noon.yaml")) != "" {
			cms = append(cms, cm)
		}
	}
	if len(cms) != 1 {
		t.Fatalf("%d ConfigMaps with noon.yaml, want 1", len(cms))
	}
	configYAML := str(at(cms[0], "data", "noon.yaml"))
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(configYAML), &cfg); err != nil {
		t.Fatalf("noon.yaml: %v", err)
	}
	drains := drainTimes(t, cfg, modules)
	if got := drains["broker"]; got != w.brokerGrace {
		t.Errorf("broker.drain_grace %v, want %v", got, w.brokerGrace)
	}
	if got := drains["echo"]; got != w.drainTimeout {
		t.Errorf("services.echo.drain_timeout %v, want %v", got, w.drainTimeout)
	}
	if got := str(at(cfg, "broker", "advertise")); got != w.advertise {
		t.Errorf("broker.advertise %q, want %q", got, w.advertise)
	}
	longestDrain := slices.Max(slices.Collect(maps.Values(drains)))

	// Workloads.
	workloads := append(slices.Clone(byKind["Deployment"]), byKind["StatefulSet"]...)
	byComponent := map[string]object{}
	for _, wl := range workloads {
		c := wl.component()
		if _, dup := byComponent[c]; dup || c == "" {
			t.Errorf("%s: component %q empty or not unique", wl, c)
		}
		byComponent[c] = wl
	}
	wantComponents := append([]string{"broker", "brokerlist", "yellow"}, modules...)
	slices.Sort(wantComponents)
	if got := slices.Sorted(maps.Keys(byComponent)); !slices.Equal(got, wantComponents) {
		t.Errorf("workloads of components %v, want %v (one per service of cmd/noon/modules.go, brokers, the BrokerList, yellow)", got, wantComponents)
	}
	for _, wl := range workloads {
		c := wl.component()
		role, cert := c, "service-"+c
		switch c {
		case "yellow", "broker":
			cert = c
		case "brokerlist":
			cert = "broker-brokerlist"
		default:
			role = "service"
		}
		if wl.kind() != "Deployment" && c != "yellow" {
			t.Errorf("%s: want a Deployment", wl)
		}
		checkPod(t, wl, role, cert, w, longestDrain)
	}

	// Replicas: the Deployment's when its HPA is off, the HPA's minimum
	// otherwise.
	hpas := map[string]object{}
	for _, h := range byKind["HorizontalPodAutoscaler"] {
		if at(h, "apiVersion") != "autoscaling/v2" {
			t.Errorf("%s: apiVersion %v, want autoscaling/v2", h, at(h, "apiVersion"))
		}
		ref := str(at(h, "spec", "scaleTargetRef", "kind")) + "/" + str(at(h, "spec", "scaleTargetRef", "name"))
		var target object
		for _, wl := range workloads {
			if wl.String() == ref {
				target = wl
			}
		}
		if target == nil {
			t.Errorf("%s: scales %s, which is not rendered", h, ref)
			continue
		}
		hpas[target.component()] = h
	}
	replicas := maps.Clone(w.poolReplicas)
	replicas["broker"] = w.brokerReplicas
	for c, n := range replicas {
		wl, ok := byComponent[c]
		if !ok {
			continue
		}
		h, hasHPA := hpas[c]
		wantHPA := !slices.Contains(w.noHPA, c)
		switch {
		case wantHPA && !hasHPA:
			t.Errorf("%s: no HorizontalPodAutoscaler", wl)
		case !wantHPA && hasHPA:
			t.Errorf("%s: an HPA, but its values turn it off", wl)
		case hasHPA:
			if got := num(at(h, "spec", "minReplicas")); got != n {
				t.Errorf("%s: minReplicas %d, want %d", h, got, n)
			}
			if at(wl, "spec", "replicas") != nil {
				t.Errorf("%s: replicas set beside an HPA (each upgrade would reset the HPA's count)", wl)
			}
			checkHPA(t, h, c)
		default:
			if got := num(at(wl, "spec", "replicas")); got != n {
				t.Errorf("%s: replicas %d, want %d", wl, got, n)
			}
		}
	}

	// yellow: a StatefulSet of 3 behind a headless Service, named in the
	// yellows list by the pods' stable DNS names.
	y, ok := byComponent["yellow"]
	if !ok || y.kind() != "StatefulSet" {
		t.Fatalf("yellow: %v, want a StatefulSet", y)
	}
	if n := num(at(y, "spec", "replicas")); n != 3 {
		t.Errorf("%s: replicas %d, want 3", y, n)
	}
	svcName := str(at(y, "spec", "serviceName"))
	var headless object
	for _, s := range byKind["Service"] {
		if s.name() == svcName {
			headless = s
		}
	}
	if headless == nil || str(at(headless, "spec", "clusterIP")) != "None" {
		t.Errorf("%s: serviceName %q is not a headless Service", y, svcName)
	}
	var wantYellows []any
	for i := range 3 {
		wantYellows = append(wantYellows, fmt.Sprintf("tcp://%s-%d.%s.games.svc.cluster.local:1060", y.name(), i, svcName))
	}
	if got := list(cfg["yellows"]); !slices.Equal(got, wantYellows) {
		t.Errorf("yellows %v, want %v", got, wantYellows)
	}

	// PodDisruptionBudgets: one per workload, maxUnavailable 1.
	for _, wl := range workloads {
		sel := at(wl, "spec", "selector", "matchLabels")
		var pdbs []object
		for _, p := range byKind["PodDisruptionBudget"] {
			if fmt.Sprint(at(p, "spec", "selector", "matchLabels")) == fmt.Sprint(sel) {
				pdbs = append(pdbs, p)
			}
		}
		switch {
		case len(pdbs) != 1:
			t.Errorf("%s: %d PodDisruptionBudgets select its pods, want 1", wl, len(pdbs))
		case num(at(pdbs[0], "spec", "maxUnavailable")) != 1:
			t.Errorf("%s: maxUnavailable %v, want 1", pdbs[0], at(pdbs[0], "spec", "maxUnavailable"))
		}
	}

	// Services: LoadBalancer for the brokers' client ports and the
	// BrokerList only.
	lbs := map[string]bool{}
	for _, s := range byKind["Service"] {
		typ := str(at(s, "spec", "type"))
		if typ == "" {
			typ = "ClusterIP"
		}
		switch c := s.component(); {
		case typ == "LoadBalancer" && (c == "broker" || c == "brokerlist"):
			lbs[c] = true
		case typ != "ClusterIP":
			t.Errorf("%s (component %s): type %s, want ClusterIP", s, c, typ)
		}
	}
	if !lbs["broker"] || !lbs["brokerlist"] {
		t.Errorf("LoadBalancers for %v, want the brokers and the BrokerList", slices.Sorted(maps.Keys(lbs)))
	}

	// Secrets: the chart makes its own unless told of existing ones.
	secrets := map[string]bool{}
	for _, s := range byKind["Secret"] {
		secrets[s.name()] = true
	}
	for _, name := range []string{w.tlsSecret, w.storesSecret} {
		own := strings.HasPrefix(name, "noon-")
		if secrets[name] != own {
			t.Errorf("Secret %s rendered: %v, want %v", name, secrets[name], own)
		}
	}

	// The config file and each container's -set flags load in noon's own
	// config loader (unknown keys and bad values are errors there).
	for _, wl := range workloads {
		checkConfig(t, wl, configYAML)
	}
	checkCertNames(t, workloads)
}

// checkCertNames issues with `noon certs` the certificate of each
// workload's role and checks that the files are named as the pod mounts
// them (the names the README's kubectl create secret --from-file keeps).
func checkCertNames(t *testing.T, workloads []object) {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	if out, err := exec.Command(noonBinary(t), "certs", "ca", "-out", ca).CombinedOutput(); err != nil {
		t.Fatalf("noon certs ca: %v: %s", err, out)
	}
	certs := filepath.Join(dir, "certs")
	for _, wl := range workloads {
		args := []string{"certs", "issue", "-ca", ca, "-out", certs}
		switch c := wl.component(); c {
		case "yellow", "broker":
			args = append(args, "-role", c)
		case "brokerlist":
			args = append(args, "-role", "broker", "-name", "brokerlist")
		default:
			args = append(args, "-role", "service", "-name", c)
		}
		if out, err := exec.Command(noonBinary(t), args...).CombinedOutput(); err != nil {
			t.Fatalf("noon %s: %v: %s", strings.Join(args, " "), err, out)
		}
		spec, _ := podContainer(t, wl)
		for _, v := range list(spec["volumes"]) {
			for _, it := range list(at(v, "secret", "items")) {
				if _, err := os.Stat(filepath.Join(certs, str(at(it, "key")))); err != nil {
					t.Errorf("%s: mounts Secret key %s, which noon %s did not write: %v", wl, at(it, "key"), strings.Join(args, " "), err)
				}
			}
		}
	}
}

// drainTimes returns how long each service drains (by name) and the
// broker's drain grace ("broker"), from the config file or the defaults.
func drainTimes(t *testing.T, cfg map[string]any, modules []string) map[string]time.Duration {
	t.Helper()
	parse := func(v any, def time.Duration) time.Duration {
		if v == nil {
			return def
		}
		d, err := time.ParseDuration(fmt.Sprint(v))
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		return d
	}
	out := map[string]time.Duration{
		"broker": parse(at(cfg, "broker", "drain_grace"), broker.NewOptions().DrainGrace),
	}
	for _, m := range modules {
		out[m] = parse(at(cfg, "services", m, "drain_timeout"), services.DefaultDrainTimeout)
	}
	return out
}

// podContainer returns the workload's pod spec and its one container.
func podContainer(t *testing.T, wl object) (map[string]any, map[string]any) {
	t.Helper()
	spec, _ := at(wl, "spec", "template", "spec").(map[string]any)
	cs := list(at(spec, "containers"))
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers, want 1", wl, len(cs))
	}
	c, _ := cs[0].(map[string]any)
	return spec, c
}

// flagValue returns the value after flag in args ("" when absent).
func flagValue(args []any, flag string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == flag {
			return str(args[i+1])
		}
	}
	return ""
}

// checkPod checks a workload's pod: the role argument, probes on the admin
// port, the preStop drain, the grace period, resources and its own
// certificate.
func checkPod(t *testing.T, wl object, role, cert string, w want, longestDrain time.Duration) {
	t.Helper()
	spec, c := podContainer(t, wl)
	if c["command"] != nil {
		t.Errorf("%s: command %v overrides the image's ENTRYPOINT /noon", wl, c["command"])
	}
	args := list(c["args"])
	if len(args) == 0 || args[0] != role {
		t.Errorf("%s: args %v, want the role %q first", wl, args, role)
	}
	if role == "service" && (len(args) < 2 || args[1] != wl.component()) {
		t.Errorf("%s: args %v, want service %s", wl, args, wl.component())
	}

	// The admin endpoint: -admin :PORT (every interface of the pod), the
	// container port named admin.
	adminFlag := flagValue(args, "-admin")
	if !strings.HasPrefix(adminFlag, ":") {
		t.Errorf("%s: -admin %q, want :PORT (every interface: the kubelet probes the pod IP)", wl, adminFlag)
	}
	adminPort, err := strconv.Atoi(strings.TrimPrefix(adminFlag, ":"))
	if err != nil {
		t.Fatalf("%s: -admin %q: %v", wl, adminFlag, err)
	}
	ports := map[string]int{}
	for _, p := range list(c["ports"]) {
		ports[str(at(p, "name"))] = num(at(p, "containerPort"))
	}
	if ports["admin"] != adminPort {
		t.Errorf("%s: container port admin %d, want %d", wl, ports["admin"], adminPort)
	}
	probePort := func(probe string) int {
		p := at(c, probe, "httpGet", "port")
		if name, ok := p.(string); ok {
			return ports[name]
		}
		return num(p)
	}
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
		if got := str(at(c, probe, "httpGet", "path")); got != path {
			t.Errorf("%s: %s path %q, want %s", wl, probe, got, path)
		}
		if got := probePort(probe); got != adminPort {
			t.Errorf("%s: %s port %d, want the admin port %d", wl, probe, got, adminPort)
		}
	}

	// preStop: noon drain on the local admin endpoint.
	wantStop := []any{"/noon", "drain", "-admin", fmt.Sprintf("127.0.0.1:%d", adminPort)}
	if got := list(at(c, "lifecycle", "preStop", "exec", "command")); !slices.Equal(got, wantStop) {
		t.Errorf("%s: preStop %v, want %v", wl, got, wantStop)
	}
	grace := time.Duration(num(spec["terminationGracePeriodSeconds"])) * time.Second
	if grace <= longestDrain || grace <= w.drainTimeout || grace <= w.brokerGrace {
		t.Errorf("%s: terminationGracePeriodSeconds %v, want longer than the drain (%v)", wl, grace, longestDrain)
	}

	// Resources: requests and limits of CPU and memory.
	for _, kind := range []string{"requests", "limits"} {
		for _, r := range []string{"cpu", "memory"} {
			if at(c, "resources", kind, r) == nil {
				t.Errorf("%s: no resources.%s.%s", wl, kind, r)
			}
		}
	}

	// Certificates: the CA and the pod's own certificate and key, from
	// the TLS Secret, named in -set tls.*.
	sets := map[string]string{}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-set" {
			k, v, _ := strings.Cut(str(args[i+1]), "=")
			sets[k] = v
		}
	}
	mount := ""
	for _, m := range list(c["volumeMounts"]) {
		if at(m, "name") == "tls" {
			mount = str(at(m, "mountPath"))
		}
	}
	var items []string
	for _, v := range list(spec["volumes"]) {
		if at(v, "name") == "tls" {
			if got := str(at(v, "secret", "secretName")); got != w.tlsSecret {
				t.Errorf("%s: TLS Secret %q, want %q", wl, got, w.tlsSecret)
			}
			for _, it := range list(at(v, "secret", "items")) {
				items = append(items, str(at(it, "path")))
			}
		}
	}
	for k, file := range map[string]string{"tls.ca": "ca.crt", "tls.cert": cert + ".crt", "tls.key": cert + ".key"} {
		if want := mount + "/" + file; mount == "" || sets[k] != want || !slices.Contains(items, file) {
			t.Errorf("%s: -set %s=%q with Secret items %v mounted at %q, want %s", wl, k, sets[k], items, mount, want)
		}
	}
	if len(items) != 3 {
		t.Errorf("%s: Secret items %v, want the CA and its own certificate and key only", wl, items)
	}

	// The stores' secrets reach the daemons through the environment.
	env := map[string]string{}
	for _, e := range list(c["env"]) {
		env[str(at(e, "name"))] = str(at(e, "valueFrom", "secretKeyRef", "name"))
	}
	for _, name := range []string{"NOON_POSTGRES_URL", "NOON_REDIS_PASSWORD"} {
		if env[name] != w.storesSecret {
			t.Errorf("%s: %s from Secret %q, want %q", wl, name, env[name], w.storesSecret)
		}
	}
	if spec["enableServiceLinks"] != false {
		t.Errorf("%s: enableServiceLinks is not false: Kubernetes would put NOON_<SERVICE>_PORT variables in noon's environment", wl)
	}
}

// checkHPA checks the metrics of a component's autoscaler: the pool's own
// per-pod metric, each one a name the daemons export.
func checkHPA(t *testing.T, h object, component string) {
	t.Helper()
	wantPods := map[string]string{"broker": "noon_broker_connections", "room": "noon_room_active"}[component]
	if wantPods == "" {
		wantPods = "noon_service_load"
	}
	var pods, external []string
	for _, m := range list(at(h, "spec", "metrics")) {
		switch str(at(m, "type")) {
		case "Pods":
			pods = append(pods, str(at(m, "pods", "metric", "name")))
		case "External":
			external = append(external, str(at(m, "external", "metric", "name")))
		}
	}
	if !slices.Contains(pods, wantPods) {
		t.Errorf("%s: Pods metrics %v, want %s", h, pods, wantPods)
	}
	if component == "match" && !slices.Contains(external, "noon_match_ready_sessions") {
		t.Errorf("%s: External metrics %v, want noon_match_ready_sessions (waiting sessions)", h, external)
	}
	exported := sourceMetrics(t)
	for _, name := range append(pods, external...) {
		if !exported[name] {
			t.Errorf("%s: metric %s is not one the daemons export", h, name)
		}
	}
}

var (
	noonOnce sync.Once
	noonPath string
	noonErr  error
)

// noonBinary builds cmd/noon once per test binary.
func noonBinary(t *testing.T) string {
	t.Helper()
	noonOnce.Do(func() {
		dir, err := os.MkdirTemp("", "noon-deploy-test-")
		if err != nil {
			noonErr = err
			return
		}
		noonPath = filepath.Join(dir, "noon")
		out, err := exec.Command(goBin(), "build", "-o", noonPath, "github.com/noonhq/noon/cmd/noon").CombinedOutput()
		if err != nil {
			noonErr = fmt.Errorf("go build ./cmd/noon: %v: %s", err, out)
		}
	})
	if noonErr != nil {
		t.Fatal(noonErr)
	}
	return noonPath
}

// checkConfig loads the config file with the workload's -set flags in noon
// (noon migrate: it loads and validates the config, then stops at the
// missing Postgres URL, which only the pods' environment gives).
func checkConfig(t *testing.T, wl object, configYAML string) {
	t.Helper()
	_, c := podContainer(t, wl)
	file := filepath.Join(t.TempDir(), "noon.yaml")
	if err := os.WriteFile(file, []byte(configYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"migrate", "-config", file}
	cargs := list(c["args"])
	for i := 0; i+1 < len(cargs); i++ {
		if cargs[i] == "-set" {
			args = append(args, "-set", strings.ReplaceAll(str(cargs[i+1]), "$(POD_IP)", "10.1.2.3"))
		}
	}
	cmd := exec.Command(noonBinary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	const want = "no Postgres: set postgres.url"
	if err == nil || !strings.Contains(string(out), want) {
		t.Errorf("%s: noon %s: %v\n%s\nwant the config accepted (and then %q)", wl, strings.Join(args, " "), err, out, want)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if noonPath != "" {
		os.RemoveAll(filepath.Dir(noonPath))
	}
	os.Exit(code)
}
