package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/unitkit/unitkit/internal/autoscale"
	"github.com/unitkit/unitkit/internal/loadtest"
)

// The autoscale step's settings.
const (
	// autoscaleTimeout bounds every wait of the step; one that runs out
	// ends the step with an error row instead of hanging the bench.
	autoscaleTimeout = 60 * time.Second
	// autoscalePoll is how often the herd's size is read while timed.
	autoscalePoll = 50 * time.Millisecond
	// autoscaleCPU and autoscaleWindow are the load step's setting.
	autoscaleCPU    = 50
	autoscaleWindow = 5 * time.Second
	// autoscaleWork is the load step's request: 20 ms of CPU, from
	// autoscaleClients per instance of MAX, closed loop.
	autoscaleWork    = "/work?ms=20"
	autoscaleClients = 4
	// probeRate is a trickle of POST / (loadtest's request) kept going
	// through the load step and the shrink after it, so that failed
	// requests are counted while instances stop too; it is far below the
	// controller's idle threshold.
	probeRate = 20
	// zeroWindow is the scale-to-zero setting's window.
	zeroWindow = 2 * time.Second
	// costWindow is how long the controller's own cost is measured.
	costWindow = 10 * time.Second
	// userHZ is the unit of utime and stime in /proc/PID/stat
	// (sysconf(_SC_CLK_TCK), 100 on every Linux the bench runs on).
	userHZ = 100
)

// timeoutError is a wait of the step that ran out.
type timeoutError struct{ what string }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("%s: not within %s", e.what, autoscaleTimeout)
}

