package activation

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMemoryLimitEnv checks $MEMORY_LIMIT: sizes as MemoryMax= takes them,
// from 4M to 1024T, and errors that name the variable.
func TestMemoryLimitEnv(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want uint64
		err  string
	}{
		{"", 0, ""},
		{"4M", 4 << 20, ""},
		{"4m", 4 << 20, ""},
		{"512M", 512 << 20, ""},
		{"1G", 1 << 30, ""},
		{"1g", 1 << 30, ""},
		{"8192K", 8 << 20, ""},
		{"8192k", 8 << 20, ""},
		{"2T", 2 << 40, ""},
		{"1024T", 1 << 50, ""},
		{"0064M", 64 << 20, ""},
		{"67108864", 64 << 20, ""},
		{"4194304", 4 << 20, ""},
		{"12Q", 0, `MEMORY_LIMIT="12Q": want a size such as 512M or 1G (at least 4M), or empty for none`},
		{"4194303", 0, "at least 4M"},
		{"1K", 0, "at least 4M"},
		{"3M", 0, "at least 4M"},
		{"0", 0, "at least 4M"},
		{"-1", 0, "want a size"},
		{"+5M", 0, "want a size"},
		{"1.5G", 0, "want a size"},
		{"1 G", 0, "want a size"},
		{" 1G", 0, "want a size"},
		{"1GB", 0, "want a size"},
		{"1GiB", 0, "want a size"},
		{"1P", 0, "want a size"},
		{"M", 0, "want a size"},
		{"1_000M", 0, "want a size"},
		{"max", 0, "want a size"},
		{"1025T", 0, "more than 1024T"},
		{"16777216T", 0, "more than 1024T"},
		{"18446744073709551615", 0, "more than 1024T"},
		{"99999999999999999999", 0, "more than 1024T"},
	} {
		got, err := memoryLimit(envOf("MEMORY_LIMIT", tc.v), "/nonexistent", "/nonexistent")
		if !errMatches(err, tc.err) || got != tc.want {
			t.Errorf("MEMORY_LIMIT=%q: got %d, %v; want %d, error containing %q", tc.v, got, err, tc.want, tc.err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("MEMORY_LIMIT=%q", tc.v)) {
			t.Errorf("MEMORY_LIMIT=%q: error %q does not name the variable", tc.v, err)
		}
	}
}

// Without $MEMORY_LIMIT the limit is memory.high of the process's cgroup.
func TestMemoryLimitFromCgroup(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "cgroup")
	unit := filepath.Join(dir, "fs", "system.slice", "app@1.service")
	if err := os.MkdirAll(unit, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	high := filepath.Join(unit, "memory.high")
	root := filepath.Join(dir, "fs")
	write(proc, "0::/system.slice/app@1.service\n")
	for _, tc := range []struct {
		high string // "": no memory.high file
		want uint64
	}{
		{"", 0},
		{"max\n", 0},
		{"67108864\n", 64 << 20},
		{"4096\n", 0}, // below the minimum: surely not meant for us
		{"garbage\n", 0},
	} {
		os.Remove(high)
		if tc.high != "" {
			write(high, tc.high)
		}
		got, err := memoryLimit(envOf(), proc, root)
		if err != nil || got != tc.want {
			t.Errorf("memory.high %q: got %d, %v; want %d", tc.high, got, err, tc.want)
		}
	}
	// $MEMORY_LIMIT wins over memory.high.
	if got, err := memoryLimit(envOf("MEMORY_LIMIT", "128M"), proc, root); err != nil || got != 128<<20 {
		t.Errorf("MEMORY_LIMIT=128M with memory.high set: got %d, %v", got, err)
	}
	// A cgroup v1 hierarchy, or no /proc, gives no limit.
	write(proc, "1:memory:/system.slice/app@1.service\n")
	if got, _ := memoryLimit(envOf(), proc, root); got != 0 {
		t.Errorf("cgroup v1: got %d, want 0", got)
	}
	if got, _ := memoryLimit(envOf(), filepath.Join(dir, "none"), root); got != 0 {
		t.Errorf("no /proc/self/cgroup: got %d, want 0", got)
	}
}

