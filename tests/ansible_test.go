package tests

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Where the test puts contrib/ansible, the key and the packages in the
// balancer's sandbox, from which ansible-playbook runs: it reaches the
// hosts' sshd over its links and HAProxy's runtime API locally.
const (
	ansibleDir       = "/root/unitkit-ansible"
	ansibleKey       = "/root/.ssh/id_unitkit_test"
	ansibleKnownHost = "/root/.ssh/known_hosts_unitkit_test"
)

// contrib/ansible's rolling upgrade, run by Debian's ansible against the
// lab of TestLoadBalancerInFront (two hosts with the packaged service, a
// real HAProxy from contrib/haproxy in front) with sshd on the hosts and
// host keys checked:
//   - the whole fleet 1.0.0 → 1.1.0 under load through the balancer fails
//     no request, and both hosts then serve 1.1.0;
//   - a release that breaks on the second host (a build whose worker never
//     becomes ready stands in for whatever breaks it there) stops the run
//     with an error: host 1 serves the new version, host 2 still the old
//     one and stays drained at the balancer, and again no request fails;
//   - with host 2 left drained, a run over the whole fleet is refused
//     before host 1 leaves the rotation; the recovery README.md gives, a
//     fixed release on host 2 alone, upgrades its half-configured package
//     and puts it back in rotation; no request fails in either.
func TestAnsibleRollingUpgrade(t *testing.T) {
	if _, err := os.Stat("/usr/bin/ansible-playbook"); err != nil {
		t.Fatal("ansible-playbook not found: apt-get install ansible")
	}
	l := newLab(t, balancers[0])
	key := newSSHKey(t)
	hostKeys := map[string]string{}
	for i, h := range l.hosts {
		hostKeys[hostAddrs[i]] = h.startSSHD(t, key.public)
	}
	lb := l.lb
	lb.must(lb.s.CopyFile(key.private, ansibleKey, 0o600))
	lb.must(lb.s.WriteFile(ansibleKnownHost, []byte(knownHosts(hostKeys)), 0o644))
	lb.must(copyTree(lb, filepath.Join("..", "contrib", "ansible"), ansibleDir))
	if out, code := lb.run("ansible-playbook", "--syntax-check", "-i", ansibleDir+"/inventory.example.ini", ansibleDir+"/rolling-upgrade.yml"); code != 0 {
		t.Fatalf("ansible-playbook --syntax-check: exit %d\n%s", code, out)
	}

	// The scenarios share the lab (and its t): they run in order, not as
	// subtests.
	{
		v2 := l.copyDeb(buildDeb(t, release{"app", "1.1.0", "./cmd/app"}), "good")
		out, code, times := l.upgradeUnderLoad(t, "whole fleet 1.0.0 → 1.1.0", nil, v2, v2)
		if code != 0 {
			t.Fatalf("ansible-playbook: exit %d\n%s", code, out)
		}
		for i := range l.hosts {
			l.checkVersion(t, i, "1.1.0")
			if times[i].back.IsZero() {
				t.Errorf("host %d was never drained and back in rotation", i+1)
			}
		}
		l.waitServedBy("both hosts in rotation after the upgrade", l.b.host...)
	}

	{
		good := l.copyDeb(buildDeb(t, release{"app", "1.2.0", "./cmd/app"}), "good")
		broken := l.copyDeb(buildDeb(t, release{"app", "1.2.0", "./tests/brokenworker"}), "broken")
		out, code, times := l.upgradeUnderLoad(t, "1.2.0, broken on host 2", nil, good, broken)
		if code == 0 {
			t.Fatalf("ansible-playbook succeeded with a release that cannot start on host 2\n%s", out)
		}
		if !strings.Contains(out, "did not become ready") {
			t.Errorf("the run's output does not say why host 2 failed (want the postinst's \"did not become ready\"):\n%s", out)
		}
		l.checkVersion(t, 0, "1.2.0")
		l.checkVersion(t, 1, "1.1.0")
		if times[0].back.IsZero() || times[1].drained.IsZero() || !times[1].back.IsZero() {
			t.Errorf("at the balancer: host 1 %+v, host 2 %+v; want host 1 back, host 2 drained and left so", times[0], times[1])
		}
		if st := lb.haproxyStatus()["host2"]; !strings.Contains(st, "DRAIN") {
			t.Errorf("host 2 is %q at the balancer after the failed run, want it left drained", st)
		}
		l.waitServedBy("host 1 alone after the failed run", l.b.host[0])
	}

	{
		// The recovery README.md gives: fix the release and run again, the
		// host left drained first. Host 2 starts drained, with 1.2.0
		// unpacked but not configured.
		fixed := l.copyDeb(buildDeb(t, release{"app", "1.2.1", "./cmd/app"}), "good")
		out, code, times := l.upgradeUnderLoad(t, "1.2.1 on the whole fleet, host 2 drained", nil, fixed, fixed)
		if code == 0 || !strings.Contains(out, "no other server of backend app is UP") {
			t.Errorf("a run that would drain host 1 while host 2 is drained: exit %d, want it refused\n%s", code, out)
		}
		if !times[0].drained.IsZero() {
			t.Errorf("host 1 was drained while host 2 was out of rotation")
		}
		l.checkVersion(t, 0, "1.2.0")

		out, code, times = l.upgradeUnderLoad(t, "1.2.1 on host 2 alone", []string{"--limit", "host2"}, fixed, fixed)
		if code != 0 {
			t.Fatalf("ansible-playbook --limit host2: exit %d\n%s", code, out)
		}
		if !times[0].drained.IsZero() || times[1].back.IsZero() {
			t.Errorf("at the balancer: host 1 %+v, host 2 %+v; want host 1 left alone, host 2 back", times[0], times[1])
		}
		l.checkVersion(t, 0, "1.2.0")
		l.checkVersion(t, 1, "1.2.1")
		if st, _ := l.hosts[1].run("dpkg-query", "-W", "-f=${Status}", "app"); st != "install ok installed" {
			t.Errorf("host 2: the package is %q after the recovery, want it installed", st)
		}
		l.waitServedBy("both hosts in rotation after the recovery", l.b.host...)
	}
}

