package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"maps"
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
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/redis-gateway/redis-gateway/handlers"
)

// configVars is every variable the gateway reads: knownVars, which
// TestKnownVarsAreRead holds to what loadConfig reads.
func configVars(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, k := range knownVars {
		known[k] = true
	}
	return known
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

// runtimeVars are read by the Go runtime or libraries the gateway links, not
// by loadConfig; a template may set them.
var runtimeVars = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GODEBUG": true,
	"OTEL_SERVICE_NAME": true, "OTEL_RESOURCE_ATTRIBUTES": true, "OTEL_TRACES_SAMPLER": true, "OTEL_TRACES_SAMPLER_ARG": true}

// secretVars must never be set in plain text in a template.
var secretVars = map[string]bool{"GATEWAY_TOKENS": true, "REDIS_PASSWORD": true, "METRICS_TOKEN": true}

// placeholder is what every secret in the templates holds until replaced:
// the gateway refuses a tokens file holding it.
const placeholder = "CHANGE-ME"

// aSecret stands in for a real secret where a test needs settings that load.
const aSecret = "9c1f5e7a3b2d4c6e8f0a1b3c5d7e9f1a"

// loadTemplate loads the settings a template gives, with the files it
// mounts read from dir: *_FILE paths are moved under it.
func loadTemplate(env map[string]string, files map[string]string, dir string) (config, error) {
	moved := map[string]string{}
	for k, v := range env {
		if _, ok := files[v]; ok {
			v = filepath.Join(dir, filepath.FromSlash(v))
		}
		moved[k] = v
	}
	for path, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return config{}, err
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return config{}, err
		}
	}
	return loadConfig(func(k string) string { return moved[k] }, false)
}

// checkTemplateSettings holds the variables a template sets to the code: each
// is read, none is a secret in plain text, each file it names is provided,
// the placeholders stop start-up and real secrets in their place load.
func checkTemplateSettings(t *testing.T, name string, env map[string]string, files map[string]string) config {
	t.Helper()
	known := configVars(t)
	for k := range env {
		if !known[k] && !runtimeVars[k] {
			t.Errorf("%s sets %s, which the gateway does not read", name, k)
		}
		if secretVars[k] {
			t.Errorf("%s sets the secret %s in plain text; mount it as a file (%s_FILE)", name, k, k)
		}
	}
	for _, k := range []string{"GATEWAY_TOKENS_FILE", "REDIS_PASSWORD_FILE"} {
		if env[k] == "" {
			t.Errorf("%s does not set %s", name, k)
		} else if _, ok := files[env[k]]; !ok {
			t.Errorf("%s: %s=%s, but nothing provides that file", name, k, env[k])
		}
	}
	if env["REDIS_POOL_SIZE"] == "" {
		t.Errorf("%s leaves REDIS_POOL_SIZE to the default, which follows the node's CPU count", name)
	}
	if env["GATEWAY_TOKENS_FILE"] != "" {
		if _, err := loadTemplate(env, files, t.TempDir()); err == nil || !strings.Contains(err.Error(), "GATEWAY_TOKENS_FILE") {
			t.Errorf("%s with its placeholders: loadConfig err = %v, want the tokens file refused", name, err)
		}
	}
	real := map[string]string{}
	for path, content := range files {
		if !strings.Contains(content, placeholder) {
			t.Errorf("%s: file %s holds no %s placeholder: a real secret in a template?", name, path, placeholder)
		}
		real[path] = strings.ReplaceAll(content, placeholder, aSecret)
	}
	cfg, err := loadTemplate(env, real, t.TempDir())
	if err != nil {
		t.Fatalf("%s with real secrets in place of its placeholders does not load: %v", name, err)
	}
	if cfg.Readiness != "redis" && cfg.Readiness != "process" {
		t.Errorf("%s: READINESS %q", name, cfg.Readiness)
	}
	return cfg
}

// listenPort is the port cfg listens on.
func listenPort(cfg config) int {
	_, p, _ := strings.Cut(cfg.Addr, ":")
	n, _ := strconv.Atoi(p)
	return n
}