func TestStatmRSS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "statm")
	if err := os.WriteFile(path, []byte("1000 25 3 4 0 5 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := statmRSS(path); err != nil || got != 25*uint64(os.Getpagesize()) {
		t.Errorf("statmRSS = %d, %v; want 25 pages", got, err)
	}
	if err := os.WriteFile(path, []byte("1000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := statmRSS(path); err == nil {
		t.Error("statmRSS accepted a statm with one field")
	}
	if n, err := readRSS(); err != nil || n < 1<<20 {
		t.Errorf("readRSS = %d, %v; want at least 1 MiB", n, err)
	}
}

func TestWithMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		bytes uint64
		err   string
	}{
		{0, ""},
		{4 << 20, ""},
		{1 << 50, ""},
		{1, "memory limit 1 bytes"},
		{4<<20 - 1, "from 4 MiB"},
		{1<<50 + 1, "to 1024 TiB"},
	} {
		var c config
		if err := WithMemoryLimit(tc.bytes)(&c); !errMatches(err, tc.err) {
			t.Errorf("WithMemoryLimit(%d): %v, want error containing %q", tc.bytes, err, tc.err)
		}
	}
	t.Setenv("MEMORY_LIMIT", "12Q")
	if _, err := New(WithLogger(discard())); !errMatches(err, `MEMORY_LIMIT="12Q"`) {
		t.Errorf("New with MEMORY_LIMIT=12Q: %v", err)
	}
	// The option overrides the environment, which is not read then.
	i, err := New(WithLogger(discard()), WithMemoryLimit(0))
	if err != nil || i.mem != nil {
		t.Errorf("New with WithMemoryLimit(0): %v, watch %v", err, i.mem)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testWatch is a memoryWatch with an injected sampler and a log to read.
type testWatch struct {
	*memoryWatch
	rss   atomic.Uint64
	frees int
	out   *lockedLog
}

func newTestWatch(t *testing.T, limit uint64, lockPath string) *testWatch {
	t.Helper()
	w := &testWatch{out: &lockedLog{}}
	hooks := memoryHooks{
		interval: 10 * time.Millisecond,
		rss:      func() (uint64, error) { return w.rss.Load(), nil },
		free:     func() { w.frees++ },
		lockPath: lockPath,
	}
	w.memoryWatch = newMemoryWatch(limit, hooks, slog.New(slog.NewTextHandler(w.out, nil)))
	t.Cleanup(func() {
		if w.held >= 0 {
			unix.Close(w.held)
		}
	})
	return w
}

// samples sets the resident memory to each of rss in turn, samples, and
// returns what sample said each time.
func (w *testWatch) samples(rss ...uint64) []bool {
	out := make([]bool, len(rss))
	for k, n := range rss {
		w.rss.Store(n)
		out[k] = w.sample()
	}
	return out
}

func lockFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(path, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// testLimit is the memory limit of the watches under test: 64 MiB.
const testLimit = 64 << 20

// The instance stops only after memoryStrikes samples in a row above the
// limit, and once the lock was free at two samples in a row; a sample
// below the limit starts over, and each excursion frees memory once.
func TestMemoryStrikes(t *testing.T) {
	w := newTestWatch(t, testLimit, lockFile(t))
	const hi, lo = testLimit + 1, testLimit
	got := w.samples(hi, hi, lo, hi, hi, lo, lo, hi, hi, hi)
	for k, stop := range got {
		if stop {
			t.Fatalf("stopped at sample %d of %v", k, got)
		}
	}
	if w.frees != 3 {
		t.Errorf("freed memory %d times, want once for each of the 3 excursions", w.frees)
	}
	if !w.sample() {
		t.Fatal("did not stop at the second sample with the lock free after three strikes")
	}
	if !w.out.has("memory limit exceeded; draining so that systemd replaces this instance",
		"rss_bytes=67108865", "limit_bytes=67108864", "message_id="+MessageMemoryLimit) {
		t.Errorf("no memory limit record in the log:\n%s", w.out)
	}
	if n := w.out.count("memory limit exceeded"); n != 1 {
		t.Errorf("%d memory limit records, want 1", n)
	}
}

// While one instance stops for memory, holding the exclusive lock, another
// one over the limit waits, says so once, and stops only after the first
// has exited and the lock was free at two samples in a row.
func TestMemoryOneAtATime(t *testing.T) {
	path := lockFile(t)
	a, b := newTestWatch(t, testLimit, path), newTestWatch(t, testLimit, path)
	const hi = 2 * testLimit
	if got := a.samples(hi, hi, hi, hi); !got[3] {
		t.Fatalf("a did not stop: %v", got)
	}
	for k, stop := range b.samples(hi, hi, hi, hi, hi, hi, hi, hi) {
		if stop {
			t.Fatalf("b stopped at sample %d while a holds the lock", k)
		}
	}
	if n := b.out.count("over the memory limit; waiting while another instance restarts or starts"); n != 1 {
		t.Errorf("b logged that it waits %d times, want once:\n%s", n, b.out)
	}
	if note := b.statusNote(); !strings.Contains(note, "over the memory limit 64.0 MiB, rss 128.0 MiB, waiting") {
		t.Errorf("STATUS note while waiting: %q", note)
	}
	unix.Close(a.held) // a exits
	a.held = -1
	if got := b.samples(hi, hi); got[0] || !got[1] {
		t.Errorf("b after a exited: %v, want to stop at the second sample", got)
	}
}

// An instance that is starting holds the lock shared; none stops for
// memory until it is ready, and the lock must then stay free for two
// samples in a row.
func TestMemoryWaitsForStart(t *testing.T) {
	path := lockFile(t)
	w := newTestWatch(t, testLimit, path)
	const hi = 2 * testLimit
	w.samples(hi, hi)
	if w.sample() {
		t.Fatal("stopped with the lock free only once")
	}
	// A replacement starts between two samples: the free lock seen
	// before does not count.
	fd, ok, err := flockNB(path, unix.LOCK_SH)
	if !ok {
		t.Fatalf("shared lock: %v", err)
	}
	if got := w.samples(hi, hi); got[0] || got[1] {
		t.Fatalf("stopped while an instance starts: %v", got)
	}
	unix.Close(fd) // it is ready
	if got := w.samples(hi, hi); got[0] || !got[1] {
		t.Errorf("after the start: %v, want to stop at the second sample", got)
	}
	// A starting instance does not get the shared lock while one stops.
	if _, ok, err := flockNB(path, unix.LOCK_SH); ok || err != nil {
		t.Errorf("shared lock while one instance stops: ok=%v, %v", ok, err)
	}
}

// Without a lock file to agree on, the instance stops anyway, saying so.
func TestMemoryWithoutLock(t *testing.T) {
	w := newTestWatch(t, testLimit, filepath.Join(t.TempDir(), "missing"))
	if got := w.samples(testLimit+1, testLimit+1, testLimit+1); !got[2] {
		t.Fatalf("did not stop at the third strike without a lock file: %v", got)
	}
	if !w.out.has("level=WARN", "restarting without waiting for them", "missing") {
		t.Errorf("no warning about the lock file:\n%s", w.out)
	}
}

// A sampler that fails is reported once and stops nothing.
func TestMemorySampleFails(t *testing.T) {
	w := newTestWatch(t, testLimit, lockFile(t))
	w.hooks.rss = func() (uint64, error) { return 0, errors.New("no /proc") }
	for range 5 {
		if w.sample() {
			t.Fatal("stopped without a sample")
		}
	}
	if n := w.out.count("cannot sample the resident memory"); n != 1 {
		t.Errorf("%d warnings about sampling, want 1:\n%s", n, w.out)
	}
}

// Serve, once the resident memory stays above the limit, drains without
// failing the request in flight, says why in STATUS= and the log, keeps
// the herd's lock, and returns ErrMemoryLimit. While it starts it holds
// the lock shared.
func TestServeStopsForMemory(t *testing.T) {
	s := startMemoryServe(t, WithDrainTimeout(10*time.Second))
	resp := s.slowRequest(t)
	s.over.Store(true)
	s.waitState(t, stateDraining)
	s.notify.wait(t, "STATUS=draining (memory limit 4.0 MiB, rss ")
	close(s.release)
	r := <-resp
	if r.err != nil || r.code != http.StatusOK || r.body != "done\n" {
		t.Fatalf("request in flight during the drain: %d %q, %v", r.code, r.body, r.err)
	}
	err := s.wait(t)
	if !errors.Is(err, ErrMemoryLimit) || errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("Serve: %v, want ErrMemoryLimit only", err)
	}
	// Every peer must have seen the lock taken before the instance exits.
	if held := time.Since(s.inst.mem.heldSince); held < 2*s.inst.mem.hooks.interval {
		t.Errorf("Serve returned %v after taking the lock, want at least two sample intervals", held)
	}
	if !strings.Contains(err.Error(), "memory limit 4.0 MiB, rss ") {
		t.Errorf("Serve's error %q does not give the limit and rss", err)
	}
	for _, want := range [][]string{
		{"msg=ready", "memory_limit=4194304"},
		{"level=WARN", `msg="memory limit exceeded; draining so that systemd replaces this instance"`,
			"rss_bytes=", "limit_bytes=4194304", "message_id=" + MessageMemoryLimit},
		{"msg=draining", `cause="memory limit"`},
		{"msg=drained"},
	} {
		if !s.log.has(want...) {
			t.Errorf("no record with %q in the log:\n%s", want, s.log)
		}
	}
	s.notify.wait(t, "STOPPING=1")
	if _, ok, err := flockNB(s.lockPath, unix.LOCK_SH); ok || err != nil {
		t.Errorf("the stopped instance no longer holds the lock: ok=%v, %v", ok, err)
	}
}

// A drain for memory that is cut off matches ErrMemoryLimit and
// ErrDrainTimeout.
func TestServeStopsForMemoryCutShort(t *testing.T) {
	s := startMemoryServe(t, WithDrainTimeout(50*time.Millisecond))
	defer close(s.release)
	resp := s.slowRequest(t)
	s.over.Store(true)
	err := s.wait(t)
	if !errors.Is(err, ErrMemoryLimit) || !errors.Is(err, ErrDrainTimeout) {
		t.Fatalf("Serve: %v, want ErrMemoryLimit and ErrDrainTimeout", err)
	}
	if r := <-resp; r.err == nil {
		t.Errorf("the request cut off got %d", r.code)
	}
}

// memoryServe is an instance serving a real TCP listener with a memory
// limit of 4 MiB, sampled every 10ms from the real /proc/self/statm once
// over is set (the test binary is far bigger) and as 0 before.
type memoryServe struct {
	inst     *Instance
	url      string
	lockPath string
	over     atomic.Bool
	started  chan struct{} // a /slow request arrived
	release  chan struct{} // closed: /slow answers
	done     chan error
	log      *lockedLog
	notify   *notifyRecorder
}

func startMemoryServe(t *testing.T, opts ...Option) *memoryServe {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &memoryServe{
		url: "http://" + ln.Addr().String(), lockPath: lockFile(t),
		started: make(chan struct{}, 1), release: make(chan struct{}),
		done: make(chan error, 1), log: &lockedLog{}, notify: newNotifyRecorder(t),
	}
	hooks := memoryHooks{
		interval: 10 * time.Millisecond,
		rss: func() (uint64, error) {
			if !s.over.Load() {
				return 0, nil
			}
			return readRSS()
		},
		free:     func() {},
		lockPath: s.lockPath,
	}
	startLocked := make(chan bool, 1)
	opts = append(opts, WithListeners(ln), WithoutSignals(), WithMemoryLimit(4<<20),
		WithNotifier(NewNotifierFor(s.notify.path)), WithStatusInterval(100*time.Millisecond),
		WithLogger(slog.New(slog.NewTextHandler(s.log, nil))),
		func(c *config) error { c.memory = hooks; return nil },
		WithWarmup(func(context.Context) error {
			_, ok, _ := flockNB(s.lockPath, unix.LOCK_EX)
			startLocked <- !ok
			return nil
		}))
	if s.inst, err = New(opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.inst.mem.held >= 0 {
			unix.Close(s.inst.mem.held)
		}
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		s.started <- struct{}{}
		<-s.release
		fmt.Fprintln(w, "done")
	})
	go func() { s.done <- s.inst.Serve(context.Background(), mux) }()
	if !<-startLocked {
		t.Error("the exclusive lock was free during the warm-up")
	}
	s.waitState(t, stateReady)
	s.waitUnlocked(t)
	return s
}

