package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v4"

	"github.com/redis-gateway/redis-gateway/handlers"
)

// configVars is every variable loadConfig reads, recorded by asking it.
func configVars(t *testing.T) map[string]bool {
	t.Helper()
	read := map[string]bool{}
	_, _ = loadConfig(func(k string) string { read[k] = true; return "" }, false)
	if len(read) < 20 {
		t.Fatalf("loadConfig read only %d variables", len(read))
	}
	return read
}

// getRoutes is every GET route of the gateway.
func getRoutes(t *testing.T) map[string]bool {
	t.Helper()
	h := handlers.New(handlers.Config{Logger: nil, Registry: prometheus.NewRegistry(), RequestTimeout: time.Second})
	routes := map[string]bool{}
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method == http.MethodGet {
			routes[route] = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk routes: %v", err)
	}
	return routes
}

// drainBudget is SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT as env sets them.
func drainBudget(t *testing.T, env map[string]string) time.Duration {
	t.Helper()
	cfg, err := loadConfig(func(k string) string { return env[k] }, false)
	if err != nil {
		t.Fatalf("the manifest's settings do not load: %v", err)
	}
	return cfg.ShutdownDelay + cfg.ShutdownTimeout
}

// port is the port the gateway listens on with env.
func port(t *testing.T, env map[string]string) int {
	t.Helper()
	cfg, err := loadConfig(func(k string) string { return env[k] }, false)
	if err != nil {
		t.Fatalf("the manifest's settings do not load: %v", err)
	}
	_, p, _ := strings.Cut(cfg.Addr, ":")
	n, _ := strconv.Atoi(p)
	return n
}

// placeholders stand in for secrets so that loadConfig accepts the settings.
var placeholders = map[string]string{"GATEWAY_TOKENS": "t", "REDIS_PASSWORD": "p"}

func TestECSTaskDefinition(t *testing.T) {
	var td struct {
		ContainerDefinitions []struct {
			Name         string
			Essential    bool
			ReadOnlyRoot bool `json:"readonlyRootFilesystem"`
			PortMappings []struct{ ContainerPort int }
			Environment  []struct{ Name, Value string }
			Secrets      []struct{ Name, ValueFrom string }
			HealthCheck  struct{ Command []string }
			StopTimeout  int
			LogConfig    struct{ LogDriver string } `json:"logConfiguration"`
		}
	}
	b, err := os.ReadFile("deploy/ecs/task-definition.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &td); err != nil {
		t.Fatalf("task-definition.json: %v", err)
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("%d container definitions, want 1", len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	known := configVars(t)
	env := map[string]string{}
	for _, e := range c.Environment {
		env[e.Name] = e.Value
		if !known[e.Name] {
			t.Errorf("environment sets %s, which the gateway does not read", e.Name)
		}
		if placeholders[e.Name] != "" {
			t.Errorf("environment sets the secret %s in plain text; use secrets", e.Name)
		}
	}
	for _, s := range c.Secrets {
		env[s.Name] = placeholders[s.Name]
		if !known[s.Name] {
			t.Errorf("secrets set %s, which the gateway does not read", s.Name)
		}
		if !strings.HasPrefix(s.ValueFrom, "arn:aws:secretsmanager:") && !strings.HasPrefix(s.ValueFrom, "arn:aws:ssm:") {
			t.Errorf("secret %s comes from %q, want Secrets Manager or SSM", s.Name, s.ValueFrom)
		}
	}
	for _, want := range []string{"GATEWAY_TOKENS", "REDIS_PASSWORD"} {
		if !slices.ContainsFunc(c.Secrets, func(s struct{ Name, ValueFrom string }) bool { return s.Name == want }) {
			t.Errorf("%s is not among the secrets", want)
		}
	}
	if env["REDIS_URL"] == "" {
		t.Errorf("REDIS_URL is not in environment")
	}
	if len(c.PortMappings) != 1 || c.PortMappings[0].ContainerPort != port(t, env) {
		t.Errorf("port mappings %+v, want the one port the gateway listens on, %d", c.PortMappings, port(t, env))
	}
	checkHealthCommand(t, c.HealthCheck.Command)
	if budget := drainBudget(t, env); time.Duration(c.StopTimeout)*time.Second <= budget || c.StopTimeout > 120 {
		t.Errorf("stopTimeout %ds, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (%v) and at most ECS's 120", c.StopTimeout, budget)
	}
	if !c.Essential || !c.ReadOnlyRoot || c.LogConfig.LogDriver != "awslogs" {
		t.Errorf("essential %v, readonlyRootFilesystem %v, log driver %q; want true, true, awslogs", c.Essential, c.ReadOnlyRoot, c.LogConfig.LogDriver)
	}
}

// checkHealthCommand holds a container health check to the binary's own
// healthcheck subcommand and its flags.
func checkHealthCommand(t *testing.T, cmd []string) {
	t.Helper()
	entrypoint := dockerfileEntrypoint(t)
	if len(cmd) < 3 || cmd[0] != "CMD" || cmd[1] != entrypoint || cmd[2] != "healthcheck" {
		t.Errorf("health check %q, want [CMD %s healthcheck ...]", cmd, entrypoint)
		return
	}
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Bool("live", false, "")
	fs.String("url", "", "")
	fs.Duration("timeout", 0, "")
	if err := fs.Parse(cmd[3:]); err != nil || fs.NArg() > 0 {
		t.Errorf("health check flags %q: %v", cmd[3:], err)
	}
}

func dockerfileEntrypoint(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT \["([^"]+)"\]`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no ENTRYPOINT in the Dockerfile")
	}
	return string(m[1])
}