// decodeStrict decodes JSON, refusing members the type does not have.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// ecsContainer is the part of an ECS container definition the templates use;
// decoding refuses any other member.
type ecsContainer struct {
	Name                   string                 `json:"name"`
	Image                  string                 `json:"image"`
	Essential              bool                   `json:"essential"`
	ReadonlyRootFilesystem bool                   `json:"readonlyRootFilesystem"`
	User                   string                 `json:"user"`
	CPU                    int                    `json:"cpu"`
	Memory                 int                    `json:"memory"`
	EntryPoint             []string               `json:"entryPoint"`
	Command                []string               `json:"command"`
	DependsOn              []ecsDependency        `json:"dependsOn"`
	PortMappings           []ecsPortMapping       `json:"portMappings"`
	Environment            []ecsNameValue         `json:"environment"`
	Secrets                []ecsSecret            `json:"secrets"`
	MountPoints            []ecsMountPoint        `json:"mountPoints"`
	HealthCheck            *ecsHealthCheck        `json:"healthCheck"`
	StopTimeout            int                    `json:"stopTimeout"`
	Ulimits                []map[string]any       `json:"ulimits"`
	DockerLabels           map[string]string      `json:"dockerLabels"`
	LogConfiguration       map[string]interface{} `json:"logConfiguration"`
}

type (
	ecsDependency  struct{ ContainerName, Condition string }
	ecsPortMapping struct {
		Name          string `json:"name"`
		ContainerPort int    `json:"containerPort"`
		Protocol      string `json:"protocol"`
		AppProtocol   string `json:"appProtocol"`
	}
	ecsNameValue  struct{ Name, Value string }
	ecsSecret     struct{ Name, ValueFrom string }
	ecsMountPoint struct {
		SourceVolume  string `json:"sourceVolume"`
		ContainerPath string `json:"containerPath"`
		ReadOnly      bool   `json:"readOnly"`
	}
	ecsHealthCheck struct {
		Command                                 []string
		Interval, Timeout, Retries, StartPeriod int
	}
)

type ecsTaskDefinition struct {
	Family                  string                                                  `json:"family"`
	NetworkMode             string                                                  `json:"networkMode"`
	RequiresCompatibilities []string                                                `json:"requiresCompatibilities"`
	CPU                     string                                                  `json:"cpu"`
	Memory                  string                                                  `json:"memory"`
	RuntimePlatform         struct{ OperatingSystemFamily, CPUArchitecture string } `json:"runtimePlatform"`
	ExecutionRoleArn        string                                                  `json:"executionRoleArn"`
	TaskRoleArn             string                                                  `json:"taskRoleArn"`
	Volumes                 []struct{ Name string }                                 `json:"volumes"`
	ContainerDefinitions    []ecsContainer                                          `json:"containerDefinitions"`
}

// readECSTaskDefinition decodes deploy/ecs/task-definition.json, refusing
// fields ecsTaskDefinition does not know.
func readECSTaskDefinition(t *testing.T) ecsTaskDefinition {
	t.Helper()
	b, err := os.ReadFile("deploy/ecs/task-definition.json")
	if err != nil {
		t.Fatal(err)
	}
	var td ecsTaskDefinition
	if err := decodeStrict(b, &td); err != nil {
		t.Fatalf("task-definition.json: %v", err)
	}
	return td
}