// autoscale measures appctl autoscale's controller: how fast it grows the
// herd under a CPU-bound load step and shrinks it when the load stops,
// the first request after it scaled the herd to zero, and its own CPU and
// memory. It turns autoscaling off and gives the herd back the size it
// found, whatever happened.
func (b *bench) autoscale(ctx context.Context) (err error) {
	found, err := b.herdCount(ctx)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*autoscaleTimeout)
		defer cancel()
		if rerr := b.restoreHerd(cctx, found.active); rerr != nil && err == nil {
			err = rerr
		}
	}()
	hi := max(runtime.NumCPU(), 2)
	for _, phase := range []func(context.Context) error{
		func(ctx context.Context) error { return b.autoscaleLoad(ctx, hi) },
		b.autoscaleZero,
		func(ctx context.Context) error { return b.autoscaleCost(ctx, hi) },
	} {
		err := phase(ctx)
		var t *timeoutError
		if errors.As(err, &t) {
			b.add(newRow("autoscale step stopped: "+err.Error(), "s", []float64{autoscaleTimeout.Seconds()}, "",
				"every wait within "+autoscaleTimeout.String(), func(float64) bool { return false }))
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// restoreHerd turns autoscaling off and scales the herd to n instances.
func (b *bench) restoreHerd(ctx context.Context, n int) error {
	if _, err := b.within(ctx, "appctl", "autoscale", "off"); err != nil {
		return err
	}
	units, err := b.sd.ListUnitsByPatternsContext(ctx, []string{"active", "activating", "reloading"}, []string{"app-autoscale@*.service"})
	if err != nil {
		return fmt.Errorf("listing the controllers: %w", err)
	}
	for _, u := range units {
		if u.Name != "app-autoscale@"+autoscale.Off+".service" {
			return fmt.Errorf("%s is %s after appctl autoscale off", u.Name, u.ActiveState)
		}
	}
	return b.scaleTo(ctx, n)
}

// within runs args in the sandbox, for at most autoscaleTimeout, and
// returns how long it took.
func (b *bench) within(ctx context.Context, args ...string) (time.Duration, error) {
	cctx, cancel := context.WithTimeout(ctx, autoscaleTimeout)
	defer cancel()
	start := time.Now()
	_, err := b.s.Run(cctx, args...)
	d := time.Since(start)
	if err != nil && cctx.Err() != nil && ctx.Err() == nil {
		return d, &timeoutError{strings.Join(args, " ")}
	}
	return d, err
}

// scaleTo runs appctl scale n, untimed; with 0, it also stops app@1 in
// case a connection had just started it.
func (b *bench) scaleTo(ctx context.Context, n int) error {
	if _, err := b.within(ctx, "appctl", "scale", strconv.Itoa(n)); err != nil {
		return err
	}
	if n == 0 {
		if _, err := b.within(ctx, "systemctl", "stop", "app@1.service"); err != nil {
			return err
		}
	}
	return nil
}

// herdSize is how many instances systemd reports: active (READY, for
// Type=notify) and present (active, starting, stopping or reloading: a
// process of theirs may run).
type herdSize struct{ active, present int }

// herdCount asks the sandbox's systemd for the instances' states.
func (b *bench) herdCount(ctx context.Context) (herdSize, error) {
	units, err := b.sd.ListUnitsByPatternsContext(ctx, []string{"active", "activating", "deactivating", "reloading"}, []string{"app@*.service"})
	if err != nil {
		return herdSize{}, fmt.Errorf("listing the instances: %w", err)
	}
	var h herdSize
	for _, u := range units {
		h.present++
		if u.ActiveState == "active" {
			h.active++
		}
	}
	return h, nil
}

// waitHerd polls the herd every autoscalePoll until done says yes, and
// returns how long that took from start.
func (b *bench) waitHerd(ctx context.Context, start time.Time, what string, done func(herdSize) bool) (time.Duration, error) {
	for {
		h, err := b.herdCount(ctx)
		if err != nil {
			return 0, err
		}
		if done(h) {
			return time.Since(start), nil
		}
		if time.Since(start) > autoscaleTimeout {
			return 0, &timeoutError{fmt.Sprintf("%s (last seen: %d active, %d present)", what, h.active, h.present)}
		}
		time.Sleep(autoscalePoll)
	}
}

// startAutoscale runs appctl autoscale with spec, which returns once the
// controller reported READY, and waits until it has written its first
// state (its first look, past the daemon-reload enabling it may need) and
// systemd is quiet. It returns the controller's unit.
func (b *bench) startAutoscale(ctx context.Context, spec autoscale.Spec) (string, error) {
	if _, err := b.within(ctx, "appctl", "autoscale", fmt.Sprintf("%d-%d", spec.Min, spec.Max),
		"--cpu", strconv.Itoa(spec.CPU), "--window", spec.Window.String()); err != nil {
		return "", err
	}
	unit := "app-autoscale@" + spec.String() + ".service"
	state := filepath.Join(autoscale.StateDir("app", spec.String()), "state.json")
	for start := time.Now(); ; {
		active, err := b.sd.GetUnitPropertyContext(ctx, unit, "ActiveState")
		if err != nil {
			return "", fmt.Errorf("%s ActiveState: %w", unit, err)
		}
		if _, err := b.s.ReadFile(state); err == nil && active.Value.Value() == "active" {
			break
		}
		if time.Since(start) > autoscaleTimeout {
			return "", &timeoutError{fmt.Sprintf("%s active and looking (%s)", unit, state)}
		}
		time.Sleep(autoscalePoll)
	}
	return unit, b.quiet(ctx)
}

// lastDecision reads the time of the controller's last resize from its
// state; zero if it made none.
func (b *bench) lastDecision(spec autoscale.Spec) time.Time {
	// The state is in the sandbox's /run, read through its root.
	st, err := autoscale.ReadState(filepath.Join(fmt.Sprintf("/proc/%d/root", b.s.PID()), autoscale.StateDir("app", spec.String())))
	if err != nil || st == nil || st.Last == nil {
		return time.Time{}
	}
	return st.Last.Time
}

// autoscaleLoad measures, run by run, a plain appctl scale 1→hi (the
// reference), then with autoscale 1-hi a CPU-bound load step from 1
// instance until hi are READY, and once it stops, until 1 instance is
// left; with the failed requests of both.
func (b *bench) autoscaleLoad(ctx context.Context, hi int) error {
	spec := autoscale.Spec{Min: 1, Max: hi, CPU: autoscaleCPU, Window: autoscaleWindow}
	var ref, up, decided, upFailed, down, downFailed []float64
	for range b.o.runs {
		if _, err := b.within(ctx, "appctl", "autoscale", "off"); err != nil {
			return err
		}
		if err := b.scaleTo(ctx, 1); err != nil {
			return err
		}
		if err := b.quiet(ctx); err != nil {
			return err
		}
		d, err := b.within(ctx, "appctl", "scale", strconv.Itoa(hi))
		if err != nil {
			return err
		}
		ref = append(ref, d.Seconds())
		if err := b.scaleTo(ctx, 1); err != nil {
			return err
		}
		if err := b.quiet(ctx); err != nil {
			return err
		}
		if _, err := b.startAutoscale(ctx, spec); err != nil {
			return err
		}
		r, err := b.loadStep(ctx, spec)
		if err != nil {
			return err
		}
		up, decided, upFailed = append(up, r.up.Seconds()), append(decided, r.decided.Seconds()), append(upFailed, float64(r.upFailed))
		down, downFailed = append(down, r.down.Seconds()), append(downFailed, float64(r.downFailed))
	}
	load := fmt.Sprintf("%d clients on %s, fresh connections", autoscaleClients*hi, autoscaleWork)
	tag := fmt.Sprintf("autoscale %d-%d --cpu %d --window %s", spec.Min, spec.Max, spec.CPU, spec.Window)
	limit := 3 + median(ref)
	b.add(newRow(fmt.Sprintf("%s: load step (%s) until %d instances are READY", tag, load, hi), "s", up,
		fmt.Sprintf("appctl scale 1→%d alone %s; the controller decided %s after the load started", hi, format(median(ref), "s"), format(median(decided), "s")),
		fmt.Sprintf("≤ 3 s + appctl scale 1→%d (%s)", hi, format(limit, "s")), func(v float64) bool { return v <= limit }))
	b.add(newRow(fmt.Sprintf("%s: failed requests from the load step until %d instances are READY", tag, hi), "count", upFailed,
		fmt.Sprintf("the load and %d POST / per second", probeRate), "0", func(v float64) bool { return v == 0 }))
	limit = spec.Window.Seconds() + 3
	b.add(newRow(fmt.Sprintf("%s: load stopped until 1 instance is left (the others drained and stopped)", tag), "s", down, "",
		fmt.Sprintf("≤ window + 3 s (%s)", format(limit, "s")), func(v float64) bool { return v <= limit }))
	b.add(newRow(fmt.Sprintf("%s: failed requests while the herd shrinks", tag), "count", downFailed,
		fmt.Sprintf("%d POST / per second kept going", probeRate), "0", func(v float64) bool { return v == 0 }))
	return nil
}

// loadRun is one load step and the shrink after it.
type loadRun struct {
	up, decided, down    time.Duration
	upFailed, downFailed int64
}

// loadStep runs the load step against the herd at 1 instance with the
// controller on, and times both ways. The loads are stopped on every
// path, so that nothing is left running into the next step.
func (b *bench) loadStep(ctx context.Context, spec autoscale.Spec) (loadRun, error) {
	var r loadRun
	probe := loadtest.New(loadtest.Config{URL: herdURL, Dial: b.s.DialContext})
	probe.RunRate(probeRate, 4, "/")
	defer func() {
		if probe != nil {
			probe.Stop()
		}
	}()
	l := loadtest.New(loadtest.Config{URL: herdURL, Dial: b.s.DialContext})
	start := time.Now()
	l.Run(autoscaleClients*spec.Max, autoscaleWork)
	var err error
	r.up, err = b.waitHerd(ctx, start, fmt.Sprintf("%d instances READY under load", spec.Max), func(h herdSize) bool { return h.active >= spec.Max })
	loaded := l.Stop()
	before := probe.Snapshot()
	if err != nil {
		return r, err
	}
	if t := b.lastDecision(spec); !t.IsZero() {
		r.decided = t.Sub(start)
	}
	r.upFailed = loaded.Failed + before.Failed
	for _, e := range append(loaded.Errors, before.Errors...) {
		fmt.Fprintln(os.Stderr, "bench: autoscale load step:", e)
	}
	r.down, err = b.waitHerd(ctx, time.Now(), "1 instance left after the load", func(h herdSize) bool { return h.present == 1 && h.active == 1 })
	after := probe.Stop()
	probe = nil
	if err != nil {
		return r, err
	}
	r.downFailed = after.Failed - before.Failed
	for _, e := range after.Errors[len(before.Errors):] {
		fmt.Fprintln(os.Stderr, "bench: autoscale shrink:", e)
	}
	return r, nil
}

// autoscaleZero times, with autoscale 0-2, the first request once the
// controller has stopped every instance, against the same request to the
// instance it started and a bare systemctl start of app@1.
func (b *bench) autoscaleZero(ctx context.Context) error {
	if _, err := b.within(ctx, "appctl", "autoscale", "off"); err != nil {
		return err
	}
	if err := b.scaleTo(ctx, 1); err != nil {
		return err
	}
	spec := autoscale.Spec{Min: 0, Max: 2, CPU: autoscale.DefaultCPU, Window: zeroWindow}
	if _, err := b.startAutoscale(ctx, spec); err != nil {
		return err
	}
	c := b.s.HTTPClient(false)
	var cold, warm, bare, bus []float64
	for range b.o.runs {
		if err := b.waitZero(ctx); err != nil {
			return err
		}
		d, err := timedGet(c)
		if err != nil {
			return fmt.Errorf("first request after scale to zero: %w", err)
		}
		w, err := timedGet(c)
		if err != nil {
			return fmt.Errorf("request to the instance it started: %w", err)
		}
		cold, warm = append(cold, ms(d)), append(warm, ms(w))
		// The controller stops the instance again after its window;
		// app@1 is then started bare, and stopped before the controller
		// would (it keeps an instance it did not start for a window).
		if err := b.waitZero(ctx); err != nil {
			return err
		}
		d, err = b.within(ctx, "systemctl", "start", "app@1.service")
		if err != nil {
			return err
		}
		bare = append(bare, ms(d))
		if _, err := b.within(ctx, "systemctl", "stop", "app@1.service"); err != nil {
			return err
		}
		d, err = b.startOverBus(ctx, "app@1.service")
		if err != nil {
			return err
		}
		bus = append(bus, ms(d))
		if _, err := b.within(ctx, "systemctl", "stop", "app@1.service"); err != nil {
			return err
		}
	}
	limit := median(bare) + 50
	b.add(newRow(fmt.Sprintf("autoscale 0-2 --window %s: first request once the herd is at zero (fresh connection, GET /)", spec.Window), "ms", cold,
		fmt.Sprintf("bare systemctl start app@1 to READY %s (nsenter and systemctl included; the same start over D-Bus %s); warm request %s",
			format(median(bare), "ms"), format(median(bus), "ms"), format(median(warm), "ms")),
		fmt.Sprintf("≤ bare start + 50 ms (%s)", format(limit, "ms")), func(v float64) bool { return v <= limit }))
	return nil
}

// startOverBus starts unit through the bench's own connection to the
// sandbox's systemd, from a quiet systemd, and returns how long its job
// took: until READY for a Type=notify unit, without the process starts of
// a systemctl run through nsenter.
func (b *bench) startOverBus(ctx context.Context, unit string) (time.Duration, error) {
	if err := b.quiet(ctx); err != nil {
		return 0, err
	}
	done := make(chan string, 1)
	start := time.Now()
	if _, err := b.sd.StartUnitContext(ctx, unit, "replace", done); err != nil {
		return 0, fmt.Errorf("start %s over D-Bus: %w", unit, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return 0, fmt.Errorf("start %s over D-Bus: job %s", unit, result)
		}
		return time.Since(start), nil
	case <-time.After(autoscaleTimeout):
		return 0, &timeoutError{"start " + unit + " over D-Bus"}
	}
}

// waitZero waits until no instance runs and app.socket is listening, and
// systemd is quiet.
func (b *bench) waitZero(ctx context.Context) error {
	start := time.Now()
	if _, err := b.waitHerd(ctx, start, "no instance left (scale to zero)", func(h herdSize) bool { return h.present == 0 }); err != nil {
		return err
	}
	for {
		sub, err := b.sd.GetUnitPropertyContext(ctx, "app.socket", "SubState")
		if err != nil {
			return fmt.Errorf("app.socket SubState: %w", err)
		}
		if sub.Value.Value() == "listening" {
			break
		}
		if time.Since(start) > autoscaleTimeout {
			return &timeoutError{fmt.Sprintf("app.socket listening with no instance (it is %v)", sub.Value.Value())}
		}
		time.Sleep(autoscalePoll)
	}
	return b.quiet(ctx)
}

// timedGet times one GET / through c, to the end of the body.
func timedGet(c *http.Client) (time.Duration, error) {
	start := time.Now()
	resp, err := c.Get(herdURL + "/")
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %s", resp.Status)
	}
	return time.Since(start), err
}

// autoscaleCost measures the controller's CPU (utime+stime of its main
// process) and memory over costWindow, with 2 idle instances and a setting
// that keeps them (MIN 2), and systemd's CPU over the same windows
// against windows with the controller off: the D-Bus calls it answers.
func (b *bench) autoscaleCost(ctx context.Context, hi int) error {
	if _, err := b.within(ctx, "appctl", "autoscale", "off"); err != nil {
		return err
	}
	if err := b.scaleTo(ctx, 2); err != nil {
		return err
	}
	if err := b.quiet(ctx); err != nil {
		return err
	}
	if err := b.waitIdle(); err != nil {
		return err
	}
	systemd := filepath.Join(b.s.Cgroup(), "init.scope")
	var off []float64
	for range b.o.runs {
		v, err := cgroupShare(systemd, costWindow)
		if err != nil {
			return err
		}
		off = append(off, v)
	}
	spec := autoscale.Spec{Min: 2, Max: hi, CPU: autoscaleCPU, Window: autoscale.DefaultWindow}
	unit, err := b.startAutoscale(ctx, spec)
	if err != nil {
		return err
	}
	pid, err := b.serviceUint(ctx, unit, "MainPID")
	if err != nil || pid == 0 {
		return fmt.Errorf("%s has no main process: %v", unit, err)
	}
	host, err := b.hostPID(ctx, unit, uint32(pid))
	if err != nil {
		return err
	}
	var cpu, on, rss []float64
	for range b.o.runs {
		t0, err := procCPU(host)
		if err != nil {
			return err
		}
		s0, err := cgroupCPU(systemd)
		if err != nil {
			return err
		}
		start := time.Now()
		time.Sleep(costWindow)
		t1, err := procCPU(host)
		if err != nil {
			return err
		}
		s1, err := cgroupCPU(systemd)
		if err != nil {
			return err
		}
		wall := time.Since(start).Seconds()
		cpu, on = append(cpu, 100*(t1-t0).Seconds()/wall), append(on, 100*(s1-s0).Seconds()/wall)
		kb, err := procRSS(host)
		if err != nil {
			return err
		}
		rss = append(rss, kb/1024)
	}
	tag := fmt.Sprintf("autoscale controller (%s), 2 idle instances, over %s", unit, costWindow)
	b.add(newRow(tag+": its CPU (utime+stime of its main process)", "percent", cpu,
		fmt.Sprintf("%.1f ms of CPU per look (one a second); systemd (PID 1) answering it: %.2f%% of one CPU (init.scope, %.2f%% with the controller against %.2f%% without)",
			10*median(cpu)*autoscale.DefaultEvery.Seconds(), median(on)-median(off), median(on), median(off)),
		"≤ 1% of one CPU", func(v float64) bool { return v <= 1 }))
	b.add(newRow(tag+": its RSS (VmRSS)", "MiB", rss, "", "≤ 20 MiB", func(v float64) bool { return v <= 20 }))
	return nil
}

// cgroupShare is the cgroup dir's CPU over d, in percent of one CPU.
func cgroupShare(dir string, d time.Duration) (float64, error) {
	c0, err := cgroupCPU(dir)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	time.Sleep(d)
	c1, err := cgroupCPU(dir)
	if err != nil {
		return 0, err
	}
	return 100 * (c1 - c0).Seconds() / time.Since(start).Seconds(), nil
}

// procCPU reads utime+stime of the host process pid.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("controller's CPU time: %w", err)
	}
	// The command name, in parentheses, may hold spaces: count the fields
	// after its closing parenthesis (state is field 3, utime 14, stime 15).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	var ticks int64
	for _, v := range f[11:13] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %q: %w", pid, v, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// procRSS reads VmRSS of the host process pid, in KiB.
func procRSS(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("controller's memory: %w", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			if _, err := fmt.Sscan(v, &kb); err != nil {
				return 0, fmt.Errorf("/proc/%d/status: %q: %w", pid, line, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
