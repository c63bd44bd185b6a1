// Package autoscale sizes a service's herd to its load, in the manner of
// Kubernetes' HorizontalPodAutoscaler: every second it measures the CPU the
// instances use (and, if asked, the connections waiting in the socket's
// accept queue), computes desired = ceil(current × observed / target),
// scales up at once, and scales down only to the largest size recommended
// during the stabilisation window, within the bounds MIN..MAX.
//
// The controller runs as NAME-autoscale@SPEC.service, the settings being
// the instance name (see Spec), and resizes the herd through the same path
// as appctl scale. It is never in the data path: if it stops or fails, the
// herd keeps the size it has.
package autoscale

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/unitkit/unitkit/internal/herd"
)

// Defaults and bounds of the settings.
const (
	DefaultCPU    = 70               // percent of one CPU per instance
	DefaultWindow = 60 * time.Second // scale-down stabilisation window
	MaxWindow     = time.Hour
	MaxQueue      = 1_000_000
)

// Off is the setting that turns autoscaling off.
const Off = herd.AutoscaleOff

// Spec is one autoscaling setting. Its String is the controller unit's
// instance name, e.g. "1-4:cpu70:window1m0s" or "0-8:cpu50:window30s:queue16"
// (systemd unit names allow letters, digits and ":-_.").
type Spec struct {
	Min, Max int
	// CPU is the target utilisation, in percent of one CPU per instance:
	// the herd grows when its instances use more than that on average.
	CPU int
	// Window is how long the herd must have needed fewer instances before
	// it shrinks.
	Window time.Duration
	// Queue, if not 0, is the target number of connections waiting in the
	// socket's accept queue per instance: a signal only the socket's owner
	// has, which grows the herd before its CPU shows the load.
	Queue int
}

// String renders the spec as the controller's instance name.
func (s Spec) String() string {
	out := fmt.Sprintf("%d-%d:cpu%d:window%s", s.Min, s.Max, s.CPU, s.Window)
	if s.Queue > 0 {
		out += fmt.Sprintf(":queue%d", s.Queue)
	}
	return out
}

// Describe says what the spec does, for people.
func (s Spec) Describe() string {
	out := fmt.Sprintf("%d to %d instances, target %d%% of a CPU per instance, scale-down after %s", s.Min, s.Max, s.CPU, s.Window)
	if s.Queue > 0 {
		out += fmt.Sprintf(", or %d queued connections per instance", s.Queue)
	}
	return out
}

// ParseRange parses MIN-MAX, the argument of appctl autoscale.
func ParseRange(arg string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(arg, "-")
	lo, errA := wholeNumber(a)
	hi, errB := wholeNumber(b)
	if !ok || errA != nil || errB != nil {
		return 0, 0, fmt.Errorf("invalid range %q: want MIN-MAX with whole numbers, e.g. 1-4 or 0-8", arg)
	}
	return lo, hi, nil
}

func wholeNumber(s string) (int, error) {
	if s == "" || len(s) > 7 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return strconv.Atoi(s)
}

// Validate checks the spec against limit, the largest count appctl scale
// accepts, and says what to change.
func (s Spec) Validate(limit int) error {
	switch {
	case s.Min < 0:
		return fmt.Errorf("MIN is %d: want 0 or more", s.Min)
	case s.Max < 1:
		return fmt.Errorf("MAX is %d: want at least 1 (appctl scale 0 stops every instance without autoscaling)", s.Max)
	case s.Min > s.Max:
		return fmt.Errorf("MIN %d is above MAX %d: give MIN-MAX with MIN at most MAX, e.g. %d-%d", s.Min, s.Max, s.Max, s.Min)
	case s.Max > limit:
		return fmt.Errorf("MAX %d exceeds the limit of %d instances (raise it with APPCTL_MAX_INSTANCES)", s.Max, limit)
	case s.CPU < 1 || s.CPU > 100:
		return fmt.Errorf("--cpu %d: want a percentage of one CPU from 1 to 100, e.g. 70", s.CPU)
	case s.Window < 0 || s.Window > MaxWindow:
		return fmt.Errorf("--window %s: want a duration from 0s to %s, e.g. 60s", s.Window, MaxWindow)
	case s.Window%time.Millisecond != 0:
		return fmt.Errorf("--window %s: give it in whole milliseconds", s.Window)
	case s.Queue < 0 || s.Queue > MaxQueue:
		return fmt.Errorf("--queue %d: want a number of waiting connections per instance from 1 to %d, or 0 for none", s.Queue, MaxQueue)
	}
	return nil
}

// ParseSpec parses a controller's instance name, which must be exactly
// what Spec.String renders (so one setting has one unit name).
func ParseSpec(name string, limit int) (Spec, error) {
	parts := strings.Split(name, ":")
	bad := fmt.Errorf("invalid autoscale setting %q: want MIN-MAX:cpuP:windowD[:queueN] as appctl autoscale writes it, e.g. 1-4:cpu70:window1m0s", name)
	if len(parts) < 3 || len(parts) > 4 {
		return Spec{}, bad
	}
	var s Spec
	var err error
	if s.Min, s.Max, err = ParseRange(parts[0]); err != nil {
		return Spec{}, bad
	}
	cpu, ok := strings.CutPrefix(parts[1], "cpu")
	if s.CPU, err = wholeNumber(cpu); !ok || err != nil {
		return Spec{}, bad
	}
	window, ok := strings.CutPrefix(parts[2], "window")
	if s.Window, err = time.ParseDuration(window); !ok || err != nil {
		return Spec{}, bad
	}
	if len(parts) == 4 {
		q, ok := strings.CutPrefix(parts[3], "queue")
		if s.Queue, err = wholeNumber(q); !ok || err != nil || s.Queue == 0 {
			return Spec{}, bad
		}
	}
	if s.String() != name {
		return Spec{}, bad
	}
	if err := s.Validate(limit); err != nil {
		return Spec{}, fmt.Errorf("autoscale setting %q: %w", name, err)
	}
	return s, nil
}
