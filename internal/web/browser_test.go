package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/internal/testutil"
)

// TestBrowser drives the pages in Chromium through one worker's life: a
// failed item and its retry, a running import whose counts move without a
// reload, a method the portal holds blocked; then no page answers without
// credentials, and every page fits a phone's width. The screenshots of the
// three pages are taken on the way (-screenshots DIR keeps them).
func TestBrowser(t *testing.T) {
	t.Parallel()
	e := setupBrowser(t)
	t.Run("failure with its code, then retry requeues it", e.failureAndRetry)
	t.Run("counts move without a reload and match the status JSON", e.liveCounts)
	t.Run("portal page shows a blocked method with its reset time", e.blockedMethod)
	t.Run("no page answers without credentials", e.noCredentials)
	t.Run("pages fit a phone", func(t *testing.T) {
		e.t = t
		for _, path := range []string{"/imports/", "/imports/fail-1", "/portals/"} {
			e.fitsPhone(path)
		}
	})
}

// failureAndRetry: an item whose parent does not exist fails with its
// Bitrix24 code and takes its child along; once the parent exists, the
// page's retry button requeues both and the page shows them created.
func (e *env) failureAndRetry(t *testing.T) {
	e.t = t
	anchor := e.sim.SeedDepartment("Anchor", 1, 0, 0)
	missing := anchor + 3 // the import's two good departments take the next two IDs
	e.submit("fail-1", fmt.Sprintf(`{"departments":[{"key":"good","name":"Good","parent_id":1},{"key":"good2","name":"Good 2","parent":"good"},`+
		`{"key":"orphan","name":"Orphan","parent_id":%d},{"key":"orphan-kid","name":"Orphan Kid","parent":"orphan"}]}`, missing))
	testutil.WaitFor(t, 20*time.Second, "the orphan to fail", func() (bool, string) {
		c, _ := e.status("fail-1")
		return c.Failed == 2 && c.Created == 2, fmt.Sprintf("%+v", c)
	})

	e.open("/imports/fail-1", `tr[data-key="orphan"]`)
	row := eval[string](e, `document.querySelector('tr[data-key="orphan"]').innerText`)
	for _, want := range []string{"ERROR_CORE", "Parent department not found", fmt.Sprintf("#%d", missing), "its own task"} {
		if !strings.Contains(row, want) {
			t.Errorf("failure row %q lacks %q", row, want)
		}
	}
	if kid := eval[string](e, `document.querySelector('tr[data-key="orphan-kid"]').innerText`); !strings.Contains(kid, "parent orphan failed") || !strings.Contains(kid, "ERROR_CORE") {
		t.Errorf("subtree failure row %q", kid)
	}
	e.screenshot("import")

	e.mark()
	e.sim.SeedDepartment("Late parent", 1, 0, 0) // takes the missing ID
	e.click(`form[data-retry] button`)
	e.waitPage("the retry's answer", 10*time.Second, `document.getElementById('retry-status').textContent.includes('Retried 2 item(s)')`)
	e.waitPage("the retried items created", 20*time.Second,
		`document.querySelector('[data-count=created]').textContent === '4' && !document.querySelector('tr[data-key="orphan"]')`+
			` && document.querySelector('#tree').innerText.includes('Orphan Kid')`)
	if !e.pageCounts().Marked {
		t.Error("the page reloaded")
	}
	if c, failed := e.status("fail-1"); c.Created != 4 || len(failed) != 0 {
		t.Errorf("status after retry: %+v, failed %v", c, failed)
	}
}

// liveCounts: while an import runs, its page's counts change several
// times without a reload, agree with the status JSON, and end equal to it.
func (e *env) liveCounts(t *testing.T) {
	e.t = t
	var b strings.Builder
	b.WriteString(`{"departments":[`)
	for i := range 40 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"key":"d%d","name":"Dept %d","parent_id":1}`, i, i)
	}
	b.WriteString("]}")
	e.submit("live-1", b.String())
	e.open("/imports/live-1", ".legend")
	e.mark()

	seen := map[int]bool{}
	matched, listShot := false, false
	deadline := time.Now().Add(45 * time.Second)
	for {
		page := e.pageCounts()
		if !page.Marked {
			t.Fatal("the page reloaded")
		}
		seen[page.Created] = true
		st, _ := e.status("live-1")
		running := page.Created > 0 && page.Created < page.Total
		if running && page.counts == st {
			matched = true
		}
		if running && !listShot {
			// The list, mid-import, is the imports page's screenshot.
			listShot = true
			e.open("/imports/", ".imports")
			e.screenshot("imports")
			e.open("/imports/live-1", ".legend")
			e.mark()
			continue
		}
		if page.Created == page.Total && page.Total == 40 {
			if page.counts != st {
				t.Errorf("page shows %+v at the end, status JSON %+v", page.counts, st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("import not finished on the page: %+v (status %+v)", page, st)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(seen) < 3 {
		t.Errorf("the page's created count took %d values (%v): want it to move while running", len(seen), seen)
	}
	if !matched {
		t.Error("the page's counts never equalled the status JSON while the import ran")
	}
}

// blockedMethod: while the portal answers department.add with 429, the
// portal page shows the method blocked, until when, and its window's
// reset.
func (e *env) blockedMethod(t *testing.T) {
	e.t = t
	e.sim.BlockMethod("department.add", 2*time.Minute)
	e.submit("blocked-1", `{"departments":[{"key":"late","name":"Late","parent_id":1}]}`)
	e.open("/portals/", `tr[data-method="department.add"]`)
	e.mark()
	e.waitPage("department.add blocked on the page", 20*time.Second,
		`document.querySelector('tr[data-method="department.add"]').innerText.includes('blocked until')`)
	until := eval[string](e, `document.querySelector('tr[data-method="department.add"] [data-label=Blocked] time').getAttribute('datetime')`)
	reset := eval[string](e, `document.querySelector('tr[data-method="department.add"] [data-label=Resets] time').getAttribute('datetime')`)
	end, err := time.Parse(time.RFC3339, until)
	if err != nil || !end.After(time.Now()) {
		t.Errorf("blocked until %q: want a time ahead", until)
	}
	if _, err := time.Parse(time.RFC3339, reset); err != nil {
		t.Errorf("window reset %q: %v", reset, err)
	}
	if !e.pageCounts().Marked {
		t.Error("the page reloaded")
	}
	e.screenshot("portals")
}

// noCredentials: every page and its JSON answer 401 without credentials.
func (e *env) noCredentials(t *testing.T) {
	e.t = t
	for _, path := range []string{"/imports/", "/imports/?format=json", "/imports/fail-1", "/imports/fail-1?format=json",
		"/imports/nope", "/portals/", "/portals/?format=json"} {
		if code, body := e.request(http.MethodGet, path, "", "", false); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d %.100s", path, code, body)
		}
	}
	if code, _ := e.request(http.MethodPost, "/v1/imports/fail-1/retry", "", "", false); code != http.StatusUnauthorized {
		t.Errorf("POST retry without credentials: %d", code)
	}
}
