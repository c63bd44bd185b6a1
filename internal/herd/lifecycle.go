package herd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Start starts the socket, the instances enabled for boot and then the
// target. The instances are those linked for boot now: the target starts
// without its dependencies, because systemd's loaded copy of its Wants=
// may still name instances a scale has just disabled (Persist reloads
// systemd only after the scale has returned), and starting it the usual
// way would start those again. With wait, Start waits until each instance
// is ready; without, it only queues the jobs, for package scripts: on
// systemd 252 an instance that crash-loops stays activating across its
// restarts, and a wait for it would not end.
func (h *Herd) Start(ctx context.Context, wait bool, out io.Writer) error {
	wants, err := h.targetWants()
	if err != nil {
		return err
	}
	if !wait {
		return h.queueAll(ctx, wants, out)
	}
	if _, err := h.start(ctx, h.app.Socket()); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s listening\n", h.app.Socket())
	if err := h.each(ctx, wants, "ready", h.start, out); err != nil {
		return err
	}
	_, err = h.startAlone(ctx, h.app.Target())
	return err
}

// queueAll queues the start of the socket, of instances and of the target
// (without its dependencies), in that order.
func (h *Herd) queueAll(ctx context.Context, instances []string, out io.Writer) error {
	if err := h.queueStart(ctx, h.app.Socket(), "replace"); err != nil {
		return err
	}
	for _, unit := range instances {
		if err := h.queueStart(ctx, unit, "replace"); err != nil {
			return err
		}
	}
	if err := h.queueStart(ctx, h.app.Target(), "ignore-dependencies"); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s, %s and %s starting (not waiting; see appctl status)\n",
		h.app.Socket(), Instances(len(instances)), h.app.Target())
	return nil
}

// Stop stops every instance (each drains), then the socket and the target:
// the service stops accepting connections.
func (h *Herd) Stop(ctx context.Context, out io.Writer) error {
	snap, err := h.Snapshot(ctx)
	if err != nil {
		return err
	}
	var units []string
	for _, in := range snap.Instances {
		if in.State != "inactive" && in.State != "failed" {
			units = append(units, in.Unit)
		}
	}
	if err := h.each(ctx, units, "stopped", h.stop, out); err != nil {
		return err
	}
	for _, unit := range []string{h.app.Target(), h.app.Socket()} {
		if _, err := h.stop(ctx, unit); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "%s stopped: no longer listening\n", h.app.Socket())
	return nil
}

// Restart restarts the given instances (all running ones when none is
// given) at the same time and waits until each is ready. Connections wait
// in the socket's queue meanwhile; Reload restarts without that pause.
func (h *Herd) Restart(ctx context.Context, refs []string, out io.Writer) error {
	snap, err := h.Snapshot(ctx)
	if err != nil {
		return err
	}
	units, err := h.pick(snap, refs)
	if err != nil {
		return err
	}
	if len(units) == 0 {
		fmt.Fprintf(out, "%s: no instance is running; nothing to restart\n", h.app.Name())
		return nil
	}
	return h.each(ctx, units, "restarted, ready", h.restart, out)
}

// pick resolves instance references against the loaded instances; no
// references means every running instance.
func (h *Herd) pick(snap Snapshot, refs []string) ([]string, error) {
	known := map[string]bool{}
	var running []string
	for _, in := range snap.Instances {
		known[in.Unit] = true
		if in.Running() {
			running = append(running, in.Unit)
		}
	}
	if len(refs) == 0 {
		return running, nil
	}
	var units []string
	for _, ref := range refs {
		unit, err := h.app.ResolveInstance(ref)
		if err != nil {
			return nil, err
		}
		if !known[unit] {
			return nil, usagef("unknown instance %q: %s is neither running nor enabled (see appctl status)", ref, unit)
		}
		units = append(units, unit)
	}
	return units, nil
}

// each runs op on every unit concurrently and reports each outcome.
func (h *Herd) each(ctx context.Context, units []string, done string,
	op func(context.Context, string) (time.Duration, error), out io.Writer) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	for _, unit := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took, err := op(ctx, unit)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				fmt.Fprintf(out, "%s: %v\n", unit, err)
				return
			}
			fmt.Fprintf(out, "%s %s in %s\n", unit, done, round(took))
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
