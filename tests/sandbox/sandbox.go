// Package sandbox boots a real systemd as PID 1 of throwaway namespaces, so
// that integration tests and demos can drive real units over real D-Bus on
// a machine where systemd is not PID 1 (containers, CI runners).
//
// Each sandbox gets fresh pid, mount, UTS, IPC, network and cgroup
// namespaces, a root file system that is an overlay of the host's / with a
// tmpfs upper layer (nothing written inside reaches the host), its own
// loopback interface, and its own cgroup2 subtree, so several sandboxes run
// side by side without sharing ports or cgroup accounting. systemd boots to
// basic.target: journald and a socket-activated D-Bus, nothing the host
// image would start at multi-user.target.
//
// The overlay's upper layer lives on a tmpfs of its own, so Reboot can boot
// systemd again on the same files, as a real reboot would.
//
// Tear-down kills the sandbox's PID 1, which ends every process inside and
// releases its mounts, then removes its cgroups and its upper layer. The
// sandbox also dies with the process that booted it, even if that process
// is killed; what it leaves then is cleaned up by the next Boot.
package sandbox

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

//go:embed boot.sh
var bootScript string

// cgroupParent is the directory, under the host's cgroup2 mount, that holds
// one cgroup per sandbox.
const cgroupParent = "unitkit-sandbox"

// stateParent holds one tmpfs per sandbox: the upper layer of its root.
const stateParent = "/run/unitkit-sandbox"

// Sandbox is a running systemd in its own namespaces.
type Sandbox struct {
	name    string
	pid     int // host PID of the sandbox's systemd
	cgroup  string
	state   string // tmpfs holding the root's upper layer
	unshare *exec.Cmd
	exited  chan struct{}
}

// Prerequisites reports why sandboxes cannot boot on this machine, or nil
// if they can: they need root, systemd, unshare, nsenter and a cgroup2
// mount.
func Prerequisites() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root to create namespaces and boot systemd")
	}
	for _, p := range []string{"/lib/systemd/systemd", "/usr/bin/unshare", "/usr/bin/nsenter", "/usr/sbin/ip"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("needs %s (packages systemd, util-linux, iproute2): %w", p, err)
		}
	}
	if _, err := cgroup2Mount(); err != nil {
		return err
	}
	return nil
}

// Boot starts a sandbox named name (also its host name) and waits until
// its systemd reports running. The caller must Close it.
func Boot(ctx context.Context, name string) (*Sandbox, error) {
	if err := Prerequisites(); err != nil {
		return nil, fmt.Errorf("boot sandbox %s: %w", name, err)
	}
	cg2, err := cgroup2Mount()
	if err != nil {
		return nil, fmt.Errorf("boot sandbox %s: %w", name, err)
	}
	s := &Sandbox{name: name, cgroup: filepath.Join(cg2, cgroupParent, name), state: filepath.Join(stateParent, name)}
	err = withBootLock(func() error {
		sweep(filepath.Join(cg2, cgroupParent))
		if err := s.mountState(); err != nil {
			return err
		}
		return s.start()
	})
	if err == nil {
		err = s.waitRunning(ctx)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("boot sandbox %s: %w", name, err)
	}
	return s, nil
}

// Reboot stops the sandbox's systemd the hard way, as a power cut would,
// and boots it again on the same files.
func (s *Sandbox) Reboot(ctx context.Context) error {
	err := withBootLock(func() error {
		s.kill()
		return s.start()
	})
	if err == nil {
		err = s.waitRunning(ctx)
	}
	if err != nil {
		return fmt.Errorf("reboot sandbox %s: %w", s.name, err)
	}
	return nil
}

