package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// DialContext connects to addr in the sandbox's network namespace (its
// loopback), from the calling process: the socket is created on a thread
// that has switched into the sandbox's namespace, and keeps that namespace
// for its whole life.
func (s *Sandbox) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", s.pid))
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: dial %s: %w", s.name, addr, err)
	}
	defer target.Close()
	runtime.LockOSThread()
	home, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("sandbox %s: dial %s: %w", s.name, addr, err)
	}
	defer home.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("sandbox %s: enter network namespace: %w", s.name, err)
	}
	var d net.Dialer
	conn, dialErr := d.DialContext(ctx, network, addr)
	if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: Go discards it when this goroutine ends,
		// so no other goroutine runs in the wrong namespace.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("sandbox %s: leave network namespace: %w", s.name, err)
	}
	runtime.UnlockOSThread()
	return conn, dialErr
}

// HTTPClient returns a client whose connections go to the sandbox's
// network; with keepAlive false every request uses a new connection.
func (s *Sandbox) HTTPClient(keepAlive bool) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         s.DialContext,
			DisableKeepAlives:   !keepAlive,
			MaxIdleConnsPerHost: 1,
		},
	}
}

// Link joins the networks of two sandboxes with a veth pair, as if a cable
// ran between two hosts: a's end gets address aAddr and b's end bAddr (IPv4,
// without a prefix), each a /32 with the other as its point-to-point peer,
// so one sandbox can be linked to several others without routes to set.
// The pair goes away with either sandbox.
func Link(ctx context.Context, a *Sandbox, aAddr string, b *Sandbox, bAddr string) error {
	// Each end is named after the other sandbox's PID: "to4242".
	aIf, bIf := fmt.Sprintf("to%d", b.pid), fmt.Sprintf("to%d", a.pid)
	add := exec.CommandContext(ctx, "ip", "link", "add", aIf, "netns", strconv.Itoa(a.pid),
		"type", "veth", "peer", "name", bIf, "netns", strconv.Itoa(b.pid))
	if out, err := add.CombinedOutput(); err != nil {
		return fmt.Errorf("link sandboxes %s and %s: %w: %s", a.name, b.name, err, out)
	}
	for _, end := range []struct {
		s         *Sandbox
		dev, addr string
		peer      string
	}{{a, aIf, aAddr, bAddr}, {b, bIf, bAddr, aAddr}} {
		if _, err := end.s.Run(ctx, "ip", "addr", "add", end.addr+"/32", "peer", end.peer+"/32", "dev", end.dev); err != nil {
			return fmt.Errorf("link sandboxes %s and %s: %w", a.name, b.name, err)
		}
		if _, err := end.s.Run(ctx, "ip", "link", "set", end.dev, "up"); err != nil {
			return fmt.Errorf("link sandboxes %s and %s: %w", a.name, b.name, err)
		}
	}
	return nil
}
