// Package progress follows a running import and shows how far it got: a
// progress bar on a terminal, plain periodic lines otherwise (CI logs, pipes,
// files), where a bar's carriage returns would only make a mess.
//
// The package knows nothing of Redis or of the import engine: it polls a
// [Source] and renders [Snapshot]s, so it is tested with a fake source and a
// fake clock.
package progress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Counts are the item counts of an import, as in the "counts" object of
// `enqueue status --json`. Total = Created + Pending + Waiting + Failed once
// the import's state is consistent.
type Counts struct {
	Total int `json:"total"`
	// Created items have a portal ID: created by the import or, of them,
	// Adopted (the portal held them already).
	Created int `json:"created"`
	Adopted int `json:"adopted"`
	// Updated items (adopted ones among them) had fields changed to the
	// file's (enqueue import --update).
	Updated int `json:"updated"`
	// Pending items are in the queue (released), not yet created or failed.
	Pending int `json:"pending"`
	// Waiting items wait for their parent's ID before they are released.
	Waiting int `json:"waiting"`
	Failed  int `json:"failed"`
}

// Finished reports whether every item is created or failed.
func (c Counts) Finished() bool { return c.Created+c.Failed >= c.Total }

// Snapshot is what one poll of an import's status tells.
type Snapshot struct {
	// ID is the import ID.
	ID string
	// Done is true once no item will change any more.
	Done   bool
	Counts Counts
}

// Line renders s as one plain line, the format of the non-terminal display:
//
//	import imp-0123456789abcdef: 120/505 created, 3 failed, 380 pending, 2 waiting
//	import imp-0123456789abcdef: 320/505 created (200 adopted), 3 failed, 180 pending, 2 waiting
//	import imp-0123456789abcdef: 505/505 created (200 adopted, 12 updated), 0 failed, 0 pending, 0 waiting
func (s Snapshot) Line() string {
	c := s.Counts
	return fmt.Sprintf("import %s: %d/%d created%s, %d failed, %d pending, %d waiting",
		s.ID, c.Created, c.Total, c.found(), c.Failed, c.Pending, c.Waiting)
}

