package activation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrMemoryLimit is returned by Serve when the instance stopped because
// its resident memory stayed above the memory limit: it drained and
// stopped so that systemd starts a fresh one. Exit with ExitMemoryLimit
// then.
var ErrMemoryLimit = errors.New("memory limit exceeded: the instance drained and stopped so that it can be replaced")

// ExitMemoryLimit is the exit status a program should use when Serve
// returns ErrMemoryLimit: 75, EX_TEMPFAIL of sysexits.h. With
// SuccessExitStatus=0 75 in the unit, systemd counts it as a clean stop,
// and tools such as appctl can tell a restart for memory from a crash.
const ExitMemoryLimit = 75

// MessageMemoryLimit is the journal MESSAGE_ID of the record an instance
// writes when it decides to stop because of the memory limit, so that
// journalctl MESSAGE_ID=… finds every such restart of every instance.
const MessageMemoryLimit = "7e89cce440384fa08e21cb8b1d4a370e"

const (
	// memorySample is how often a serving instance samples its resident
	// memory when a memory limit is set.
	memorySample = time.Second
	// memoryStrikes is how many samples in a row must be above the limit
	// before the instance stops: a short peak is not a leak.
	memoryStrikes = 3
	// minMemoryLimit is the smallest limit accepted: a Go program's
	// runtime alone is about that big, so anything smaller is surely a
	// typo and would restart the instance forever.
	minMemoryLimit = 4 << 20
	// maxMemoryLimit bounds the limit against typos (1024T, one pebibyte).
	maxMemoryLimit = 1 << 50
)

// causeMemoryLimit is the cause run returns when the memory limit makes
// the instance stop.
const causeMemoryLimit = "memory limit"

// Where the memory limit's default, the cgroup's memory.high, is read.
const (
	procSelfCgroup = "/proc/self/cgroup"
	cgroupRoot     = "/sys/fs/cgroup"
)

// memoryHooks are the parts of the memory watch that tests replace.
type memoryHooks struct {
	interval time.Duration          // how often to sample; memorySample
	rss      func() (uint64, error) // the resident memory; readRSS
	free     func()                 // returns freed heap to the OS; debug.FreeOSMemory
	lockPath string                 // the file flocked by the herd; "": the executable
}

func defaultMemoryHooks() memoryHooks {
	return memoryHooks{interval: memorySample, rss: readRSS, free: debug.FreeOSMemory}
}

// WithMemoryLimit sets the resident memory above which a serving instance
// drains and stops so that it can be replaced (see the package
// documentation), overriding $MEMORY_LIMIT and the cgroup's memory.high.
// 0 turns the limit off.
func WithMemoryLimit(bytes uint64) Option {
	return func(c *config) error {
		if bytes != 0 && (bytes < minMemoryLimit || bytes > maxMemoryLimit) {
			return fmt.Errorf("memory limit %d bytes: want 0 (none) or from 4 MiB to 1024 TiB", bytes)
		}
		c.memoryLimit = &bytes
		return nil
	}
}

// memoryLimit returns the limit from $MEMORY_LIMIT, or else the memory.high
// of the cgroup that procCgroup (/proc/self/cgroup) names under root; 0
// when neither sets one.
func memoryLimit(env lookupFunc, procCgroup, root string) (uint64, error) {
	v, ok := env("MEMORY_LIMIT")
	if !ok || v == "" {
		return cgroupMemoryHigh(procCgroup, root), nil
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, fmt.Errorf("MEMORY_LIMIT=%q: %w", v, err)
	}
	return n, nil
}

