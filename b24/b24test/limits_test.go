package b24test

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestQueryLimitBucket(t *testing.T) {
	t.Parallel()
	s, clk := setup(t, Config{Rate: 2, Burst: 5})

	for i := range 5 {
		if a := call(t, s, "department.get", map[string]any{"ID": 1}); a.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, a.status, a.raw)
		}
	}
	wantError(t, call(t, s, "department.get", nil), http.StatusServiceUnavailable, "QUERY_LIMIT_EXCEEDED")

	// Half a second drains one request at 2/s: exactly one more fits.
	clk.Advance(500 * time.Millisecond)
	wantOK(t, call(t, s, "department.get", nil))
	a := call(t, s, "department.get", nil)
	wantError(t, a, http.StatusServiceUnavailable, "QUERY_LIMIT_EXCEEDED")
	if a.desc() != "Too many requests" {
		t.Errorf("description %q", a.desc())
	}

	// A batch of three commands takes one slot.
	clk.Advance(500 * time.Millisecond)
	wantOK(t, call(t, s, "batch", map[string]any{"cmd": map[string]string{
		"a": "department.get?ID=1", "b": "department.get?ID=1", "c": "department.get?ID=1",
	}}))
	wantError(t, call(t, s, "batch", map[string]any{"cmd": []string{"department.get"}}), http.StatusServiceUnavailable, "QUERY_LIMIT_EXCEEDED")

	// The token endpoint does not count.
	cfg := s.Config()
	tok := do(t, mustGet(t, s.TokenEndpoint()+"?grant_type=refresh_token&client_id="+cfg.OAuth.ClientID+
		"&client_secret="+cfg.OAuth.ClientSecret+"&refresh_token="+cfg.OAuth.RefreshToken))
	wantOK(t, tok)

	st := s.Stats()
	if st.Requests != 7 || st.Rejected503 != 3 {
		t.Errorf("Requests=%d Rejected503=%d, want 7 and 3", st.Requests, st.Rejected503)
	}
	if st.Calls["department.get"]["ok"] != 9 { // 6 single + 3 in the batch
		t.Errorf("department.get ok = %d, want 9", st.Calls["department.get"]["ok"])
	}
	if st.MaxPerSecond != 6 {
		t.Errorf("MaxPerSecond = %d, want 6", st.MaxPerSecond)
	}

	// Fully drained after Burst/Rate seconds.
	clk.Advance(3 * time.Second)
	for range 5 {
		wantOK(t, call(t, s, "department.get", nil))
	}
}

func TestOperatingLimit(t *testing.T) {
	t.Parallel()
	// Window 100 s = ten 10 s buckets; t0 starts a bucket.
	s, clk := setup(t, Config{
		OperatingLimit:  time.Second,
		OperatingWindow: 100 * time.Second,
		CallCost:        300 * time.Millisecond,
	})
	reset := t0.Add(100 * time.Second).Unix()
	steps := []struct {
		advance   time.Duration
		operating float64
	}{{0, 0.3}, {10 * time.Second, 0.6}, {10 * time.Second, 0.9}, {10 * time.Second, 1.2}}
	for i, st := range steps {
		clk.Advance(st.advance)
		a := call(t, s, "department.get", nil)
		wantOK(t, a) // the fourth call crosses the limit and still succeeds
		tb := a.timeBlock(t)
		if got := num(t, tb["operating"]); math.Abs(got-st.operating) > 1e-6 {
			t.Errorf("call %d: operating %v, want %v", i, got, st.operating)
		}
		if got := int64(num(t, tb["operating_reset_at"])); got != reset {
			t.Errorf("call %d: operating_reset_at %d, want %d", i, got, reset)
		}
	}
	a := call(t, s, "department.get", nil)
	wantError(t, a, http.StatusTooManyRequests, "OPERATION_TIME_LIMIT")
	if a.desc() != "Method is blocked due to operation time limit" || a.body["time"] != nil {
		t.Errorf("429 answer %s", a.raw)
	}
	// Other methods are not affected.
	wantOK(t, call(t, s, "crm.automatedsolution.list", nil))

	// Still blocked just before the first bucket leaves, free at the reset.
	clk.Advance(time.Unix(reset, 0).Sub(clk.Now()) - time.Nanosecond)
	wantError(t, call(t, s, "department.get", nil), http.StatusTooManyRequests, "OPERATION_TIME_LIMIT")
	clk.Advance(time.Nanosecond)
	a = call(t, s, "department.get", nil)
	wantOK(t, a)
	tb := a.timeBlock(t)
	if got := num(t, tb["operating"]); math.Abs(got-1.2) > 1e-6 {
		t.Errorf("after reset: operating %v, want 1.2 (0.9 left + 0.3)", got)
	}
	if got := int64(num(t, tb["operating_reset_at"])); got != reset+10 {
		t.Errorf("after reset: operating_reset_at %d, want %d", got, reset+10)
	}
	st := s.Stats()
	if st.Rejected429 != 2 || st.Calls["department.get"]["OPERATION_TIME_LIMIT"] != 2 {
		t.Errorf("Rejected429=%d calls=%v", st.Rejected429, st.Calls["department.get"])
	}
}