// found says what of the created count the portal held already: " (200
// adopted, 12 updated)", or nothing.
func (c Counts) found() string {
	var parts []string
	if c.Adopted > 0 {
		parts = append(parts, fmt.Sprintf("%d adopted", c.Adopted))
	}
	if c.Updated > 0 {
		parts = append(parts, fmt.Sprintf("%d updated", c.Updated))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// Source returns the current state of the import being followed. It is
// called from one goroutine at a time.
type Source func(ctx context.Context) (Snapshot, error)

// Display shows snapshots. Update is called after every poll, Finish once
// with the last snapshot (done, or the last one seen when following stopped
// early). A Display is used from one goroutine.
type Display interface {
	Update(s Snapshot) error
	Finish(s Snapshot) error
}

// DefaultInterval is how often [Follow] polls by default: often enough that a
// bar moves smoothly, rare enough that a hundred waiting terminals cost Redis
// nothing.
const DefaultInterval = 500 * time.Millisecond

// DefaultLineInterval is how often the plain display prints a line by default.
const DefaultLineInterval = 2 * time.Second

// MaxConsecutiveErrors is how many polls in a row may fail (Redis restarting,
// a network blip) before [Follow] gives up and returns the last error.
const MaxConsecutiveErrors = 10

// Follow polls src every interval (DefaultInterval when interval <= 0),
// passing each snapshot to d, until a snapshot is Done, ctx ends, or
// MaxConsecutiveErrors polls in a row fail. It calls d.Finish with the last
// snapshot it saw (if any) and returns that snapshot; the error is nil only
// when the import is done.
func Follow(ctx context.Context, src Source, d Display, interval time.Duration) (Snapshot, error) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var (
		last     Snapshot
		seen     bool
		failures int
	)
	finish := func(err error) (Snapshot, error) {
		if seen {
			err = errors.Join(err, d.Finish(last))
		}
		return last, err
	}
	for {
		s, err := src(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return finish(ctx.Err())
		case err != nil:
			failures++
			if failures >= MaxConsecutiveErrors {
				return finish(fmt.Errorf("read import status (%d attempts in a row): %w", failures, err))
			}
		default:
			failures = 0
			last, seen = s, true
			if s.Done {
				return finish(nil)
			}
			if err := d.Update(s); err != nil {
				return finish(fmt.Errorf("show progress: %w", err))
			}
		}
		select {
		case <-ctx.Done():
			return finish(ctx.Err())
		case <-ticker.C:
		}
	}
}

// Lines is the plain display: one [Snapshot.Line] at the first update, then
// at most one per interval, and always the final one. Lines that would
// repeat the previous one are skipped, so a stalled import does not flood a
// log. Not safe for concurrent use.
type Lines struct {
	w        io.Writer
	interval time.Duration
	now      func() time.Time
	lastAt   time.Time
	lastLine string
}

// NewLines returns a plain display writing to w. interval <= 0 means
// DefaultLineInterval; now == nil means time.Now (tests inject a fake clock).
func NewLines(w io.Writer, interval time.Duration, now func() time.Time) *Lines {
	if interval <= 0 {
		interval = DefaultLineInterval
	}
	if now == nil {
		now = time.Now
	}
	return &Lines{w: w, interval: interval, now: now}
}

// Update prints s if interval has passed since the last line and s differs
// from it.
func (l *Lines) Update(s Snapshot) error {
	t := l.now()
	line := s.Line()
	if l.lastLine != "" && (t.Sub(l.lastAt) < l.interval || line == l.lastLine) {
		return nil
	}
	l.lastAt, l.lastLine = t, line
	_, err := fmt.Fprintln(l.w, line)
	return err
}

// Finish prints the final counts, even if the same line was printed before:
// the last line of the output is always the final state.
func (l *Lines) Finish(s Snapshot) error {
	l.lastAt, l.lastLine = l.now(), s.Line()
	_, err := fmt.Fprintln(l.w, l.lastLine)
	return err
}

// Bar is the terminal display: a progress bar of created+failed out of
// total, with the failed, pending and waiting counts in its description.
type Bar struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

// NewBar returns a bar display writing to w (a terminal).
func NewBar(w io.Writer) *Bar { return &Bar{w: w} }

func (b *Bar) describe(s Snapshot) string {
	c := s.Counts
	return fmt.Sprintf("%s: %d adopted, %d updated, %d failed, %d pending, %d waiting", s.ID, c.Adopted, c.Updated, c.Failed, c.Pending, c.Waiting)
}

// Update moves the bar; the first call creates it with the import's total.
func (b *Bar) Update(s Snapshot) error {
	if b.bar == nil {
		b.bar = progressbar.NewOptions(max(s.Counts.Total, 1),
			progressbar.OptionSetWriter(b.w),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionFullWidth(),
			progressbar.OptionSetDescription(b.describe(s)),
		)
	}
	if s.Counts.Total > 0 && b.bar.GetMax() != s.Counts.Total {
		b.bar.ChangeMax(s.Counts.Total)
	}
	b.bar.Describe(b.describe(s))
	return b.bar.Set(s.Counts.Created + s.Counts.Failed)
}

// Finish completes the bar and prints the final counts as a plain line below
// it, so that the terminal's scrollback keeps them.
func (b *Bar) Finish(s Snapshot) error {
	if err := b.Update(s); err != nil {
		return err
	}
	if s.Done {
		if err := b.bar.Finish(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(b.w, "\n%s\n", s.Line())
	return err
}

// IsTerminal reports whether w is an *os.File connected to a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// For returns the display suited to w: a [Bar] on a terminal, otherwise
// [Lines] with lineInterval and now (see [NewLines]).
func For(w io.Writer, lineInterval time.Duration, now func() time.Time) Display {
	if IsTerminal(w) {
		return NewBar(w)
	}
	return NewLines(w, lineInterval, now)
}
