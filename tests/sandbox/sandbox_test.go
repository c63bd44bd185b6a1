package sandbox_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitkit/unitkit/tests/sandbox"
)

// Two sandboxes booted side by side have their own host name, network
// (both listen on the same port), cgroup tree and /tmp; booting leaves the
// host's /tmp alone, and after Close nothing of them is left.
func TestSandboxesAreIsolatedAndLeaveNothing(t *testing.T) {
	if err := sandbox.Prerequisites(); err != nil && os.Geteuid() != 0 {
		t.Skip("sandbox test skipped: " + err.Error())
	}
	hostFile, err := os.CreateTemp("", "unitkit-host-file")
	if err != nil {
		t.Fatal(err)
	}
	hostFile.Close()
	defer os.Remove(hostFile.Name())

	boxes := bootInParallel(t, "uk-iso-a", "uk-iso-b")
	for _, s := range boxes {
		if got := strings.TrimSpace(s.MustRun(t, "hostname")); got != s.Name() {
			t.Errorf("hostname %q in sandbox %s", got, s.Name())
		}
		s.MustRun(t, "systemd-run", "--unit=listener", "--service-type=simple",
			"/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:8080", "/bin/cat")
		// A simple service is active once forked, before it has bound
		// its port: wait for the port itself.
		if out, ok := waitListening(t, s, "127.0.0.1:8080", 10*time.Second); !ok {
			t.Errorf("sandbox %s: nothing listening on 8080 after 10s: %q", s.Name(), out)
		}
		if _, err := os.Stat(filepath.Join(s.Cgroup(), "system.slice", "listener.service")); err != nil {
			t.Errorf("sandbox %s: listener.service not in its own cgroup tree: %v", s.Name(), err)
		}
		if _, err := s.ReadFile(hostFile.Name()); err == nil {
			t.Errorf("sandbox %s sees the host's %s", s.Name(), hostFile.Name())
		}
	}
	if _, err := os.Stat(hostFile.Name()); err != nil {
		t.Fatalf("booting touched the host's temporary files: %v", err)
	}
	for _, s := range boxes {
		pid, cgroup := s.PID(), s.Cgroup()
		s.Close()
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			t.Errorf("sandbox %s: its systemd (PID %d) is alive after Close", s.Name(), pid)
		}
		if _, err := os.Stat(cgroup); err == nil {
			t.Errorf("sandbox %s: cgroup %s left behind", s.Name(), cgroup)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, s := range boxes {
		if strings.Contains(string(mounts), "/"+s.Name()+" ") {
			t.Errorf("sandbox %s: its files are still mounted on the host", s.Name())
		}
	}
}

// waitListening polls ss until something listens on addr in s, or timeout
// passes; it returns what ss printed last.
func waitListening(t *testing.T, s *sandbox.Sandbox, addr string, timeout time.Duration) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, port, _ := net.SplitHostPort(addr)
		out := s.MustRun(t, "ss", "-ltnH", "sport = :"+port)
		if strings.Contains(out, addr) {
			return out, true
		}
		if time.Now().After(deadline) {
			return out, false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func bootInParallel(t *testing.T, names ...string) []*sandbox.Sandbox {
	t.Helper()
	boxes := make([]*sandbox.Sandbox, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			boxes[i], errs[i] = sandbox.Boot(context.Background(), name)
		}()
	}
	wg.Wait()
	for i := range boxes {
		if boxes[i] != nil {
			t.Cleanup(boxes[i].Close)
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	return boxes
}

// A reboot keeps the files written before it and boots systemd afresh.
func TestRebootKeepsFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sandbox test skipped: needs root")
	}
	s := sandbox.New(t)
	if err := s.WriteFile("/etc/unitkit-reboot-test", []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	bootBefore := s.MustRun(t, "systemctl", "show", "-p", "InvocationID", "systemd-journald.service")
	if err := s.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ReadFile("/etc/unitkit-reboot-test"); err != nil || string(got) != "kept" {
		t.Fatalf("after reboot: %q, %v", got, err)
	}
	if after := s.MustRun(t, "systemctl", "show", "-p", "InvocationID", "systemd-journald.service"); after == bootBefore {
		t.Fatalf("journald was not started again (%s)", after)
	}
}
