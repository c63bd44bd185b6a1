package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unitkit/unitkit/tests/sandbox"
)

// sshKey is a key pair made for one test: the private key's file on the
// host (mode 0600, in the test's temporary directory) and the public key
// as one authorized_keys line.
type sshKey struct {
	private string
	public  string
}

// newSSHKey makes an ed25519 key pair without a passphrase for root's
// logins into the test's sandboxes.
func newSSHKey(t *testing.T) sshKey {
	t.Helper()
	private := filepath.Join(t.TempDir(), "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "unitkit-test", "-f", private).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s (apt-get install openssh-client)", err, out)
	}
	public, err := os.ReadFile(private + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return sshKey{private: private, public: strings.TrimSpace(string(public))}
}

// startSSHD starts Debian's OpenSSH server (openssh-server) in the sandbox,
// on port 22 of every address it has, with fresh host keys and pubKey (an
// authorized_keys line, e.g. newSSHKey's public) allowed to log in as
// root. It returns the sandbox's ed25519 host key ("ssh-ed25519 AAAA…"),
// for a known_hosts file the client checks it against (knownHosts).
func (h *herd) startSSHD(t *testing.T, pubKey string) string {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/sshd"); err != nil {
		t.Fatal("sshd not found: apt-get install openssh-server")
	}
	// The sandbox sees this machine's files: make host keys of its own.
	h.s.MustRun(t, "rm", "-f", "/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_ecdsa_key.pub",
		"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub",
		"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub")
	h.s.MustRun(t, "ssh-keygen", "-A")
	h.s.MustRun(t, "mkdir", "-p", "-m", "0700", "/root/.ssh")
	h.must(h.s.WriteFile("/root/.ssh/authorized_keys", []byte(pubKey+"\n"), 0o600))
	// sshd runs commands through root's shell, and Debian's bash reads
	// ~/.bashrc even for them: use Debian's default one rather than the
	// one the sandbox inherits from the system below it, which may take
	// seconds per command or print.
	h.s.MustRun(t, "cp", "/etc/skel/.bashrc", "/root/.bashrc")
	// Booted to basic.target, the sandbox still has /run/nologin, which
	// systemd-user-sessions removes on a booted host: logins then print
	// "System is booting up" into every command's output.
	h.systemctl("start", "systemd-user-sessions.service", "ssh.service")
	// ssh.service is Type=notify: started means listening. Check anyway,
	// since a client's first connection must not race it.
	h.waitFor("sshd listening on port 22", 10*time.Second, func() bool {
		out, err := h.s.Run(t.Context(), "ss", "-Hltn", "sport = :22")
		return err == nil && strings.TrimSpace(out) != ""
	})
	hostKey, err := h.s.ReadFile("/etc/ssh/ssh_host_ed25519_key.pub")
	h.must(err)
	fields := strings.Fields(string(hostKey))
	if len(fields) < 2 {
		t.Fatalf("sshd host key: %q", hostKey)
	}
	return fields[0] + " " + fields[1]
}

// knownHosts returns the content of a known_hosts file that names each
// address with the host key startSSHD returned for it. Clients use it with
// -o UserKnownHostsFile= (ssh reads root's home from the passwd file, not
// $HOME), so host keys are checked as on a real fleet.
func knownHosts(keys map[string]string) string {
	var b strings.Builder
	for addr, key := range keys {
		fmt.Fprintf(&b, "%s %s\n", addr, key)
	}
	return b.String()
}

// sshArgs are the options of an ssh client that logs in with key only,
// checks host keys against the known_hosts file at knownHostsPath and
// never prompts.
func sshArgs(keyPath, knownHostsPath string) []string {
	return []string{"-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "UserKnownHostsFile=" + knownHostsPath, "-o", "StrictHostKeyChecking=yes",
		"-o", "ConnectTimeout=10"}
}

// The ssh helpers work: a client in one sandbox logs in to sshd in another
// over their link with the test's key and known_hosts, and a client
// without the host's key in known_hosts is refused.
func TestSSHDBetweenSandboxes(t *testing.T) {
	key := newSSHKey(t)
	server, client := &herd{t: t, s: sandbox.New(t)}, &herd{t: t, s: sandbox.New(t)}
	server.must(sandbox.Link(t.Context(), client.s, "192.0.2.1", server.s, "192.0.2.11"))
	hostKey := server.startSSHD(t, key.public)
	client.must(client.s.CopyFile(key.private, "/root/.ssh/id_test", 0o600))
	client.must(client.s.WriteFile("/root/.ssh/known_hosts_test", []byte(knownHosts(map[string]string{"192.0.2.11": hostKey})), 0o644))
	client.must(client.s.WriteFile("/root/.ssh/known_hosts_empty", nil, 0o644))

	args := append([]string{"ssh"}, sshArgs("/root/.ssh/id_test", "/root/.ssh/known_hosts_test")...)
	out, code := client.run(append(args, "root@192.0.2.11", "hostname")...)
	if code != 0 || strings.TrimSpace(out) != server.s.Name() {
		t.Fatalf("ssh root@192.0.2.11 hostname: exit %d, %q; want %q", code, out, server.s.Name())
	}
	args = append([]string{"ssh"}, sshArgs("/root/.ssh/id_test", "/root/.ssh/known_hosts_empty")...)
	if out, code := client.run(append(args, "root@192.0.2.11", "true")...); code == 0 || !strings.Contains(out, "Host key verification failed") {
		t.Errorf("ssh with an empty known_hosts: exit %d, %q; want a host key verification failure", code, out)
	}
}
