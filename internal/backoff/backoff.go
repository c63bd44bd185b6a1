// Package backoff decides how long an instance that keeps failing waits
// before systemd starts it again, and records the decision where appctl
// status and appctl metrics read it.
//
// systemd 252 restarts a failed instance after a fixed RestartSec=. The
// unit runs appctl backoff as its ExecStopPost= after every exit: the
// first failure after a healthy run restarts at once, each further one
// waits twice as long as the one before, up to a cap, and a run that lasts
// MinUptime starts the count again (PM2's min_uptime). The wait happens
// while the unit is still stopping, so systemd neither restarts the
// instance nor counts a start; an operator's stop or restart ends it.
package backoff

import (
	"fmt"
	"time"
)

// Defaults of the policy.
const (
	DefaultFirst     = 100 * time.Millisecond
	DefaultMax       = 30 * time.Second
	DefaultMinUptime = 10 * time.Second
)

// Environment variables that override the defaults, read from the unit's
// environment (/etc/default/NAME or a drop-in).
const (
	EnvFirst     = "RESTART_BACKOFF_FIRST"
	EnvMax       = "RESTART_BACKOFF_MAX"
	EnvMinUptime = "RESTART_MIN_UPTIME"
)

// Policy is how long to wait before each restart of a failing instance.
type Policy struct {
	First     time.Duration // the wait after the second failure in a row
	Max       time.Duration // the cap
	MinUptime time.Duration // a run at least this long resets the count
}

// Default is the shipped policy: 100 ms, doubling, up to 30 s; 10 s up
// resets it.
func Default() Policy {
	return Policy{First: DefaultFirst, Max: DefaultMax, MinUptime: DefaultMinUptime}
}

// FromEnv returns the default policy with the durations getenv overrides.
// A value that is not a duration, or is out of range, is reported and the
// default kept in its place, so a typo never turns the back-off off.
func FromEnv(getenv func(string) string) (Policy, []error) {
	p := Default()
	var errs []error
	for _, f := range []struct {
		name     string
		to       *time.Duration
		min, max time.Duration
	}{
		{EnvFirst, &p.First, time.Millisecond, time.Minute},
		{EnvMax, &p.Max, time.Millisecond, 10 * time.Minute},
		{EnvMinUptime, &p.MinUptime, 0, 24 * time.Hour},
	} {
		v := getenv(f.name)
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < f.min || d > f.max {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration from %s to %s such as 500ms or 30s; using %s", f.name, v, f.min, f.max, *f.to))
			continue
		}
		*f.to = d
	}
	if p.Max < p.First {
		errs = append(errs, fmt.Errorf("%s=%s is below %s=%s; using %s for both", EnvMax, p.Max, EnvFirst, p.First, p.First))
		p.Max = p.First
	}
	return p, errs
}

// Delay is the wait before the next start after failures failures in a
// row: none after the first, then First, doubling, up to Max.
func (p Policy) Delay(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := p.First
	for range failures - 2 {
		if d >= p.Max/2 {
			return p.Max
		}
		d *= 2
	}
	return min(d, p.Max)
}

// Failure is one exit that systemd will answer with a restart.
type Failure struct {
	Result string // $SERVICE_RESULT: exit-code, signal, core-dump, watchdog, oom-kill, ...
	Code   string // $EXIT_CODE: exited, killed, dumped
	Status string // $EXIT_STATUS: an exit status or a signal name
}

// String says what happened, e.g. "exit-code, status 1" or "signal KILL".
func (f Failure) String() string {
	switch {
	case f.Status == "":
		return f.Result
	case f.Code == "exited":
		return fmt.Sprintf("%s, status %s", f.Result, f.Status)
	default:
		return fmt.Sprintf("%s %s", f.Result, f.Status)
	}
}

// State is the back-off of one instance after its latest failure.
type State struct {
	Unit     string        `json:"unit"`
	Failures int           `json:"failures_in_a_row"`
	Last     Failure       `json:"last_failure"`
	FailedAt time.Time     `json:"failed_at"`
	Delay    time.Duration `json:"delay_ns"`
	Next     time.Time     `json:"next_attempt"` // FailedAt + Delay
}

// Next returns the state after a failure at now, given the state after the
// previous one (nil if there was none): the count goes on if the run that
// just failed started less than MinUptime before now, and starts again
// otherwise.
func (p Policy) Next(prev *State, unit string, f Failure, now time.Time) State {
	failures := 1
	if prev != nil && now.Sub(prev.Next) < p.MinUptime {
		failures = prev.Failures + 1
	}
	d := p.Delay(failures)
	return State{Unit: unit, Failures: failures, Last: f, FailedAt: now, Delay: d, Next: now.Add(d)}
}

// Waiting reports whether, at now, the instance is still waiting for its
// next attempt.
func (s State) Waiting(now time.Time) bool { return s.Delay > 0 && now.Before(s.Next) }
