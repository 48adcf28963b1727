package worker

import (
	"net/http"
	"strings"
	"testing"

	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/internal/config"
)

// The pages for people are behind the dashboard's auth, their JSON too, and
// show the worker's portals.
func TestPagesAuth(t *testing.T) {
	t.Parallel()
	b := setup(t, b24test.Config{}, func(c *config.Worker) {
		c.MonitorUser, c.MonitorPassword = "ops", "s3cret-pass"
	})
	for _, path := range []string{"/imports/", "/imports/?format=json", "/imports/nope", "/imports/nope?format=json", "/portals/", "/portals/?format=json"} {
		if code, _ := get(t, b.w.Handler(), path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d, want 401", path, code)
		}
		if code, _ := get(t, b.w.Handler(), path, "ops", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong password: %d, want 401", path, code)
		}
		want := http.StatusOK
		if strings.Contains(path, "nope") {
			want = http.StatusNotFound
		}
		code, body := get(t, b.w.Handler(), path, "ops", "s3cret-pass")
		if code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
		if strings.Contains(body, "s3cret-pass") || strings.Contains(body, b.sim.Config().WebhookSecret) {
			t.Errorf("GET %s: the answer holds a secret", path)
		}
	}
	if _, body := get(t, b.w.Handler(), "/portals/", "ops", "s3cret-pass"); !strings.Contains(body, `id="portal-`+b.portal+`"`) {
		t.Errorf("/portals/ does not show the worker's portal %s", b.portal)
	}
}

// The dashboard shows an import task's page, so that it links back.
func TestPayloadNamesImportPage(t *testing.T) {
	t.Parallel()
	single := PayloadFormatter.FormatPayload("department:create", []byte(`{"portal":"acme","name":"X","parent":1,"import_id":"imp-1","key":"x"}`))
	batch := PayloadFormatter.FormatPayload("batch:create", []byte(`{"portal":"acme","items":[{"type":"department:create","payload":{"import_id":"imp-2"}},{"type":"department:create","payload":{"import_id":"imp-2"}}]}`))
	plain := PayloadFormatter.FormatPayload("department:create", []byte(`{"portal":"acme","name":"X","parent":1}`))
	odd := PayloadFormatter.FormatPayload("department:create", []byte(`{"import_id":"../../evil"}`))
	if !strings.HasSuffix(single, "\n\nimport page: /imports/imp-1") || strings.Count(batch, "import page: /imports/imp-2") != 1 ||
		strings.Contains(plain, "import page") || strings.Contains(odd, "import page") {
		t.Errorf("payloads:\n%s\n%s\n%s\n%s", single, batch, plain, odd)
	}
}
