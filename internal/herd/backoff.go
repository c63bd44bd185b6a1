package herd

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// instanceName is what systemd allows in an instance name that appctl
// also uses as a file name.
var instanceName = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+$`)

// ParseInstance splits an instance unit name such as app@3.service into its
// service and instance name.
func ParseInstance(unit string) (App, string, error) {
	name, rest, ok := strings.Cut(unit, "@")
	inst, isService := strings.CutSuffix(rest, ".service")
	if !ok || !isService || !instanceName.MatchString(inst) || strings.HasPrefix(inst, ".") {
		return App{}, "", usagef("invalid instance unit %q: want NAME@INSTANCE.service, e.g. app@3.service", unit)
	}
	app, err := NewApp(name)
	return app, inst, err
}

// StopSettings returns the unit's Restart= setting and TimeoutStopSec=.
func (h *Herd) StopSettings(ctx context.Context, unit string) (restart string, timeout time.Duration, err error) {
	props, err := h.conn.GetUnitTypePropertiesContext(ctx, unit, "Service")
	if err != nil {
		return "", 0, classify(fmt.Errorf("read the restart settings of %s: %w", unit, err))
	}
	restart, _ = props["Restart"].(string)
	usec, _ := props["TimeoutStopUSec"].(uint64)
	return restart, time.Duration(usec) * time.Microsecond, nil
}

// PendingJob returns the type of the job systemd has queued or is running
// for unit (start, stop, restart, ...), or "" if there is none.
func (h *Herd) PendingJob(ctx context.Context, unit string) (string, error) {
	jobs, err := h.conn.ListJobsContext(ctx)
	if err != nil {
		return "", classify(fmt.Errorf("list systemd's jobs: %w", err))
	}
	for _, j := range jobs {
		if j.Unit == unit {
			return j.JobType, nil
		}
	}
	return "", nil
}

// WaitUnlessAsked waits d, or less if someone asks systemd to stop or
// restart unit meanwhile; it returns the type of that job, or "" after the
// whole wait. A start job (the socket's, or an operator's start of an
// instance that is already on its way) does not end the wait. It looks
// every poll.
func (h *Herd) WaitUnlessAsked(ctx context.Context, unit string, d, poll time.Duration) (string, error) {
	deadline := time.Now().Add(d)
	for {
		job, err := h.PendingJob(ctx, unit)
		if err != nil {
			return "", err
		}
		if job != "" && job != "start" && job != "verify-active" {
			return job, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(min(poll, left)):
		}
	}
}
