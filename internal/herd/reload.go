package herd

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Reload restarts every running instance, one at a time, without losing
// capacity: it first starts a surge instance numbered above all others and
// waits until it is ready, then restarts each instance and waits until it
// is ready again before the next, and finally stops the surge instance.
// It stops at the first instance that does not become ready within
// timeout: the instances not reached yet keep serving what they ran
// before, and systemd keeps retrying the failed one.
func (h *Herd) Reload(ctx context.Context, timeout time.Duration, out io.Writer) error {
	snap, err := h.Snapshot(ctx)
	if err != nil {
		return err
	}
	var units []string
	highest := 0
	for _, in := range snap.Instances {
		highest = max(highest, in.Number)
		if in.Running() {
			units = append(units, in.Unit)
		}
	}
	if len(units) == 0 {
		fmt.Fprintf(out, "%s: no instance is running; nothing to reload\n", h.app.Name())
		return nil
	}
	surge := h.app.Instance(highest + 1)
	if err := h.timedStart(ctx, timeout, surge, "surge instance", out); err != nil {
		h.stopQuietly(ctx, surge)
		return fmt.Errorf("reload: the surge instance did not become ready, nothing was restarted: %w", err)
	}
	defer h.stopSurge(ctx, surge, out)
	for k, unit := range units {
		jctx, cancel := context.WithTimeout(ctx, timeout)
		took, err := h.restart(jctx, unit)
		cancel()
		if err != nil {
			return fmt.Errorf("reload stopped at %s (%d of %d restarted; the rest keep serving the previous version): %w",
				unit, k, len(units), err)
		}
		fmt.Fprintf(out, "%s restarted, ready in %s (%d/%d)\n", unit, round(took), k+1, len(units))
	}
	fmt.Fprintf(out, "%s: %s reloaded\n", h.app.Name(), Instances(len(units)))
	return nil
}

func (h *Herd) timedStart(ctx context.Context, timeout time.Duration, unit, what string, out io.Writer) error {
	jctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	took, err := h.start(jctx, unit)
	if err == nil {
		fmt.Fprintf(out, "%s (%s) ready in %s\n", unit, what, round(took))
	}
	return err
}

func (h *Herd) stopSurge(ctx context.Context, surge string, out io.Writer) {
	if took, err := h.stop(context.WithoutCancel(ctx), surge); err != nil {
		fmt.Fprintf(out, "could not stop the surge instance %s: %v\n", surge, err)
	} else {
		fmt.Fprintf(out, "%s (surge instance) stopped (drained in %s)\n", surge, round(took))
	}
}

func (h *Herd) stopQuietly(ctx context.Context, unit string) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	_, _ = h.stop(sctx, unit)
}
