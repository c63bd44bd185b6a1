package autoscale

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func TestPolicyScalesUpAtOnce(t *testing.T) {
	p := NewPolicy(Spec{Min: 1, Max: 4, CPU: 70, Window: time.Minute}, t0, 1)
	d := p.Decide(Sample{Time: at(1), Running: 1, CPU: 1.8})
	if d.To != 3 || !strings.Contains(d.Reason, "CPU 180% per instance") {
		t.Fatalf("1 instance at 180%% of a CPU, target 70%%: %+v, want 3 (ceil(1.8/0.7))", d)
	}
	d = p.Decide(Sample{Time: at(2), Running: 3, CPU: 2.7})
	if d.To != 4 {
		t.Fatalf("3 instances at 90%%: %+v, want the maximum 4", d)
	}
}

func TestPolicyToleratesLoadNearTarget(t *testing.T) {
	p := NewPolicy(Spec{Min: 1, Max: 8, CPU: 50, Window: 0}, t0, 4)
	for _, cpu := range []float64{1.81, 2.0, 2.19} { // 45%..55% per instance
		if d := p.Decide(Sample{Time: at(1), Running: 4, CPU: cpu}); d.Changes() {
			t.Errorf("4 instances using %.2f CPUs against 50%%: %+v, want no change", cpu, d)
		}
	}
	// 2 × 0.7 / 0.7 is exactly 2, whatever floating point makes of it.
	p = NewPolicy(Spec{Min: 1, Max: 8, CPU: 70, Window: 0}, t0, 4)
	if d := p.Decide(Sample{Time: at(1), Running: 4, CPU: 1.4}); d.To != 2 {
		t.Errorf("4 instances using 1.4 CPUs against 70%%: %+v, want 2", d)
	}
}

func TestPolicyScalesDownAfterTheWindow(t *testing.T) {
	p := NewPolicy(Spec{Min: 1, Max: 4, CPU: 70, Window: 10 * time.Second}, t0, 4)
	for sec := 1.0; sec < 10; sec++ {
		if d := p.Decide(Sample{Time: at(sec), Running: 4, CPU: 0.1}); d.Changes() {
			t.Fatalf("idle at %.0fs into the window: %+v, want no change yet", sec, d)
		}
	}
	d := p.Decide(Sample{Time: at(10.5), Running: 4, CPU: 0.1})
	if d.To != 1 || !strings.Contains(d.Reason, "at most 1 needed for 10s") {
		t.Fatalf("idle for the whole window: %+v, want 1", d)
	}
}

func TestPolicyShrinksToTheLargestRecentNeed(t *testing.T) {
	p := NewPolicy(Spec{Min: 1, Max: 8, CPU: 50, Window: 10 * time.Second}, at(-20), 6)
	p.Decide(Sample{Time: at(0), Running: 6, CPU: 1.9}) // wants 4
	d := p.Decide(Sample{Time: at(5), Running: 6, CPU: 0.2})
	if d.To != 4 {
		t.Fatalf("needed 4 five seconds ago, 1 now: %+v, want 4", d)
	}
}

func TestPolicyScalesToZeroAndKeepsAnInstanceTheSocketStarted(t *testing.T) {
	p := NewPolicy(Spec{Min: 0, Max: 2, CPU: 70, Window: 5 * time.Second}, t0, 1)
	p.Decide(Sample{Time: at(1), Running: 1})
	if d := p.Decide(Sample{Time: at(6), Running: 1}); d.To != 0 {
		t.Fatalf("idle for the window with MIN 0: %+v, want 0", d)
	}
	if d := p.Decide(Sample{Time: at(7), Running: 0}); d.Changes() || !strings.Contains(d.Reason, "no instance running") {
		t.Fatalf("no instance: %+v, want none", d)
	}
	// A connection made the socket start app@1; it served one request.
	for sec := 8.0; sec <= 12; sec++ {
		if d := p.Decide(Sample{Time: at(sec), Running: 1, CPU: 0.005}); d.Changes() {
			t.Fatalf("%.0fs after the socket started an instance: %+v, want it kept a window", sec-8, d)
		}
	}
	if d := p.Decide(Sample{Time: at(13.5), Running: 1}); d.To != 0 {
		t.Fatalf("idle a window after the socket started it: %+v, want 0", d)
	}
}

func TestPolicyBounds(t *testing.T) {
	p := NewPolicy(Spec{Min: 2, Max: 3, CPU: 70, Window: time.Hour}, t0, 0)
	if d := p.Decide(Sample{Time: at(1), Running: 0}); d.To != 2 || !strings.Contains(d.Reason, "below the minimum of 2") {
		t.Errorf("below MIN: %+v, want 2", d)
	}
	p = NewPolicy(Spec{Min: 1, Max: 3, CPU: 70, Window: time.Hour}, t0, 6)
	if d := p.Decide(Sample{Time: at(1), Running: 6, CPU: 6}); d.To != 3 || !strings.Contains(d.Reason, "above the maximum of 3") {
		t.Errorf("above MAX: %+v, want 3 at once, whatever the window", d)
	}
}

func TestPolicyQueueSignal(t *testing.T) {
	p := NewPolicy(Spec{Min: 1, Max: 8, CPU: 70, Window: time.Minute, Queue: 10}, t0, 1)
	d := p.Decide(Sample{Time: at(1), Running: 1, CPU: 0.7, Queued: 35})
	if d.To != 4 || !strings.Contains(d.Reason, "35 connections queued") {
		t.Errorf("35 queued, 10 per instance: %+v, want 4", d)
	}
}
