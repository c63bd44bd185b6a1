package herd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Scale makes exactly instances 1 … n run and start at boot, where n is
// what want returns for the number of instances running now (an error from
// want changes nothing). First the count is recorded and each instance's
// placement written (see Persist), so that new instances start on their
// CPUs; then the new instances start concurrently and count once systemd
// reports them ready. If one fails, the instances this call started above
// the count recorded before are stopped again and that count is recorded
// again; instances within it (one restarting after a crash, say) are left
// to systemd, which was already restarting them. Then the
// instances above n, or not numbered, are stopped one at a time, highest
// first, each draining its requests. With n = 0 the socket keeps
// listening, and its next connection starts instance 1.
func (h *Herd) Scale(ctx context.Context, want func(running int) (int, error), out io.Writer) error {
	snap, err := h.Snapshot(ctx)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	count := 0
	for _, in := range snap.Instances {
		running[in.Unit] = in.Running()
		if in.Running() {
			count++
		}
	}
	n, err := want(count)
	if err != nil {
		return err
	}
	var missing []string
	for i := 1; i <= n; i++ {
		if !running[h.app.Instance(i)] {
			missing = append(missing, h.app.Instance(i))
		}
	}
	if err := h.persist(ctx, n, out); err != nil {
		return err
	}
	if err := h.startAll(ctx, missing, snap.Enabled(), out); err != nil {
		if perr := h.persist(context.WithoutCancel(ctx), snap.Enabled(), out); perr != nil {
			fmt.Fprintf(out, "could not record the previous count again: %v\n", perr)
		}
		return err
	}
	extra := extras(snap.Instances, n)
	for _, unit := range extra {
		took, err := h.stop(ctx, unit)
		if err != nil {
			return fmt.Errorf("scale to %d: %w", n, err)
		}
		fmt.Fprintf(out, "%s stopped (drained in %s)\n", unit, round(took))
	}
	fmt.Fprintf(out, "%s: %s running\n", h.app.Name(), Instances(n))
	return nil
}

// extras are the instances to stop when scaling to n: running or starting,
// numbered above n or not numbered, highest first.
func extras(instances []Instance, n int) []string {
	var out []string
	for _, in := range slices.Backward(instances) {
		if (in.Number > n || in.Number == 0) && in.State != "inactive" && in.State != "failed" {
			out = append(out, in.Unit)
		}
	}
	return out
}

// startAll starts units concurrently and waits until each is ready. If any
// fails, it stops again every unit it started numbered above keep, the
// count that was to run before, and returns the failures.
func (h *Herd) startAll(ctx context.Context, units []string, keep int, out io.Writer) error {
	var (
		mu      sync.Mutex
		failed  []error
		started []string // units systemd accepted a start job for
		wg      sync.WaitGroup
	)
	for _, unit := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := h.start(ctx, unit)
			mu.Lock()
			defer mu.Unlock()
			var jobErr *JobError
			if err == nil || errors.As(err, &jobErr) {
				started = append(started, unit)
			}
			if err != nil {
				failed = append(failed, err)
				if jobErr != nil {
					fmt.Fprintf(out, "%s failed to become ready: %v\n", unit, err)
				}
				return
			}
			fmt.Fprintf(out, "%s ready in %s\n", unit, round(took))
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	h.rollback(ctx, slices.DeleteFunc(started, func(u string) bool {
		i := h.app.number(u)
		return i >= 1 && i <= keep
	}), out)
	for _, err := range failed {
		if errors.Is(err, ErrPermission) || errors.Is(err, ErrUnreachable) {
			return err
		}
	}
	return fmt.Errorf("%d of %d instances did not become ready (see appctl logs): %w", len(failed), len(units), errors.Join(failed...))
}

// rollback stops units again, highest first.
func (h *Herd) rollback(ctx context.Context, units []string, out io.Writer) {
	if len(units) == 0 {
		return
	}
	slices.SortFunc(units, h.compareUnits)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for _, unit := range slices.Backward(units) {
		if _, err := h.stop(stopCtx, unit); err != nil {
			fmt.Fprintf(out, "could not stop %s again: %v\n", unit, err)
		}
	}
	fmt.Fprintf(out, "stopped the %d instances this command started\n", len(units))
}

func round(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}
