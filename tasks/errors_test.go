package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/b24queue/b24queue/b24"
	"github.com/b24queue/b24queue/b24/b24test"
	"github.com/b24queue/b24queue/limiter"
)

func TestClassifyMapsEveryClassToQueueBehaviour(t *testing.T) {
	t.Parallel()
	h := &Handler{portals: map[string]*Portal{}}
	until := time.Now().Add(3 * time.Minute)
	tests := []struct {
		name      string
		err       error
		wantPark  bool
		wantFinal bool // SkipRetry
	}{
		{"query limit", &b24.Error{Code: "QUERY_LIMIT_EXCEEDED", HTTPStatus: 503, Method: "department.add"}, true, false},
		{"operation time limit", &b24.Error{Code: "OPERATION_TIME_LIMIT", HTTPStatus: 429, Method: "department.add"}, true, false},
		{"limiter block", fmt.Errorf("pacer: %w", &limiter.BlockedError{Portal: "p", Method: "department.add", Until: until}), true, false},
		{"limiter delay", &limiter.DelayError{Portal: "p", Delay: 40 * time.Second}, true, false},
		{"core validation error", &b24.Error{Code: "ERROR_CORE", Description: b24test.DescNoParent, HTTPStatus: 400, Method: "department.add"}, false, true},
		// Saved, then setting the head failed: look up, never fail.
		{"core error after save", &b24.Error{Code: "ERROR_CORE", Description: b24test.DescHeadFailed, HTTPStatus: 400, Method: "department.add"}, false, false},
		{"plan cap", &b24.Error{Code: "LIMIT_EXCEEDED", HTTPStatus: 400}, false, true},
		// The credential, not the item: park until the portal is probed.
		{"no auth", &b24.Error{Code: "NO_AUTH_FOUND", HTTPStatus: 401}, true, false},
		{"portal moved", &b24.Error{Code: b24.CodePortalMoved, HTTPStatus: 302}, true, false},
		{"limiter: portal unavailable", &limiter.UnavailableError{Portal: "p", Code: "INVALID_CREDENTIALS", Until: until}, true, false},
		{"unknown code", &b24.Error{Code: "SOMETHING_NEW", HTTPStatus: 400}, false, true},
		{"internal error", &b24.Error{Code: "INTERNAL_SERVER_ERROR", HTTPStatus: 500}, false, false},
		{"transport", &b24.TransportError{Method: "department.add", Err: errors.New("EOF"), Ambiguous: true}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := h.decide(context.Background(), "p", tt.err).taskError()
			var park *ParkError
			if isPark := errors.As(got, &park); isPark != tt.wantPark {
				t.Fatalf("classify(%v) = %v, park = %v, want %v", tt.err, got, isPark, tt.wantPark)
			}
			if IsFailure(got) == tt.wantPark {
				t.Errorf("IsFailure(%v) = %v, want %v", got, !tt.wantPark, !tt.wantPark)
			}
			if final := errors.Is(got, asynq.SkipRetry); final != tt.wantFinal {
				t.Errorf("errors.Is(%v, SkipRetry) = %v, want %v", got, final, tt.wantFinal)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("classified error %v lost its cause %v", got, tt.err)
			}
		})
	}
}

func TestPermanentErrorKeepsCodeAndDescription(t *testing.T) {
	t.Parallel()
	cause := &b24.Error{Code: "ERROR_CORE", Description: b24test.DescNoParent, HTTPStatus: 400, Method: "department.add"}
	err := (&Handler{}).decide(context.Background(), "p", cause).taskError()
	for _, want := range []string{"ERROR_CORE", "Parent department not found"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestRetryDelayParksUntilTheBlockEnds(t *testing.T) {
	t.Parallel()
	until := time.Now().Add(90 * time.Second)
	d := RetryDelay(0, &ParkError{Until: until, Reason: "blocked"}, nil)
	if d < 89*time.Second || d > 91*time.Second {
		t.Fatalf("RetryDelay for a park until +90s = %v", d)
	}
	if d := RetryDelay(0, &ParkError{Until: time.Now().Add(-time.Hour)}, nil); d < 0 || d > time.Second {
		t.Fatalf("RetryDelay for a past park = %v, want [0, 1s]", d)
	}
}

func TestRetryDelayBacksOffExponentiallyWithJitter(t *testing.T) {
	t.Parallel()
	transient := errors.New("connection reset")
	for n, base := range map[int]time.Duration{0: 2 * time.Second, 3: 16 * time.Second, 8: 512 * time.Second, 30: 10 * time.Minute} {
		lo, hi := base*3/4, base*5/4
		seen := map[time.Duration]bool{}
		for range 50 {
			d := RetryDelay(n, transient, nil)
			if d < lo || d > hi {
				t.Fatalf("RetryDelay(%d) = %v, want within [%v, %v]", n, d, lo, hi)
			}
			seen[d] = true
		}
		if len(seen) < 10 {
			t.Errorf("RetryDelay(%d) has no jitter: %d distinct values in 50", n, len(seen))
		}
	}
}

func TestRetryDelayOfABatchIsShorter(t *testing.T) {
	t.Parallel()
	transient := errors.New("connection reset")
	batch := asynq.NewTask(TypeBatchCreate, nil)
	for n, base := range map[int]time.Duration{0: time.Second, 3: 8 * time.Second, 6: time.Minute, 30: time.Minute} {
		lo, hi := base*3/4, base*5/4
		for range 50 {
			if d := RetryDelay(n, transient, batch); d < lo || d > hi {
				t.Fatalf("batch RetryDelay(%d) = %v, want within [%v, %v]", n, d, lo, hi)
			}
		}
	}
	// A parked batch still waits for its time.
	if d := RetryDelay(5, &ParkError{Until: time.Now().Add(3 * time.Minute)}, batch); d < 179*time.Second {
		t.Fatalf("parked batch RetryDelay = %v, want about 3 min", d)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
