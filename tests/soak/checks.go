package soak

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Violation is a broken invariant.
type Violation struct {
	Invariant string // which one: "refused", "unexplained failure", "leak: …", …
	Detail    string
}

// baseline is what the herd holds at rest before the faults.
type baseline struct {
	socketInode string
	dropIns     []string
}

var (
	inodeRE   = regexp.MustCompile(`ino:(\d+)`)
	holderRE  = regexp.MustCompile(`pid=(\d+)`)
	dropInDir = []string{"/etc/systemd/system", "/run/systemd/system", "/run/systemd/transient"}
)

// snapshot records the listening socket and the drop-ins.
func (s *soak) snapshot(ctx context.Context) (baseline, error) {
	out, err := s.run(ctx, cmdTimeout, "ss", "-Hltne", "sport = :8080")
	if err != nil {
		return baseline{}, err
	}
	m := inodeRE.FindStringSubmatch(out)
	if m == nil {
		return baseline{}, fmt.Errorf("nothing listens on port 8080: %q", out)
	}
	dropIns, err := s.dropIns(ctx)
	return baseline{socketInode: m[1], dropIns: dropIns}, err
}

// dropIns lists the unit drop-in files on the host.
func (s *soak) dropIns(ctx context.Context) ([]string, error) {
	args := append([]string{"find"}, dropInDir...)
	out, err := s.run(ctx, cmdTimeout, append(args, "-path", "*.d/*", "-not", "-type", "d")...)
	if err != nil && !strings.Contains(out, "No such file") {
		return nil, err
	}
	var files []string
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "/") {
			files = append(files, f)
		}
	}
	slices.Sort(files)
	return files, nil
}

// leaks compares the herd at rest after the soak with what it should
// hold: the same socket, held by systemd and each running instance alone;
// no process, cgroup or drop-in of an instance that is gone; no failed
// unit.
func (s *soak) leaks(ctx context.Context) []Violation {
	ins, err := s.instances(ctx)
	if err != nil {
		return []Violation{{"leak check", err.Error()}}
	}
	mains := map[int]string{}
	for _, in := range ins {
		if in.Active == "active" && in.PID > 0 {
			mains[in.PID] = in.Unit
		}
	}
	var v []Violation
	for _, check := range []func(context.Context, map[int]string) []Violation{s.socketLeaks, s.processLeaks, s.cgroupLeaks, s.dropInLeaks, s.failedUnits} {
		v = append(v, check(ctx, mains)...)
	}
	return v
}

// socketLeaks checks that the listening socket is the one systemd opened
// at the start and that only systemd and the running instances hold it.
func (s *soak) socketLeaks(ctx context.Context, mains map[int]string) []Violation {
	out, err := s.run(ctx, cmdTimeout, "ss", "-Hltnpe", "sport = :8080")
	if err != nil {
		return []Violation{{"leak: socket", err.Error()}}
	}
	var v []Violation
	if m := inodeRE.FindStringSubmatch(out); m == nil || m[1] != s.baseline.socketInode {
		v = append(v, Violation{"socket replaced", fmt.Sprintf("listening socket was inode %s, now %q", s.baseline.socketInode, out)})
	}
	holders := map[int]bool{}
	for _, m := range holderRE.FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[1])
		holders[pid] = true
		if _, ok := mains[pid]; !ok && pid != 1 {
			v = append(v, Violation{"leak: socket descriptor", fmt.Sprintf("PID %d holds the listening socket but is no running instance", pid)})
		}
	}
	for pid, unit := range mains {
		if !holders[pid] {
			v = append(v, Violation{"leak: socket descriptor", fmt.Sprintf("%s (PID %d) runs without the listening socket", unit, pid)})
		}
	}
	return v
}

// processLeaks checks that every app process is a running instance's main
// process and that no appctl, apt or dpkg process is left.
func (s *soak) processLeaks(ctx context.Context, mains map[int]string) []Violation {
	out, err := s.run(ctx, cmdTimeout, "ps", "-eo", "pid=,comm=")
	if err != nil {
		return []Violation{{"leak: processes", err.Error()}}
	}
	var v []Violation
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		pid, _ := strconv.Atoi(f[0])
		switch f[1] {
		case "app":
			if _, ok := mains[pid]; !ok {
				v = append(v, Violation{"leak: process", fmt.Sprintf("app PID %d is no running instance's main process", pid)})
			}
		case "appctl", "apt-get", "dpkg", "brokenworker":
			v = append(v, Violation{"leak: process", fmt.Sprintf("%s PID %d still runs", f[1], pid)})
		}
	}
	return v
}

// cgroupLeaks checks that every instance cgroup belongs to an active unit.
func (s *soak) cgroupLeaks(ctx context.Context, mains map[int]string) []Violation {
	out, err := s.run(ctx, cmdTimeout, "sh", "-c", "ls -1 /sys/fs/cgroup/system.slice/system-app.slice 2>/dev/null || true")
	if err != nil {
		return []Violation{{"leak: cgroups", err.Error()}}
	}
	active := map[string]bool{}
	for _, unit := range mains {
		active[unit] = true
	}
	var v []Violation
	for _, name := range strings.Fields(out) {
		if _, ok := instanceNumber(name); ok && !active[name] {
			v = append(v, Violation{"leak: cgroup", "system-app.slice/" + name + " exists but the unit is not running"})
		}
	}
	return v
}

// dropInLeaks checks that no drop-in of the soak's crash loop is left and
// that no new drop-in names an instance above the count.
func (s *soak) dropInLeaks(ctx context.Context, _ map[int]string) []Violation {
	files, err := s.dropIns(ctx)
	if err != nil {
		return []Violation{{"leak: drop-ins", err.Error()}}
	}
	s.mu.Lock()
	target := s.target
	s.mu.Unlock()
	var v []Violation
	for _, f := range files {
		unit := strings.TrimSuffix(path.Base(path.Dir(f)), ".d")
		n, numbered := instanceNumber(unit)
		switch {
		case path.Base(f) == crashDropInName:
			v = append(v, Violation{"leak: drop-in", f + " (the crash loop's) is left"})
		case numbered && n > target && path.Base(f) != placementDropIn:
			// appctl keeps the placement of instances above the count
			// on purpose (no daemon-reload when they come back).
			v = append(v, Violation{"leak: drop-in", fmt.Sprintf("%s names an instance above the count %d", f, target)})
		case !numbered && !slices.Contains(s.baseline.dropIns, f):
			v = append(v, Violation{"leak: drop-in", f + " appeared during the soak"})
		}
	}
	return v
}

// placementDropIn is the drop-in appctl writes with an instance's CPUs.
const placementDropIn = "50-placement.conf"

// failedUnits checks that no unit is left failed, but an instance above
// the count: one stopped while wedged ends failed when its drain is cut
// off, which is true and stays visible.
func (s *soak) failedUnits(ctx context.Context, _ map[int]string) []Violation {
	out, err := s.run(ctx, cmdTimeout, "systemctl", "list-units", "--failed", "--plain", "--no-legend")
	if err != nil {
		return []Violation{{"failed units", err.Error()}}
	}
	s.mu.Lock()
	target := s.target
	s.mu.Unlock()
	var v []Violation
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		unit, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if n, ok := instanceNumber(unit); unit == "" || (ok && n > target) {
			continue
		}
		v = append(v, Violation{"failed unit", line})
	}
	return v
}