// parseSize reads a size as systemd's MemoryMax= does: a byte count, or a
// whole number followed by K, M, G or T (either case, base 1024).
func parseSize(v string) (uint64, error) {
	want := errors.New("want a size such as 512M or 1G (at least 4M), or empty for none")
	digits, shift := v, uint(0)
	if k := len(v) - 1; k > 0 {
		if s := strings.IndexByte("KMGT", upper(v[k])); s >= 0 {
			digits, shift = v[:k], 10*uint(s+1)
		}
	}
	if !isDigits(digits) {
		return 0, want
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > maxMemoryLimit>>shift {
		return 0, errors.New("more than 1024T; " + want.Error())
	}
	if n <<= shift; n < minMemoryLimit {
		return 0, want
	}
	return n, nil
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// isDigits reports whether s is non-empty and made of ASCII digits only,
// so that signs, spaces and underscores are refused.
func isDigits(s string) bool {
	return s != "" && strings.TrimLeft(s, "0123456789") == ""
}

// cgroupMemoryHigh returns memory.high of the process's cgroup v2 (the
// "0::/path" line of procCgroup, under root): MemoryHigh= of the unit,
// where the kernel starts throttling. It returns 0 — no limit — when the
// value is "max", missing, unreadable or below minMemoryLimit: the default
// must never stop a start.
func cgroupMemoryHigh(procCgroup, root string) uint64 {
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		path, ok := strings.CutPrefix(line, "0::")
		if !ok {
			continue
		}
		high, err := os.ReadFile(filepath.Join(root, path, "memory.high"))
		if err != nil {
			return 0
		}
		n, err := strconv.ParseUint(strings.TrimSpace(string(high)), 10, 64)
		if err != nil || n < minMemoryLimit {
			return 0 // "max"
		}
		return n
	}
	return 0
}

// readRSS returns the process's resident memory.
func readRSS() (uint64, error) { return statmRSS("/proc/self/statm") }

// statmRSS reads the resident set size from a statm file: its second
// field, in pages.
func statmRSS(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read resident memory: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, fmt.Errorf("read resident memory: %s has %d fields, want at least 2", path, len(f))
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read resident memory from %s: %w", path, err)
	}
	return pages * uint64(os.Getpagesize()), nil
}

// memoryWatch decides, one sample at a time, when an instance whose
// resident memory stays above its limit should stop. Only Serve's
// goroutine uses it.
//
// At most one instance of the herd stops for memory at a time, so that a
// leak common to all of them never takes the service down at once. They
// agree through flock(2) on one file, by default the executable, which
// every instance of a service runs: flock locks belong to the open file
// description, so two opens exclude each other even within one process,
// and the kernel drops a lock when its process dies. An instance that is
// starting holds a shared lock until READY=1 (holdStartLock); one that
// stops for memory takes the exclusive lock and keeps it until it exits.
type memoryWatch struct {
	limit uint64
	hooks memoryHooks
	log   *slog.Logger

	rss        uint64    // the last sample
	strikes    int       // samples in a row above the limit, at most memoryStrikes
	lockFree   bool      // the exclusive lock was obtainable at the previous sample
	waiting    bool      // told the log, in this excursion, that we wait
	sampleFail bool      // told the log that sampling fails
	held       int       // the exclusive lock's descriptor, open until exit; -1 before
	heldSince  time.Time // when it was taken
}

func newMemoryWatch(limit uint64, hooks memoryHooks, log *slog.Logger) *memoryWatch {
	if hooks.lockPath == "" {
		hooks.lockPath = lockPath()
	}
	return &memoryWatch{limit: limit, hooks: hooks, log: log, held: -1}
}

// sample takes one sample and reports whether the instance should stop
// now. When it says so, the exclusive lock is held for good.
func (m *memoryWatch) sample() bool {
	rss, err := m.hooks.rss()
	if err != nil {
		if !m.sampleFail {
			m.log.Warn("cannot sample the resident memory; the memory limit is not enforced until it can", "error", err)
		}
		m.sampleFail = true
		return false
	}
	m.sampleFail = false
	m.rss = rss
	if rss <= m.limit {
		m.strikes, m.lockFree, m.waiting = 0, false, false
		return false
	}
	if m.strikes == 0 {
		// Go keeps freed heap resident for a while; only live memory
		// should count against the limit.
		m.hooks.free()
	}
	m.strikes = min(m.strikes+1, memoryStrikes)
	if m.strikes < memoryStrikes || !m.mayStop() {
		return false
	}
	m.log.Warn("memory limit exceeded; draining so that systemd replaces this instance",
		"rss_bytes", m.rss, "limit_bytes", m.limit, "message_id", MessageMemoryLimit)
	return true
}

