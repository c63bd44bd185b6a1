package tests

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// kubeDir holds the Dockerfile and the manifests the container test runs.
const kubeDir = "../contrib/kubernetes"

// podmanNprocMax is the RLIMIT_NPROC podman (as root) sets on itself
// before it starts the runtime: a container may ask for no more.
const podmanNprocMax = 32768

// TestContainerImage builds contrib/kubernetes's image with podman,
// without pulling anything, runs it as deployment.yaml runs the app's
// container (its user, environment, read-only root file system, no
// capabilities, no privilege escalation), wants 200 from both probe paths,
// puts load on it, then stops it the way the kubelet does after the
// preStop sleep: traffic has stopped arriving, SIGTERM, and SIGKILL after
// terminationGracePeriodSeconds. Every request must succeed, requests in
// flight at SIGTERM included, and the container must exit 0 within the
// grace period. Podman keeps all its state in a temporary directory and
// runs in a private mount namespace; nothing is left on the host.
func TestContainerImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a container image")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run podman and a private mount namespace")
	}
	for _, tool := range []string{"podman", "unshare", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("container test skipped: %s is not installed (apt-get install --no-install-recommends podman; CI installs it)", tool)
		}
	}
	spec := readAppContainer(t)
	p := newPodman(t)

	ctxDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(ctxDir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, filepath.Join(binDir, "app"), filepath.Join(ctxDir, "bin", "app"))
	dockerfile, err := filepath.Abs(filepath.Join(kubeDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	const image = "localhost/unitkit/app:test"
	start := time.Now()
	p.must("build", "--pull=never", "-f", dockerfile, "-t", image, ctxDir)
	t.Logf("image built in %v", time.Since(start).Round(time.Millisecond))
	t.Logf("image size: %s bytes", strings.TrimSpace(p.must("image", "inspect", "--format", "{{.Size}}", image)))
	if user := strings.TrimSpace(p.must("image", "inspect", "--format", "{{.Config.User}}", image)); user != spec.user {
		t.Errorf("image user %q, deployment.yaml runs %q", user, spec.user)
	}

	addr := freeLoopbackPort(t)
	args := []string{"run", "-d", "--name", "app-test", "--pull=never",
		"--network=host", "--cgroups=disabled",
		"--ulimit", "nofile=" + p.nofile, "--ulimit", "nproc=" + p.nproc,
		"--user", spec.user, "--read-only", "--cap-drop=all",
		"--security-opt", "no-new-privileges"}
	for _, e := range spec.env {
		args = append(args, "--env", e)
	}
	// The manifest's PORT is the pod's own; on the host network the test
	// needs a free one.
	args = append(args, "--env", "LISTEN_ADDR="+addr, image)
	id := strings.TrimSpace(p.must(args...))
	t.Cleanup(func() { p.run("rm", "-f", "-t", "0", id) })

	base := "http://" + addr
	for _, path := range spec.probes {
		if err := waitFor200(base+path, 20*time.Second); err != nil {
			t.Fatalf("probe %s: %v\ncontainer log:\n%s", path, err, p.logs(id))
		}
	}

	// Keep-alive clients on a quick path and fresh connections holding
	// each request for a while, so that requests are in flight at SIGTERM.
	quick := loadtest.New(loadtest.Config{URL: base, KeepAlive: true, Timeout: 20 * time.Second})
	slow := loadtest.New(loadtest.Config{URL: base, Timeout: 20 * time.Second})
	quick.Run(4, "/")
	slow.Run(16, "/sleep?ms=1500")
	time.Sleep(4 * time.Second)
	// Traffic stops arriving (the preStop sleep's part); clients finish
	// the request they are in.
	stopped := make(chan [2]loadtest.Result)
	go func() { stopped <- [2]loadtest.Result{quick.Stop(), slow.Stop()} }()
	time.Sleep(200 * time.Millisecond)
	before := slow.Snapshot().Total
	sigterm := time.Now()
	p.must("kill", "--signal", "TERM", id)
	waitCtx, cancel := context.WithTimeout(t.Context(), spec.grace+10*time.Second)
	defer cancel()
	out, err := p.cmd(waitCtx, "wait", id).Output()
	drain := time.Since(sigterm)
	if err != nil {
		t.Fatalf("podman wait: %v\ncontainer log:\n%s", err, p.logs(id))
	}
	res := <-stopped
	duringStop := res[1].Total - before
	t.Logf("stopped in %v (grace period %v); %d requests answered after SIGTERM", drain.Round(time.Millisecond), spec.grace, duringStop)
	for i, r := range res {
		t.Logf("load %d: %d requests, %d failed, max latency %v", i, r.Total, r.Failed, r.MaxLatency.Round(time.Millisecond))
		if r.Total == 0 || r.Failed != 0 {
			t.Errorf("load %d: %d of %d requests failed: %v", i, r.Failed, r.Total, r.Errors)
		}
	}
	if code := strings.TrimSpace(string(out)); code != "0" {
		t.Errorf("exit status %s, want 0\ncontainer log:\n%s", code, p.logs(id))
	}
	if drain >= spec.grace {
		t.Errorf("stopped after %v, past the grace period %v", drain, spec.grace)
	}
	if duringStop == 0 {
		t.Error("no request was in flight at SIGTERM: the drain was not exercised")
	}
	p.must("rm", id)
	p.must("rmi", image)
}

// appContainer is what the test takes from deployment.yaml.
type appContainer struct {
	grace  time.Duration
	user   string   // uid:gid
	env    []string // plain values; the pod name for metadata.name
	probes []string // the httpGet paths
}

// readAppContainer reads the Deployment's first container.
func readAppContainer(t *testing.T) appContainer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kubeDir, "deployment.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		HTTPGet struct{ Path string } `yaml:"httpGet"`
	}
	var d struct {
		Spec struct {
			Template struct {
				Spec struct {
					Grace    *int `yaml:"terminationGracePeriodSeconds"`
					Security struct {
						User  *int `yaml:"runAsUser"`
						Group *int `yaml:"runAsGroup"`
					} `yaml:"securityContext"`
					Containers []struct {
						Env []struct {
							Name      string
							Value     string
							ValueFrom *struct {
								FieldRef struct {
									FieldPath string `yaml:"fieldPath"`
								} `yaml:"fieldRef"`
							} `yaml:"valueFrom"`
						}
						Readiness *probe `yaml:"readinessProbe"`
						Liveness  *probe `yaml:"livenessProbe"`
					}
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &d); err != nil {
		t.Fatalf("deployment.yaml: %v", err)
	}
	ps := d.Spec.Template.Spec
	if ps.Grace == nil || ps.Security.User == nil || ps.Security.Group == nil || len(ps.Containers) == 0 {
		t.Fatal("deployment.yaml: want terminationGracePeriodSeconds, runAsUser, runAsGroup and a container")
	}
	c := ps.Containers[0]
	a := appContainer{
		grace: time.Duration(*ps.Grace) * time.Second,
		user:  fmt.Sprintf("%d:%d", *ps.Security.User, *ps.Security.Group),
	}
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			if e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
				t.Fatalf("deployment.yaml: %s: only fieldRef metadata.name is supported by this test", e.Name)
			}
			v = "app-5d8f7c9b6-x2k4q"
		}
		a.env = append(a.env, e.Name+"="+v)
	}
	for _, p := range []*probe{c.Readiness, c.Liveness} {
		if p == nil || p.HTTPGet.Path == "" {
			t.Fatal("deployment.yaml: want httpGet readiness and liveness probes")
		}
		a.probes = append(a.probes, p.HTTPGet.Path)
	}
	return a
}

