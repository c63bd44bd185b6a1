package herd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Placement modes ($APPCTL_PLACEMENT, read by appctl persist).
const (
	// PlaceCPUs gives every instance its own share of the CPUs.
	PlaceCPUs = "cpus"
	// PlaceNone lets every instance run on every CPU.
	PlaceNone = "none"
)

// unitDir is where systemd reads the administrator's units and drop-ins.
const unitDir = "/etc/systemd/system"

// placementDropIn is the drop-in, per instance, that holds its CPUs.
const placementDropIn = "50-placement.conf"

// placement returns the CPUs instance i (1 … n) runs on: with at least as
// many instances as CPUs, one CPU each, in turn; with fewer, a contiguous
// share of them, so that n instances together use every CPU. Pinned, Go
// sizes GOMAXPROCS to the share, and the instances stop competing for the
// same CPUs (see docs/decisions.md for the measurements). It is nil for
// an i outside 1 … n.
func placement(i, n int, cpus []int) []int {
	if n <= 0 || i < 1 || i > n || len(cpus) == 0 {
		return nil
	}
	if n >= len(cpus) {
		return []int{cpus[(i-1)%len(cpus)]}
	}
	size, extra := len(cpus)/n, len(cpus)%n
	start := (i-1)*size + min(i-1, extra)
	if i-1 < extra {
		size++
	}
	return cpus[start : start+size]
}

// place writes the placement drop-ins of instances 1 … n (none with
// PlaceNone) and moves the running instances' threads onto their CPUs at
// once, so that no restart is needed (Go then adjusts GOMAXPROCS by
// itself). Instances above n keep a drop-in if they had one, rewritten to
// the placement every count of at least one instance per CPU gives them,
// so that systemd's loaded copy of a stopped instance stays current across
// most scale changes and needs no reload. It runs as root, from Persist.
func (h *Herd) place(ctx context.Context, n int, mode string) error {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return fmt.Errorf("read the CPUs available: %w", err)
	}
	cpus := cpuList(set)
	old, _ := filepath.Glob(filepath.Join(unitDir, h.app.Name()+"@*.service.d", placementDropIn))
	for _, f := range old {
		unit := strings.TrimSuffix(filepath.Base(filepath.Dir(f)), ".d")
		i := h.app.number(unit)
		if mode == PlaceCPUs && i > 0 && i <= n {
			continue // rewritten below
		}
		if mode == PlaceCPUs && i > n {
			if err := h.writePlacement(i, placement(i, max(i, len(cpus)), cpus)); err != nil {
				return err
			}
			continue
		}
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("remove %s: %w", f, err)
		}
		_ = os.Remove(filepath.Dir(f)) // only if nothing else is in it
	}
	for i := 1; i <= n; i++ {
		share := cpus
		if mode == PlaceCPUs {
			share = placement(i, n, cpus)
			if err := h.writePlacement(i, share); err != nil {
				return err
			}
		}
		h.moveRunning(ctx, h.app.Instance(i), share)
	}
	return nil
}

// writePlacement writes instance i's drop-in unless it already says the
// same: systemd marks a loaded unit as needing a reload when a drop-in's
// time changes, whatever its content.
func (h *Herd) writePlacement(i int, share []int) error {
	dir := filepath.Join(unitDir, h.app.Instance(i)+".d")
	body, err := placementText(h.app, i, share)
	if err != nil {
		return fmt.Errorf("placement of %s: %w", h.app.Instance(i), err)
	}
	path := filepath.Join(dir, placementDropIn)
	if old, err := os.ReadFile(path); err == nil && string(old) == body {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("placement of %s: %w", h.app.Instance(i), err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return fmt.Errorf("placement of %s: %w", h.app.Instance(i), err)
	}
	return nil
}

// placementText is the drop-in that runs instance i of app on the CPUs
// of share. An empty share is refused: CPUAffinity= with no CPUs would
// put the instance on every one.
func placementText(app App, i int, share []int) (string, error) {
	if len(share) == 0 {
		return "", fmt.Errorf("no CPU for instance %d", i)
	}
	for _, c := range share {
		if c < 0 {
			return "", fmt.Errorf("CPU %d for instance %d", c, i)
		}
	}
	return fmt.Sprintf("# Written by appctl scale: instance %d runs on its own share of the CPUs.\n"+
		"# Set APPCTL_PLACEMENT=none in /etc/default/%s and scale again to let every instance use every CPU.\n"+
		"[Service]\nCPUAffinity=%s\n", i, app.Name(), cpuString(share)), nil
}

// moveRunning sets the affinity of every thread of the unit's main process,
// if it runs. Failures only delay the placement to the next start.
func (h *Herd) moveRunning(ctx context.Context, unit string, cpus []int) {
	p, err := h.conn.GetServicePropertyContext(ctx, unit, "MainPID")
	if err != nil {
		return
	}
	pid, _ := p.Value.Value().(uint32)
	if pid == 0 {
		return
	}
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = unix.SchedSetaffinity(tid, &set)
		}
	}
}

func cpuList(set unix.CPUSet) []int {
	var cpus []int
	for c := 0; c < len(set)*64; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

func cpuString(cpus []int) string {
	s := make([]string, len(cpus))
	for k, c := range cpus {
		s[k] = strconv.Itoa(c)
	}
	return strings.Join(s, " ")
}