// mayStop reports whether this instance may stop now: the exclusive lock
// was free at this sample and at the previous one. Asking twice closes the
// gap between a peer's exit and its replacement taking the shared lock.
func (m *memoryWatch) mayStop() bool {
	fd, ok, err := flockNB(m.hooks.lockPath, unix.LOCK_EX)
	switch {
	case err != nil:
		m.log.Warn("cannot agree with the other instances on who restarts for memory; restarting without waiting for them",
			"lock_file", m.hooks.lockPath, "error", err)
		return true // better than growing until MemoryMax= kills us
	case !ok:
		m.lockFree = false
		if !m.waiting {
			m.log.Info("over the memory limit; waiting while another instance restarts or starts",
				"rss_bytes", m.rss, "limit_bytes", m.limit)
		}
		m.waiting = true
		return false
	case !m.lockFree:
		unix.Close(fd)
		m.lockFree = true
		return false
	}
	m.held, m.heldSince = fd, time.Now() // never closed: the lock lasts until the process exits
	return true
}

// linger returns once the exclusive lock has been held for two sample
// intervals, or at once when ctx is done or a stop signal arrives. A drain
// without connections takes microseconds; an instance exiting that fast
// could take and drop the lock between two samples of a peer, which would
// then find it free twice and stop too, before the replacement takes its
// shared lock. Held this long, every peer sees it taken at least once.
func (m *memoryWatch) linger(ctx context.Context, sigs <-chan os.Signal) {
	if m.held < 0 {
		return // no lock: nobody to tell
	}
	t := time.NewTimer(time.Until(m.heldSince.Add(2 * m.hooks.interval)))
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return
		case <-ctx.Done():
			return
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				return
			}
		}
	}
}

// summary describes the limit and the last sample for STATUS= and errors.
func (m *memoryWatch) summary() string {
	return fmt.Sprintf("memory limit %s, rss %s", formatBytes(m.limit), formatBytes(m.rss))
}

// statusNote is what STATUS= adds while the instance waits for its turn
// to stop, or "". A nil watch (no limit) has nothing to add.
func (m *memoryWatch) statusNote() string {
	if m == nil || !m.waiting {
		return ""
	}
	return "over the " + m.summary() + ", waiting for another instance to restart"
}

// stopError is what Serve returns after stopping for memory; drainErr is
// the drain's own error, if it was cut short.
func (m *memoryWatch) stopError(drainErr error) error {
	if drainErr != nil {
		return fmt.Errorf("activation: %w (%s); %w", ErrMemoryLimit, m.summary(), drainErr)
	}
	return fmt.Errorf("activation: %w (%s)", ErrMemoryLimit, m.summary())
}

// holdStartLock takes the herd's lock shared while the instance starts, so
// that no other instance stops for memory meanwhile, and returns the
// function that releases it. A lock it cannot have is skipped: a start
// never waits or fails for it.
func (i *Instance) holdStartLock() (release func()) {
	if i.mem == nil {
		return func() {}
	}
	fd, ok, err := flockNB(i.mem.hooks.lockPath, unix.LOCK_SH)
	if !ok {
		i.log.Debug("starting without the shared memory lock", "lock_file", i.mem.hooks.lockPath, "error", err)
		return func() {}
	}
	return func() {
		if fd >= 0 {
			unix.Close(fd)
			fd = -1
		}
	}
}

// flockNB opens path and tries to lock it (how is LOCK_SH or LOCK_EX)
// without waiting. ok is false when another open file description holds
// a conflicting lock, err set when locking is impossible.
//
// The descriptor is a raw one, not an *os.File, whose finalizer would
// close it, and the lock with it, once nothing refers to it. O_CLOEXEC
// keeps child processes from inheriting, and outliving us with, the lock.
func flockNB(path string, how int) (fd int, ok bool, err error) {
	fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false, fmt.Errorf("open lock file %s: %w", path, err)
	}
	for {
		err = unix.Flock(fd, how|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
		return fd, true, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		unix.Close(fd)
		return -1, false, nil
	default:
		unix.Close(fd)
		return -1, false, fmt.Errorf("flock %s: %w", path, err)
	}
}

// lockPath is the file the herd flocks: the executable, which every
// instance of a service runs. os.Executable names it by path, so that
// instances started before and after an upgrade of the binary still lock
// one and the same file.
func lockPath() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/proc/self/exe"
}

// formatBytes shows n in MiB, or GiB from 1 GiB on, with one decimal.
func formatBytes(n uint64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