// waitUnlocked waits until the instance, ready, released its shared lock.
func (s *memoryServe) waitUnlocked(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		fd, ok, err := flockNB(s.lockPath, unix.LOCK_EX)
		if ok {
			unix.Close(fd)
			return
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("the lock is still taken once the instance is ready: %v", err)
		}
	}
}

type response struct {
	code int
	body string
	err  error
}

// slowRequest sends GET /slow and returns once the handler has it.
func (s *memoryServe) slowRequest(t *testing.T) <-chan response {
	t.Helper()
	out := make(chan response, 1)
	go func() {
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get(s.url + "/slow")
		if err != nil {
			out <- response{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		out <- response{code: resp.StatusCode, body: string(body), err: err}
	}()
	select {
	case <-s.started:
	case <-time.After(10 * time.Second):
		t.Fatal("GET /slow never reached the handler")
	}
	return out
}

func (s *memoryServe) waitState(t *testing.T, want state) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.inst.state() != want; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("state %s, want %s; log:\n%s", s.inst.state(), want, s.log)
		}
	}
}

func (s *memoryServe) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("Serve did not return; log:\n%s", s.log)
		return nil
	}
}

// lockedLog collects log output from several goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// has reports whether one line of the log contains every one of parts.
func (l *lockedLog) has(parts ...string) bool {
	for _, line := range strings.Split(l.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// count returns how many lines of the log contain s.
func (l *lockedLog) count(s string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// notifyRecorder is a real NOTIFY_SOCKET keeping every assignment.
type notifyRecorder struct {
	path string
	mu   sync.Mutex
	got  []string
}

func newNotifyRecorder(t *testing.T) *notifyRecorder {
	t.Helper()
	r := &notifyRecorder{path: filepath.Join(t.TempDir(), "notify")}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: r.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			r.mu.Lock()
			r.got = append(r.got, strings.Split(string(buf[:n]), "\n")...)
			r.mu.Unlock()
		}
	}()
	return r
}

// wait waits until an assignment starting with prefix arrived.
func (r *notifyRecorder) wait(t *testing.T, prefix string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		r.mu.Lock()
		got := append([]string(nil), r.got...)
		r.mu.Unlock()
		for _, a := range got {
			if strings.HasPrefix(a, prefix) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q… among %q", prefix, got)
		}
	}
}