// copyDeb copies a package into the balancer's sandbox, under dir (the
// same file name can be two builds), and returns its path there.
func (l *lab) copyDeb(deb, dir string) string {
	l.t.Helper()
	inside := path.Join(ansibleDir, "debs", dir, filepath.Base(deb))
	l.lb.must(l.lb.s.CopyFile(deb, inside, 0o644))
	return inside
}

// rotation is when HAProxy first showed a host drained, and when it was
// back in rotation (UP, not draining) after that.
type rotation struct{ drained, back time.Time }

// upgradeUnderLoad runs contrib/ansible/rolling-upgrade.yml with args
// from the balancer's sandbox, host i getting the package debs[i], under
// the scenarios' load through the balancer, which must fail no request.
// It logs the figures and returns the run's output, exit code and each
// host's time out of rotation.
func (l *lab) upgradeUnderLoad(t *testing.T, what string, args []string, debs ...string) (string, int, []rotation) {
	t.Helper()
	inventory := fmt.Sprintf(`[app]
host1 ansible_host=%s haproxy_server=host1 unitkit_deb=%s
host2 ansible_host=%s haproxy_server=host2 unitkit_deb=%s

[balancer]
lb ansible_connection=local

[all:vars]
ansible_user=root
ansible_python_interpreter=/usr/bin/python3
ansible_ssh_private_key_file=%s
ansible_ssh_common_args=-o UserKnownHostsFile=%s -o IdentitiesOnly=yes
ansible_pipelining=true
haproxy_socket=/run/haproxy/admin.sock
haproxy_backend=app
haproxy_drain_timeout=120
`, hostAddrs[0], debs[0], hostAddrs[1], debs[1], ansibleKey, ansibleKnownHost)
	l.lb.must(l.lb.s.WriteFile(ansibleDir+"/inventory.ini", []byte(inventory), 0o644))

	stopWatch := l.lb.watchRotation()
	tr := l.startTraffic()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	argv := append([]string{"ansible-playbook", "-i", ansibleDir + "/inventory.ini"}, args...)
	cmd := l.lb.s.Command(ctx, append(argv, ansibleDir+"/rolling-upgrade.yml")...)
	cmd.Env = append(cmd.Env, "ANSIBLE_NOCOLOR=1", "ANSIBLE_RETRY_FILES_ENABLED=0",
		"ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks")
	outb, err := cmd.CombinedOutput()
	took := time.Since(start)
	code := 0
	if err != nil {
		code = -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
	}
	time.Sleep(300 * time.Millisecond)
	failed, total := tr.check(t, what, 0, 0)
	times := stopWatch()
	t.Logf("%s: ansible-playbook exit %d in %s; %d requests through HAProxy, %d failed", what, code, took.Round(time.Millisecond), total, failed)
	for i, r := range times {
		switch {
		case r.drained.IsZero():
			t.Logf("  host %d: never drained", i+1)
		case r.back.IsZero():
			t.Logf("  host %d: drained at +%s, not back", i+1, r.drained.Sub(start).Round(time.Millisecond))
		default:
			t.Logf("  host %d: out of rotation %s (drained at +%s)", i+1, r.back.Sub(r.drained).Round(time.Millisecond), r.drained.Sub(start).Round(time.Millisecond))
		}
	}
	t.Logf("the run's last lines:\n%s", lastLines(string(outb), 25))
	return string(outb), code, times
}

