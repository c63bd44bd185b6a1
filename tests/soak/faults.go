package soak

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind names a fault.
type Kind string

// The faults, by lane.
const (
	Kill         Kind = "kill -9"
	Hang         Kind = "SIGSTOP, SIGCONT"
	Wedge        Kind = "wedge"
	CrashOn      Kind = "crash loop on"
	CrashOff     Kind = "crash loop off"
	Reload       Kind = "appctl reload"
	ScaleUp      Kind = "appctl scale up"
	ScaleDown    Kind = "appctl scale down"
	DaemonReload Kind = "systemctl daemon-reload"
	Upgrade      Kind = "upgrade"
	BrokenUpg    Kind = "upgrade to a broken release"
)

// Kinds lists every fault in the report's order.
var Kinds = []Kind{Kill, Hang, Wedge, CrashOn, CrashOff, Reload, ScaleUp, ScaleDown, DaemonReload, Upgrade, BrokenUpg}

// Fault is one fault as it happened.
type Fault struct {
	At     time.Time
	Took   time.Duration
	Kind   Kind
	Target string // the unit or release it hit
	PID    int    // the process signalled, if any
	Err    string // why it failed, if it did ("" when it did what it should)
}

// record appends f (At and Took set from start) and logs it.
func (s *soak) record(start time.Time, f Fault) {
	f.At, f.Took = start, time.Since(start)
	s.mu.Lock()
	s.faults = append(s.faults, f)
	s.mu.Unlock()
	outcome := "ok"
	if f.Err != "" {
		outcome = f.Err
	}
	s.logf("%s %-28s %-16s %6s  %s", start.Format("15:04:05.000"), f.Kind, f.Target, f.Took.Round(time.Millisecond), firstLine(outcome))
}

// chaosLane kills, hangs and wedges running instances.
func (s *soak) chaosLane(ctx context.Context, r *rand.Rand, deadline time.Time) {
	for sleep(ctx, between(r, 700*time.Millisecond, 2200*time.Millisecond), deadline) {
		n := r.IntN(7)
		if s.brokenOnDisk() {
			// Every instance killed now would restart into the broken
			// release and stay down: a second fault on top of the first
			// that no herd survives. The package lane rolls forward at
			// once; chaos resumes then.
			continue
		}
		switch {
		case n < 3:
			s.kill(ctx, r)
		case n < 5:
			s.hang(ctx, r, deadline)
		default:
			s.wedge(ctx)
		}
	}
}

// victim picks a running instance at random.
func (s *soak) victim(ctx context.Context, r *rand.Rand) (Instance, bool) {
	running, err := s.instances(ctx)
	if err != nil {
		return Instance{}, false
	}
	var ready []Instance
	for _, in := range running {
		if in.Sub == "running" && in.PID > 0 {
			ready = append(ready, in)
		}
	}
	if len(ready) == 0 {
		return Instance{}, false
	}
	return ready[r.IntN(len(ready))], true
}

func (s *soak) kill(ctx context.Context, r *rand.Rand) {
	in, ok := s.victim(ctx, r)
	if !ok {
		return
	}
	start := time.Now()
	_, err := s.run(ctx, cmdTimeout, "kill", "-KILL", strconv.Itoa(in.PID))
	s.record(start, Fault{Kind: Kill, Target: in.Unit, PID: in.PID, Err: errText(err)})
}

// hang stops an instance and continues it 0.5 to 5 s later: sooner than
// the watchdog period it only delays its requests, later the watchdog
// kills it.
func (s *soak) hang(ctx context.Context, r *rand.Rand, deadline time.Time) {
	in, ok := s.victim(ctx, r)
	if !ok {
		return
	}
	start := time.Now()
	_, err := s.run(ctx, cmdTimeout, "kill", "-STOP", strconv.Itoa(in.PID))
	s.record(start, Fault{Kind: Hang, Target: in.Unit, PID: in.PID, Err: errText(err)})
	if err != nil {
		return
	}
	d := between(r, 500*time.Millisecond, 5*time.Second)
	s.pending.Add(1)
	go func() {
		defer s.pending.Done()
		time.Sleep(d)
		// The process may be gone (the watchdog killed it): nothing to do.
		_, _ = s.run(context.WithoutCancel(ctx), cmdTimeout, "kill", "-CONT", strconv.Itoa(in.PID))
	}()
}

// wedge asks whichever instance accepts the request to wedge itself.
func (s *soak) wedge(ctx context.Context) {
	start := time.Now()
	c := s.s.HTTPClient(false)
	c.Timeout = 5 * time.Second
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:8080/debug/wedge", nil)
	target := "?"
	if err == nil {
		var resp *http.Response
		resp, err = c.Do(req)
		if err == nil {
			target = "app@" + resp.Header.Get("X-Instance") + ".service"
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("POST /debug/wedge: %s", resp.Status)
			}
		}
	}
	s.record(start, Fault{Kind: Wedge, Target: target, Err: errText(err)})
}

// operatorLane does what an operator does while the herd serves.
func (s *soak) operatorLane(ctx context.Context, r *rand.Rand, deadline time.Time) {
	for sleep(ctx, between(r, time.Second, 3*time.Second), deadline) {
		s.mu.Lock()
		crashing := s.crashing
		s.mu.Unlock()
		switch n := r.IntN(9); {
		case n < 2:
			s.reload(ctx)
		case n < 5:
			s.scale(ctx, r)
		case n < 7:
			s.daemonReload(ctx)
		case crashing == 0:
			s.crashOn(ctx, r)
		default:
			s.crashOff(ctx)
		}
	}
}

