package b24

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Time is the `time` block of an answer. Start, Finish, Duration and
// Processing are seconds (Start/Finish unix time with fractions). Operating
// is the seconds of execution this method has used in the portal's rolling
// window; OperatingResetAt is the unix time (seconds) when the oldest counted
// execution leaves the window, 0 when the answer did not say.
type Time struct {
	Start, Finish, Duration, Processing, Operating float64
	OperatingResetAt                               int64
}

// ResetAt returns OperatingResetAt as a time, zero when OperatingResetAt == 0.
func (t Time) ResetAt() time.Time {
	if t.OperatingResetAt == 0 {
		return time.Time{}
	}
	return time.Unix(t.OperatingResetAt, 0)
}

// OperatingDuration returns Operating as a time.Duration.
func (t Time) OperatingDuration() time.Duration {
	return time.Duration(t.Operating * float64(time.Second))
}

// Meta is what an answer says besides its result. Total is the number of
// items of a list method (0 when absent); Next is the `start` of the next
// page, 0 when there is no next page.
type Meta struct {
	Time  Time
	Total int
	Next  int
}

// UnmarshalJSON decodes a PHP-encoded time block tolerantly: numbers may be
// ints, floats or strings; unknown fields and malformed values are ignored
// (the block is informative, a call never fails because of it).
func (t *Time) UnmarshalJSON(b []byte) error {
	var raw struct {
		Start            flexFloat `json:"start"`
		Finish           flexFloat `json:"finish"`
		Duration         flexFloat `json:"duration"`
		Processing       flexFloat `json:"processing"`
		Operating        flexFloat `json:"operating"`
		OperatingResetAt flexFloat `json:"operating_reset_at"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		*t = Time{} // `[]` or garbage: no time information
		return nil
	}
	*t = Time{
		Start:            float64(raw.Start),
		Finish:           float64(raw.Finish),
		Duration:         float64(raw.Duration),
		Processing:       float64(raw.Processing),
		Operating:        float64(raw.Operating),
		OperatingResetAt: int64(raw.OperatingResetAt),
	}
	return nil
}

// flexFloat decodes a JSON number, a numeric string, "", null or false as a
// float64; anything else is 0. It never fails, because PHP answers put
// numbers in every shape.
type flexFloat float64

func (f *flexFloat) UnmarshalJSON(b []byte) error {
	v, _ := parseFlex(b)
	*f = flexFloat(v)
	return nil
}

// flexInt is flexFloat truncated to an int64; strings like "18" are parsed
// exactly, without a trip through float64.
type flexInt int64

func (i *flexInt) UnmarshalJSON(b []byte) error {
	b, n, ok := exactInt(b)
	if ok {
		*i = flexInt(n)
		return nil
	}
	v, _ := parseFlex(b)
	*i = flexInt(v)
	return nil
}

// strictInt is like flexInt but fails on a value that is not a number, for
// results that must be an ID: an integer (18, "18", "+18") or a JSON number
// with an integral value (18.0, "1.8e1"). Anything else strconv.ParseFloat
// would take (" 18", "0x12p0", "Inf") is refused.
type strictInt int64

func (i *strictInt) UnmarshalJSON(b []byte) error {
	b, n, ok := exactInt(b)
	if ok {
		*i = strictInt(n)
		return nil
	}
	var num json.Number
	if len(b) == 0 || !(b[0] == '-' || b[0] >= '0' && b[0] <= '9') || json.Unmarshal(b, &num) != nil {
		return fmt.Errorf("not an integer: %.40q", b)
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return fmt.Errorf("not an integer: %.40q", b)
	}
	*i = strictInt(f)
	return nil
}

// exactInt trims b and strips its quotes, and parses it as an int64 when it
// is one exactly (IDs as "18" or 18). It returns the unquoted bytes for the
// caller's fallback.
func exactInt(b []byte) ([]byte, int64, bool) {
	b = bytes.TrimSpace(b)
	if s, ok := unquote(b); ok {
		b = []byte(s)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	return b, n, err == nil
}

func parseFlex(b []byte) (float64, bool) {
	b = bytes.TrimSpace(b)
	if s, ok := unquote(b); ok {
		b = []byte(s)
	}
	if len(b) == 0 {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

func unquote(b []byte) (string, bool) {
	if len(b) < 2 || b[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", false
	}
	return s, true
}

// decodeKeyed decodes a PHP "associative array" that may arrive as an object,
// as a list (PHP arrays with keys 0..n-1, including the empty `[]`) or as
// null. List elements get their index as key, which is what PHP's keys were.
func decodeKeyed(b []byte) (map[string]json.RawMessage, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || bytes.Equal(b, []byte("null")) {
		return map[string]json.RawMessage{}, nil
	}
	switch b[0] {
	case '{':
		m := map[string]json.RawMessage{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		return m, nil
	case '[':
		var l []json.RawMessage
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, err
		}
		m := make(map[string]json.RawMessage, len(l))
		for i, v := range l {
			m[strconv.Itoa(i)] = v
		}
		return m, nil
	}
	return nil, fmt.Errorf("expected an object or a list, got %.20q", b)
}
