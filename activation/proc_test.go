package activation_test

// Helpers that run real worker processes: the test binary re-executes itself
// as a worker (see TestMain), receives real listening sockets through
// ExtraFiles with LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES, and reports over a
// real unix datagram NOTIFY_SOCKET.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unitkit/unitkit/activation"
	"golang.org/x/sys/unix"
)

const workerEnv = "ACTIVATION_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

// workerMain is the worker process: a handler whose every request passes
// one mutex, so that GET /wedge (which takes it for good) wedges the whole
// serving path the way a deadlock would.
func workerMain() int {
	var mu sync.Mutex
	inst, err := activation.New(workerOptions()...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 2
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/wedge", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock() // never unlocked
		fmt.Fprintln(w, "wedged")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		mu.Unlock() //lint:ignore SA2001 passing the mutex is the point: /wedge holds it
		_, _ = io.Copy(io.Discard, r.Body)
		if ms, _ := strconv.Atoi(r.URL.Query().Get("ms")); ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		w.Header().Set("X-Instance", inst.Name())
		fmt.Fprintln(w, "ok")
	})
	if err := inst.Serve(context.Background(), mux); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

func workerOptions() []activation.Option {
	opts := []activation.Option{activation.WithStatusInterval(200 * time.Millisecond)}
	if name := os.Getenv("WORKER_LISTENER"); name != "" {
		opts = append(opts, activation.WithListenerName(name))
	}
	if os.Getenv("WORKER_WARMUP_FAIL") != "" {
		opts = append(opts, activation.WithWarmup(func(context.Context) error {
			return errors.New("cache is cold")
		}))
	}
	if os.Getenv("WORKER_RELOAD_FAIL") != "" {
		opts = append(opts, activation.WithReload(func(context.Context) error {
			return errors.New("config file is broken")
		}))
	}
	return opts
}

// recorder is a real NOTIFY_SOCKET: a unix datagram socket that keeps every
// assignment it receives, in order.
type recorder struct {
	path string
	conn *net.UnixConn
	mu   sync.Mutex
	got  []string
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	dir, err := os.MkdirTemp("", "notify")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{path: path, conn: conn}
	t.Cleanup(func() { conn.Close() })
	go r.read()
	return r
}

func (r *recorder) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.got = append(r.got, strings.Split(string(buf[:n]), "\n")...)
		r.mu.Unlock()
	}
}

