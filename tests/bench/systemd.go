package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"

	"github.com/unitkit/unitkit/tests/sandbox"
)

// dialSystemd connects to the sandbox's systemd through its system bus,
// reached through the sandbox's root from this process (systemd's private
// socket refuses a peer whose PID it cannot see). Asking it over this
// connection takes about a millisecond, where systemctl show through
// nsenter takes about 20 ms: polling with it times a restart to within a
// few milliseconds, as the PM2 side is timed.
func dialSystemd(ctx context.Context, s *sandbox.Sandbox) (*sdbus.Conn, error) {
	addr := fmt.Sprintf("unix:path=/proc/%d/root/run/dbus/system_bus_socket", s.PID())
	c, err := sdbus.NewConnection(func() (*dbus.Conn, error) {
		conn, err := dbus.Dial(addr, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			conn.Close()
			return nil, err
		}
		if err := conn.Hello(); err != nil {
			conn.Close()
			return nil, err
		}
		return conn, nil
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to the sandbox's systemd (%s): %w", addr, err)
	}
	return c, nil
}

// runningPID returns unit's main PID (as the sandbox sees it) while the
// unit is running, which for Type=notify means READY; 0 otherwise.
func (b *bench) runningPID(ctx context.Context, unit string) (uint32, error) {
	sub, err := b.sd.GetUnitPropertyContext(ctx, unit, "SubState")
	if err != nil {
		return 0, fmt.Errorf("%s SubState: %w", unit, err)
	}
	if s, _ := sub.Value.Value().(string); s != "running" {
		return 0, nil
	}
	pid, err := b.serviceUint(ctx, unit, "MainPID")
	return uint32(pid), err
}

// serviceUint reads a number-valued property of the service unit.
func (b *bench) serviceUint(ctx context.Context, unit, name string) (uint64, error) {
	p, err := b.sd.GetServicePropertyContext(ctx, unit, name)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", unit, name, err)
	}
	switch v := p.Value.Value().(type) {
	case uint32:
		return uint64(v), nil
	case uint64:
		return v, nil
	}
	return 0, fmt.Errorf("%s %s: unexpected %s", unit, name, p.Value.Signature())
}

// waitRunning polls unit every 5 ms until it runs a main process other
// than old (0: any), READY, and returns how long that took from start;
// ok is false when it did not within timeout.
func (b *bench) waitRunning(ctx context.Context, unit string, old uint32, start time.Time, timeout time.Duration) (d time.Duration, ok bool, err error) {
	for time.Since(start) < timeout {
		pid, err := b.runningPID(ctx, unit)
		if err != nil {
			return 0, false, err
		}
		if pid != 0 && pid != old {
			return time.Since(start), true, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return timeout, false, nil
}

// hostPID finds, among the processes of unit's cgroup, the one whose PID
// in the sandbox is pid, and returns its PID on the host, so that the
// bench can signal it itself and start the clock right after.
func (b *bench) hostPID(ctx context.Context, unit string, pid uint32) (int, error) {
	cg, err := b.sd.GetServicePropertyContext(ctx, unit, "ControlGroup")
	if err != nil {
		return 0, fmt.Errorf("%s ControlGroup: %w", unit, err)
	}
	dir, _ := cg.Value.Value().(string) // within the sandbox's cgroup namespace
	procs := filepath.Join(b.s.Cgroup(), dir, "cgroup.procs")
	data, err := os.ReadFile(procs)
	if err != nil {
		return 0, fmt.Errorf("processes of %s: %w", unit, err)
	}
	for _, f := range strings.Fields(string(data)) {
		status, err := os.ReadFile(filepath.Join("/proc", f, "status"))
		if err != nil {
			continue // exited meanwhile
		}
		for line := range strings.SplitSeq(string(status), "\n") {
			if ns, ok := strings.CutPrefix(line, "NSpid:"); ok {
				ids := strings.Fields(ns)
				if len(ids) > 0 && ids[len(ids)-1] == strconv.FormatUint(uint64(pid), 10) {
					return strconv.Atoi(f)
				}
			}
		}
	}
	return 0, fmt.Errorf("%s: main process %d not in %s", unit, pid, procs)
}