// TestOperatingBucketsCountFromFirstCall: a bucket opens at the first call
// that finds none open (not at a multiple of its width), takes the calls of
// the next width, and leaves the window a whole window after its first call.
func TestOperatingBucketsCountFromFirstCall(t *testing.T) {
	t.Parallel()
	// Window 100 s: buckets of 10 s. The clock starts 7 s into an aligned
	// 10 s slot, so aligned buckets would give other answers.
	s, clk := setup(t, Config{OperatingLimit: time.Hour, OperatingWindow: 100 * time.Second, CallCost: time.Second})
	clk.Advance(7 * time.Second)
	first := clk.Now()
	get := func() (operating float64, resetAt int64) {
		t.Helper()
		a := call(t, s, "department.get", nil)
		wantOK(t, a)
		tb := a.timeBlock(t)
		return num(t, tb["operating"]), int64(num(t, tb["operating_reset_at"]))
	}
	steps := []struct {
		at        time.Duration // since first
		operating float64
		reset     time.Duration // since first
	}{
		{0, 1, 100 * time.Second},
		{9 * time.Second, 2, 100 * time.Second},                    // same bucket: 9 s < 10 s after its first call
		{10 * time.Second, 3, 100 * time.Second},                   // a new bucket opens at 10 s
		{19 * time.Second, 4, 100 * time.Second},                   // still the second bucket
		{99 * time.Second, 5, 100 * time.Second},                   // a third, the first still counts
		{100 * time.Second, 4, 110 * time.Second},                  // the first left with its 2 s; this call added 1
		{110 * time.Second, 3, 199 * time.Second},                  // the second left: the oldest is the one from 99 s
		{110*time.Second + time.Millisecond, 4, 199 * time.Second}, // in the bucket opened at 110 s
	}
	for i, st := range steps {
		clk.Advance(first.Add(st.at).Sub(clk.Now()))
		op, reset := get()
		if math.Abs(op-st.operating) > 1e-6 || reset != first.Add(st.reset).Unix() {
			t.Errorf("step %d at +%v: operating %v reset +%ds, want %v +%v", i, st.at, op, reset-first.Unix(), st.operating, st.reset)
		}
	}
}

// TestOperatingBlocksOnlyAboveTheLimit: reaching the limit exactly does not
// block; the call that goes above it completes; the next one is refused.
func TestOperatingBlocksOnlyAboveTheLimit(t *testing.T) {
	t.Parallel()
	s, clk := setup(t, Config{OperatingLimit: time.Second, OperatingWindow: time.Minute, CallCost: 500 * time.Millisecond})
	for i, want := range []float64{0.5, 1, 1.5} {
		a := call(t, s, "department.add", map[string]any{"NAME": "D", "PARENT": 1})
		wantOK(t, a)
		if got := num(t, a.timeBlock(t)["operating"]); math.Abs(got-want) > 1e-6 {
			t.Errorf("call %d: operating %v, want %v", i, got, want)
		}
	}
	wantError(t, call(t, s, "department.add", map[string]any{"NAME": "D", "PARENT": 1}), http.StatusTooManyRequests, "OPERATION_TIME_LIMIT")
	if n := len(s.Departments()); n != 4 {
		t.Errorf("%d departments, want root + 3 (the crossing call completed)", n)
	}
	// The one bucket leaves a window after its first call.
	clk.Advance(time.Minute)
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "D", "PARENT": 1}))
}

