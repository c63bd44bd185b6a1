package soak

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// Instance is one app@N.service as systemd sees it.
type Instance struct {
	Unit   string
	Number int
	Active string // ActiveState
	Sub    string // SubState
	PID    int    // MainPID, 0 when none
}

// instances lists the loaded app@N.service units.
func (s *soak) instances(ctx context.Context) ([]Instance, error) {
	out, err := s.run(ctx, cmdTimeout, "systemctl", "show", "--no-pager", "-p", "Id", "-p", "ActiveState", "-p", "SubState", "-p", "MainPID", "app@*.service")
	if err != nil {
		return nil, err
	}
	return parseInstances(out), nil
}

// parseInstances reads systemctl show's blocks of properties.
func parseInstances(out string) []Instance {
	var ins []Instance
	for _, block := range strings.Split(strings.TrimSpace(out), "\n\n") {
		var in Instance
		for _, line := range strings.Split(block, "\n") {
			k, v, _ := strings.Cut(line, "=")
			switch k {
			case "Id":
				in.Unit = v
			case "ActiveState":
				in.Active = v
			case "SubState":
				in.Sub = v
			case "MainPID":
				in.PID, _ = strconv.Atoi(v)
			}
		}
		if n, ok := instanceNumber(in.Unit); ok {
			in.Number = n
			ins = append(ins, in)
		}
	}
	slices.SortFunc(ins, func(a, b Instance) int { return a.Number - b.Number })
	return ins
}

// instanceNumber reads N from app@N.service.
func instanceNumber(unit string) (int, bool) {
	rest, ok := strings.CutPrefix(unit, "app@")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, ".service"))
	return n, err == nil && n > 0
}

// enabled lists the instances enabled into app.target, which is the count
// appctl recorded.
func (s *soak) enabled(ctx context.Context) ([]int, error) {
	out, err := s.run(ctx, cmdTimeout, "sh", "-c", "ls -1 /etc/systemd/system/app.target.wants 2>/dev/null || true")
	if err != nil {
		return nil, err
	}
	var ns []int
	for _, name := range strings.Fields(out) {
		if n, ok := instanceNumber(name); ok {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns, nil
}

// soakDropIn holds what the soak needs of every instance: the wedge switch,
// and a watchdog period short enough that a hung instance is replaced
// within the run.
const soakDropIn = "/etc/systemd/system/app@.service.d/soak.conf"

// setup installs the first good release, turns the wedge switch on, scales
// to Initial and records what the herd holds at rest.
func (s *soak) setup(ctx context.Context) error {
	for _, deb := range []string{s.cfg.Good[0], s.cfg.Good[1], s.cfg.Broken} {
		data, err := os.ReadFile(deb)
		if err != nil {
			return err
		}
		if err := s.s.WriteFile(packagePath(deb), data, 0o644); err != nil {
			return err
		}
	}
	if err := s.s.WriteFile(soakDropIn, []byte("[Service]\nEnvironment=APP_FAULT=wedge\nWatchdogSec=3s\n"), 0o644); err != nil {
		return err
	}
	// Images ship policy-rc.d to keep maintainer scripts from starting
	// services, which a real host has not; man-db only costs time here.
	if _, err := s.run(ctx, cmdTimeout, "rm", "-f", "/usr/sbin/policy-rc.d", "/var/lib/man-db/auto-update"); err != nil {
		return err
	}
	s.installed = s.cfg.Good[0]
	if _, err := s.run(ctx, opTimeout, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends", packagePath(s.cfg.Good[0])); err != nil {
		return err
	}
	if _, err := s.run(ctx, opTimeout, "appctl", "scale", strconv.Itoa(Initial)); err != nil {
		return err
	}
	b, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	s.baseline = b
	s.started = time.Now()
	return nil
}

// startLoads starts the three kinds of traffic.
func (s *soak) startLoads() map[string]*loadtest.Load {
	newLoad := func(keepAlive bool) *loadtest.Load {
		// A request stuck on a wedged instance that is being stopped fails
		// when its drain times out (DRAIN_TIMEOUT, 30 s): wait longer, so
		// that the failure shows when the process ends, as others do.
		return loadtest.New(loadtest.Config{URL: "http://127.0.0.1:8080", Dial: s.s.DialContext, KeepAlive: keepAlive, Timeout: clientTimeout})
	}
	loads := map[string]*loadtest.Load{
		"fresh":      newLoad(false),
		"keep-alive": newLoad(true),
		"long":       newLoad(false),
	}
	loads["fresh"].RunRate(freshRate, 64, "/")
	loads["keep-alive"].RunRate(keptRate, 8, "/")
	loads["long"].RunRate(longRate, 32, fmt.Sprintf("/sleep?ms=%d", longRequest.Milliseconds()))
	return loads
}

// settle undoes the faults still in effect (hung processes, the crash
// loop, a broken release) and waits until the instances running and
// enabled are exactly 1 … the last count appctl set, each ready. It
// returns how long that took; not settling is a violation, not an error.
func (s *soak) settle(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := s.run(ctx, cmdTimeout, "sh", "-c", "pkill -CONT -x app || true"); err != nil {
		return 0, err
	}
	s.crashOff(ctx)
	s.mu.Lock()
	broken := s.installed == s.cfg.Broken
	s.mu.Unlock()
	if broken {
		s.upgrade(ctx, Upgrade, s.cfg.Good[0])
	}
	for time.Since(start) < settleTimeout {
		if ok, _ := s.converged(ctx); ok {
			return time.Since(start), nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start), nil
}

// converged reports whether exactly instances 1 … target run, ready, and
// are enabled; otherwise it says what differs.
func (s *soak) converged(ctx context.Context) (bool, string) {
	ins, err := s.instances(ctx)
	if err != nil {
		return false, err.Error()
	}
	enabled, err := s.enabled(ctx)
	if err != nil {
		return false, err.Error()
	}
	s.mu.Lock()
	target := s.target
	s.mu.Unlock()
	var running, notReady []int
	for _, in := range ins {
		switch {
		case in.Active == "active" && in.Sub == "running":
			running = append(running, in.Number)
		case in.Active != "inactive" && in.Active != "failed":
			notReady = append(notReady, in.Number)
		}
	}
	want := upTo(target)
	if slices.Equal(running, want) && slices.Equal(enabled, want) && len(notReady) == 0 {
		return true, ""
	}
	return false, fmt.Sprintf("want instances %v; running %v, starting or stopping %v, enabled %v", want, running, notReady, enabled)
}

func upTo(n int) []int {
	ns := make([]int, 0, n)
	for i := 1; i <= n; i++ {
		ns = append(ns, i)
	}
	return ns
}
