package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

const (
	// rootModule is the module whose cmd/app the manifests run.
	rootModule = "github.com/unitkit/unitkit"
	// buildTimeout bounds go build of the app.
	buildTimeout = 5 * time.Minute
	// probeWait bounds how long a probe path may take to answer 200.
	probeWait = 10 * time.Second
	// stopWait bounds the drain of the idle app after SIGTERM.
	stopWait = 10 * time.Second
	// podName stands in for metadata.name in the downward API.
	podName = "app-5d8f7c9b6-x2k4q"
)

// TestAppServesProbePaths builds the real app, starts it outside systemd
// with the app container's environment, and wants every probe path of the
// manifest to answer 200 within the probe's timeout; then SIGTERM must
// drain it to exit status 0. The app listens on a free loopback port
// ($LISTEN_ADDR, which takes precedence over the manifest's $PORT).
func TestAppServesProbePaths(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the app")
	}
	b := loadBundle(t)
	c, port, err := appContainerPort(b)
	if err != nil {
		t.Fatal(err)
	}
	env, err := containerEnv(c)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeLoopbackAddr(t)
	t.Logf("manifest PORT=%d; the test listens on %s", port, addr)
	app := startApp(t, buildApp(t), append(env, "LISTEN_ADDR="+addr))
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
	}{{"readiness", c.ReadinessProbe}, {"liveness", c.LivenessProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Fatalf("no httpGet %s probe", p.kind)
		}
		url := "http://" + addr + p.probe.HTTPGet.Path
		if err := app.waitFor200(url, probeTimeout(p.probe)); err != nil {
			t.Fatalf("%s probe: %v\napp log:\n%s", p.kind, err, app.log())
		}
	}
	if err := app.stop(); err != nil {
		t.Fatalf("%v\napp log:\n%s", err, app.log())
	}
}

// containerEnv is the container's environment as the kubelet would set it,
// with podName for metadata.name.
func containerEnv(c *corev1.Container) ([]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s: envFrom is not supported by this test", c.Name)
	}
	env := make([]string, 0, len(c.Env))
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil {
			if f.FieldRef == nil || f.FieldRef.FieldPath != "metadata.name" {
				return nil, fmt.Errorf("container %s: %s: only valueFrom.fieldRef metadata.name is supported by this test", c.Name, e.Name)
			}
			v = podName
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

// probeTimeout is the probe's timeoutSeconds, 1s when unset as in the API.
func probeTimeout(p *corev1.Probe) time.Duration {
	if p.TimeoutSeconds == 0 {
		return time.Second
	}
	return time.Duration(p.TimeoutSeconds) * time.Second
}

// repoRoot finds the root module's directory above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for dir := filepath.Dir(wd); ; dir = filepath.Dir(dir) {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(data) == rootModule {
			return dir
		}
		if dir == filepath.Dir(dir) {
			t.Fatalf("no go.mod of module %s above %s", rootModule, wd)
		}
	}
}

// modulePath returns the module path a go.mod declares.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// buildApp builds cmd/app of the root module as make build does
// (CGO_ENABLED=0) and returns the binary's path.
func buildApp(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-C", repoRoot(t), "-o", bin, "./cmd/app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/app: %v\n%s", err, out)
	}
	return bin
}

// freeLoopbackAddr returns a loopback address with a port free just now.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// appProcess is the running app.
type appProcess struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // the exit error, set before done is closed
}

// startApp starts bin with exactly env (nothing inherited, as in a
// container) and kills it when the test ends if it is still running.
func startApp(t *testing.T, bin string, env []string) *appProcess {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "app.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create app log: %v", err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start app: %v", err)
	}
	a := &appProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		a.err = cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(func() {
		select {
		case <-a.done:
		default:
			_ = cmd.Process.Kill()
			<-a.done
		}
	})
	return a
}

// log returns what the app wrote to stdout and stderr so far.
func (a *appProcess) log() string {
	data, err := os.ReadFile(a.logPath)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return string(data)
}

// waitFor200 polls url, each GET bounded by timeout, until it answers 200,
// for at most probeWait.
func (a *appProcess) waitFor200(url string, timeout time.Duration) error {
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(probeWait)
	last := errors.New("not tried")
	for time.Now().Before(deadline) {
		select {
		case <-a.done:
			return fmt.Errorf("app exited before %s answered 200: %v", url, a.err)
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				return nil
			case http.StatusNotFound:
				return fmt.Errorf("GET %s: 404: the app does not serve this path", url)
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("GET %s did not answer 200 within %s; last: %w", url, probeWait, last)
}

// stop sends SIGTERM, as the kubelet does after preStop, and wants the
// idle app to drain and exit 0 within stopWait.
func (a *appProcess) stop() error {
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("send SIGTERM: %w", err)
	}
	select {
	case <-a.done:
		if a.err != nil {
			return fmt.Errorf("app did not exit 0 after SIGTERM: %w", a.err)
		}
		return nil
	case <-time.After(stopWait):
		return fmt.Errorf("app still running %s after SIGTERM", stopWait)
	}
}
