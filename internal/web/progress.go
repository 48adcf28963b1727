package web

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/b24queue/b24queue/importer/store"
)

// Progress is an import's counts as a bar of five segments, in this
// order: created, adopted, failed, pending, waiting. Each segment has its
// own fill pattern and its count is written next to the bar, so the bar
// reads without colour.
type Progress struct {
	Counts   store.Counts `json:"counts"`
	Segments []Segment    `json:"segments"`
	// Label says it all in words (the bar's accessible name).
	Label string `json:"label"`
	// Finished is created + adopted + failed; Percent its share of Total.
	Finished int    `json:"finished"`
	Percent  string `json:"percent"`
}

// Segment is one part of the bar; X and Width are percents of the bar.
type Segment struct {
	Name  string  `json:"name"`
	Count int     `json:"count"`
	X     float64 `json:"x"`
	Width float64 `json:"width"`
}

// newProgress lays out c. Adopted items may be counted inside Created (the
// store's invariant Created+Pending+Waiting+Failed == Total) or beside it:
// when the five counts add up to more than Total, adopted items are taken
// out of Created so that no item is drawn twice.
func newProgress(c store.Counts) Progress {
	created := c.Created
	if c.Created+c.Adopted+c.Pending+c.Waiting+c.Failed > c.Total {
		created = max(c.Created-c.Adopted, 0)
	}
	parts := []struct {
		name string
		n    int
	}{{"created", created}, {"adopted", c.Adopted}, {"failed", c.Failed}, {"pending", c.Pending}, {"waiting", c.Waiting}}
	p := Progress{Counts: c, Finished: created + c.Adopted + c.Failed}
	total := max(c.Total, 1)
	x := 0.0
	words := make([]string, 0, len(parts))
	for _, part := range parts {
		w := math.Round(float64(part.n)*100000/float64(total)) / 1000
		p.Segments = append(p.Segments, Segment{Name: part.name, Count: part.n, X: x, Width: w})
		x += w
		words = append(words, fmt.Sprintf("%d %s", part.n, part.name))
	}
	p.Percent = trimFloat(math.Floor(float64(p.Finished)*1000/float64(total))/10, 1) + "%"
	p.Label = fmt.Sprintf("%s of %d items finished: %s", p.Percent, c.Total, strings.Join(words, ", "))
	return p
}

// Pace is how fast an import goes and when it should end.
type Pace struct {
	// ItemsPerSecond is the measured pace over the last 30 s (0: not
	// known yet, or nothing moved).
	ItemsPerSecond float64 `json:"items_per_second"`
	// Budget is what the portal's request budget allows: its effective
	// rate × the items one request carries (0 when unknown).
	Budget float64 `json:"budget_items_per_second"`
	// ETA is the estimated end (zero when done or unknown): the items left
	// at the measured pace, never faster than the budget.
	ETA time.Time `json:"eta,omitzero"`
	// Text and ETAText are what the page shows.
	Text    string `json:"text"`
	ETAText string `json:"eta_text"`
}

// newPace estimates the pace of an import with left items to go.
func newPace(measured, budget float64, left int, done bool, now time.Time) Pace {
	p := Pace{ItemsPerSecond: measured, Budget: budget}
	switch {
	case done:
		p.Text = "—"
	case measured > 0:
		p.Text = trimFloat(measured, 1) + " items/s"
	default:
		p.Text = "measuring…"
	}
	if budget > 0 && !done {
		p.Text += " (budget " + trimFloat(budget, 1) + "/s)"
	}
	rate := budget
	if measured > 0 && (budget == 0 || measured < budget) {
		rate = measured
	}
	switch {
	case done:
		p.ETAText = "finished"
	case rate <= 0:
		p.ETAText = "unknown"
	default:
		p.ETA = now.Add(time.Duration(float64(left) / rate * float64(time.Second))).Truncate(time.Second)
		basis := "at the portal's budget"
		if rate == measured {
			basis = "at the measured pace"
		}
		p.ETAText = clock(p.ETA) + " (" + relative(p.ETA, now) + ", " + basis + ")"
	}
	return p
}
