package web

import (
	"fmt"
	"html/template"
	"math"
	"net/url"
	"strings"
	"time"
)

// funcs are the template functions.
var funcs = template.FuncMap{
	"clock":    clock,
	"iso":      iso,
	"ago":      relative,
	"seconds":  seconds,
	"queueURL": queueURL,
	"pathEsc":  url.PathEscape,
	"add":      func(a, b int) int { return a + b },
	"pct":      func(f float64) string { return trimFloat(f, 3) + "%" },
	"num":      func(f float64) string { return trimFloat(f, 2) },
	"bar":      func(p Progress, bind string) barArgs { return barArgs{P: p, Bind: bind} },
	"tm":       func(t, now time.Time) timeArgs { return timeArgs{T: t, Now: now} },
	"icon":     icon,
	"slug":     slug,
	"span":     span,
	"mul100":   func(f float64) float64 { return f * 100 },
	"chartW":   func() int { return ChartWidth },
	"chartH":   func() int { return ChartHeight },
}

// slug makes s a CSS class name: lower case, runs of other characters
// than letters and digits as one '-'.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// barArgs are the progress bar partial's arguments: the progress and the
// JSON path the script updates it from.
type barArgs struct {
	P    Progress
	Bind string
}

// timeArgs are the time partial's arguments.
type timeArgs struct{ T, Now time.Time }

// icon is a text symbol for a state, shown next to its name so that no
// state is told by colour alone.
func icon(state string) string {
	switch state {
	case "created", "finished", "available":
		return "✔"
	case "adopted":
		return "↺"
	case "failed", "finished with failures":
		return "✖"
	case "pending", "running":
		return "▶"
	case "waiting":
		return "…"
	case "blocked", "unavailable", "paused: portal unavailable":
		return "⊘"
	}
	return "•"
}

// clock is t as the pages show it: "15:04:05 UTC", with the date when it
// is not today (by UTC). The script turns it into the browser's local time.
func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	u := t.UTC()
	if y, m, d := u.Date(); time.Now().UTC().Format("2006-01-02") != fmt.Sprintf("%04d-%02d-%02d", y, m, d) {
		return u.Format("2006-01-02 15:04:05 UTC")
	}
	return u.Format("15:04:05 UTC")
}

// iso is t for a <time datetime> attribute.
func iso(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// relative says how far t is from now: "in 3 min 20 s", "12 s ago", "now".
func relative(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := t.Sub(now)
	switch {
	case d > 0 && d < time.Second, d <= 0 && d > -time.Second:
		return "now"
	case d > 0:
		return "in " + span(d)
	}
	return span(-d) + " ago"
}

// span is d in words: "3 h 5 min", "3 min 20 s", "12 s".
func span(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h >= 24:
		return fmt.Sprintf("%d d %d h", h/24, h%24)
	case h > 0:
		return fmt.Sprintf("%d h %d min", h, m)
	case m > 0 && s > 0:
		return fmt.Sprintf("%d min %d s", m, s)
	case m > 0:
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d s", s)
}

// seconds is d as "123.4 s".
func seconds(d time.Duration) string { return trimFloat(d.Seconds(), 1) + " s" }

// trimFloat formats f with at most prec decimals, without trailing zeros.
func trimFloat(f float64, prec int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "—"
	}
	s := fmt.Sprintf("%.*f", prec, f)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

// queueURL is asynqmon's page of a portal's queue, optionally filtered by
// task state ("archived", "scheduled", "aggregating", ...).
func queueURL(monitor, queue, status string) string {
	u := monitor + "/queues/" + url.PathEscape(queue)
	if status != "" {
		u += "?status=" + url.QueryEscape(status)
	}
	return u
}