// lines returns every assignment received so far.
func (r *recorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// count reports how many received assignments equal line.
func (r *recorder) count(line string) int {
	n := 0
	for _, l := range r.lines() {
		if l == line {
			n++
		}
	}
	return n
}

// waitCount waits until line was received at least n times.
func (r *recorder) waitCount(t *testing.T, line string, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for r.count(line) < n {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %d× %q; got %q", timeout, n, line, r.lines())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitPrefix waits until an assignment starting with prefix and containing
// part was received.
func (r *recorder) waitPrefix(t *testing.T, prefix, part string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !slices.ContainsFunc(r.lines(), func(l string) bool { return strings.HasPrefix(l, prefix) && strings.Contains(l, part) }) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %q… containing %q; got %q", timeout, prefix, part, r.lines())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// worker is one running worker process.
type worker struct {
	cmd    *exec.Cmd
	rec    *recorder
	stderr *lockedBuffer
	done   chan struct{}
	err    error
}

type workerSpec struct {
	files    []*os.File // passed as fds 3, 4, ...
	names    []string   // LISTEN_FDNAMES
	env      []string   // extra variables
	watchdog time.Duration
}

// startWorker starts a worker the way systemd would: LISTEN_PID and
// WATCHDOG_PID name the worker's own PID (a shell sets them, then execs it).
func startWorker(t *testing.T, spec workerSpec) *worker {
	t.Helper()
	rec := newRecorder(t)
	script := ""
	if len(spec.files) > 0 {
		script += "LISTEN_PID=$$; export LISTEN_PID; "
	}
	if spec.watchdog > 0 {
		script += "WATCHDOG_PID=$$; export WATCHDOG_PID; "
	}
	script += `exec "$0"`
	cmd := exec.Command("/bin/sh", "-c", script, os.Args[0])
	cmd.Env = append(os.Environ(), workerEnv+"=1", "NOTIFY_SOCKET="+rec.path)
	if len(spec.files) > 0 {
		cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(spec.files)), "LISTEN_FDNAMES="+strings.Join(spec.names, ":"))
	}
	if spec.watchdog > 0 {
		cmd.Env = append(cmd.Env, "WATCHDOG_USEC="+strconv.FormatInt(spec.watchdog.Microseconds(), 10))
	}
	cmd.Env = append(cmd.Env, spec.env...)
	cmd.ExtraFiles = spec.files
	w := &worker{cmd: cmd, rec: rec, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = w.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range spec.files {
		requireNonBlocking(t, f) // before the worker could set it again
	}
	go func() { w.err = cmd.Wait(); close(w.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-w.done
		if t.Failed() {
			t.Logf("worker %d stderr:\n%s", cmd.Process.Pid, w.stderr.String())
		}
	})
	return w
}

// waitLog waits until the worker's stderr contains text. The worker's
// notifications and its log lines travel on different channels, so a
// notification received says nothing about the log having arrived.
func (w *worker) waitLog(t *testing.T, text string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(w.stderr.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for worker %d to log %q; stderr:\n%s", timeout, w.cmd.Process.Pid, text, w.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (w *worker) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := w.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the worker to exit and returns its exit code.
func (w *worker) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		t.Fatalf("worker %d did not exit within %s", w.cmd.Process.Pid, timeout)
	}
	var ee *exec.ExitError
	if errors.As(w.err, &ee) {
		return ee.ExitCode()
	}
	if w.err != nil {
		t.Fatal(w.err)
	}
	return 0
}

// lockedBuffer collects a child's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// tcpSocket opens a listening socket on loopback and returns it as a file,
// as systemd would hold it with NonBlocking=yes: the socket stays
// non-blocking whenever a worker is started with it.
//
// os/exec hands ExtraFiles over through File.Fd, which puts a file that Go
// opened non-blocking into blocking mode, and the flag belongs to the socket
// every worker shares: a worker whose Go accept then calls accept(2) sleeps
// in the kernel, outside Go's netpoller, until a connection comes to it,
// and cannot close its listener meanwhile (docs/decisions.md: "Every
// instance start keeps the shared socket non-blocking"). A file that Go
// finds blocking when it wraps the descriptor is one whose Fd leaves the
// flag alone, so the descriptor is wrapped while the socket is briefly
// blocking, before any worker exists.
func tcpSocket(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the duplicate in f keeps the socket listening
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var f *os.File
	var ferr error
	err = raw.Control(func(fd uintptr) {
		if ferr = syscall.SetNonblock(int(fd), false); ferr != nil {
			return
		}
		dup, err := syscall.Dup(int(fd))
		if ferr = err; err != nil {
			return
		}
		syscall.CloseOnExec(dup)
		f = os.NewFile(uintptr(dup), "app.socket")
		ferr = syscall.SetNonblock(int(fd), true)
	})
	if err != nil || ferr != nil {
		t.Fatalf("duplicate the listening socket: %v %v", err, ferr)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

// requireNonBlocking fails the test unless the shared socket f is
// non-blocking, as NonBlocking=yes keeps it under systemd.
func requireNonBlocking(t *testing.T, f *os.File) {
	t.Helper()
	raw, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	var ferr error
	if err := raw.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		t.Fatalf("F_GETFL: %v %v", err, ferr)
	}
	if flags&unix.O_NONBLOCK == 0 {
		t.Fatal("the shared socket is in blocking mode: starting a worker cleared O_NONBLOCK")
	}
}

// get sends one request on a fresh connection.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}
