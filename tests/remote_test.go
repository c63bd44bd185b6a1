package tests

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
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
			err := tc.d.Run(ctx, tc.host, []string{"true"}, io.Discard, io.Discard)
			if err == nil {
				t.Fatal("ran")
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
	// A program the host does not have.
	err := h.dialer(h.key.private, h.known).Run(t.Context(), root, []string{"no-such-program"}, io.Discard, io.Discard)
	t.Log(err)
	if !errors.Is(err, remote.ErrUnreachable) || !strings.Contains(err.Error(), "no-such-program is not installed there") {
		t.Errorf("without the program: %v", err)
	}
}

// appctl -H as an operator runs it: on a machine of its own (a sandbox
// linked to two hosts), with its key and known_hosts in root's ~/.ssh and
// no ssh options, against two hosts with the herd installed and sshd.
func TestRemoteAppctl(t *testing.T) {
	key := newSSHKey(t)
	op := &herd{t: t, s: sandbox.New(t)}
	hosts := []*herd{newHerd(t), newHerd(t)}
	known := map[string]string{}
	dest := make([]string, len(hosts))
	for i, h := range hosts {
		op.must(sandbox.Link(t.Context(), op.s, lbAddrs[i], h.s, hostAddrs[i]))
		known[hostAddrs[i]] = h.startSSHD(t, key.public)
		dest[i] = "root@" + hostAddrs[i]
	}
	op.must(op.s.CopyFile(filepath.Join(binDir, "appctl"), "/usr/bin/appctl", 0o755))
	op.must(op.s.CopyFile(key.private, "/root/.ssh/id_ed25519", 0o600))
	op.must(op.s.WriteFile("/root/.ssh/known_hosts", []byte(knownHosts(known)), 0o644))

	appctl := func(want int, args ...string) string {
		t.Helper()
		out, code := op.appctl(args...)
		if code != want {
			t.Fatalf("appctl %s: exit %d, want %d:\n%s", strings.Join(args, " "), code, want, out)
		}
		return out
	}
	appctl(0, "-H", dest[0], "scale", "2")
	appctl(0, "-H", dest[1], "scale", "1")
	if out := hosts[0].systemctl("is-active", "app@1.service", "app@2.service"); out != "active\nactive\n" {
		t.Fatalf("host 1 after scale 2 there: %q", out)
	}

	table := appctl(0, "-H", dest[0], "-H", dest[1], "status")
	for _, want := range []string{"HOST ", dest[0] + "  app.socket", dest[0] + "  app@2", dest[1] + "  app@1", dest[1] + ": 1 instances: 1 running"} {
		if !strings.Contains(table, want) {
			t.Errorf("status lacks %q:\n%s", want, table)
		}
	}
	var all []struct {
		Host    string `json:"host"`
		Summary struct {
			Running int `json:"running"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(appctl(0, "-H", dest[0]+","+dest[1], "status", "--json")), &all); err != nil ||
		len(all) != 2 || all[0].Host != dest[0] || all[0].Summary.Running != 2 || all[1].Host != dest[1] || all[1].Summary.Running != 1 {
		t.Fatalf("status --json: %+v, %v", all, err)
	}

	// -n counts each host's records of the service, whatever else the
	// ssh logins put in their journals since.
	logs := appctl(0, "-H", dest[0]+","+dest[1], "logs", "-n", "5", "-o", "json")
	seen, last := map[string]int{}, ""
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var r struct{ Host, Time string }
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("logs: %q: %v", line, err)
		}
		if r.Time < last {
			t.Errorf("logs not in time order at %q:\n%s", line, logs)
		}
		seen[r.Host]++
		last = r.Time
	}
	if seen[dest[0]] != 5 || seen[dest[1]] != 5 || len(seen) != 2 {
		t.Errorf("logs -n 5 from two hosts: %v, want 5 each\n%s", seen, logs)
	}
	if text := appctl(0, "-H", dest[0]+","+dest[1], "logs", "-n", "5"); !strings.Contains(text, dest[0]+" ") || !strings.Contains(text, dest[1]+" ") {
		t.Errorf("logs text without both hosts:\n%s", text)
	}

	// Following both hosts shows what each does from then on, with its host.
	follow := op.s.Command(t.Context(), "appctl", "-H", dest[0]+","+dest[1], "logs", "-f", "-n", "0")
	var followed lockedWriter
	follow.Stdout, follow.Stderr = &followed, &followed
	op.must(follow.Start())
	time.Sleep(time.Second) // both ssh sessions and their journalctl started
	appctl(0, "-H", dest[0], "scale", "3")
	appctl(0, "-H", dest[1], "scale", "2")
	op.waitFor("logs -f on two hosts shows each one's new instance", 30*time.Second, func() bool {
		return hasLine(followed.String(), dest[0]+" ", " app@3 ") && hasLine(followed.String(), dest[1]+" ", " app@2 ")
	})
	_ = follow.Process.Kill()
	_ = follow.Wait()

	if out := appctl(1, "-H", "root@192.0.2.99", "status"); !strings.Contains(out, "root@192.0.2.99: host unreachable") {
		t.Errorf("unreachable host:\n%s", out)
	}
	if out := appctl(1, "--app", "shop", "-H", dest[0], "status"); !strings.Contains(out, dest[0]+": appctl: not installed: shop.socket") {
		t.Errorf("service not installed:\n%s", out)
	}
	if out := appctl(2, "-H", "-oProxyCommand=touch /tmp/injected", "status"); !strings.Contains(out, "Try '") {
		t.Errorf("option as host:\n%s", out)
	}
	if _, err := op.s.ReadFile("/tmp/injected"); err == nil {
		t.Error("-H ran ssh's ProxyCommand")
	}
	hosts[1].must(hosts[1].s.WriteFile("/root/.ssh/authorized_keys", []byte(newSSHKey(t).public+"\n"), 0o600))
	if out := appctl(1, "-H", dest[0]+","+dest[1], "scale", "1"); !strings.Contains(out, dest[1]+": permission denied") {
		t.Errorf("key refused:\n%s", out)
	}
	if out := hosts[0].systemctl("is-active", "app@1.service"); out != "active\n" {
		t.Errorf("host 1 after scale 1 there: %q", out)
	}
}

// hasLine reports whether a line of text contains each of parts.
func hasLine(text string, parts ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
			return true
		}
	}
	return false
}
