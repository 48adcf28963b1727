package b24test

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Faults are probabilities in [0,1] rolled with the portal's seeded dice:
// some per REST request, some per method call (a whole request or one
// command of a batch), as each field says. A rate of 0 never consumes the
// dice, so adding a fault kind does not change what a seed does to the
// others.
type Faults struct {
	// ErrorRate (per request): answer HTTP 500 INTERNAL_SERVER_ERROR
	// before doing anything.
	ErrorRate float64 `json:"error_rate"`
	// BadGatewayRate (per request): answer an HTML 502 page before doing
	// anything, as a front proxy does.
	BadGatewayRate float64 `json:"bad_gateway_rate"`
	// LostResponseRate (per request): do the work (create the object),
	// then close the connection without answering.
	LostResponseRate float64 `json:"lost_response_rate"`
	// SlowRate (per request): do the work, then answer after SlowDelay (or
	// when the client gives up, whichever is first).
	SlowRate float64 `json:"slow_rate"`
	// SlowDelay is the extra real delay of a slow answer. Default 2s when
	// SlowRate > 0. In JSON a number is nanoseconds, a string is parsed by
	// time.ParseDuration.
	SlowDelay time.Duration `json:"slow_delay"`
	// MalformedRate (per request): do the work, then answer 200 with a
	// truncated body.
	MalformedRate float64 `json:"malformed_rate"`
	// HoldRate (per request): hold the request HoldDelay before it runs,
	// then run it even if the client has gone away meanwhile (its timeout
	// expired), then answer or find the connection closed. It models a
	// create the portal performs after the worker gave up waiting.
	// Stats.Held counts them.
	HoldRate float64 `json:"hold_rate"`
	// HoldDelay is how long a held request waits. Default 40s (longer than
	// the client's default 30 s timeout) when HoldRate > 0; JSON as
	// SlowDelay.
	HoldDelay time.Duration `json:"hold_delay"`
	// DuplicateIDRate (per batch request): every department.add command
	// of the batch answers the ID of the batch's first created department;
	// every department IS created, with its own ID.
	DuplicateIDRate float64 `json:"duplicate_id_rate"`

	// CommandErrorRate (per batch command, never a whole request): the
	// command is not run and its entry in result_error is
	// INTERNAL_SERVER_ERROR, while the other commands run as usual. It
	// models a command the portal failed before doing its work.
	CommandErrorRate float64 `json:"command_error_rate"`
	// FloatIDRate (per batch command of department.add): the department is
	// created with its integer ID N, but the command answers N+0.5.
	FloatIDRate float64 `json:"float_id_rate"`

	// DBErrorRate (per call of department.add): before the work (nothing
	// saved), answer HTTP 400 ERROR_CORE wrapping a database error
	// (DescDeadlock).
	DBErrorRate float64 `json:"db_error_rate"`
	// HeadErrorRate (per call of department.add with a non-zero UF_HEAD):
	// the department is saved, setting its head fails; the answer is
	// HTTP 400 ERROR_CORE DescHeadFailed and the department exists without
	// a head. 1 is the switch "setting a head always fails".
	HeadErrorRate float64 `json:"head_error_rate"`
	// NullResultRate (per call of department.get or
	// crm.automatedsolution.list): the call runs but answers "result": null
	// (in a batch: null under the command's key), without total and next.
	NullResultRate float64 `json:"null_result_rate"`
	// MissingResultRate: as NullResultRate, but the "result" key (in a
	// batch: the command's key) is missing altogether.
	MissingResultRate float64 `json:"missing_result_rate"`
	// AbsurdResetRate (per call of any method): the call is not run; it is
	// refused 429 OPERATION_TIME_LIMIT with a time block whose
	// operating_reset_at is ten years ahead.
	AbsurdResetRate float64 `json:"absurd_reset_rate"`
	// EchoURLRate (per call of any method): the call is not run; it fails
	// with INTERNAL_SERVER_ERROR whose description echoes the call's URL
	// with its credentials (the webhook path with its secret, or the OAuth
	// token), e.g. "Method failed at http://HOST/rest/1/SECRET/department.add",
	// so that secret-redaction tests have something to catch.
	EchoURLRate float64 `json:"echo_url_rate"`
}

// faultRate names one probability of Faults for validation and flags.
type faultRate struct {
	field, flag, usage string
	v                  *float64
}