func TestECSTaskDefinition(t *testing.T) {
	td := readECSTaskDefinition(t)
	containers := map[string]ecsContainer{}
	for _, c := range td.ContainerDefinitions {
		containers[c.Name] = c
	}
	c, ok := containers["redis-gateway"]
	if !ok {
		t.Fatalf("no container named redis-gateway")
	}
	if a := td.RuntimePlatform.CPUArchitecture; a != "X86_64" && a != "ARM64" {
		t.Errorf("cpuArchitecture %q, want X86_64 or ARM64 (the image carries both)", a)
	}
	checkARN := func(s ecsSecret) {
		if !strings.HasPrefix(s.ValueFrom, "arn:aws:secretsmanager:") && !strings.HasPrefix(s.ValueFrom, "arn:aws:ssm:") {
			t.Errorf("secret %s comes from %q, want Secrets Manager or SSM", s.Name, s.ValueFrom)
		}
	}

	env := map[string]string{}
	for _, e := range c.Environment {
		env[e.Name] = e.Value
	}
	for _, s := range c.Secrets {
		checkARN(s)
		env[s.Name] = aSecret
		if s.Name == "GATEWAY_TOKENS" {
			t.Errorf("the gateway gets GATEWAY_TOKENS (full access); give services scoped tokens through GATEWAY_TOKENS_FILE")
		}
	}

	// Each file the gateway reads is written, from a secret, by a container
	// it waits for, onto a volume it mounts read-only.
	files := map[string]string{}
	for _, k := range []string{"GATEWAY_TOKENS_FILE", "REDIS_PASSWORD_FILE"} {
		path := env[k]
		var mount *ecsMountPoint
		for i, m := range c.MountPoints {
			if strings.HasPrefix(path, m.ContainerPath+"/") {
				mount = &c.MountPoints[i]
			}
		}
		if mount == nil || !mount.ReadOnly {
			t.Errorf("%s=%s is not on a read-only mount of the gateway (%+v)", k, path, c.MountPoints)
			continue
		}
		written := false
		for _, dep := range c.DependsOn {
			w, ok := containers[dep.ContainerName]
			if !ok || dep.Condition != "SUCCESS" || w.Essential {
				continue
			}
			for _, m := range w.MountPoints {
				if m.SourceVolume != mount.SourceVolume || m.ReadOnly {
					continue
				}
				there := m.ContainerPath + strings.TrimPrefix(path, mount.ContainerPath)
				uid, _, _ := strings.Cut(c.User, ":")
				script := strings.Join(w.Command, " ")
				if !regexp.MustCompile(`chown ` + uid + `[: ][^&;]*` + regexp.QuoteMeta(there)).MatchString(script) {
					t.Errorf("%s: %s does not give %s to the gateway's user %s", k, w.Name, there, uid)
				}
				if strings.Contains(script, "> "+there) && len(w.Secrets) > 0 {
					written = true
					for _, s := range w.Secrets {
						checkARN(s)
					}
				}
			}
		}
		if !written {
			t.Errorf("%s=%s: no container the gateway waits for (dependsOn SUCCESS, not essential) writes it onto volume %s", k, path, mount.SourceVolume)
		}
		// Secrets Manager holds the real value; the check below needs the
		// placeholder's shape.
		files[path] = placeholder
		if k == "GATEWAY_TOKENS_FILE" {
			files[path] = exampleTokensFile(t)
		}
	}
	cfg := checkTemplateSettings(t, "the ECS task definition", env, files)

	if len(c.PortMappings) != 1 || c.PortMappings[0].ContainerPort != listenPort(cfg) {
		t.Errorf("port mappings %+v, want the one port the gateway listens on, %d", c.PortMappings, listenPort(cfg))
	}
	if c.HealthCheck == nil {
		t.Errorf("no container health check")
	} else {
		checkHealthCommand(t, c.HealthCheck.Command)
	}
	if budget := cfg.ShutdownDelay + cfg.ShutdownTimeout; time.Duration(c.StopTimeout)*time.Second <= budget || c.StopTimeout > 120 {
		t.Errorf("stopTimeout %ds, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (%v) and at most ECS's 120", c.StopTimeout, budget)
	}
	if limit, err := parseGoMemLimit(env["GOMEMLIMIT"]); err != nil || limit <= 0 || limit > int64(c.Memory)<<20 {
		t.Errorf("GOMEMLIMIT %q (%v), want at most the container's memory, %d MiB", env["GOMEMLIMIT"], err, c.Memory)
	}
	if !c.Essential || !c.ReadonlyRootFilesystem || c.LogConfiguration["logDriver"] != "awslogs" {
		t.Errorf("essential %v, readonlyRootFilesystem %v, log driver %v; want true, true, awslogs", c.Essential, c.ReadonlyRootFilesystem, c.LogConfiguration["logDriver"])
	}
	if c.DockerLabels["PROMETHEUS_EXPORTER_PORT"] != strconv.Itoa(listenPort(cfg)) || !getRoutes(t)[c.DockerLabels["PROMETHEUS_EXPORTER_PATH"]] {
		t.Errorf("docker labels %v: want the CloudWatch agent pointed at port %d and a GET route", c.DockerLabels, listenPort(cfg))
	}
}

// exampleTokensFile is the tokens file of the Kubernetes template, which the
// ECS secret is expected to hold too.
func exampleTokensFile(t *testing.T) string {
	t.Helper()
	var s corev1.Secret
	mustDecodeYAML(t, "deploy/k8s/base/secret.yaml", &s)
	return s.StringData["tokens.json"]
}

// parseGoMemLimit reads GOMEMLIMIT as the Go runtime does: bytes, or a number
// with B, KiB, MiB, GiB or TiB.
func parseGoMemLimit(v string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			x, err := strconv.ParseInt(n, 10, 64)
			return x << u.shift, err
		}
	}
	return strconv.ParseInt(v, 10, 64)
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

