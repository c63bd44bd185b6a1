package herd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/prometheus/procfs"

	"github.com/unitkit/unitkit/internal/backoff"
	"github.com/unitkit/unitkit/internal/memrestart"
)

// Instance is what systemd and /proc say about one instance.
type Instance struct {
	Unit     string    // e.g. app@3.service
	Name     string    // the instance name, e.g. "3"
	Number   int       // the instance number, 0 if Name is not one
	State    string    // ActiveState: active, activating, deactivating, inactive, failed
	SubState string    // e.g. running, auto-restart, dead
	PID      uint32    // MainPID, 0 when not running
	Started  time.Time // when the main process started
	Restarts uint32    // NRestarts: automatic restarts since the unit was loaded
	Status   string    // the instance's own STATUS= text
	Enabled  bool      // started at boot (wanted by the target)
	CPUTime  float64   // seconds of CPU used by the main process
	RSS      uint64    // resident memory of the main process, bytes
	FDs      int       // open file descriptors of the main process, -1 if unreadable
	// Backoff is set while the instance waits before its next attempt
	// because it keeps failing (see package backoff).
	Backoff *backoff.State
	// MemoryRestarts counts the times this boot the instance stopped
	// because its memory stayed above its limit (see package memrestart).
	MemoryRestarts int
}

// Running reports whether the instance is up (ready, or reloading).
func (i Instance) Running() bool { return i.State == "active" || i.State == "reloading" }

// Socket is what systemd and /proc say about the listening socket.
type Socket struct {
	Unit     string
	State    string
	SubState string
	Listen   []string // addresses, e.g. [::]:8080
	Queued   uint64   // connections waiting in the accept queue now
	Backlog  uint32   // the queue's configured limit
}

// Snapshot is the state of a service at one moment.
type Snapshot struct {
	App       string
	Time      time.Time
	Socket    Socket
	Instances []Instance // numbered instances first, by number
}

// Snapshot reads the state of the socket and of every instance that is
// loaded or enabled: a handful of D-Bus calls made concurrently, plus
// /proc for the main processes.
func (h *Herd) Snapshot(ctx context.Context) (Snapshot, error) {
	s := Snapshot{App: h.app.Name(), Time: time.Now()}
	units, loaded, enabled, err := h.instanceUnits(ctx)
	if err != nil {
		return s, err
	}
	s.Instances = make([]Instance, len(units))
	errs := make([]error, len(units)+1)
	var wg sync.WaitGroup
	for k, unit := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Instances[k], errs[k] = h.instance(ctx, unit, loaded[unit], enabled[unit])
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.Socket, errs[len(units)] = h.socket(ctx)
	}()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return s, err
		}
	}
	s.attachBackoff(backoff.Store{Dir: backoff.DefaultDir}.All())
	mem := memrestart.Store{Dir: memrestart.DefaultDir}.All()
	for k, in := range s.Instances {
		s.Instances[k].MemoryRestarts = mem[in.Unit].Count
	}
	return s, nil
}

// Enabled is how many of the instances start at boot: the count appctl
// scale recorded.
func (s Snapshot) Enabled() int {
	n := 0
	for _, in := range s.Instances {
		if in.Enabled {
			n++
		}
	}
	return n
}

// attachBackoff marks the instances that are not running and wait out a
// back-off at the snapshot's time.
func (s *Snapshot) attachBackoff(states map[string]backoff.State) {
	for k, in := range s.Instances {
		if st, ok := states[in.Unit]; ok && !in.Running() && st.Waiting(s.Time) {
			s.Instances[k].Backoff = &st
		}
	}
}

// instanceUnits lists the instances systemd has loaded plus those enabled,
// sorted by number, with the states systemd listed for the loaded ones.
func (h *Herd) instanceUnits(ctx context.Context) ([]string, map[string]sddbus.UnitStatus, map[string]bool, error) {
	list, err := h.conn.ListUnitsByPatternsContext(ctx, nil, []string{h.app.Name() + "@*.service"})
	if err != nil {
		return nil, nil, nil, classify(fmt.Errorf("list instances: %w", err))
	}
	var units []string
	loaded := map[string]sddbus.UnitStatus{}
	for _, u := range list {
		if _, ok := h.app.instanceOf(u.Name); ok && u.LoadState != "not-found" {
			units = append(units, u.Name)
			loaded[u.Name] = u
		}
	}
	wants, err := h.targetWants()
	if err != nil {
		return nil, nil, nil, err
	}
	enabled := map[string]bool{}
	for _, u := range wants {
		enabled[u] = true
		if !slices.Contains(units, u) {
			units = append(units, u)
		}
	}
	slices.SortFunc(units, h.compareUnits)
	return units, loaded, enabled, nil
}

// targetWants returns the enabled instances: those whose symlink is in
// the target's .wants directory. The files, not systemd's loaded
// dependencies, are the record: appctl scale changes them without making
// systemd reload (see Persist).
func (h *Herd) targetWants() ([]string, error) {
	out, err := wants(h.app.Target(), h.app.instanceOf)
	if err != nil {
		return nil, fmt.Errorf("read the instances enabled for boot: %w", err)
	}
	slices.SortFunc(out, h.compareUnits)
	return out, nil
}

