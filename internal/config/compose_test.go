package config

import (
	"os"
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