func TestOperatingResetWhenNothingCounted(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{OperatingWindow: time.Minute})
	// A batch is not billed itself, so its own time block has nothing counted.
	a := call(t, s, "batch", map[string]any{"cmd": map[string]string{"a": "department.get"}})
	wantOK(t, a)
	tb := a.timeBlock(t)
	if got := int64(num(t, tb["operating_reset_at"])); got != t0.Add(time.Minute).Unix() {
		t.Errorf("operating_reset_at %d, want now+window %d", got, t0.Add(time.Minute).Unix())
	}
	if num(t, tb["operating"]) != 0 {
		t.Errorf("batch operating %v, want 0", tb["operating"])
	}
	for _, k := range []string{"start", "finish", "duration", "processing", "date_start", "date_finish"} {
		if _, ok := tb[k]; !ok {
			t.Errorf("time block lacks %q: %v", k, tb)
		}
	}
}

func TestBatchBillsEachCommandToItsMethod(t *testing.T) {
	t.Parallel()
	s, _ := setup(t, Config{
		CallCost:   100 * time.Millisecond,
		MethodCost: map[string]time.Duration{"department.add": 250 * time.Millisecond},
	})
	a := call(t, s, "batch", map[string]any{"cmd": map[string]string{
		"a": "department.add?NAME=A&PARENT=1",
		"b": "department.add?NAME=B&PARENT=1",
		"g": "department.get?ID=1",
	}})
	wantOK(t, a)
	times := a.body["result"].(map[string]any)["result_time"].(map[string]any)
	if got := num(t, times["b"].(map[string]any)["operating"]); math.Abs(got-0.5) > 1e-6 {
		t.Errorf("command b operating %v, want 0.5", got)
	}
	if got := num(t, times["g"].(map[string]any)["operating"]); math.Abs(got-0.1) > 1e-6 {
		t.Errorf("command g operating %v, want 0.1", got)
	}
	a = call(t, s, "department.add", map[string]any{"NAME": "C", "PARENT": 1})
	if got := num(t, a.timeBlock(t)["operating"]); math.Abs(got-0.75) > 1e-6 {
		t.Errorf("department.add operating %v, want 0.75", got)
	}
}

func TestBlockMethod(t *testing.T) {
	t.Parallel()
	s, clk := setup(t, Config{})
	s.BlockMethod("department.add.json", 30*time.Second)
	wantError(t, call(t, s, "department.add", map[string]any{"NAME": "X", "PARENT": 1}), http.StatusTooManyRequests, "OPERATION_TIME_LIMIT")
	a := call(t, s, "batch", map[string]any{"cmd": map[string]string{"a": "department.add?NAME=X&PARENT=1"}})
	wantOK(t, a)
	errs := a.body["result"].(map[string]any)["result_error"].(map[string]any)
	if errs["a"].(map[string]any)["error"] != "OPERATION_TIME_LIMIT" {
		t.Errorf("batch command error %v", errs)
	}
	wantOK(t, call(t, s, "department.get", nil))
	clk.Advance(30 * time.Second)
	wantOK(t, call(t, s, "department.add", map[string]any{"NAME": "X", "PARENT": 1}))
	if n := len(s.Departments()); n != 2 {
		t.Errorf("%d departments, want root + 1", n)
	}
}

func TestMaxInWindow(t *testing.T) {
	t.Parallel()
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name  string
		times []time.Time
		want  int
	}{
		{"empty", nil, 0},
		{"one", []time.Time{ms(0)}, 1},
		{"edge excluded", []time.Time{ms(0), ms(1000)}, 1},
		{"cluster", []time.Time{ms(0), ms(1500), ms(1600), ms(2499), ms(2500)}, 3},
		{"unsorted", []time.Time{ms(900), ms(0), ms(100)}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := maxInWindow(tt.times, time.Second); got != tt.want {
				t.Errorf("maxInWindow = %d, want %d", got, tt.want)
			}
		})
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