// withBootLock runs fn while holding a lock that keeps concurrent boots
// from sweeping up a sandbox that has not started its processes yet.
func withBootLock(fn func() error) error {
	f, err := os.OpenFile(stateParent+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

func (s *Sandbox) mountState() error {
	if err := os.MkdirAll(s.state, 0o700); err != nil {
		return err
	}
	if err := syscall.Mount("unitkit-sandbox", s.state, "tmpfs", 0, "mode=0755"); err != nil {
		os.Remove(s.state)
		return fmt.Errorf("mount tmpfs on %s: %w", s.state, err)
	}
	return nil
}

// start launches unshare inside the sandbox's cgroup; the cgroup namespace
// it creates is rooted there.
func (s *Sandbox) start() error {
	if err := os.MkdirAll(s.cgroup, 0o755); err != nil {
		return err
	}
	s.exited = make(chan struct{})
	script := `echo $$ >"$0/cgroup.procs" && exec unshare --pid --fork --mount --uts --ipc --net --cgroup --kill-child /bin/sh -c "$1" boot "$2" "$3"`
	cmd := exec.Command("/bin/sh", "-c", script, s.cgroup, bootScript, s.name, s.state)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "container=unitkit", "LANG=C.UTF-8"}
	out := &capWriter{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	// If whoever booted the sandbox dies, unshare dies, and --kill-child
	// takes the sandbox with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start unshare: %w", err)
	}
	s.unshare = cmd
	go func() { _ = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid := childOf(cmd.Process.Pid); pid > 0 && commOf(pid) == "systemd" {
			s.pid = pid
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("sandbox exited during boot: %s", strings.TrimSpace(out.String()))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("systemd did not start within 10s: %s", strings.TrimSpace(out.String()))
		}
	}
}

// waitRunning waits until systemd finished booting.
func (s *Sandbox) waitRunning(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last string
	for ctx.Err() == nil {
		out, _ := s.Run(ctx, "systemctl", "is-system-running")
		last = strings.TrimSpace(out)
		switch last {
		case "running":
			return nil
		case "degraded":
			failed, _ := s.Run(ctx, "systemctl", "--failed", "--no-legend")
			return fmt.Errorf("systemd booted degraded: %s", strings.TrimSpace(failed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("systemd not running after 60s (last state %q)", last)
}

// Name returns the sandbox's name, which is also its host name.
func (s *Sandbox) Name() string { return s.name }

// Cgroup returns the host path of the sandbox's cgroup, the root of every
// cgroup its systemd creates.
func (s *Sandbox) Cgroup() string { return s.cgroup }

// PID returns the host PID of the sandbox's systemd.
func (s *Sandbox) PID() int { return s.pid }

// Command returns a command that runs args inside the sandbox (all its
// namespaces, its root and a clean environment), for callers that need to
// wire its standard streams themselves.
func (s *Sandbox) Command(ctx context.Context, args ...string) *exec.Cmd {
	ns := []string{"-t", strconv.Itoa(s.pid), "-m", "-p", "-u", "-i", "-n", "-C", "-r", "-w", "--"}
	cmd := exec.CommandContext(ctx, "/usr/bin/nsenter", append(ns, args...)...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "HOME=/root",
	}
	cmd.WaitDelay = time.Second
	return cmd
}

// Run runs args inside the sandbox and returns its combined output. The
// error includes the output when the command fails.
func (s *Sandbox) Run(ctx context.Context, args ...string) (string, error) {
	out, err := s.Command(ctx, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("sandbox %s: %s: %w\n%s", s.name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// WriteFile writes data to path inside the sandbox, creating parent
// directories. It writes a temporary file and renames it into place, so it
// can replace a running executable.
func (s *Sandbox) WriteFile(path string, data []byte, perm fs.FileMode) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("sandbox %s: write %s: path must be absolute", s.name, path)
	}
	host := filepath.Join(s.rootDir(), path)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return fmt.Errorf("sandbox %s: write %s: %w", s.name, path, err)
	}
	tmp := filepath.Join(filepath.Dir(host), "."+filepath.Base(host)+".new")
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("sandbox %s: write %s: %w", s.name, path, err)
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return fmt.Errorf("sandbox %s: write %s: %w", s.name, path, err)
	}
	if err := os.Rename(tmp, host); err != nil {
		return fmt.Errorf("sandbox %s: write %s: %w", s.name, path, err)
	}
	return nil
}

// CopyFile copies the host file src to dst inside the sandbox.
func (s *Sandbox) CopyFile(src, dst string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("sandbox %s: copy %s: %w", s.name, src, err)
	}
	return s.WriteFile(dst, data, perm)
}

// ReadFile reads path inside the sandbox.
func (s *Sandbox) ReadFile(path string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.rootDir(), path))
}

// rootDir is the sandbox's root as seen from the host.
func (s *Sandbox) rootDir() string { return fmt.Sprintf("/proc/%d/root", s.pid) }

// Journal returns the sandbox's journal, oldest first; args are passed to
// journalctl (e.g. "-u", "app@1.service").
func (s *Sandbox) Journal(args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := s.Run(ctx, append([]string{"journalctl", "--no-pager", "-o", "short-precise"}, args...)...)
	return out
}

// Close kills the sandbox and removes its cgroups and files. It is safe to
// call more than once.
func (s *Sandbox) Close() {
	s.kill()
	removeCgroupTree(s.cgroup, 10*time.Second)
	if s.state != "" {
		_ = syscall.Unmount(s.state, syscall.MNT_DETACH)
		_ = os.Remove(s.state)
	}
}

// kill ends the sandbox's systemd and everything inside.
func (s *Sandbox) kill() {
	if s.unshare == nil || s.unshare.Process == nil {
		return
	}
	if s.pid > 0 {
		// PID 1 of its namespace: every process inside goes with it, and
		// unshare, its parent, reaps it and exits.
		_ = syscall.Kill(s.pid, syscall.SIGKILL)
	}
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.unshare.Process.Kill()
		<-s.exited
	}
	s.unshare, s.pid = nil, 0
}

