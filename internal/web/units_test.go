package web

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24queue/b24queue/importer/store"
	"github.com/b24queue/b24queue/limiter"
)

func TestNewProgress(t *testing.T) {
	t.Parallel()
	p := newProgress(store.Counts{Total: 10, Created: 4, Adopted: 1, Failed: 1, Pending: 3, Waiting: 1})
	// 4+1+1+3+1 = 10: adopted counted beside created.
	widths := []float64{}
	for _, s := range p.Segments {
		widths = append(widths, s.Width)
	}
	if !slices.Equal(widths, []float64{40, 10, 10, 30, 10}) || p.Segments[4].X != 90 || p.Finished != 6 || p.Percent != "60%" {
		t.Errorf("progress = %+v", p)
	}
	if want := "60% of 10 items finished: 4 created, 1 adopted, 1 failed, 3 pending, 1 waiting"; p.Label != want {
		t.Errorf("label = %q", p.Label)
	}
	// Adopted inside Created (the store's invariant): not drawn twice.
	p = newProgress(store.Counts{Total: 3, Created: 3, Adopted: 1})
	if p.Segments[0].Count != 2 || p.Segments[1].Count != 1 || p.Finished != 3 || p.Percent != "100%" {
		t.Errorf("adopted within created: %+v", p)
	}
	if p := newProgress(store.Counts{}); p.Percent != "0%" || len(p.Segments) != 5 {
		t.Errorf("empty import: %+v", p)
	}
}

func TestNewPace(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)
	// Faster measured than the budget allows: the budget wins.
	p := newPace(500, 100, 1000, false, now)
	if !p.ETA.Equal(now.Add(10*time.Second)) || !strings.Contains(p.ETAText, "at the portal's budget") || p.Text != "500 items/s (budget 100/s)" {
		t.Errorf("pace = %+v", p)
	}
	p = newPace(10, 100, 1000, false, now)
	if !p.ETA.Equal(now.Add(100*time.Second)) || !strings.Contains(p.ETAText, "at the measured pace") {
		t.Errorf("pace = %+v", p)
	}
	if p := newPace(0, 0, 5, false, now); p.ETAText != "unknown" || p.Text != "measuring…" {
		t.Errorf("unknown pace = %+v", p)
	}
	if p := newPace(3, 100, 0, true, now); p.ETAText != "finished" || !p.ETA.IsZero() {
		t.Errorf("done = %+v", p)
	}
}

func TestPaceMeter(t *testing.T) {
	t.Parallel()
	m := newPaceMeter()
	t0 := time.Now()
	if v := m.observe("a", t0, 0); v != 0 {
		t.Errorf("first sample gives %v", v)
	}
	m.observe("a", t0.Add(500*time.Millisecond), 5) // within a second: not a sample
	if v := m.observe("a", t0.Add(2*time.Second), 20); v != 10 {
		t.Errorf("pace = %v, want 10/s", v)
	}
	// Old samples leave the window.
	for i := 3; i <= 60; i++ {
		m.observe("a", t0.Add(time.Duration(i)*time.Second), 20+i)
	}
	if v := m.observe("a", t0.Add(61*time.Second), 81); v < 0.9 || v > 1.1 {
		t.Errorf("pace over the last window = %v, want about 1/s", v)
	}
	// A retry lowers the count: start again.
	if v := m.observe("a", t0.Add(62*time.Second), 10); v != 0 {
		t.Errorf("after a reset: %v", v)
	}
	m.observe("b", t0, 0)
	m.observe("c", t0.Add(paceForget+2*time.Minute), 0)
	if _, ok := m.tracks["b"]; ok {
		t.Error("an import not read for long is still tracked")
	}
}

func TestBuildTree(t *testing.T) {
	t.Parallel()
	items := []store.ItemInfo{{Key: "r", Depth: 0}, {Key: "a", Depth: 1}, {Key: "a1", Depth: 2}, {Key: "b", Depth: 1}, {Key: "w", Depth: 0}}
	roots, kept := buildTree(items, 100)
	if kept != 5 || len(roots) != 2 || len(roots[0].Children) != 2 || roots[0].Children[0].Children[0].Item.Key != "a1" || roots[1].Item.Key != "w" {
		t.Fatalf("tree = %+v", roots)
	}
	if _, kept := buildTree(items, 3); kept != 3 {
		t.Errorf("kept %d of a limit of 3", kept)
	}
}

func TestChart(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	st := limiter.State{Now: now, Rate: 1.6, Config: limiter.Config{Rate: 2}}
	for i := range 300 {
		st.Requests = append(st.Requests, limiter.Second{At: now.Add(time.Duration(i-299) * time.Second)})
	}
	st.Requests[10].Requests, st.Requests[299].Requests = 5, 1
	c := newChart(st)
	if c.Total != 6 || c.Peak != 5 || c.Max != 6 || len(c.Bars) != 2 || len(c.Minutes) != 5 || c.Minutes[0].Requests != 5 {
		t.Fatalf("chart = %+v", c)
	}
	if c.Bars[0].X != 20 || c.Bars[0].H != 100 || c.RateY != 88 || c.ConfiguredY != 80 {
		t.Errorf("geometry: bar %+v, rate y %v, configured y %v", c.Bars[0], c.RateY, c.ConfiguredY)
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, tt := range []struct{ got, want string }{
		{relative(now.Add(200*time.Second), now), "in 3 min 20 s"},
		{relative(now.Add(-12*time.Second), now), "12 s ago"},
		{relative(now, now), "now"},
		{relative(now.Add(26*time.Hour), now), "in 1 d 2 h"},
		{seconds(123450 * time.Millisecond), "123.5 s"},
		{slug("paused: portal unavailable"), "paused-portal-unavailable"},
		{queueURL("/monitoring", "b24:acme", "archived"), "/monitoring/queues/b24:acme?status=archived"},
		{trimFloat(2.50, 2), "2.5"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