// k8sObject is the part of a Kubernetes manifest the test reads.
type k8sObject struct {
	Kind     string
	Metadata struct {
		Name   string
		Labels map[string]string
	}
	Data       map[string]string
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Selector any
		Template struct {
			Metadata struct{ Labels map[string]string }
			Spec     struct {
				TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
				SecurityContext               struct {
					RunAsNonRoot bool `yaml:"runAsNonRoot"`
				} `yaml:"securityContext"`
				Containers []k8sContainer
			}
		}
		Ports []struct {
			Port       int
			TargetPort any `yaml:"targetPort"`
		}
		ScaleTargetRef struct{ Kind, Name string } `yaml:"scaleTargetRef"`
		MinReplicas    int                         `yaml:"minReplicas"`
		MinAvailable   any                         `yaml:"minAvailable"`
	}
}

type k8sContainer struct {
	Image string
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	Env []struct {
		Name  string
		Value string
	}
	EnvFrom []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	LivenessProbe  probe `yaml:"livenessProbe"`
	ReadinessProbe probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string
		Limits   map[string]string
	}
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet *struct {
		Path string
		Port any
	} `yaml:"httpGet"`
}

func TestKubernetesManifests(t *testing.T) {
	files, err := filepath.Glob("deploy/k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	objs := map[string]k8sObject{} // by kind
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var o k8sObject
		if err := yaml.Unmarshal(b, &o); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, dup := objs[o.Kind]; dup {
			t.Fatalf("%s: a second %s", f, o.Kind)
		}
		objs[o.Kind] = o
	}
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler"} {
		if _, ok := objs[kind]; !ok {
			t.Errorf("no %s in deploy/k8s", kind)
		}
	}
	dep := objs["Deployment"]
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(dep.Spec.Template.Spec.Containers))
	}
	c := dep.Spec.Template.Spec.Containers[0]
	known := configVars(t)

	// Every variable the pod gets, from env and from the objects envFrom names.
	env := map[string]string{}
	set := func(name, value, from string) {
		if !known[name] {
			t.Errorf("%s sets %s, which the gateway does not read", from, name)
		}
		env[name] = value
	}
	for _, e := range c.Env {
		set(e.Name, e.Value, "the Deployment's env")
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := objs["ConfigMap"]
			if cm.Metadata.Name != ef.ConfigMapRef.Name {
				t.Errorf("envFrom names ConfigMap %q, the manifest is %q", ef.ConfigMapRef.Name, cm.Metadata.Name)
			}
			for k, v := range cm.Data {
				set(k, v, "the ConfigMap")
			}
		case ef.SecretRef != nil:
			sec := objs["Secret"]
			if sec.Metadata.Name != ef.SecretRef.Name {
				t.Errorf("envFrom names Secret %q, the manifest is %q", ef.SecretRef.Name, sec.Metadata.Name)
			}
			for k := range sec.StringData {
				set(k, placeholders[k], "the Secret")
			}
		}
	}
	if _, ok := objs["Secret"].StringData["GATEWAY_TOKENS"]; !ok {
		t.Errorf("GATEWAY_TOKENS is not in the Secret")
	}
	if _, ok := objs["ConfigMap"].Data["REDIS_URL"]; !ok {
		t.Errorf("REDIS_URL is not in the ConfigMap")
	}
	for k := range objs["ConfigMap"].Data {
		if placeholders[k] != "" {
			t.Errorf("the ConfigMap holds the secret %s; put it in the Secret", k)
		}
	}

	listen := port(t, env)
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != listen {
		t.Fatalf("container ports %+v, want the one port the gateway listens on, %d", c.Ports, listen)
	}
	portName := c.Ports[0].Name
	samePort := func(p any) bool { return p == portName || p == listen }

	routes := getRoutes(t)
	for name, p := range map[string]probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if !routes[p.HTTPGet.Path] {
			t.Errorf("%s probe path %s is not a GET route", name, p.HTTPGet.Path)
		}
		if !samePort(p.HTTPGet.Port) {
			t.Errorf("%s probe port %v, want %s or %d", name, p.HTTPGet.Port, portName, listen)
		}
	}
	if c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/readyz" {
		t.Errorf("liveness on /readyz: a Redis outage would restart every pod")
	}
	if c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe on %s, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	for _, tp := range objs["Service"].Spec.Ports {
		if !samePort(tp.TargetPort) {
			t.Errorf("the Service targets port %v, want %s or %d", tp.TargetPort, portName, listen)
		}
	}

	if budget := drainBudget(t, env); time.Duration(dep.Spec.Template.Spec.TerminationGracePeriodSeconds)*time.Second <= budget {
		t.Errorf("terminationGracePeriodSeconds %d, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (%v)",
			dep.Spec.Template.Spec.TerminationGracePeriodSeconds, budget)
	}
	if !dep.Spec.Template.Spec.SecurityContext.RunAsNonRoot || !c.SecurityContext.ReadOnlyRootFilesystem || c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("want runAsNonRoot, readOnlyRootFilesystem and no privilege escalation")
	}
	for _, r := range []string{"cpu", "memory"} {
		if c.Resources.Requests[r] == "" {
			t.Errorf("no %s request", r)
		}
	}
	if c.Resources.Limits["memory"] == "" {
		t.Errorf("no memory limit")
	}

	// The Service, PodDisruptionBudget and autoscaler find the Deployment.
	podLabels := dep.Spec.Template.Metadata.Labels
	matches := func(sel any) bool {
		m, _ := sel.(map[string]any)
		if ml, ok := m["matchLabels"].(map[string]any); ok {
			m = ml
		}
		if len(m) == 0 {
			return false
		}
		for k, v := range m {
			if podLabels[k] != v {
				return false
			}
		}
		return true
	}
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget"} {
		if !matches(objs[kind].Spec.Selector) {
			t.Errorf("the %s's selector %v does not match the pods' labels %v", kind, objs[kind].Spec.Selector, podLabels)
		}
	}
	hpa := objs["HorizontalPodAutoscaler"]
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Metadata.Name || hpa.Spec.MinReplicas < 2 {
		t.Errorf("the autoscaler targets %+v from %d replicas, want Deployment %s from at least 2", hpa.Spec.ScaleTargetRef, hpa.Spec.MinReplicas, dep.Metadata.Name)
	}
	if objs["PodDisruptionBudget"].Spec.MinAvailable == nil {
		t.Errorf("the PodDisruptionBudget sets no minAvailable")
	}
}

// .env.example lists every variable the gateway reads, and no other; the
// configuration table of docs/configuration.md documents each.
func TestEveryVariableDocumented(t *testing.T) {
	known := configVars(t)
	f, err := os.Open(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed := map[string]bool{}
	line := regexp.MustCompile(`^#? ?([A-Z][A-Z0-9_]+)=`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "not read by the gateway") {
			break // the docker compose section
		}
		if m := line.FindStringSubmatch(sc.Text()); m != nil {
			listed[m[1]] = true
		}
	}
	readme, err := os.ReadFile("docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for k := range known {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !listed[k] {
			t.Errorf("%s is read by the gateway but not in .env.example", k)
		}
		if !strings.Contains(string(readme), "| `"+k+"`") && !strings.Contains(string(readme), ", `"+k+"` |") {
			t.Errorf("%s is not in the configuration table of docs/configuration.md", k)
		}
	}
	for k := range listed {
		if !known[k] {
			t.Errorf(".env.example lists %s, which the gateway does not read", k)
		}
	}
}
