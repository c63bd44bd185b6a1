package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"golang.org/x/sys/unix"

	"github.com/unitkit/unitkit/internal/backoff"
	"github.com/unitkit/unitkit/internal/loadtest"
	"github.com/unitkit/unitkit/tests/sandbox"
)

// bench holds the sandbox and the rows measured so far.
type bench struct {
	s      *sandbox.Sandbox
	o      options
	sd     *sdbus.Conn // the sandbox's systemd, for polls that time something
	pm2Bin string      // pm2 command, "" to skip the PM2 reference
	useWrk bool        // also measure with Debian's wrk
	rows   []row
	// pm2Ref holds PM2's medians of this run that herd rows compare
	// with, by figure (see belowPM2); empty until the pm2 step ran.
	pm2Ref map[string]float64
}

const (
	herdURL  = "http://127.0.0.1:8080"
	plainURL = "http://127.0.0.1:9090"
)

// step is one part of the bench, under the name -only selects it by.
type step struct {
	name string
	run  func(context.Context) error
}

// steps are the bench's parts in the order they run. The PM2 reference
// runs before scale and crash, whose targets compare with PM2's medians
// of the same run; the crash loop and autoscale run before PM2 starts, so
// that the sandbox's CPU time they read is the herd's alone (and
// autoscale's /work load runs on the Go app, before node replaces it).
func (b *bench) steps() []step {
	return []step{
		{"throughput", b.throughput}, {"cpubound", b.cpuBound}, {"reload", b.reload}, {"coldstart", b.coldStart},
		{"memory", b.memory}, {"status", b.status}, {"crashloop", b.crashLoop},
		{"autoscale", b.autoscale}, {"wedge", b.wedge}, {"pm2", b.pm2Rows}, {"scale", b.scale}, {"crash", b.crash},
		{"againstpm2", b.againstPM2}, {"node", b.nodeRows}, {"express", b.expressRows},
	}
}

// stepNames lists the steps -only accepts, in the order they run.
func stepNames() []string {
	var names []string
	for _, s := range new(bench).steps() {
		names = append(names, s.name)
	}
	return names
}