// kustomization is the part of kustomize's file the templates use; decoding
// refuses any other member. (kustomize's own types would add its whole
// module for four fields.)
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
	} `json:"labels,omitempty"`
	Resources []string `json:"resources"`
	Patches   []struct {
		Path string `json:"path"`
	} `json:"patches,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images,omitempty"`
}

// Custom resources of the overlay, decoded strictly in the shape their CRDs
// define, as far as the templates use them.
type (
	externalSecret struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			RefreshInterval string `json:"refreshInterval"`
			SecretStoreRef  struct {
				Kind string `json:"kind"`
				Name string `json:"name"`
			} `json:"secretStoreRef"`
			Target struct {
				Name           string `json:"name"`
				CreationPolicy string `json:"creationPolicy"`
			} `json:"target"`
			Data []struct {
				SecretKey string `json:"secretKey"`
				RemoteRef struct {
					Key string `json:"key"`
				} `json:"remoteRef"`
			} `json:"data"`
		} `json:"spec"`
	}
	secretStore struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Provider struct {
				AWS struct {
					Service string `json:"service"`
					Region  string `json:"region"`
					Auth    struct {
						JWT struct {
							ServiceAccountRef struct {
								Name string `json:"name"`
							} `json:"serviceAccountRef"`
						} `json:"jwt"`
					} `json:"auth"`
				} `json:"aws"`
			} `json:"provider"`
		} `json:"spec"`
	}
	serviceMonitor struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        metav1.ObjectMeta `json:"metadata"`
		Spec            struct {
			Selector  metav1.LabelSelector `json:"selector"`
			Endpoints []struct {
				Port     string `json:"port"`
				Path     string `json:"path"`
				Interval string `json:"interval"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
)

// k8sTypes is the API version and Go type of every kind the manifests hold.
var k8sTypes = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Deployment":              {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"Service":                 {"v1", func() any { return &corev1.Service{} }},
	"ConfigMap":               {"v1", func() any { return &corev1.ConfigMap{} }},
	"Secret":                  {"v1", func() any { return &corev1.Secret{} }},
	"ServiceAccount":          {"v1", func() any { return &corev1.ServiceAccount{} }},
	"PodDisruptionBudget":     {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"HorizontalPodAutoscaler": {"autoscaling/v2", func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }},
	"NetworkPolicy":           {"networking.k8s.io/v1", func() any { return &networkingv1.NetworkPolicy{} }},
	"ExternalSecret":          {"external-secrets.io/v1", func() any { return &externalSecret{} }},
	"SecretStore":             {"external-secrets.io/v1", func() any { return &secretStore{} }},
	"ServiceMonitor":          {"monitoring.coreos.com/v1", func() any { return &serviceMonitor{} }},
}

func mustDecodeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sigsyaml.UnmarshalStrict(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// decodeManifest decodes a manifest strictly into the type of its kind. A
// patch may carry kustomize's $patch directive, which is not part of the
// object.
func decodeManifest(t *testing.T, path string) (kind string, obj any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var tm metav1.TypeMeta
	if err := sigsyaml.Unmarshal(b, &tm); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	typ, ok := k8sTypes[tm.Kind]
	if !ok {
		t.Fatalf("%s: kind %q is not one the test knows", path, tm.Kind)
	}
	if tm.APIVersion != typ.apiVersion {
		t.Errorf("%s: apiVersion %q, want %q for %s", path, tm.APIVersion, typ.apiVersion, tm.Kind)
	}
	b = regexp.MustCompile(`(?m)^\$patch: delete\n`).ReplaceAll(b, nil)
	obj = typ.new()
	if err := sigsyaml.UnmarshalStrict(b, obj); err != nil {
		t.Errorf("%s: %v", path, err)
	}
	return tm.Kind, obj
}

// readKustomization decodes dir's kustomization.yaml and checks that every
// file it names exists and every manifest of dir is named.
func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	var k kustomization
	mustDecodeYAML(t, filepath.Join(dir, "kustomization.yaml"), &k)
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("%s/kustomization.yaml: %s %s, want kustomize.config.k8s.io/v1beta1 Kustomization", dir, k.APIVersion, k.Kind)
	}
	named := map[string]bool{"kustomization.yaml": true}
	for _, r := range k.Resources {
		named[r] = true
		if _, err := os.Stat(filepath.Join(dir, r)); err != nil {
			t.Errorf("%s/kustomization.yaml names %s: %v", dir, r, err)
		}
	}
	for _, p := range k.Patches {
		named[p.Path] = true
		if _, err := os.Stat(filepath.Join(dir, p.Path)); err != nil {
			t.Errorf("%s/kustomization.yaml patches with %s: %v", dir, p.Path, err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		if !named[filepath.Base(f)] && !commentedPatch(t, dir, filepath.Base(f)) {
			t.Errorf("%s is in %s but its kustomization.yaml does not name it", filepath.Base(f), dir)
		}
	}
	return k
}

// commentedPatch reports whether kustomization.yaml offers file as a patch
// to uncomment (an option such as arm64 nodes).
func commentedPatch(t *testing.T, dir, file string) bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), "# - path: "+file+"\n")
}

func TestKubernetesManifests(t *testing.T) {
	const base = "deploy/k8s/base"
	k := readKustomization(t, base)
	objs := map[string]any{} // by kind
	for _, r := range k.Resources {
		kind, obj := decodeManifest(t, filepath.Join(base, r))
		if _, dup := objs[kind]; dup {
			t.Fatalf("%s: a second %s", r, kind)
		}
		objs[kind] = obj
	}
	for _, kind := range []string{"Deployment", "Service", "ConfigMap", "Secret", "PodDisruptionBudget", "HorizontalPodAutoscaler", "NetworkPolicy"} {
		if _, ok := objs[kind]; !ok {
			t.Fatalf("no %s in %s", kind, base)
		}
	}
	dep := objs["Deployment"].(*appsv1.Deployment)
	cm := objs["ConfigMap"].(*corev1.ConfigMap)
	sec := objs["Secret"].(*corev1.Secret)
	svc := objs["Service"].(*corev1.Service)
	pdb := objs["PodDisruptionBudget"].(*policyv1.PodDisruptionBudget)
	hpa := objs["HorizontalPodAutoscaler"].(*autoscalingv2.HorizontalPodAutoscaler)
	netpol := objs["NetworkPolicy"].(*networkingv1.NetworkPolicy)

	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if len(k.Images) != 1 || k.Images[0].Name != c.Image {
		t.Errorf("kustomization images %+v, want one replacing the container's image %q", k.Images, c.Image)
	}

	// Every variable the pod gets, from env and from the objects envFrom names.
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			if ef.ConfigMapRef.Name != cm.Name {
				t.Errorf("envFrom names ConfigMap %q, the manifest is %q", ef.ConfigMapRef.Name, cm.Name)
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		default:
			t.Errorf("envFrom %+v: secrets reach the pod as mounted files, settings through the ConfigMap", ef)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.Name == "GOMEMLIMIT":
			if rf := e.ValueFrom.ResourceFieldRef; rf == nil || rf.Resource != "limits.memory" || !rf.Divisor.IsZero() {
				t.Errorf("GOMEMLIMIT from %+v, want the container's limits.memory in bytes", e.ValueFrom)
			}
			lim := c.Resources.Limits.Memory()
			if lim.IsZero() {
				t.Errorf("GOMEMLIMIT from limits.memory, but the container has no memory limit")
			}
			env[e.Name] = strconv.FormatInt(lim.Value(), 10)
		default:
			t.Errorf("env %s from %+v: secrets reach the pod as mounted files", e.Name, e.ValueFrom)
		}
	}
	if env["GOMEMLIMIT"] == "" {
		t.Errorf("GOMEMLIMIT is not set from the container's memory limit")
	}

	// Files the pod mounts from the Secret.
	files := map[string]string{}
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != m.Name {
				continue
			}
			if v.Secret == nil || v.Secret.SecretName != sec.Name || !m.ReadOnly {
				t.Errorf("volume %s: want the Secret %s, mounted read-only", v.Name, sec.Name)
				continue
			}
			// Secret files belong to root, and to fsGroup when set: the
			// gateway's user must be able to read them, others not.
			mode := int32(0o644)
			if v.Secret.DefaultMode != nil {
				mode = *v.Secret.DefaultMode
			}
			psc := pod.SecurityContext
			if psc == nil {
				psc = &corev1.PodSecurityContext{}
			}
			groupReads := psc.FSGroup != nil && psc.RunAsGroup != nil && *psc.FSGroup == *psc.RunAsGroup && mode&0o040 != 0
			if !groupReads || mode&0o004 != 0 {
				t.Errorf("secret volume %s: mode %#o, fsGroup %v: want it readable by the gateway's group (fsGroup = runAsGroup, mode 0440), not by others",
					v.Name, mode, psc.FSGroup)
			}
			for key, value := range sec.StringData {
				files[m.MountPath+"/"+key] = value
			}
		}
	}
	cfg := checkTemplateSettings(t, "the Kubernetes base", env, files)

	listen := listenPort(cfg)
	if len(c.Ports) != 1 || int(c.Ports[0].ContainerPort) != listen {
		t.Fatalf("container ports %+v, want the one port the gateway listens on, %d", c.Ports, listen)
	}
	portName := c.Ports[0].Name
	samePort := func(p intstr.IntOrString) bool {
		return (p.Type == intstr.String && p.StrVal == portName) || (p.Type == intstr.Int && int(p.IntVal) == listen)
	}

	routes := getRoutes(t)
	for name, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("no HTTP %s probe", name)
			continue
		}
		if !routes[p.HTTPGet.Path] {
			t.Errorf("%s probe path %s is not a GET route", name, p.HTTPGet.Path)
		}
		if !samePort(p.HTTPGet.Port) {
			t.Errorf("%s probe port %v, want %s or %d", name, p.HTTPGet.Port.String(), portName, listen)
		}
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path == "/readyz" {
		t.Errorf("liveness on /readyz: a Redis outage would restart every pod")
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe on %s, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	for _, sp := range svc.Spec.Ports {
		if !samePort(sp.TargetPort) {
			t.Errorf("the Service targets port %v, want %s or %d", sp.TargetPort.String(), portName, listen)
		}
	}
	for _, rule := range netpol.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil || !samePort(*p.Port) {
				t.Errorf("the NetworkPolicy admits port %v, want %s or %d", p.Port, portName, listen)
			}
		}
		if len(rule.From) == 0 {
			t.Errorf("a NetworkPolicy ingress rule admits everyone")
		}
	}

	// Rollouts: preStop sleep, then SIGTERM, SHUTDOWN_DELAY and SHUTDOWN_TIMEOUT,
	// all within the grace period.
	var preStop time.Duration
	switch {
	case c.Lifecycle == nil || c.Lifecycle.PreStop == nil:
		t.Errorf("no preStop hook: the pod would stop serving before kube-proxy and the load balancer stop sending")
	case c.Lifecycle.PreStop.Sleep == nil:
		t.Errorf("preStop %+v, want the native sleep action (the image has no shell)", c.Lifecycle.PreStop)
	default:
		preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	grace := time.Duration(0)
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if budget := preStop + cfg.ShutdownDelay + cfg.ShutdownTimeout; grace <= budget {
		t.Errorf("terminationGracePeriodSeconds %v, want more than the preStop sleep + SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (%v)", grace, budget)
	}

	psc, sc := pod.SecurityContext, c.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc == nil || sc.ReadOnlyRootFilesystem == nil ||
		!*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("want runAsNonRoot, readOnlyRootFilesystem and no privilege escalation")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("no CPU or memory request")
	}
	if arch := pod.NodeSelector["kubernetes.io/arch"]; arch != "" && arch != "amd64" && arch != "arm64" {
		t.Errorf("nodeSelector kubernetes.io/arch %q, want amd64 or arm64 (the image carries both)", arch)
	}

	// The Service, PodDisruptionBudget, NetworkPolicy and autoscaler find the
	// Deployment's pods.
	podLabels := labels.Set(dep.Spec.Template.Labels)
	for kind, sel := range map[string]map[string]string{
		"Deployment":          dep.Spec.Selector.MatchLabels,
		"Service":             svc.Spec.Selector,
		"PodDisruptionBudget": pdb.Spec.Selector.MatchLabels,
		"NetworkPolicy":       netpol.Spec.PodSelector.MatchLabels,
	} {
		if len(sel) == 0 || !labels.SelectorFromSet(sel).Matches(podLabels) {
			t.Errorf("the %s's selector %v does not match the pods' labels %v", kind, sel, podLabels)
		}
	}
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != dep.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
		t.Errorf("the autoscaler targets %+v, want Deployment %s from at least 2 replicas", hpa.Spec.ScaleTargetRef, dep.Name)
	}
	if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
		t.Errorf("the PodDisruptionBudget sets neither minAvailable nor maxUnavailable")
	}
	if p := pdb.Spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
		t.Errorf("the PodDisruptionBudget's unhealthyPodEvictionPolicy is %v, want AlwaysAllow: unready pods must not block node drains", p)
	}

	t.Run("overlay", func(t *testing.T) {
		checkOverlay(t, "deploy/k8s/overlays/production", k, sec, svc, routes)
	})
}

// checkOverlay holds the production overlay to the base: it builds on it,
// every manifest and patch decodes strictly, the External Secret provides
// every key of the Secret it replaces, and the ServiceMonitor finds the
// Service's metrics.
func checkOverlay(t *testing.T, dir string, base kustomization, sec *corev1.Secret, svc *corev1.Service, routes map[string]bool) {
	k := readKustomization(t, dir)
	if !slices.Contains(k.Resources, "../../base") {
		t.Errorf("%s does not build on ../../base: %v", dir, k.Resources)
	}
	var paths []string
	for _, r := range k.Resources {
		if strings.HasSuffix(r, ".yaml") {
			paths = append(paths, r)
		}
	}
	for _, p := range k.Patches {
		paths = append(paths, p.Path)
	}
	if commentedPatch(t, dir, "arm64.yaml") {
		paths = append(paths, "arm64.yaml")
	}
	svcLabels := labels.Set{}
	for _, l := range base.Labels {
		maps.Copy(svcLabels, l.Pairs)
	}
	maps.Copy(svcLabels, svc.Labels)
	var sawES, sawSM bool
	for _, p := range paths {
		_, obj := decodeManifest(t, filepath.Join(dir, p))
		switch o := obj.(type) {
		case *externalSecret:
			sawES = true
			if o.Spec.Target.Name != sec.Name {
				t.Errorf("the ExternalSecret writes Secret %q, the Deployment mounts %q", o.Spec.Target.Name, sec.Name)
			}
			got := map[string]bool{}
			for _, d := range o.Spec.Data {
				got[d.SecretKey] = true
			}
			for key := range sec.StringData {
				if !got[key] {
					t.Errorf("the ExternalSecret does not provide %s, which the Deployment reads", key)
				}
			}
		case *serviceMonitor:
			sawSM = true
			if !labels.SelectorFromSet(o.Spec.Selector.MatchLabels).Matches(svcLabels) || len(o.Spec.Selector.MatchLabels) == 0 {
				t.Errorf("the ServiceMonitor selects %v, the Service has %v", o.Spec.Selector.MatchLabels, svcLabels)
			}
			for _, e := range o.Spec.Endpoints {
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == e.Port }) || !routes[e.Path] {
					t.Errorf("the ServiceMonitor scrapes port %q path %q, want a port of the Service and a GET route", e.Port, e.Path)
				}
			}
		case *corev1.ConfigMap:
			known := configVars(t)
			for key := range o.Data {
				if !known[key] {
					t.Errorf("%s sets %s, which the gateway does not read", p, key)
				}
			}
		}
	}
	if !sawES || !sawSM {
		t.Errorf("%s: ExternalSecret %v, ServiceMonitor %v; want both", dir, sawES, sawSM)
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

// docker-compose.yml publishes on loopback unless told otherwise, passes
// .env through, and gives the drain its time.
func TestDockerCompose(t *testing.T) {
	var f struct {
		Services map[string]struct {
			Ports   []string
			EnvFile []struct {
				Path     string
				Required bool
			} `json:"env_file"`
			Environment     map[string]string
			StopGracePeriod string `json:"stop_grace_period"`
			Image           string
			Build           string
			Command         []string
			Volumes         []string
			DependsOn       map[string]struct{ Condition string } `json:"depends_on"`
			Healthcheck     map[string]any
		}
	}
	mustDecodeYAML(t, "docker-compose.yml", &f)
	expand := regexp.MustCompile(`\$\{[A-Z_]+:-([^}]*)\}`)
	for name, s := range f.Services {
		for _, p := range s.Ports {
			if host := expand.ReplaceAllString(p, "$1"); !strings.HasPrefix(host, "127.0.0.1:") {
				t.Errorf("service %s publishes %q, which by default is %q: want 127.0.0.1 unless PUBLISH_ADDR says otherwise", name, p, host)
			}
		}
	}
	g, ok := f.Services["gateway"]
	if !ok {
		t.Fatalf("no gateway service")
	}
	if len(g.EnvFile) != 1 || g.EnvFile[0].Path != ".env" {
		t.Errorf("env_file %+v, want .env passed through", g.EnvFile)
	}
	cfg, err := loadConfig(func(k string) string {
		if k == "GATEWAY_TOKENS" {
			return aSecret
		}
		return g.Environment[k]
	}, false)
	if err != nil {
		t.Fatalf("the compose file's settings do not load: %v", err)
	}
	known := configVars(t)
	for k := range g.Environment {
		if !known[k] {
			t.Errorf("the compose file sets %s, which the gateway does not read", k)
		}
	}
	for _, p := range g.Ports {
		if !strings.HasSuffix(p, ":"+strconv.Itoa(listenPort(cfg))) {
			t.Errorf("the gateway publishes %q, want its port %d inside", p, listenPort(cfg))
		}
	}
	if d, err := time.ParseDuration(g.StopGracePeriod); err != nil || d <= cfg.ShutdownDelay+cfg.ShutdownTimeout {
		t.Errorf("stop_grace_period %q, want more than SHUTDOWN_DELAY + SHUTDOWN_TIMEOUT (%v)", g.StopGracePeriod, cfg.ShutdownDelay+cfg.ShutdownTimeout)
	}
}

// The ALB target group of the ECS service checks readiness on the gateway's
// port, and drains a task for longer than a request may take: ECS waits out
// the deregistration delay before it sends SIGTERM.
func TestECSTargetGroup(t *testing.T) {
	td := readECSTaskDefinition(t)
	env := map[string]string{"GATEWAY_TOKENS": aSecret}
	for _, c := range td.ContainerDefinitions {
		if c.Name != "redis-gateway" {
			continue
		}
		for _, e := range c.Environment {
			if !strings.HasSuffix(e.Name, "_FILE") { // the files are checked by TestECSTaskDefinition
				env[e.Name] = e.Value
			}
		}
	}
	cfg, err := loadConfig(func(k string) string { return env[k] }, false)
	if err != nil {
		t.Fatalf("the task definition's settings do not load: %v", err)
	}

	var tg struct {
		Name, Protocol, ProtocolVersion, VpcId, TargetType string
		Port                                               int
		HealthCheckEnabled                                 bool
		HealthCheckProtocol, HealthCheckPort               string
		HealthCheckPath                                    string
		HealthCheckIntervalSeconds                         int
		HealthCheckTimeoutSeconds                          int
		HealthyThresholdCount, UnhealthyThresholdCount     int
		Matcher                                            struct{ HttpCode string }
	}
	b, err := os.ReadFile("deploy/ecs/target-group.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(b, &tg); err != nil {
		t.Fatalf("target-group.json: %v", err)
	}
	if tg.HealthCheckPath != "/readyz" || !getRoutes(t)[tg.HealthCheckPath] || tg.Matcher.HttpCode != "200" {
		t.Errorf("health check %s expecting %s, want GET /readyz expecting 200", tg.HealthCheckPath, tg.Matcher.HttpCode)
	}
	if tg.Port != listenPort(cfg) || tg.HealthCheckPort != "traffic-port" {
		t.Errorf("port %d, health check port %s; want the gateway's %d and traffic-port", tg.Port, tg.HealthCheckPort, listenPort(cfg))
	}
	if tg.TargetType != "ip" || td.NetworkMode != "awsvpc" {
		t.Errorf("target type %s with network mode %s, want ip with awsvpc", tg.TargetType, td.NetworkMode)
	}
	if tg.HealthCheckTimeoutSeconds >= tg.HealthCheckIntervalSeconds {
		t.Errorf("health check timeout %ds, want below its interval %ds", tg.HealthCheckTimeoutSeconds, tg.HealthCheckIntervalSeconds)
	}

	var attrs struct {
		TargetGroupArn string
		Attributes     []struct{ Key, Value string }
	}
	if b, err = os.ReadFile("deploy/ecs/target-group-attributes.json"); err != nil {
		t.Fatal(err)
	}
	if err := decodeStrict(b, &attrs); err != nil {
		t.Fatalf("target-group-attributes.json: %v", err)
	}
	delay := -1
	for _, a := range attrs.Attributes {
		if a.Key == "deregistration_delay.timeout_seconds" {
			delay, _ = strconv.Atoi(a.Value)
		}
	}
	if d := time.Duration(delay) * time.Second; d <= cfg.RequestTimeout || delay > 3600 {
		t.Errorf("deregistration delay %ds, want more than REQUEST_TIMEOUT (%v), so a draining target finishes its requests", delay, cfg.RequestTimeout)
	}
}