// rates lists every probability of f, pointing into f.
func (f *Faults) rates() []faultRate {
	return []faultRate{
		{"ErrorRate", "error-rate", "probability of 500 INTERNAL_SERVER_ERROR before the work", &f.ErrorRate},
		{"BadGatewayRate", "bad-gateway-rate", "probability of an HTML 502 before the work", &f.BadGatewayRate},
		{"LostResponseRate", "lost-response-rate", "probability of doing the work then closing the connection", &f.LostResponseRate},
		{"SlowRate", "slow-rate", "probability of doing the work then answering after --slow-delay", &f.SlowRate},
		{"MalformedRate", "malformed-rate", "probability of doing the work then a truncated 200 body", &f.MalformedRate},
		{"HoldRate", "hold-rate", "probability of holding a request --hold-delay, then running it even if the client left", &f.HoldRate},
		{"DuplicateIDRate", "duplicate-id-rate", "probability (per batch) that every department.add command answers the first one's ID", &f.DuplicateIDRate},
		{"CommandErrorRate", "command-error-rate", "probability of INTERNAL_SERVER_ERROR for one batch command (not run)", &f.CommandErrorRate},
		{"FloatIDRate", "float-id-rate", "probability that a batch department.add command answers its ID + 0.5", &f.FloatIDRate},
		{"DBErrorRate", "db-error-rate", "probability of ERROR_CORE (database deadlock) for department.add before the work", &f.DBErrorRate},
		{"HeadErrorRate", "head-error-rate", "probability that department.add saves the department, then fails to set UF_HEAD (ERROR_CORE)", &f.HeadErrorRate},
		{"NullResultRate", "null-result-rate", "probability of \"result\": null from department.get / crm.automatedsolution.list", &f.NullResultRate},
		{"MissingResultRate", "missing-result-rate", "probability of no \"result\" from department.get / crm.automatedsolution.list", &f.MissingResultRate},
		{"AbsurdResetRate", "absurd-reset-rate", "probability of 429 OPERATION_TIME_LIMIT with operating_reset_at ten years ahead", &f.AbsurdResetRate},
		{"EchoURLRate", "echo-url-rate", "probability of an error whose description echoes the URL with its secret", &f.EchoURLRate},
	}
}

// UnmarshalJSON accepts slow_delay and hold_delay as nanoseconds or as
// duration strings.
func (f *Faults) UnmarshalJSON(b []byte) error {
	type plain Faults
	var aux struct {
		plain
		SlowDelay json.RawMessage `json:"slow_delay"`
		HoldDelay json.RawMessage `json:"hold_delay"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("faults: %w", err)
	}
	*f = Faults(aux.plain)
	var err error
	if f.SlowDelay, err = jsonDuration(aux.SlowDelay); err != nil {
		return fmt.Errorf("faults: slow_delay: %w", err)
	}
	if f.HoldDelay, err = jsonDuration(aux.HoldDelay); err != nil {
		return fmt.Errorf("faults: hold_delay: %w", err)
	}
	return nil
}

// jsonDuration reads a duration written as nanoseconds or as a string for
// time.ParseDuration; absent or null is 0.
func jsonDuration(raw json.RawMessage) (time.Duration, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return time.ParseDuration(s)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, err
	}
	return time.Duration(n), nil
}

func (f Faults) validate() error {
	var errs []error
	for _, r := range f.rates() {
		if *r.v < 0 || *r.v > 1 {
			errs = append(errs, fmt.Errorf("Faults.%s: %v not in [0,1]", r.field, *r.v))
		}
	}
	if f.SlowDelay < 0 {
		errs = append(errs, fmt.Errorf("Faults.SlowDelay: negative %v", f.SlowDelay))
	}
	if f.HoldDelay < 0 {
		errs = append(errs, fmt.Errorf("Faults.HoldDelay: negative %v", f.HoldDelay))
	}
	return errors.Join(errs...)
}

func (f Faults) withDefaults() Faults {
	if f.SlowRate > 0 && f.SlowDelay == 0 {
		f.SlowDelay = 2 * time.Second
	}
	if f.HoldRate > 0 && f.HoldDelay == 0 {
		f.HoldDelay = 40 * time.Second
	}
	return f
}

// faultPlan is what the dice decided for one request.
type faultPlan struct {
	internal, badGateway, lost, slow, malformed, hold bool
	slowDelay, holdDelay                              time.Duration
}

// rollLocked rolls one fault of the given kind at rate, counting it in
// Stats.Faults when it fires. A rate of 0 does not consume the dice.
func (p *Portal) rollLocked(rate float64, kind string) bool {
	if rate <= 0 || p.rng.Float64() >= rate {
		return false
	}
	p.stats.Faults[kind]++
	return true
}

// planLocked rolls the per-request faults, in a fixed order (error, bad
// gateway, lost, slow, malformed, hold) that seeded tests rely on.
func (p *Portal) planLocked() faultPlan {
	f := p.faults
	var fp faultPlan
	if fp.internal = p.rollLocked(f.ErrorRate, "error"); fp.internal {
		return fp
	}
	if fp.badGateway = p.rollLocked(f.BadGatewayRate, "bad_gateway"); fp.badGateway {
		return fp
	}
	if fp.lost = p.rollLocked(f.LostResponseRate, "lost_response"); !fp.lost {
		fp.slow = p.rollLocked(f.SlowRate, "slow")
		fp.malformed = p.rollLocked(f.MalformedRate, "malformed")
	}
	fp.hold = p.rollLocked(f.HoldRate, "hold")
	fp.slowDelay, fp.holdDelay = f.SlowDelay, f.HoldDelay
	return fp
}
