package herd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
)

// persist records n as the instance count by starting the one-shot unit
// NAME-persist@n.service, which runs Persist as root; it returns once the
// count is recorded (the unit's READY=1). Going through a unit
// lets an operator whom polkit allows to manage this service's units, and
// nothing else, change what starts at boot: enabling unit files directly
// would need a right that covers every unit on the machine.
func (h *Herd) persist(ctx context.Context, n int, out io.Writer) error {
	// After READY=1 an earlier run may still be waiting to reload systemd:
	// stop those of other counts, and restart, not start, this count's
	// (starting an active unit does nothing). The new run reloads in their
	// place if that is still needed.
	if err := h.stopOtherPersists(ctx, h.app.Persist(n)); err != nil {
		return err
	}
	if _, err := h.restart(ctx, h.app.Persist(n)); err != nil {
		return fmt.Errorf("record %d instances for boot (see journalctl -u %s): %w", n, h.app.Persist(n), err)
	}
	switch n {
	case 0:
		fmt.Fprintf(out, "%s: no instance starts at boot\n", h.app.Target())
	case 1:
		fmt.Fprintf(out, "%s: %s starts at boot\n", h.app.Target(), h.app.Instance(1))
	default:
		fmt.Fprintf(out, "%s: instances 1-%d start at boot\n", h.app.Target(), n)
	}
	return nil
}

// Persist makes instances 1 … n, and no other, start at boot: it places
// each on its share of the CPUs (mode PlaceCPUs) or on all of them
// (PlaceNone), enables them (and the socket and target) and disables the
// other enabled instances. Then the count is recorded, and ready is called
// (the unit's READY=1, which ends appctl scale's wait). Only then, and only
// if systemd's loaded configuration no longer matches the files (an
// instance loaded with other placement, or a disabled instance its target
// still wants until the next reload), does it reload systemd, so that no
// scale waits for a daemon-reload (docs/decisions.md). The exception is an
// instance the scale is about to start whose loaded copy is out of date
// (a quick series of scales ended the runs that would have reloaded):
// systemd is reloaded before ready, or it would start on the CPUs of an
// earlier count. It is run as root by NAME-persist@.service.
func (h *Herd) Persist(ctx context.Context, n int, mode string, ready func() error, log io.Writer) error {
	if err := h.place(ctx, n, mode); err != nil {
		return err
	}
	if err := h.enableOnly(ctx, n); err != nil {
		return err
	}
	stale, err := h.staleInstances(ctx)
	if err != nil {
		return err
	}
	if idle := h.idleWithin(stale, n); len(idle) > 0 {
		// appctl scale is about to start these from systemd's loaded copy,
		// with the placement an earlier count gave them: an earlier run
		// that would have reloaded was ended by a newer scale.
		h.waitQuiet(ctx, 100*time.Millisecond, 3*time.Second)
		fmt.Fprintf(log, "reloading systemd before the count is recorded: %v would start with their placement of before\n", idle)
		if err := h.reload(ctx); err != nil {
			return err
		}
		stale = nil
	}
	if err := ready(); err != nil {
		return fmt.Errorf("report the count recorded: %w", err)
	}
	wanted, err := h.wantedButDisabled(ctx)
	if err != nil {
		return err
	}
	if len(stale) == 0 && len(wanted) == 0 {
		return nil
	}
	// appctl scale starts the new instances right after READY=1: let them
	// start before systemd stops to reload.
	h.waitQuiet(ctx, 250*time.Millisecond, 30*time.Second)
	if ctx.Err() != nil {
		return nil // stopped by a newer scale, which reloads if still needed
	}
	fmt.Fprintf(log, "reloading systemd: changed on disk since loaded: %v; disabled but still wanted by %s: %v\n", unitNames(stale), h.app.Target(), wanted)
	return h.reload(ctx)
}

// reload makes systemd read its unit files again. A run stopped by a newer
// scale meanwhile (ctx done) is not an error: the newer run reloads if that
// is still needed.
func (h *Herd) reload(ctx context.Context) error {
	if err := h.conn.ReloadContext(ctx); err != nil && ctx.Err() == nil {
		return classify(fmt.Errorf("reload systemd: %w", err))
	}
	return nil
}