// wants lists the units linked into unit's .wants directory under
// /etc/systemd/system that match says are of interest.
func wants(unit string, match func(string) (string, bool)) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(unitDir, unit+".wants"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if _, ok := match(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// compareUnits orders numbered instances by number, then the others by name.
func (h *Herd) compareUnits(a, b string) int {
	na, nb := h.app.number(a), h.app.number(b)
	switch {
	case na > 0 && nb > 0:
		return na - nb
	case na > 0:
		return -1
	case nb > 0:
		return 1
	}
	return strings.Compare(a, b)
}

// instance reads what systemd knows about one instance: its states from
// the unit list (an enabled unit that is not loaded is inactive), and four
// properties of its service. Asking for each is much cheaper for systemd
// than sending all of the unit's and the service's properties, which is
// what makes appctl status fast at 32 instances.
func (h *Herd) instance(ctx context.Context, unit string, st sddbus.UnitStatus, enabled bool) (Instance, error) {
	name, _ := h.app.instanceOf(unit)
	in := Instance{Unit: unit, Name: name, Number: h.app.number(unit), Enabled: enabled, FDs: -1,
		State: st.ActiveState, SubState: st.SubState}
	if st.Name == "" {
		in.State, in.SubState = "inactive", "dead"
		return in, nil
	}
	props := map[string]any{}
	for _, p := range []string{"MainPID", "NRestarts", "StatusText", "ExecMainStartTimestamp"} {
		v, err := h.conn.GetServicePropertyContext(ctx, unit, p)
		if err != nil {
			return in, classify(fmt.Errorf("read %s: %w", unit, err))
		}
		props[p] = v.Value.Value()
	}
	in.PID, _ = props["MainPID"].(uint32)
	in.Restarts, _ = props["NRestarts"].(uint32)
	in.Status, _ = props["StatusText"].(string)
	if usec, _ := props["ExecMainStartTimestamp"].(uint64); usec > 0 && in.PID > 0 {
		in.Started = time.UnixMicro(int64(usec))
	}
	if in.PID > 0 {
		in.readProc()
	}
	return in, nil
}

// readProc fills in the main process's CPU time, memory and descriptors;
// what cannot be read (the process just exited) stays zero, or -1 for FDs.
func (in *Instance) readProc() {
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return
	}
	p, err := fs.Proc(int(in.PID))
	if err != nil {
		return
	}
	if st, err := p.Stat(); err == nil {
		in.CPUTime = st.CPUTime()
		in.RSS = uint64(st.ResidentMemory())
	}
	if n, err := p.FileDescriptorsLen(); err == nil {
		in.FDs = n
	}
}

func (h *Herd) socket(ctx context.Context) (Socket, error) {
	unit := h.app.Socket()
	s := Socket{Unit: unit}
	u, err := h.conn.GetUnitPropertiesContext(ctx, unit)
	if err != nil {
		return s, classify(fmt.Errorf("read %s: %w", unit, err))
	}
	sock, err := h.conn.GetUnitTypePropertiesContext(ctx, unit, "Socket")
	if err != nil {
		return s, classify(fmt.Errorf("read %s: %w", unit, err))
	}
	s.State, _ = u["ActiveState"].(string)
	s.SubState, _ = u["SubState"].(string)
	s.Backlog, _ = sock["Backlog"].(uint32)
	if listen, ok := sock["Listen"].([][]any); ok {
		for _, l := range listen {
			if len(l) == 2 {
				if addr, ok := l[1].(string); ok {
					s.Listen = append(s.Listen, addr)
				}
			}
		}
	}
	if !h.noQueue {
		s.Queued = acceptQueue(s.Listen)
	}
	return s, nil
}

// acceptQueue sums the accept-queue lengths of the listening TCP sockets
// on the ports in listen, from /proc/net/tcp and tcp6 (for a listening
// socket the kernel reports the queue as rx_queue).
func acceptQueue(listen []string) uint64 {
	ports := map[uint64]bool{}
	for _, a := range listen {
		_, port, err := net.SplitHostPort(a)
		if err != nil {
			port = a // ListenStream=8080 is reported as "[::]:8080", but be lenient
		}
		if p, err := strconv.ParseUint(port, 10, 16); err == nil {
			ports[p] = true
		}
	}
	fs, err := procfs.NewFS("/proc")
	if err != nil {
		return 0
	}
	var total uint64
	//lint:ignore SA1019 one number per listening socket does not justify a netlink dependency
	for _, read := range []func() (procfs.NetTCP, error){fs.NetTCP, fs.NetTCP6} {
		lines, err := read()
		if err != nil {
			continue
		}
		for _, l := range lines {
			if l.St == 10 && ports[l.LocalPort] { // 10: TCP_LISTEN
				total += l.RxQueue
			}
		}
	}
	return total
}
