package web

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/b24queue/b24queue/limiter"
	"github.com/b24queue/b24queue/tasks"
)

// PortalView is one portal on /portals/.
type PortalView struct {
	Name  string `json:"name"`
	Queue string `json:"queue"`
	// Error is set when the state could not be read; the rest is empty.
	Error string         `json:"error,omitempty"`
	State *limiter.State `json:"state,omitempty"`
	// Unavailable says why the portal cannot be called, with the fix.
	Unavailable *Unavailable `json:"unavailable,omitempty"`
	Chart       Chart        `json:"-"`
	Methods     []MethodView `json:"-"`
	// LevelPct is the bucket's level as a percent of the shared burst.
	LevelPct float64 `json:"-"`
}

// Unavailable is an unavailable portal as the pages show it.
type Unavailable struct {
	limiter.Unavailability
	Fix string `json:"fix"`
}

// MethodView is one method's operating budget.
type MethodView struct {
	limiter.MethodState
	// UsedPct is Operating as a percent of Limit (capped at 100 for the
	// bar), ThresholdPct where the fleet blocks the method itself.
	UsedPct      float64
	BarPct       float64
	ThresholdPct float64
	// Stale is true when the reset time has passed since the report: the
	// window has moved, the figure is an upper bound.
	Stale bool
}

// PortalsData is the data of /portals/ (and its JSON).
type PortalsData struct {
	Version string       `json:"version"`
	Now     time.Time    `json:"now"`
	Portals []PortalView `json:"portals"`
	// NoLimiter is true when this process has no limiter to read.
	NoLimiter bool `json:"no_limiter,omitempty"`
}

func (s *server) portalsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	now := s.cfg.Now()
	d := PortalsData{Now: now, Portals: []PortalView{}, NoLimiter: s.cfg.Limiter == nil}
	var names []string
	if s.cfg.Portals != nil {
		names = s.cfg.Portals()
	}
	for _, name := range names {
		d.Portals = append(d.Portals, s.portalView(ctx, name))
	}
	// The chart moves every second: fetch the page at every poll.
	d.Version = strconv.FormatInt(now.Unix(), 10)
	s.render(w, r, "portals", page{Title: "Portals", Section: "portals", Live: true, Version: d.Version, Data: d})
}

func (s *server) portalView(ctx context.Context, name string) PortalView {
	v := PortalView{Name: name, Queue: tasks.QueueName(name)}
	if s.cfg.Limiter == nil {
		return v
	}
	st, err := s.cfg.Limiter.State(ctx, name, s.cfg.Methods...)
	if err != nil {
		s.cfg.Logger.Error("web: read limiter state", "portal", name, "err", err)
		v.Error = "could not read the limiter's state from Redis"
		return v
	}
	v.State = &st
	if u := st.Unavailable; u != nil {
		v.Unavailable = &Unavailable{Unavailability: *u, Fix: tasks.FixFor(u.Code)}
	}
	v.Chart = newChart(st)
	if st.SharedBurst > 0 {
		v.LevelPct = math.Min(100, st.Level*100/float64(st.SharedBurst))
	}
	for _, m := range st.Methods {
		v.Methods = append(v.Methods, methodView(m, st.Now))
	}
	return v
}

func methodView(m limiter.MethodState, now time.Time) MethodView {
	mv := MethodView{MethodState: m}
	if m.Limit > 0 {
		mv.UsedPct = m.Operating.Seconds() * 100 / m.Limit.Seconds()
		mv.BarPct = math.Min(100, mv.UsedPct)
		mv.ThresholdPct = m.Threshold.Seconds() * 100 / m.Limit.Seconds()
	}
	mv.Stale = !m.ResetAt.IsZero() && !m.ResetAt.After(now)
	return mv
}

// PortalBrief is what the import page shows of its portal's limiter.
type PortalBrief struct {
	Name     string    `json:"name"`
	Rate     float64   `json:"rate"`
	Cooldown time.Time `json:"cooldown_until,omitzero"`
	// Blocked are the methods blocked now, with the block's end.
	Blocked []BlockedMethod `json:"blocked_methods"`
	Error   string          `json:"error,omitempty"`
}

// BlockedMethod is a method blocked on a portal until Until.
type BlockedMethod struct {
	Method string    `json:"method"`
	Until  time.Time `json:"until"`
}

// portalBrief reads the limiter's state of portal for the import page
// (nil without a limiter).
func (s *server) portalBrief(ctx context.Context, portal string) *PortalBrief {
	if s.cfg.Limiter == nil {
		return nil
	}
	b := &PortalBrief{Name: portal, Blocked: []BlockedMethod{}}
	st, err := s.cfg.Limiter.State(ctx, portal, s.cfg.Methods...)
	if err != nil {
		s.cfg.Logger.Error("web: read limiter state", "portal", portal, "err", err)
		b.Error = "could not read the limiter's state from Redis"
		return b
	}
	b.Rate, b.Cooldown = st.Rate, st.CooldownUntil
	for _, m := range st.Methods {
		if !m.BlockedUntil.IsZero() {
			b.Blocked = append(b.Blocked, BlockedMethod{Method: m.Method, Until: m.BlockedUntil})
		}
	}
	return b
}

// Chart is the requests of the last minutes as bars, with the rate lines,
// in a viewBox of ChartWidth × ChartHeight.
type Chart struct {
	Bars     []Bar
	BarWidth float64
	// RateY and ConfiguredY are the heights of the effective and the
	// configured rate lines; Max is the value at the top.
	RateY, ConfiguredY float64
	Max                float64
	// Total, Peak and Average summarise the window (the chart's
	// accessible name); Minutes are the counts per minute, oldest first,
	// for the table behind the chart.
	Total, Peak int
	Average     float64
	Minutes     []MinuteCount
}

// MinuteCount is the requests granted in one minute of the chart.
type MinuteCount struct {
	From     time.Time
	Requests int
}

// Bar is one second of the chart.
type Bar struct{ X, Y, H float64 }

// The chart's viewBox.
const (
	ChartWidth  = 600
	ChartHeight = 120
)

func newChart(st limiter.State) Chart {
	var c Chart
	for _, sec := range st.Requests {
		c.Total += sec.Requests
		c.Peak = max(c.Peak, sec.Requests)
	}
	n := len(st.Requests)
	if n == 0 {
		return c
	}
	c.Average = float64(c.Total) / float64(n)
	c.Max = math.Ceil(math.Max(float64(c.Peak), st.Config.Rate) * 1.2)
	scale := func(v float64) float64 { return ChartHeight - v*ChartHeight/c.Max }
	c.RateY, c.ConfiguredY = scale(st.Rate), scale(st.Config.Rate)
	w := float64(ChartWidth) / float64(n)
	c.BarWidth = w
	for i, sec := range st.Requests {
		if i%60 == 0 {
			c.Minutes = append(c.Minutes, MinuteCount{From: sec.At})
		}
		c.Minutes[len(c.Minutes)-1].Requests += sec.Requests
		if sec.Requests > 0 {
			y := scale(float64(sec.Requests))
			c.Bars = append(c.Bars, Bar{X: float64(i) * w, Y: y, H: ChartHeight - y})
		}
	}
	return c
}
