package progress

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeClock advances by step on every reading.
type fakeClock struct {
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

// script is a Source that returns its snapshots (or errors) in order and
// then repeats the last one.
func script(steps ...any) Source {
	i := 0
	return func(ctx context.Context) (Snapshot, error) {
		s := steps[min(i, len(steps)-1)]
		i++
		switch v := s.(type) {
		case error:
			return Snapshot{}, v
		case Snapshot:
			return v, nil
		}
		panic("bad step")
	}
}

func snap(created, failed, pending, waiting int, done bool) Snapshot {
	return Snapshot{ID: "imp-1", Done: done, Counts: Counts{
		Total: created + failed + pending + waiting, Created: created, Failed: failed, Pending: pending, Waiting: waiting,
	}}
}

func TestLine(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		counts Counts
		want   string
	}{
		{Counts{Total: 505, Created: 120, Failed: 3, Pending: 380, Waiting: 2}, "import imp-ab: 120/505 created, 3 failed, 380 pending, 2 waiting"},
		{Counts{Total: 505, Created: 320, Adopted: 200, Failed: 3, Pending: 180, Waiting: 2}, "import imp-ab: 320/505 created (200 adopted), 3 failed, 180 pending, 2 waiting"},
		{Counts{Total: 505, Created: 505, Adopted: 200, Updated: 12}, "import imp-ab: 505/505 created (200 adopted, 12 updated), 0 failed, 0 pending, 0 waiting"},
		{Counts{Total: 5, Created: 5, Updated: 1}, "import imp-ab: 5/5 created (1 updated), 0 failed, 0 pending, 0 waiting"},
	} {
		if got := (Snapshot{ID: "imp-ab", Counts: tt.counts}).Line(); got != tt.want {
			t.Errorf("Line() of %+v = %q, want %q", tt.counts, got, tt.want)
		}
	}
}

func TestFollowPlainLinesThrottleAndEndWithFinalCounts(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		step time.Duration // fake time between polls
		want []string
	}{
		{
			name: "every poll is past the interval",
			step: 2 * time.Second,
			want: []string{
				"import imp-1: 0/4 created, 0 failed, 2 pending, 2 waiting",
				"import imp-1: 2/4 created, 0 failed, 2 pending, 0 waiting",
				"import imp-1: 3/4 created, 1 failed, 0 pending, 0 waiting",
			},
		},
		{
			name: "polls faster than the interval print only the first and the final line",
			step: 100 * time.Millisecond,
			want: []string{
				"import imp-1: 0/4 created, 0 failed, 2 pending, 2 waiting",
				"import imp-1: 3/4 created, 1 failed, 0 pending, 0 waiting",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := &fakeClock{t: time.Unix(0, 0), step: tt.step}
			var out bytes.Buffer
			src := script(snap(0, 0, 2, 2, false), snap(2, 0, 2, 0, false), snap(2, 0, 2, 0, false), snap(3, 1, 0, 0, true))
			last, err := Follow(context.Background(), src, NewLines(&out, 2*time.Second, clock.now), time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if !last.Done || last.Counts.Failed != 1 {
				t.Errorf("last = %+v", last)
			}
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestFollowSurvivesTransientErrors(t *testing.T) {
	t.Parallel()
	blip := errors.New("connection refused")
	var out bytes.Buffer
	last, err := Follow(context.Background(), script(blip, snap(1, 0, 1, 0, false), blip, blip, snap(2, 0, 0, 0, true)),
		NewLines(&out, time.Nanosecond, nil), time.Millisecond)
	if err != nil {
		t.Fatalf("Follow = %v, want nil after transient errors", err)
	}
	if !last.Done {
		t.Errorf("last = %+v, want done", last)
	}
	if !strings.HasSuffix(out.String(), "import imp-1: 2/2 created, 0 failed, 0 pending, 0 waiting\n") {
		t.Errorf("output does not end with the final counts:\n%s", out.String())
	}
}

func TestFollowGivesUpAfterConsecutiveErrors(t *testing.T) {
	t.Parallel()
	down := errors.New("redis down")
	var out bytes.Buffer
	_, err := Follow(context.Background(), script(snap(1, 0, 1, 0, false), down), NewLines(&out, time.Nanosecond, nil), time.Millisecond)
	if !errors.Is(err, down) {
		t.Fatalf("Follow = %v, want the source's error", err)
	}
	// The last known state is still shown.
	if !strings.HasSuffix(out.String(), "import imp-1: 1/2 created, 0 failed, 1 pending, 0 waiting\n") {
		t.Errorf("output:\n%s", out.String())
	}
}

func TestFollowStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	polls := 0
	src := func(context.Context) (Snapshot, error) {
		polls++
		if polls == 3 {
			cancel()
		}
		return snap(0, 0, 1, 0, false), nil
	}
	_, err := Follow(ctx, src, NewLines(&bytes.Buffer{}, 0, nil), time.Millisecond)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow = %v, want context.Canceled", err)
	}
}

func TestBarRendersAndEndsWithFinalLine(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	_, err := Follow(context.Background(), script(snap(0, 0, 3, 1, false), snap(4, 0, 0, 0, true)), NewBar(&out), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "4/4") {
		t.Errorf("bar output lacks the count 4/4:\n%q", s)
	}
	if !strings.HasSuffix(s, "import imp-1: 4/4 created, 0 failed, 0 pending, 0 waiting\n") {
		t.Errorf("bar output does not end with the final counts:\n%q", s)
	}
}

func TestForChoosesLinesForNonTerminals(t *testing.T) {
	t.Parallel()
	if _, ok := For(&bytes.Buffer{}, 0, nil).(*Lines); !ok {
		t.Error("a buffer got a bar")
	}
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}