// all measures every selected figure in turn.
func (b *bench) all(ctx context.Context) error {
	if _, err := b.s.Run(ctx, "systemd-run", "--unit=plain", "--setenv=PORT=9090", "--setenv=INSTANCE=plain", "/usr/bin/app"); err != nil {
		return err
	}
	if b.useWrk {
		if err := b.haveWrk(ctx); err != nil {
			return err
		}
	}
	for _, step := range b.steps() {
		if !b.o.selected(step.name) {
			continue
		}
		if err := step.run(ctx); err != nil {
			return fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return nil
}

// appctl runs appctl in the sandbox and returns how long it took.
func (b *bench) appctl(ctx context.Context, args ...string) (time.Duration, string, error) {
	start := time.Now()
	out, err := b.s.Run(ctx, append([]string{"appctl"}, args...)...)
	return time.Since(start), out, err
}

// load runs one closed-loop load of o.duration against url+path.
func (b *bench) load(url, path string, keepAlive bool) loadtest.Result {
	l := loadtest.New(loadtest.Config{URL: url, KeepAlive: keepAlive, Dial: b.s.DialContext, Record: true})
	l.Run(b.o.clients, path)
	time.Sleep(b.o.duration)
	return l.Stop()
}

func (b *bench) add(r row) {
	b.rows = append(b.rows, r)
}

func mode(keepAlive bool) string {
	return map[bool]string{false: "fresh connections", true: "keep-alive"}[keepAlive]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// skew is the busiest instance's share over the idlest one's.
func skew(r loadtest.Result, instances int) float64 {
	if len(r.ByInstance) < instances {
		return 0 // an instance got nothing: infinite skew, reported as 0
	}
	lo, hi := int64(-1), int64(0)
	for _, n := range r.ByInstance {
		hi = max(hi, n)
		if lo < 0 || n < lo {
			lo = n
		}
	}
	return float64(hi) / float64(max(lo, 1))
}

func median(v []float64) float64 { return newRow("", "", v, "", "", nil).Median }

// reload measures failed requests and tail latency during appctl reload,
// as the herd ran before keep-alive connections were bounded and as it
// ships.
func (b *bench) reload(ctx context.Context) error {
	var beforeP99 float64
	for _, v := range []variant{before, shipped} {
		if err := b.configure(ctx, 4, v); err != nil {
			return err
		}
		failed, p99, worst, err := b.underReload(herdURL, func() error {
			_, out, err := b.appctl(ctx, "reload")
			if err != nil {
				return fmt.Errorf("reload: %w\n%s", err, out)
			}
			return nil
		})
		if err != nil {
			return err
		}
		tag, p99Target, p99Goal := "", "", (func(float64) bool)(nil)
		if v.name != "" {
			tag, beforeP99 = ", "+v.name, median(p99)
		} else {
			p99Target = "≤ " + format(beforeP99, "ms") + " (as before)"
			p99Goal = func(x float64) bool { return x <= beforeP99 }
		}
		b.add(newRow("failed requests during appctl reload of 4 instances"+tag, "count", failed, "", "0", func(v float64) bool { return v == 0 }))
		b.add(newRow("p99 latency during appctl reload"+tag, "ms", p99, "", p99Target, p99Goal))
		b.add(newRow("max latency during appctl reload"+tag, "ms", worst, "", "", nil))
	}
	return nil
}

// underReload runs reload o.runs times under 16 fresh and 16 keep-alive
// clients and returns, per run, the failed requests and the p99 and
// maximum latency in milliseconds.
func (b *bench) underReload(url string, reload func() error) (failed, p99, worst []float64, err error) {
	for range b.o.runs {
		l := loadtest.New(loadtest.Config{URL: url, Dial: b.s.DialContext, Record: true})
		k := loadtest.New(loadtest.Config{URL: url, Dial: b.s.DialContext, Record: true, KeepAlive: true})
		l.Run(b.o.clients/2, "/")
		k.Run(b.o.clients/2, "/")
		time.Sleep(200 * time.Millisecond)
		err := reload()
		time.Sleep(200 * time.Millisecond)
		rl, rk := l.Stop(), k.Stop()
		if err != nil {
			return nil, nil, nil, err
		}
		failed = append(failed, float64(rl.Failed+rk.Failed))
		p99 = append(p99, ms(max(rl.Percentile(0.99), rk.Percentile(0.99))))
		worst = append(worst, ms(max(rl.MaxLatency, rk.MaxLatency)))
	}
	return failed, p99, worst, nil
}

// scaleSteps are the scale figures, from and to, measured for the herd
// and for PM2 alike.
func scaleSteps() [][2]int { return [][2]int{{1, 2}, {2, 4}} }

// scaleKey names a scale figure of PM2's in pm2Ref and in the rows.
func scaleKey(from, to int) string { return fmt.Sprintf("pm2 scale %d→%d", from, to) }

// scale times appctl scale from 1 to 2 and from 2 to 4 instances, until
// every instance is ready, against pm2 scale measured the same way.
func (b *bench) scale(ctx context.Context) error {
	for _, st := range scaleSteps() {
		from, to := st[0], st[1]
		var took []float64
		for range b.o.runs {
			if _, out, err := b.appctl(ctx, "scale", strconv.Itoa(from)); err != nil {
				return fmt.Errorf("scale %d: %w\n%s", from, err, out)
			}
			if err := b.quiet(ctx); err != nil {
				return err
			}
			d, out, err := b.appctl(ctx, "scale", strconv.Itoa(to))
			if err != nil {
				return fmt.Errorf("scale %d: %w\n%s", to, err, out)
			}
			took = append(took, ms(d))
		}
		ref, target, goal := b.belowPM2(scaleKey(from, to), 150)
		b.add(newRow(fmt.Sprintf("appctl scale %d→%d, all ready (process start included)", from, to), "ms", took, ref, target, goal))
	}
	return nil
}

// quiet waits until systemd has no job queued and no app-persist@ run is
// left (one may still be waiting to reload systemd after a scale down),
// for at most 5 s, and then 300 ms more, so that a timed command starts
// from a quiet systemd: not behind the tail of the untimed preparation
// before it (instances still stopping, a daemon-reload).
func (b *bench) quiet(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := b.s.Run(ctx, "systemctl", "list-jobs", "--no-legend")
		if err != nil {
			return fmt.Errorf("waiting for systemd's jobs: %w", err)
		}
		persist, _ := b.s.Run(ctx, "systemctl", "list-units", "--state=active,activating", "--no-legend", "app-persist@*")
		jobs := strings.TrimSpace(out)
		if strings.HasPrefix(jobs, "No jobs") {
			jobs = ""
		}
		jobs = strings.TrimSpace(jobs + "\n" + persist)
		if jobs == "" {
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "bench: systemd still has jobs queued after 5s, going on:\n%s\n", jobs)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return nil
}

// belowPM2 returns the reference, target and goal of a herd row in ms
// whose target is "≤ limit ms and below PM2": below PM2's median of this
// run for the same figure (key in pm2Ref), or, when PM2 was not
// measured, the limit alone.
func (b *bench) belowPM2(key string, limit float64) (ref, target string, goal func(float64) bool) {
	bound := "≤ " + format(limit, "ms")
	pm2, ok := b.pm2Ref[key]
	if !ok {
		return "PM2 not measured", bound + " (PM2 not measured)", func(v float64) bool { return v <= limit }
	}
	return "PM2 (" + key + ") " + format(pm2, "ms"), bound + " and below PM2",
		func(v float64) bool { return v <= limit && v < pm2 }
}

// coldStart times the first request to a socket with no instance running.
func (b *bench) coldStart(ctx context.Context) error {
	c := b.s.HTTPClient(false)
	var took []float64
	for range b.o.runs {
		if _, _, err := b.appctl(ctx, "scale", "0"); err != nil {
			return err
		}
		if _, err := b.s.Run(ctx, "systemctl", "stop", "app@1.service"); err != nil {
			return err
		}
		start := time.Now()
		resp, err := c.Get(herdURL + "/")
		if err != nil {
			return fmt.Errorf("cold start: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took = append(took, ms(time.Since(start)))
	}
	b.add(newRow("cold start: first request, no instance running", "ms", took, "", "≤ 30 ms", func(v float64) bool { return v <= 30 }))
	return nil
}

// pm2Kill9 names PM2's kill -9 recovery in pm2Ref and in the rows.
const pm2Kill9 = "kill -9 of a worker until online again"

// healthyUptime is how long an instance runs before the bench kills it:
// past the crash back-off's minimum uptime, so that every kill is a first
// failure after a healthy run, restarted without a back-off wait, as the
// first kill of a run is.
const healthyUptime = backoff.DefaultMinUptime + time.Second

// crash times kill -9 of an instance until systemd reports it running and
// READY again, under load, and counts the failed requests.
func (b *bench) crash(ctx context.Context) error {
	if _, _, err := b.appctl(ctx, "scale", "2"); err != nil {
		return err
	}
	took, failed, err := b.underCrash(herdURL, func() (time.Duration, error) { return b.kill9(ctx, "app@1.service") })
	if err != nil {
		return err
	}
	ref, target, goal := b.belowPM2(pm2Kill9, 200)
	b.add(newRow("crash recovery: kill -9 of app@1 until running and READY again, 2 instances", "ms", took, ref, target, goal))
	b.add(newRow("failed requests around a kill -9 (what the process held)", "count", failed, "", "", nil))
	return nil
}

// underCrash runs crash o.runs times under clients/2 clients with fresh
// connections against url, and returns how long each recovery took and
// the failed requests of each run.
func (b *bench) underCrash(url string, crash func() (time.Duration, error)) (took, failed []float64, err error) {
	for range b.o.runs {
		l := loadtest.New(loadtest.Config{URL: url, Dial: b.s.DialContext})
		l.Run(b.o.clients/2, "/")
		time.Sleep(300 * time.Millisecond)
		d, err := crash()
		time.Sleep(200 * time.Millisecond)
		r := l.Stop()
		if err != nil {
			return nil, nil, err
		}
		took, failed = append(took, ms(d)), append(failed, float64(r.Failed))
	}
	return took, failed, nil
}

// kill9 waits until unit has run for healthyUptime, kills its main
// process with SIGKILL and returns how long systemd took to have it
// running (READY, for Type=notify) again with a new process.
func (b *bench) kill9(ctx context.Context, unit string) (time.Duration, error) {
	if err := b.waitUptime(ctx, unit, healthyUptime); err != nil {
		return 0, err
	}
	pid, err := b.runningPID(ctx, unit)
	if err != nil || pid == 0 {
		return 0, fmt.Errorf("%s is not running: %v", unit, err)
	}
	host, err := b.hostPID(ctx, unit, pid)
	if err != nil {
		return 0, err
	}
	if err := unix.Kill(host, unix.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill -9 %s (pid %d): %w", unit, host, err)
	}
	d, ok, err := b.waitRunning(ctx, unit, pid, time.Now(), 30*time.Second)
	if err == nil && !ok {
		err = fmt.Errorf("%s not back within 30s", unit)
	}
	return d, err
}

// waitUptime waits until unit's main process has run for at least d.
func (b *bench) waitUptime(ctx context.Context, unit string, d time.Duration) error {
	usec, err := b.serviceUint(ctx, unit, "ExecMainStartTimestampMonotonic")
	if err != nil {
		return err
	}
	var now unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &now); err != nil {
		return fmt.Errorf("monotonic clock: %w", err)
	}
	up := time.Duration(now.Nano()) - time.Duration(usec)*time.Microsecond
	time.Sleep(d - up) // returns at once when up ≥ d
	return nil
}

func (b *bench) mainPID(ctx context.Context, unit string) (string, error) {
	out, err := b.s.Run(ctx, "systemctl", "show", "-p", "MainPID", "-p", "SubState", "--value", unit)
	f := strings.Fields(out)
	if err != nil || len(f) < 2 || f[1] != "running" {
		return "", err
	}
	return f[0], nil
}

// memory reads the resident memory of idle instances from appctl status.
func (b *bench) memory(ctx context.Context) error {
	if _, _, err := b.appctl(ctx, "scale", "4"); err != nil {
		return err
	}
	time.Sleep(time.Second)
	rss, err := b.idleRSS(ctx)
	if err != nil {
		return err
	}
	b.add(newRow("RSS per idle instance", "MiB", rss, "supervision overhead: none (systemd only)", "< 20 MiB",
		func(v float64) bool { return v < 20 }))
	return nil
}

// idleRSS reads each instance's resident memory, in MiB, from appctl
// status.
func (b *bench) idleRSS(ctx context.Context) ([]float64, error) {
	_, out, err := b.appctl(ctx, "status", "--json")
	if err != nil {
		return nil, err
	}
	var st struct {
		Instances []struct {
			RSS uint64 `json:"rss_bytes"`
		} `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, fmt.Errorf("status --json: %w", err)
	}
	var rss []float64
	for _, in := range st.Instances {
		rss = append(rss, float64(in.RSS)/(1<<20))
	}
	return rss, nil
}

// status times appctl status at 8 and 32 instances.
func (b *bench) status(ctx context.Context) error {
	for _, n := range []int{8, 32} {
		if _, out, err := b.appctl(ctx, "scale", strconv.Itoa(n), "--limit", "32"); err != nil {
			return fmt.Errorf("scale %d: %w\n%s", n, err, out)
		}
		var took []float64
		for range max(b.o.runs, 5) {
			d, _, err := b.appctl(ctx, "status")
			if err != nil {
				return err
			}
			took = append(took, ms(d))
		}
		target, goal := "", (func(float64) bool)(nil)
		if n == 32 {
			target, goal = "≤ 60 ms", func(v float64) bool { return v <= 60 }
		}
		b.add(newRow(fmt.Sprintf("appctl status at %d instances (process start included)", n), "ms", took, "", target, goal))
	}
	return nil
}
