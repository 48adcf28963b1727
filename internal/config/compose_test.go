package config

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The compose file configures the worker and enqueue through environment
// variables: every name it sets must be one the commands read, or a typo
// silently falls back to a default.
func TestComposeFileUsesKnownVariables(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	usage := WorkerUsage()
	worker, ok := compose.Services["worker"]
	if !ok || len(worker.Environment) == 0 {
		t.Fatal("docker-compose.yml has no worker service with an environment")
	}
	for name := range worker.Environment {
		if !strings.Contains(usage, name) {
			t.Errorf("worker service sets %s, which the worker does not read (see WorkerUsage)", name)
		}
	}
	enqueueVars := []string{"REDIS_URL", "REDIS_CLUSTER_ADDRS", "B24_PORTAL"}
	for name := range compose.Services["enqueue"].Environment {
		if !slices.Contains(enqueueVars, name) {
			t.Errorf("enqueue service sets %s, which enqueue does not read", name)
		}
	}
	// The variables the worker needs to run at all are set.
	for _, name := range []string{"REDIS_URL", "B24_WEBHOOK_URL", "WORKER_LISTEN", "MONITOR_USER", "MONITOR_PASSWORD"} {
		if _, ok := worker.Environment[name]; !ok {
			t.Errorf("worker service does not set %s", name)
		}
	}
}

// composeService is what the checks below read of a service.
type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Restart     string            `yaml:"restart"`
	Profiles    []string          `yaml:"profiles"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]any    `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func readCompose(t *testing.T) map[string]composeService {
	t.Helper()
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return compose.Services
}

// The long-running services restart and have healthchecks that work in the
// distroless image (no shell, no curl: `worker healthcheck`); the simulator
// is in the profile "sim" and no worker waits for it.
func TestComposeFileRunsAsAService(t *testing.T) {
	t.Parallel()
	svc := readCompose(t)
	for _, name := range []string{"redis", "worker", "b24sim"} {
		s, ok := svc[name]
		switch {
		case !ok:
			t.Errorf("no service %s", name)
		case s.Restart != "unless-stopped" && s.Restart != "always":
			t.Errorf("%s: restart %q, want unless-stopped or always", name, s.Restart)
		case s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 || s.Healthcheck.Test[0] != "CMD":
			t.Errorf("%s: healthcheck %+v, want an exec-form CMD test", name, s.Healthcheck)
		}
	}
	if got := svc["worker"].Healthcheck; got == nil || strings.Join(got.Test, " ") != "CMD worker healthcheck" {
		t.Errorf("worker healthcheck %+v, want [CMD worker healthcheck]", got)
	}
	if got := svc["b24sim"].Healthcheck; got == nil || got.Test[1] != "worker" || !slices.Contains(got.Test, "healthcheck") {
		t.Errorf("b24sim healthcheck %+v, want the worker binary's healthcheck", got)
	}
	if !slices.Equal(svc["b24sim"].Profiles, []string{"sim"}) {
		t.Errorf("b24sim profiles %q, want [sim]", svc["b24sim"].Profiles)
	}
	if _, dep := svc["worker"].DependsOn["b24sim"]; dep {
		t.Error("the workers depend on the simulator: a real portal would need an edited file")
	}
}

// One image, built once: one service builds it and names it; every other
// service of ours uses that name.
func TestComposeFileBuildsOneImage(t *testing.T) {
	t.Parallel()
	svc := readCompose(t)
	var builders []string
	for name, s := range svc {
		if s.Build != nil {
			builders = append(builders, name)
		}
	}
	if len(builders) != 1 {
		t.Fatalf("services that build: %q, want exactly one", builders)
	}
	image := svc[builders[0]].Image
	if image == "" {
		t.Fatalf("%s builds an image without naming it (image:)", builders[0])
	}
	for _, name := range []string{"worker", "b24sim", "enqueue"} {
		if svc[name].Image != image {
			t.Errorf("%s uses image %q, want the one built image %q", name, svc[name].Image, image)
		}
	}
}

// Redis has a password from .env and is published on loopback only; every
// REDIS_URL carries the password; .env.example sets every variable the file
// requires (${VAR:?...}).
func TestComposeFileRedisAndEnv(t *testing.T) {
	t.Parallel()
	svc := readCompose(t)
	redis := svc["redis"]
	if !slices.Contains(redis.Command, "--requirepass") || !slices.Contains(redis.Command, "${REDIS_PASSWORD:?set REDIS_PASSWORD in .env}") {
		t.Errorf("redis command %q: want --requirepass ${REDIS_PASSWORD:?...}", redis.Command)
	}
	if len(redis.Ports) != 1 || !strings.HasPrefix(redis.Ports[0], "127.0.0.1:") {
		t.Errorf("redis ports %q, want one published on 127.0.0.1", redis.Ports)
	}
	for _, name := range []string{"worker", "enqueue"} {
		if u := svc[name].Environment["REDIS_URL"]; !strings.Contains(u, ":${REDIS_PASSWORD}@") {
			t.Errorf("%s REDIS_URL %q lacks the password", name, u)
		}
	}
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+):\?`).FindAllStringSubmatch(string(data), -1) {
		if !regexp.MustCompile(`(?m)^` + m[1] + `=\S`).Match(example) {
			t.Errorf(".env.example does not set %s, which docker-compose.yml requires", m[1])
		}
	}
	if !regexp.MustCompile(`(?m)^B24_WEBHOOK_URL=http://b24sim:8090/rest/1/\$\{B24SIM_SECRET\}/$`).Match(example) {
		t.Error(".env.example does not derive the simulator's webhook from B24SIM_SECRET")
	}
}

// `docker-compose config -q` accepts the file with .env.example as .env
// (skipped without docker-compose; .ci/run installs it).
func TestComposeConfigValidates(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose not installed")
	}
	dir := t.TempDir()
	for src, dst := range map[string]string{"../../docker-compose.yml": "docker-compose.yml", "../../.env.example": ".env"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "--profile", "sim", "--profile", "enqueue", "config", "-q")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("docker-compose config -q: %v\n%s", err, out)
	}
}