// checkVersion checks that every answer of host i's socket comes from
// version.
func (l *lab) checkVersion(t *testing.T, i int, version string) {
	t.Helper()
	for v := range l.hosts[i].versions(20) {
		if !strings.HasPrefix(v, version+"/") {
			t.Errorf("host %d: an instance answers %s, want version %s", i+1, v, version)
		}
	}
}

// watchRotation samples HAProxy's view of host1 and host2 every 100 ms
// until the returned function is called, which returns when each was
// first seen draining and when it was UP again after that.
func (lb *herd) watchRotation() (stop func() []rotation) {
	ctx, cancel := context.WithCancel(context.Background())
	times := make([]rotation, 2)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			st := lb.haproxyStatus()
			now := time.Now()
			for i, name := range []string{"host1", "host2"} {
				s := st[name]
				switch {
				case strings.Contains(s, "DRAIN") && times[i].drained.IsZero():
					times[i].drained = now
				case s == "UP" && !times[i].drained.IsZero() && times[i].back.IsZero():
					times[i].back = now
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return func() []rotation {
		cancel()
		wg.Wait()
		return times
	}
}

// haproxyStatus returns the status (UP, DRAIN, MAINT, ...) of each server
// of the backend app, from HAProxy's runtime API ("show stat"); empty when
// HAProxy cannot be asked.
func (lb *herd) haproxyStatus() map[string]string {
	st := map[string]string{}
	conn, err := net.Dial("unix", fmt.Sprintf("/proc/%d/root/run/haproxy/admin.sock", lb.s.PID()))
	if err != nil {
		return st
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return st
	}
	r := csv.NewReader(bufio.NewReader(conn))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err != nil || len(header) == 0 {
		return st
	}
	header[0] = strings.TrimPrefix(header[0], "# ")
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for {
		rec, err := r.Read()
		if err != nil {
			return st
		}
		if len(rec) > col["status"] && rec[col["pxname"]] == "app" {
			st[rec[col["svname"]]] = rec[col["status"]]
		}
	}
}

// copyTree copies the host directory src into the sandbox as dst.
func copyTree(h *herd, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return h.s.CopyFile(p, path.Join(dst, filepath.ToSlash(rel)), 0o644)
	})
}