// childOf returns the first child of pid, or 0.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	c, _ := strconv.Atoi(f[0])
	return c
}

func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}

// cgroup2Mount finds where the host mounts the cgroup2 hierarchy:
// /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS ... - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4], nil
			}
		}
	}
	return "", errors.New("needs a cgroup2 mount (none in /proc/self/mountinfo)")
}

// removeCgroupTree removes dir and every cgroup below it, deepest first,
// retrying while the killed processes are still leaving.
func removeCgroupTree(dir string, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = os.Remove(dirs[i])
		}
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) || time.Now().After(deadline) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sweep removes what sandboxes left behind when the process that booted
// them was killed before it could clean up: cgroups with no process left,
// and their upper layers.
func sweep(cgroups string) {
	entries, err := os.ReadDir(stateParent)
	if err == nil {
		for _, e := range entries {
			events, err := os.ReadFile(filepath.Join(cgroups, e.Name(), "cgroup.events"))
			if err == nil && !strings.Contains(string(events), "populated 0") {
				continue // still running
			}
			dir := filepath.Join(stateParent, e.Name())
			_ = syscall.Unmount(dir, syscall.MNT_DETACH)
			_ = os.Remove(dir)
		}
	}
	entries, err = os.ReadDir(cgroups)
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(cgroups, e.Name())
		events, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err == nil && strings.Contains(string(events), "populated 0") {
			removeCgroupTree(dir, time.Second)
		}
	}
}

// capWriter keeps the first max bytes written to it: the boot script's
// errors, and what systemd prints on its console, without growing for as
// long as the sandbox runs.
type capWriter struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *capWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *capWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.b)
}

// Changed lists the files (not directories) the sandbox has created,
// modified or deleted relative to the host's root, as absolute paths
// inside the sandbox; deleted ones end in " (deleted)". Files rewritten
// with the host's content are left out.
func (s *Sandbox) Changed() ([]string, error) {
	upper := filepath.Join(s.state, "upper")
	var out []string
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel := "/" + strings.TrimPrefix(p, upper+"/")
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&fs.ModeCharDevice != 0 { // an overlay whiteout
			out = append(out, rel+" (deleted)")
			return nil
		}
		if sameAsHost(p, rel) {
			return nil
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: list changes: %w", s.name, err)
	}
	return out, nil
}

// sameAsHost reports whether the regular file at upper has the content of
// the host's file at rel.
func sameAsHost(upper, rel string) bool {
	a, err := os.ReadFile(upper)
	if err != nil {
		return false
	}
	b, err := os.ReadFile(rel)
	return err == nil && string(a) == string(b)
}