func (s *soak) reload(ctx context.Context) {
	start := time.Now()
	out, err := s.run(ctx, opTimeout, "appctl", "reload")
	s.record(start, Fault{Kind: Reload, Target: "herd", Err: errOut(err, out)})
}

// scale picks a new count from 2 to 5 that keeps the crash-looping
// instance, if any, inside the herd.
func (s *soak) scale(ctx context.Context, r *rand.Rand) {
	s.mu.Lock()
	from, lowest := s.target, max(2, s.crashing)
	s.mu.Unlock()
	n := lowest + r.IntN(5-lowest+1)
	if n == from {
		return
	}
	kind := ScaleUp
	if n < from {
		kind = ScaleDown
	}
	start := time.Now()
	out, err := s.run(ctx, opTimeout, "appctl", "scale", strconv.Itoa(n))
	if err == nil {
		s.mu.Lock()
		s.target = n
		s.mu.Unlock()
	}
	s.record(start, Fault{Kind: kind, Target: fmt.Sprintf("%d → %d", from, n), Err: errOut(err, out)})
}

func (s *soak) daemonReload(ctx context.Context) {
	start := time.Now()
	_, err := s.run(ctx, cmdTimeout, "systemctl", "daemon-reload")
	s.record(start, Fault{Kind: DaemonReload, Target: "systemd", Err: errText(err)})
}

// crashDropIn is the drop-in that makes one instance crash-loop. systemd
// applies drop-ins in the order of their names across the template's and
// the instance's directories, so it sorts after soak.conf, whose
// APP_FAULT=wedge it overrides.
func crashDropIn(n int) string {
	return fmt.Sprintf("/etc/systemd/system/app@%d.service.d/%s", n, crashDropInName)
}

const crashDropInName = "zz-soak-crash.conf"

// crashOn makes a running instance fail at every start from now on, and
// restarts it (it drains first) so that the crash loop begins.
func (s *soak) crashOn(ctx context.Context, r *rand.Rand) {
	in, ok := s.victim(ctx, r)
	if !ok || in.Number < 2 {
		return
	}
	start := time.Now()
	err := s.s.WriteFile(crashDropIn(in.Number), []byte("[Service]\nEnvironment=APP_FAULT=fail-start\n"), 0o644)
	if err == nil {
		_, err = s.run(ctx, cmdTimeout, "systemctl", "daemon-reload")
	}
	if err == nil {
		_, err = s.run(ctx, cmdTimeout, "systemctl", "restart", "--no-block", in.Unit)
	}
	if err == nil {
		s.mu.Lock()
		s.crashing = in.Number
		s.mu.Unlock()
	}
	s.record(start, Fault{Kind: CrashOn, Target: in.Unit, Err: errText(err)})
}

// crashOff removes the crash loop's drop-in; the instance's next restart
// succeeds.
func (s *soak) crashOff(ctx context.Context) {
	s.mu.Lock()
	n := s.crashing
	s.mu.Unlock()
	if n == 0 {
		return
	}
	start := time.Now()
	_, err := s.run(ctx, cmdTimeout, "rm", "-f", crashDropIn(n))
	if err == nil {
		_, err = s.run(ctx, cmdTimeout, "systemctl", "daemon-reload")
	}
	if err == nil {
		s.mu.Lock()
		s.crashing = 0
		s.mu.Unlock()
	}
	s.record(start, Fault{Kind: CrashOff, Target: fmt.Sprintf("app@%d.service", n), Err: errText(err)})
}

// brokenOnDisk reports whether the broken release is being installed or
// is installed.
func (s *soak) brokenOnDisk() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.installing == s.cfg.Broken || s.installed == s.cfg.Broken
}

// packageLane upgrades the package every so often, alternating between
// the other good release and the broken one; a broken upgrade is followed
// by an upgrade to a good release, as an operator would roll forward.
func (s *soak) packageLane(ctx context.Context, r *rand.Rand, deadline time.Time) {
	other := 1
	broken := false
	for sleep(ctx, between(r, 8*time.Second, 30*time.Second), deadline) {
		if broken {
			s.upgrade(ctx, BrokenUpg, s.cfg.Broken)
		}
		s.upgrade(ctx, Upgrade, s.cfg.Good[other])
		other = 1 - other
		broken = !broken
	}
}

// upgrade installs a release with apt-get, as an operator does; a broken
// release must fail (its instances never become ready).
func (s *soak) upgrade(ctx context.Context, kind Kind, deb string) {
	s.mu.Lock()
	s.installing = deb
	s.mu.Unlock()
	start := time.Now()
	out, err := s.run(ctx, opTimeout, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
		"--no-install-recommends", "--allow-downgrades", packagePath(deb))
	f := Fault{Kind: kind, Target: releaseName(deb), Err: errOut(err, out)}
	if err != nil {
		s.logf("%s %s: %v", kind, releaseName(deb), err)
	}
	if kind == BrokenUpg {
		f.Err = ""
		if err == nil {
			f.Err = "the broken release installed without an error"
		}
	}
	s.mu.Lock()
	s.installed, s.installing = deb, ""
	s.mu.Unlock()
	s.record(start, f)
}

// releaseName shortens a package file name to its version.
func releaseName(deb string) string {
	parts := strings.Split(strings.TrimSuffix(deb[strings.LastIndex(deb, "/")+1:], ".deb"), "_")
	if len(parts) >= 2 {
		return parts[1]
	}
	return deb
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// errOut is the last meaningful lines of a failed command's output.
func errOut(err error, out string) string {
	if err == nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " / ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
