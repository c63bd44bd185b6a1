package tests

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/remote"
	"github.com/unitkit/unitkit/tests/sandbox"
)

// remoteHost is a sandbox running sshd with the test's key authorized, and
// a Dialer whose ssh runs in the sandbox's network (its 127.0.0.1 is that
// sshd) with the test's key and known_hosts.
type remoteHost struct {
	*herd
	key       sshKey
	known     string // known_hosts path on this machine
	netPrefix []string
}

func newRemoteHost(t *testing.T) *remoteHost {
	t.Helper()
	h := &remoteHost{herd: &herd{t: t, s: sandbox.New(t)}, key: newSSHKey(t)}
	hostKey := h.startSSHD(t, h.key.public)
	h.known = filepath.Join(t.TempDir(), "known_hosts")
	h.must(os.WriteFile(h.known, []byte(knownHosts(map[string]string{"127.0.0.1": hostKey})), 0o644))
	h.netPrefix = []string{"/usr/bin/nsenter", "-t", strconv.Itoa(h.s.PID()), "-n", "--", "/usr/bin/ssh"}
	return h
}

// dialer returns a Dialer logging in with key and checking host keys
// against knownHosts.
func (h *remoteHost) dialer(key, knownHosts string) remote.Dialer {
	return remote.Dialer{SSH: append(append([]string{}, h.netPrefix...), sshArgs(key, knownHosts)...)}
}

// systemd's D-Bus API over ssh and systemd-stdio-bridge: properties are
// read, and a job started remotely reports its result through the second
// (signal) connection; the ssh sessions end with the connection.
func TestRemoteSystemdOverSSH(t *testing.T) {
	h := newRemoteHost(t)
	h.must(h.s.WriteFile("/etc/systemd/system/remote-probe.service",
		[]byte("[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"), 0o644))
	h.systemctl("daemon-reload")

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	host := remote.Host{User: "root", Name: "127.0.0.1"}
	conn, err := h.dialer(h.key.private, h.known).Systemd(ctx, host)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	p, err := conn.GetUnitPropertyContext(ctx, "ssh.service", "ActiveState")
	if err != nil || p.Value.Value() != "active" {
		t.Fatalf("ssh.service ActiveState over ssh: %v, %v", p, err)
	}
	ch := make(chan string, 1)
	if _, err := conn.StartUnitContext(ctx, "remote-probe.service", "replace", ch); err != nil {
		t.Fatalf("start remote-probe.service: %v", err)
	}
	select {
	case res := <-ch:
		if res != "done" {
			t.Fatalf("start remote-probe.service: job %s", res)
		}
	case <-ctx.Done():
		t.Fatal("no job result over ssh")
	}
	if out := h.systemctl("is-active", "remote-probe.service"); strings.TrimSpace(out) != "active" {
		t.Fatalf("remote-probe.service in the sandbox: %q", out)
	}
	conn.Close()
	h.waitFor("the ssh sessions to end", 10*time.Second, func() bool {
		out, _ := h.s.Run(t.Context(), "pgrep", "-c", "-f", remote.Bridge)
		return strings.TrimSpace(out) == "0"
	})
}

// Each way of failing to connect names the host and says why, and is the
// error the CLI turns into its hint.
func TestRemoteConnectErrors(t *testing.T) {
	h := newRemoteHost(t)
	other := newSSHKey(t)
	empty := filepath.Join(t.TempDir(), "known_hosts_empty")
	h.must(os.WriteFile(empty, nil, 0o644))
	root := remote.Host{User: "root", Name: "127.0.0.1"}
	for _, tc := range []struct {
		name       string
		d          remote.Dialer
		host       remote.Host
		want       error
		inMessages []string
	}{
		{"wrong key", h.dialer(other.private, h.known), root, remote.ErrPermission, []string{"root@127.0.0.1", "Permission denied"}},
		{"unknown host key", h.dialer(h.key.private, empty), root, remote.ErrUnreachable, []string{"root@127.0.0.1", "Host key verification failed"}},
		{"no route", h.dialer(h.key.private, h.known), remote.Host{User: "root", Name: "192.0.2.99"}, remote.ErrUnreachable, []string{"root@192.0.2.99", "unreachable"}},
		{"no such host", h.dialer(h.key.private, h.known), remote.Host{Name: "no-such-host.invalid"}, remote.ErrUnreachable, []string{"no-such-host.invalid"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			conn, err := tc.d.Systemd(ctx, tc.host)
			if err == nil {
				conn.Close()
				t.Fatal("connected")
			}
			t.Log(err)
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q is not %q", err, tc.want)
			}
			for _, s := range tc.inMessages {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
	// Last: without systemd-stdio-bridge on the host.
	h.s.MustRun(t, "rm", "/usr/bin/systemd-stdio-bridge")
	_, err := h.dialer(h.key.private, h.known).Systemd(t.Context(), root)
	t.Log(err)
	if !errors.Is(err, remote.ErrUnreachable) || !strings.Contains(err.Error(), "systemd-stdio-bridge is not installed") {
		t.Errorf("without the bridge: %v", err)
	}
}
