package autoscale

import (
	"fmt"
	"math"
	"time"
)

// tolerance is how far the observed utilisation may be from the target
// before the herd changes size (Kubernetes' HPA uses the same 10%), so
// that a load right at the target does not flap between two sizes.
const tolerance = 0.1

// idleCPU is the CPU (in CPUs, for the whole herd) below which the herd
// counts as idle and asks for no instance at all, so that MIN 0 can stop
// it: an idle instance still uses a little for its health checks. A
// trickle of requests below it lets the herd stop too; the next request
// then starts an instance, which runs at least a window.
const idleCPU = 0.01

// Sample is one look at the herd.
type Sample struct {
	Time    time.Time
	Running int     // instances up
	CPU     float64 // CPUs the instances used since the previous sample
	Queued  uint64  // connections waiting in the socket's accept queue
}

// Decision is the policy's answer to one sample: the size to go to, and
// why.
type Decision struct {
	Time    time.Time `json:"time"`
	From    int       `json:"from"`
	To      int       `json:"to"`
	Desired int       `json:"desired"` // what this sample alone asks for, within MIN..MAX
	Reason  string    `json:"reason"`
}

// Changes reports whether the decision resizes the herd.
func (d Decision) Changes() bool { return d.To != d.From }

// Policy turns samples into sizes. It remembers what each sample asked for
// during the last window, because the herd shrinks only to the largest of
// those: a dip in the load does not stop instances that the next burst
// needs again.
type Policy struct {
	spec    Spec
	recs    []recommendation
	running int // Running in the previous sample
}

type recommendation struct {
	at time.Time
	n  int
}

// NewPolicy starts a policy at now with the herd at running instances.
// That size counts as recommended at now, so a controller that just
// started (or restarted) shrinks nothing during its first window.
func NewPolicy(spec Spec, now time.Time, running int) *Policy {
	return &Policy{spec: spec, recs: []recommendation{{now, running}}, running: running}
}

// Decide returns the size for the herd after sample s.
func (p *Policy) Decide(s Sample) Decision {
	desired, why := p.desired(s)
	if s.Running > p.running {
		// Instances appeared that the policy did not ask for: the socket
		// started one for a connection after a scale to zero, or an
		// operator started some. Keep them at least a window.
		p.remember(s.Time, s.Running)
	}
	p.running = s.Running
	p.remember(s.Time, desired)
	d := Decision{Time: s.Time, From: s.Running, To: s.Running, Desired: desired, Reason: why}
	switch {
	case s.Running < p.spec.Min:
		d.To = desired // at least MIN
		d.Reason += fmt.Sprintf("; below the minimum of %d", p.spec.Min)
	case s.Running > p.spec.Max:
		d.To = desired // at most MAX
		d.Reason += fmt.Sprintf("; above the maximum of %d", p.spec.Max)
	case desired > s.Running:
		d.To = desired
	case desired < s.Running:
		if stable := p.stable(s.Time); stable < s.Running {
			d.To = stable
			d.Reason += fmt.Sprintf("; at most %d needed for %s", stable, p.spec.Window)
		}
	}
	return d
}

// desired is what s alone asks for, within MIN..MAX, and why.
func (p *Policy) desired(s Sample) (int, string) {
	target := float64(p.spec.CPU) / 100
	n, why := 0, "no instance running"
	if s.Running > 0 {
		per := s.CPU / float64(s.Running)
		why = fmt.Sprintf("CPU %.0f%% per instance over %s (target %d%%)", 100*per, plural(s.Running), p.spec.CPU)
		switch {
		case s.CPU < idleCPU:
			why += ", idle"
		case math.Abs(per/target-1) <= tolerance:
			n = s.Running
		default:
			n = ceil(s.CPU / target)
		}
	}
	if p.spec.Queue > 0 && s.Queued > 0 {
		q := ceil(float64(s.Queued) / float64(p.spec.Queue))
		why += fmt.Sprintf(", %d connections queued (target %d per instance)", s.Queued, p.spec.Queue)
		n = max(n, q)
	}
	return min(max(n, p.spec.Min), p.spec.Max), why
}

// remember records a recommendation and forgets those older than the
// window.
func (p *Policy) remember(at time.Time, n int) {
	keep := p.recs[:0]
	for _, r := range p.recs {
		if at.Sub(r.at) <= p.spec.Window {
			keep = append(keep, r)
		}
	}
	p.recs = append(keep, recommendation{at, n})
}

// stable is the largest size recommended during the window before now.
func (p *Policy) stable(now time.Time) int {
	n := 0
	for _, r := range p.recs {
		if now.Sub(r.at) <= p.spec.Window {
			n = max(n, r.n)
		}
	}
	return n
}

// ceil rounds up, forgiving the rounding error of float division (2 × 0.7
// / 0.7 must be 2, not 3).
func ceil(x float64) int { return int(math.Ceil(x - 1e-9)) }

func plural(n int) string {
	if n == 1 {
		return "1 instance"
	}
	return fmt.Sprintf("%d instances", n)
}
