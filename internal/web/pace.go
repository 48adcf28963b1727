package web

import (
	"sync"
	"time"
)

// Measuring how fast imports progress: every time a page or its JSON reads
// an import, the number of finished items (created or failed) is sampled;
// the pace is the change over the last paceWindow. The samples live in
// this process only (each worker's pages measure for themselves), for
// imports read in the last paceForget.
const (
	paceWindow  = 30 * time.Second
	paceEvery   = time.Second // at most one sample per import per second
	paceForget  = 10 * time.Minute
	paceSamples = 32
)

type sample struct {
	at   time.Time
	done int
}

// track is the samples of one import, oldest first.
type track struct {
	samples []sample
	seen    time.Time
}

// paceMeter measures the pace of every import read recently. It is safe
// for concurrent use.
type paceMeter struct {
	mu     sync.Mutex
	tracks map[string]*track
	swept  time.Time
}

func newPaceMeter() *paceMeter { return &paceMeter{tracks: map[string]*track{}} }

// observe records that import id had done items finished at now and
// returns its pace in items per second over the last paceWindow (0 when
// not known yet: fewer than two samples a second apart).
func (p *paceMeter) observe(id string, now time.Time, done int) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sweep(now)
	t, ok := p.tracks[id]
	if !ok {
		t = &track{}
		p.tracks[id] = t
	}
	t.seen = now
	if n := len(t.samples); n == 0 || now.Sub(t.samples[n-1].at) >= paceEvery || done < t.samples[n-1].done {
		if n > 0 && done < t.samples[n-1].done {
			t.samples = t.samples[:0] // a retry reset failed items: start again
		}
		t.samples = append(t.samples, sample{at: now, done: done})
	}
	// Keep one sample at or before the window's start, to measure across
	// the whole window.
	for len(t.samples) > 2 && now.Sub(t.samples[1].at) >= paceWindow {
		t.samples = t.samples[1:]
	}
	if len(t.samples) > paceSamples {
		t.samples = t.samples[len(t.samples)-paceSamples:]
	}
	first, last := t.samples[0], t.samples[len(t.samples)-1]
	span := last.at.Sub(first.at)
	if span < paceEvery {
		return 0
	}
	return float64(last.done-first.done) / span.Seconds()
}

// sweep forgets imports not read for paceForget (at most once a minute).
func (p *paceMeter) sweep(now time.Time) {
	if now.Sub(p.swept) < time.Minute {
		return
	}
	p.swept = now
	for id, t := range p.tracks {
		if now.Sub(t.seen) > paceForget {
			delete(p.tracks, id)
		}
	}
}