// podman runs podman in a private mount namespace with all its state in a
// temporary directory. In that namespace, /var/lib is a tmpfs (podman
// build writes a blob cache under /var/lib/containers whatever --root
// says), and a cgroup v2 hierarchy mounted next to v1 controllers is
// unmounted: crun refuses such hybrid setups ("cgroups in hybrid mode not
// supported") even with --cgroups=disabled.
type podman struct {
	t             *testing.T
	pid           string // of the process holding the mount namespace
	global        []string
	nofile, nproc string // the --ulimit values
}

func newPodman(t *testing.T) *podman {
	t.Helper()
	dir := t.TempDir()
	holder := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`set -e
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
mount -t tmpfs tmpfs /var/lib
echo ready
exec sleep infinity`)
	stdout, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	holder.Stderr = os.Stderr
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	// Registered before the storage directory's removal runs (cleanups
	// run last first): the namespace, and every mount podman made in it,
	// is gone before the directory is removed.
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatal("the mount namespace for podman could not be set up")
	}
	p := &podman{t: t, pid: strconv.Itoa(holder.Process.Pid), global: []string{
		"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"), "--events-backend", "file",
		"--cgroup-manager", "cgroupfs",
	}}
	// Without CAP_SYS_RESOURCE, crun fails to set podman's default
	// RLIMIT_NOFILE (1048576) and RLIMIT_NPROC above what podman itself
	// has; --ulimit host does not help. Ask for the caller's limits.
	var nofile, nproc unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	if err := unix.Getrlimit(unix.RLIMIT_NPROC, &nproc); err != nil {
		t.Fatal(err)
	}
	n := min(nproc.Cur, podmanNprocMax)
	p.nofile = fmt.Sprintf("%d:%d", nofile.Cur, nofile.Cur)
	p.nproc = fmt.Sprintf("%d:%d", n, n)
	return p
}

// cmd is podman with args, run in the private mount namespace.
func (p *podman) cmd(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"-t", p.pid, "-m", "podman"}, p.global...)
	return exec.CommandContext(ctx, "nsenter", append(full, args...)...)
}

// run runs podman and returns its combined output.
func (p *podman) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := p.cmd(ctx, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("podman %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// must runs podman, fails the test if it fails, and returns its output.
func (p *podman) must(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatal(err)
	}
	return out
}

// logs is the container's output, for failure messages.
func (p *podman) logs(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, _ := p.cmd(ctx, "logs", id).CombinedOutput()
	return string(out)
}

// freeLoopbackPort returns a loopback address with a port free just now.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitFor200 polls url until it answers 200, for at most within.
func waitFor200(url string, within time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no 200 within %v: %v", within, last)
}

// copyFile copies an executable.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
}
