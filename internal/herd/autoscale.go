package herd

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// AutoscaleOff is the setting of the controller run that turns
// autoscaling off: it stops and disables the others, and exits.
const AutoscaleOff = "off"

// Autoscaler is the controller unit that autoscales the herd with setting
// spec, e.g. app-autoscale@1-4:cpu70:window1m0s.service (see package
// autoscale).
func (a App) Autoscaler(spec string) string { return a.name + "-autoscale@" + spec + ".service" }

// autoscalerPattern matches every controller unit of the app.
func (a App) autoscalerPattern() string { return a.name + "-autoscale@*.service" }

// autoscalerSpec returns the setting of a controller unit of the app.
func (a App) autoscalerSpec(unit string) (string, bool) {
	return instancePart(unit, a.name+"-autoscale@")
}

// ActiveAutoscaler returns the setting of the controller that runs now,
// or "" if autoscaling is off.
func (h *Herd) ActiveAutoscaler(ctx context.Context) (string, error) {
	units, err := h.conn.ListUnitsByPatternsContext(ctx, []string{"active"}, []string{h.app.autoscalerPattern()})
	if err != nil {
		return "", classify(fmt.Errorf("list %s: %w", h.app.autoscalerPattern(), err))
	}
	for _, u := range units {
		if spec, ok := h.app.autoscalerSpec(u.Name); ok && spec != AutoscaleOff {
			return spec, nil
		}
	}
	return "", nil
}

// StartAutoscaler starts the controller with setting spec and waits until
// it has taken over (its READY=1): the other controllers are stopped and
// it is the one that starts with the socket. Starting the one that runs
// already changes nothing.
func (h *Herd) StartAutoscaler(ctx context.Context, spec string) error {
	unit := h.app.Autoscaler(spec)
	if _, err := h.start(ctx, unit); err != nil {
		return fmt.Errorf("%w (see journalctl -u %s)", err, unit)
	}
	return nil
}

// KeepAutoscaler is run as root by the controller with setting spec when
// it starts (AutoscaleOff: autoscaling off): it enables that controller
// into the socket's wants, so that it comes back with the socket after a
// reboot, disables every other and stops those that run. Then ready is
// called, and, if systemd's loaded dependencies of the socket no longer
// match the files, systemd reloads once the herd is quiet.
func (h *Herd) KeepAutoscaler(ctx context.Context, spec string, ready func() error, log io.Writer) error {
	keep := h.app.Autoscaler(spec)
	if spec != AutoscaleOff {
		if _, _, err := h.conn.EnableUnitFilesContext(ctx, []string{keep}, false, true); err != nil {
			return classify(fmt.Errorf("enable %s: %w", keep, err))
		}
	}
	enabled, err := h.enabledAutoscalers()
	if err != nil {
		return err
	}
	if others := slices.DeleteFunc(enabled, func(u string) bool { return u == keep }); len(others) > 0 {
		if _, err := h.conn.DisableUnitFilesContext(ctx, others, false); err != nil {
			return classify(fmt.Errorf("disable %v: %w", others, err))
		}
	}
	if err := h.stopOtherAutoscalers(ctx, keep); err != nil {
		return err
	}
	if err := ready(); err != nil {
		return fmt.Errorf("report the autoscaler ready: %w", err)
	}
	return h.reloadIfSocketWantsStale(ctx, log)
}

// enabledAutoscalers lists the controllers linked into the socket's
// .wants directory.
func (h *Herd) enabledAutoscalers() ([]string, error) {
	out, err := wants(h.app.Socket(), h.app.autoscalerSpec)
	if err != nil {
		return nil, fmt.Errorf("read the autoscalers enabled for boot: %w", err)
	}
	return out, nil
}

// stopOtherAutoscalers stops every running controller but keep. Each
// finishes the resize it may be making before it exits.
func (h *Herd) stopOtherAutoscalers(ctx context.Context, keep string) error {
	return h.stopOthers(ctx, h.app.autoscalerPattern(), keep, "stop the earlier autoscaler")
}

// reloadIfSocketWantsStale reloads systemd if the socket's loaded Wants=
// lists a controller that is no longer enabled, or misses the one that is:
// until then, restarting the socket would start the wrong one.
func (h *Herd) reloadIfSocketWantsStale(ctx context.Context, log io.Writer) error {
	p, err := h.conn.GetUnitPropertyContext(ctx, h.app.Socket(), "Wants")
	if err != nil {
		return classify(fmt.Errorf("read %s: %w", h.app.Socket(), err))
	}
	enabled, err := h.enabledAutoscalers()
	if err != nil {
		return err
	}
	loadedAll, _ := p.Value.Value().([]string)
	var loaded []string
	for _, u := range loadedAll {
		if _, ok := h.app.autoscalerSpec(u); ok {
			loaded = append(loaded, u)
		}
	}
	slices.Sort(loaded)
	slices.Sort(enabled)
	if slices.Equal(loaded, enabled) {
		return nil
	}
	h.waitQuiet(ctx, 250*time.Millisecond, 30*time.Second)
	fmt.Fprintf(log, "reloading systemd: %s wants %v, enabled are %v\n", h.app.Socket(), loaded, enabled)
	return h.DaemonReload(ctx)
}

// Busy reports whether the herd is changing: systemd has a job for one of
// the instances, or one is starting or stopping. Measurements taken then
// say little about the load.
func (h *Herd) Busy(ctx context.Context) (bool, error) {
	jobs, err := h.conn.ListJobsContext(ctx)
	if err != nil {
		return false, classify(fmt.Errorf("list jobs: %w", err))
	}
	for _, j := range jobs {
		if strings.HasPrefix(j.Unit, h.app.Name()+"@") {
			return true, nil
		}
	}
	moving, err := h.conn.ListUnitsByPatternsContext(ctx, []string{"activating", "deactivating"}, []string{h.app.Name() + "@*.service"})
	if err != nil {
		return false, classify(fmt.Errorf("list instances: %w", err))
	}
	return len(moving) > 0, nil
}
