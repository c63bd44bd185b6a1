package autoscale

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/unitkit/unitkit/internal/atomicfile"
	"github.com/unitkit/unitkit/internal/herd"
)

// DefaultEvery is how often the controller looks at the herd. Each look
// is one herd.Snapshot: a few D-Bus calls and /proc reads.
const DefaultEvery = time.Second

// scaleTimeout bounds one resize: the slowest part is a drain of an
// instance being stopped, which its DRAIN_TIMEOUT bounds.
const scaleTimeout = 3 * time.Minute

// Controller resizes one herd to its load until its context ends.
type Controller struct {
	Spec  Spec
	Herd  *herd.Herd
	Dir   string        // where the state is written (see StateDir)
	Log   io.Writer     // the journal, through standard error: <N> prefixes set priorities
	Every time.Duration // the sampling period; DefaultEvery if 0

	policy    *Policy
	prev      map[uint32]float64 // CPU seconds of each main process at the previous look
	prevAt    time.Time
	decisions int
	last      *Decision
}

// Run samples the herd every period and resizes it when the policy says
// so, until ctx ends. A resize under way when ctx ends is finished first,
// so that stopping the controller never leaves the herd half resized.
func (c *Controller) Run(ctx context.Context) error {
	every := c.Every
	if every <= 0 {
		every = DefaultEvery
	}
	snap, err := c.Herd.Snapshot(ctx)
	if err != nil {
		return err
	}
	c.policy = NewPolicy(c.Spec, snap.Time, running(snap))
	c.baseline(snap)
	fmt.Fprintf(c.Log, "<5>autoscaling %s: %s\n", c.Herd.App().Name(), c.Spec.Describe())
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := c.step(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(c.Log, "<4>autoscale: %v\n", err)
		}
	}
}

// step takes one sample, decides, resizes if needed and records the state.
func (c *Controller) step(ctx context.Context) error {
	unlock, free, err := c.Herd.TryLock()
	if err != nil {
		return err
	}
	if free {
		defer unlock()
	}
	busy, err := c.Herd.Busy(ctx)
	if err != nil {
		return err
	}
	snap, err := c.Herd.Snapshot(ctx)
	if err != nil {
		return err
	}
	st := State{Spec: c.Spec.String(), Setting: c.Spec.Describe(), Updated: snap.Time,
		Running: running(snap), Queued: snap.Socket.Queued, Last: c.last, Decisions: c.decisions}
	if !free || busy || snap.Socket.State != "active" {
		// An appctl command under way (a reload's surge instance is no load),
		// or instances starting or stopping (a crash, an operator),
		// distort the figures; measure again from here.
		switch {
		case snap.Socket.State != "active":
			st.Note = "waiting: " + snap.Socket.Unit + " is " + snap.Socket.State
		case !free:
			st.Note = "waiting: an appctl reload, scale, start, stop or import is running"
		default:
			st.Note = "waiting: instances are starting or stopping"
		}
		c.baseline(snap)
		return c.write(st)
	}
	s := Sample{Time: snap.Time, Running: st.Running, CPU: c.cpu(snap), Queued: snap.Socket.Queued}
	c.baseline(snap)
	d := c.policy.Decide(s)
	st.Desired = d.Desired
	if s.Running > 0 {
		st.CPUPercent = 100 * s.CPU / float64(s.Running)
	}
	if d.Changes() {
		// A resize takes as long as its drains; appctl status says it
		// is under way meanwhile.
		during := st
		during.Note = fmt.Sprintf("resizing %d→%d: %s", d.From, d.To, d.Reason)
		if err := c.write(during); err != nil {
			fmt.Fprintf(c.Log, "<4>autoscale: %v\n", err)
		}
		c.resize(ctx, d)
		st.Last, st.Decisions = c.last, c.decisions
	}
	return c.write(st)
}

// resize applies d through the same path as appctl scale and logs it.
func (c *Controller) resize(ctx context.Context, d Decision) {
	fmt.Fprintf(c.Log, "<5>scale %d→%d: %s\n", d.From, d.To, d.Reason)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scaleTimeout)
	defer cancel()
	err := c.Herd.Scale(sctx, func(int) (int, error) { return d.To, nil }, prefixed{c.Log, "<6>"})
	if err != nil {
		d.Reason += fmt.Sprintf(" (failed: %v)", err)
		fmt.Fprintf(c.Log, "<4>scale %d→%d failed: %v\n", d.From, d.To, err)
	}
	c.decisions++
	c.last = &d
	// The sizes the policy remembers stay: a failed resize is tried again
	// at the next look that still asks for it.
	if snap, err := c.Herd.Snapshot(ctx); err == nil {
		c.baseline(snap)
	}
}

// cpu is the CPUs the main processes used since the previous look. A
// process started since then counts with all it used.
func (c *Controller) cpu(snap herd.Snapshot) float64 {
	dt := snap.Time.Sub(c.prevAt).Seconds()
	if dt <= 0 {
		return 0
	}
	used := 0.0
	for _, in := range snap.Instances {
		if in.PID == 0 || !in.Running() {
			continue
		}
		used += max(in.CPUTime-c.prev[in.PID], 0)
	}
	return used / dt
}

// baseline remembers each main process's CPU time as the start of the
// next measurement.
func (c *Controller) baseline(snap herd.Snapshot) {
	c.prev = map[uint32]float64{}
	for _, in := range snap.Instances {
		if in.PID != 0 {
			c.prev[in.PID] = in.CPUTime
		}
	}
	c.prevAt = snap.Time
}

func (c *Controller) write(st State) error {
	if c.Dir == "" {
		return nil
	}
	return atomicfile.WriteJSON(statePath(c.Dir), st)
}

func running(snap herd.Snapshot) int {
	n := 0
	for _, in := range snap.Instances {
		if in.Running() {
			n++
		}
	}
	return n
}

// prefixed writes each line with a journal priority prefix.
type prefixed struct {
	w      io.Writer
	prefix string
}

func (p prefixed) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}