// idleWithin returns the units of stale that are instances 1 … n and are
// not active, so that starting them would use their loaded copy.
func (h *Herd) idleWithin(stale []sddbus.UnitStatus, n int) []string {
	var idle []string
	for _, u := range stale {
		if i := h.app.number(u.Name); i >= 1 && i <= n && u.ActiveState != "active" && u.ActiveState != "reloading" {
			idle = append(idle, u.Name)
		}
	}
	return idle
}

// enableOnly enables instances 1 … n with the socket and the target, and
// disables every other enabled instance.
func (h *Herd) enableOnly(ctx context.Context, n int) error {
	wants, err := h.targetWants()
	if err != nil {
		return err
	}
	enable := []string{h.app.Socket(), h.app.Target()}
	for i := 1; i <= n; i++ {
		enable = append(enable, h.app.Instance(i))
	}
	if _, _, err := h.conn.EnableUnitFilesContext(ctx, enable, false, true); err != nil {
		return classify(fmt.Errorf("enable %v: %w", enable, err))
	}
	var disable []string
	for _, u := range wants {
		if num := h.app.number(u); num == 0 || num > n {
			disable = append(disable, u)
		}
	}
	if len(disable) > 0 {
		if _, err := h.conn.DisableUnitFilesContext(ctx, disable, false); err != nil {
			return classify(fmt.Errorf("disable %v: %w", disable, err))
		}
	}
	return nil
}

// wantedButDisabled returns the instances the target's loaded Wants= still
// lists though they are no longer enabled: until systemd reloads,
// systemctl start NAME.target would start them.
func (h *Herd) wantedButDisabled(ctx context.Context) ([]string, error) {
	p, err := h.conn.GetUnitPropertyContext(ctx, h.app.Target(), "Wants")
	if err != nil {
		return nil, classify(fmt.Errorf("read %s: %w", h.app.Target(), err))
	}
	enabled, err := h.targetWants()
	if err != nil {
		return nil, err
	}
	loaded, _ := p.Value.Value().([]string)
	var out []string
	for _, u := range loaded {
		if _, ok := h.app.instanceOf(u); ok && !slices.Contains(enabled, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

// stopOtherPersists stops the runs of NAME-persist@ other than keep that
// are still active (waiting to reload, or a concurrent scale's).
func (h *Herd) stopOtherPersists(ctx context.Context, keep string) error {
	return h.stopOthers(ctx, h.app.Name()+"-persist@*.service", keep, "end the earlier count's run")
}

// stopOthers stops the active units matching pattern, except keep; what
// says what the stop is for, in an error.
func (h *Herd) stopOthers(ctx context.Context, pattern, keep, what string) error {
	units, err := h.conn.ListUnitsByPatternsContext(ctx, []string{"active", "activating", "reloading"}, []string{pattern})
	if err != nil {
		return classify(fmt.Errorf("list %s: %w", pattern, err))
	}
	for _, u := range units {
		if u.Name == keep {
			continue
		}
		if _, err := h.stop(ctx, u.Name); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// staleInstances returns the loaded instances whose unit files or drop-ins
// changed since systemd read them (NeedDaemonReload), with their state.
func (h *Herd) staleInstances(ctx context.Context) ([]sddbus.UnitStatus, error) {
	loaded, err := h.conn.ListUnitsByPatternsContext(ctx, nil, []string{h.app.Name() + "@*.service"})
	if err != nil {
		return nil, classify(fmt.Errorf("list instances: %w", err))
	}
	var stale []sddbus.UnitStatus
	for _, u := range loaded {
		p, err := h.conn.GetUnitPropertyContext(ctx, u.Name, "NeedDaemonReload")
		if err != nil {
			return nil, classify(fmt.Errorf("read %s: %w", u.Name, err))
		}
		if need, _ := p.Value.Value().(bool); need {
			stale = append(stale, u)
		}
	}
	return stale, nil
}

func unitNames(us []sddbus.UnitStatus) []string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.Name
	}
	return names
}

// waitQuiet waits until, for quiet, systemd has had no job for this
// service's instances and none of them was starting or stopping, or at most
// limit. A reload while an instance waits to be restarted makes systemd 252
// schedule that restart again and count it twice in NRestarts.
func (h *Herd) waitQuiet(ctx context.Context, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	calm := time.Now()
	for time.Now().Before(deadline) && time.Since(calm) < quiet {
		busy, err := h.Busy(ctx)
		if err != nil {
			return
		}
		if busy {
			calm = time.Now()
		}
		time.Sleep(25 * time.Millisecond)
	}
}
