package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/unitkit/unitkit/activation"
	"github.com/unitkit/unitkit/internal/loadtest"
)

// The wedge step: one instance of four wedged (cmd/app's APP_FAULT=wedge,
// POST /debug/wedge) under open-loop load with a fresh connection per
// request, as issue 15 measured it.
const (
	wedgeDropIn    = "/etc/systemd/system/app@.service.d/wedge.conf"
	wedgeConf      = "[Service]\nEnvironment=APP_FAULT=wedge\nWatchdogSec=3s\n"
	wedgeInstances = 4
	wedgeRate      = 400 // new requests per second
	// wedgeWorkers bounds the requests in flight: room for every request
	// stuck on the wedged instance until the watchdog kills it, besides
	// the rate itself.
	wedgeWorkers = 1000
	// wedgeHealthInterval is the instances' health interval with
	// WatchdogSec=3s: a quarter of it.
	wedgeHealthInterval = 750 * time.Millisecond
	// wedgeIssueBound is issue 15's bound for these settings: what reaches
	// the wedged instance within one health interval.
	wedgeIssueBound = 120
	// wedgeBefore is what the wedge cost before a stuck instance stopped
	// accepting (issue 15): everything routed to it during the whole
	// watchdog period.
	wedgeBefore = 312
	// wedgeTimeout bounds the wait for the watchdog to replace the wedged
	// instance.
	wedgeTimeout = 30 * time.Second
	// idleWindow is how long the instances' CPU is read, idle and loaded.
	idleWindow = 10 * time.Second
)

// slowCanary sends the canary only once per health interval, as before
// the canary interval existed.
var slowCanary = variant{"canary once per health interval (CANARY_INTERVAL=0)", []string{"CANARY_INTERVAL=0"}}

// wedgeRun is what one wedge cost.
type wedgeRun struct {
	failed   int64
	share    float64       // the wedged instance's share of the answers before the wedge
	others   int64         // answers of the other instances while it was wedged
	stopped  time.Duration // wedge → its journal record of no longer accepting; < 0: none
	replaced time.Duration // wedge → its replacement running and READY
}

// wedge measures, o.runs times, the failed requests when one of 4
// instances wedges under 400 new requests per second with WatchdogSec=3s,
// and how soon it stops accepting; then the CPU the instances spend on the
// canary, sent every 100 ms while accepting and once per health interval.
// It leaves the herd as shipped, with 4 instances.
func (b *bench) wedge(ctx context.Context) error {
	runs, err := b.wedgeRuns(ctx)
	if err != nil {
		return err
	}
	b.wedgeRows(runs)
	return b.canaryCost(ctx)
}

// wedgeRuns puts the wedge's drop-in in place, restarts 4 instances with
// it, measures o.runs wedges and removes the drop-in again, whatever
// happened.
func (b *bench) wedgeRuns(ctx context.Context) (runs []wedgeRun, err error) {
	if err := b.s.WriteFile(wedgeDropIn, []byte(wedgeConf), 0o644); err != nil {
		return nil, err
	}
	defer func() {
		if rerr := b.removeWedgeDropIn(ctx); err == nil {
			err = rerr
		}
	}()
	if _, err := b.s.Run(ctx, "systemctl", "daemon-reload"); err != nil {
		return nil, err
	}
	if err := b.configure(ctx, wedgeInstances, shipped); err != nil {
		return nil, err
	}
	for range b.o.runs {
		r, err := b.wedgeOnce(ctx)
		if err != nil {
			return nil, err
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// removeWedgeDropIn removes the wedge's drop-in; instances started from
// then on run as shipped.
func (b *bench) removeWedgeDropIn(ctx context.Context) error {
	if _, err := b.s.Run(ctx, "rm", "-f", wedgeDropIn); err != nil {
		return err
	}
	_, err := b.s.Run(ctx, "systemctl", "daemon-reload")
	return err
}

// wedgeOnce runs the open-loop load, wedges whichever instance answers
// POST /debug/wedge, and waits until the watchdog has replaced it.
func (b *bench) wedgeOnce(ctx context.Context) (wedgeRun, error) {
	if err := b.waitInstances(ctx, wedgeInstances); err != nil {
		return wedgeRun{}, err
	}
	if err := b.quiet(ctx); err != nil {
		return wedgeRun{}, err
	}
	l := loadtest.New(loadtest.Config{URL: herdURL, Dial: b.s.DialContext})
	l.RunRate(wedgeRate, wedgeWorkers, "/")
	time.Sleep(b.o.duration)
	before := l.Snapshot()
	name, at, err := b.wedgeOne()
	if err != nil {
		l.Stop()
		return wedgeRun{}, err
	}
	unit := "app@" + name + ".service"
	old, err := b.runningPID(ctx, unit)
	if err != nil {
		l.Stop()
		return wedgeRun{}, err
	}
	replaced, ok, err := b.waitRunning(ctx, unit, old, at, wedgeTimeout)
	if err == nil && !ok {
		err = fmt.Errorf("%s not replaced within %s of its wedge", unit, wedgeTimeout)
	}
	time.Sleep(300 * time.Millisecond)
	after := l.Stop()
	if err != nil {
		return wedgeRun{}, err
	}
	stopped, err := b.stoppedAccepting(ctx, unit, at)
	if err != nil {
		return wedgeRun{}, err
	}
	r := wedgeRun{failed: after.Failed, share: share(before, name), stopped: stopped, replaced: replaced}
	for k, n := range after.ByInstance {
		if k != name {
			r.others += n - before.ByInstance[k]
		}
	}
	return r, nil
}

// wedgeOne wedges the instance that answers POST /debug/wedge and returns
// its name and when the answer arrived.
func (b *bench) wedgeOne() (string, time.Time, error) {
	resp, err := b.s.HTTPClient(false).Post(herdURL+"/debug/wedge", "", nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("POST /debug/wedge: %w", err)
	}
	at := time.Now()
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	name := resp.Header.Get("X-Instance")
	if resp.StatusCode != 200 || name == "" {
		return "", at, fmt.Errorf("POST /debug/wedge: %s, X-Instance %q", resp.Status, name)
	}
	return name, at, nil
}

// share is instance's share of the successful answers in r.
func share(r loadtest.Result, instance string) float64 {
	var total int64
	for _, n := range r.ByInstance {
		total += n
	}
	return float64(r.ByInstance[instance]) / float64(max(total, 1))
}

// waitInstances waits, for at most wedgeTimeout, until app@1 … app@n are
// all running (READY).
func (b *bench) waitInstances(ctx context.Context, n int) error {
	for deadline := time.Now().Add(wedgeTimeout); ; time.Sleep(20 * time.Millisecond) {
		running := 0
		for k := 1; k <= n; k++ {
			pid, err := b.runningPID(ctx, fmt.Sprintf("app@%d.service", k))
			if err != nil {
				return err
			}
			if pid != 0 {
				running++
			}
		}
		if running == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d instances running after %s", running, n, wedgeTimeout)
		}
	}
}

// stoppedAccepting returns how long after at unit logged that it stopped
// accepting (activation.MessageAcceptPaused), or -1 without such a record.
func (b *bench) stoppedAccepting(ctx context.Context, unit string, at time.Time) (time.Duration, error) {
	if _, err := b.s.Run(ctx, "journalctl", "--sync"); err != nil {
		return 0, err
	}
	recs, err := b.unitJournal(ctx, unit, at)
	if err != nil {
		return 0, err
	}
	for _, rec := range recs {
		if rec.messageID == activation.MessageAcceptPaused && !rec.at.Before(at.Add(-time.Second)) {
			return rec.at.Sub(at), nil
		}
	}
	return -1, nil
}

// wedgeRows adds the wedge's rows.
func (b *bench) wedgeRows(runs []wedgeRun) {
	var failed, shares, stopped, replaced, others []float64
	missing := 0
	for _, r := range runs {
		failed, shares = append(failed, float64(r.failed)), append(shares, r.share)
		others, replaced = append(others, float64(r.others)), append(replaced, r.replaced.Seconds())
		if r.stopped < 0 {
			missing++
			continue
		}
		stopped = append(stopped, ms(r.stopped))
	}
	perInterval := median(shares) * wedgeRate * wedgeHealthInterval.Seconds()
	bound := max(float64(wedgeIssueBound), perInterval)
	tag := fmt.Sprintf("one of %d instances wedged, open loop %d requests/s, fresh connections, WatchdogSec=3s", wedgeInstances, wedgeRate)
	never := ""
	if len(stopped) == 0 {
		never = "; it never stopped accepting"
	}
	b.add(newRow("failed requests, "+tag, "count", failed,
		fmt.Sprintf("before: %d (issue 15); the wedged instance had %s of the answers, %.0f requests per health interval (%s); the others answered %s meanwhile%s",
			wedgeBefore, format(median(shares), "share"), perInterval, wedgeHealthInterval, format(median(others), "count"), never),
		fmt.Sprintf("≤ %.0f (what reached it per health interval, at least %d)", bound, wedgeIssueBound),
		func(v float64) bool { return v <= bound }))
	ref := fmt.Sprintf("its journal record (MESSAGE_ID=%s)", activation.MessageAcceptPaused)
	if missing > 0 {
		ref += fmt.Sprintf("; none in %d of %d runs", missing, len(runs))
	}
	if len(stopped) > 0 { // without a record in any run there is no figure
		b.add(newRow("wedge → the wedged instance stops accepting, "+tag, "ms", stopped, ref,
			fmt.Sprintf("≤ %s (one health interval)", wedgeHealthInterval), func(v float64) bool { return missing == 0 && v <= ms(wedgeHealthInterval) }))
	}
	b.add(newRow("wedge → replaced by the watchdog, running and READY, "+tag, "s", replaced, "", "", nil))
}

// canaryCost measures the CPU of 4 instances as shipped, idle and under
// 400 new requests per second, with the canary every 100 ms while
// accepting and once per health interval only, alternating in each run,
// and leaves the herd as shipped.
func (b *bench) canaryCost(ctx context.Context) error {
	var idle, loaded [2][]float64 // by variant: slowCanary, shipped
	for range b.o.runs {
		for k, v := range []variant{slowCanary, shipped} {
			i, l, err := b.canaryCPU(ctx, v)
			if err != nil {
				return err
			}
			idle[k], loaded[k] = append(idle[k], i), append(loaded[k], l)
		}
	}
	pairs := func(v [2][]float64) []float64 {
		d := make([]float64, len(v[1]))
		for k := range d {
			d[k] = v[1][k] - v[0][k]
		}
		return d
	}
	herd := fmt.Sprintf("%d instances as shipped (WatchdogSec=10s: health every 2.5 s)", wedgeInstances)
	every := "canary every " + activation.DefaultCanaryInterval.String() + " while accepting"
	for _, f := range []struct {
		what   string
		v      [2][]float64
		target string
		goal   func(float64) bool
	}{
		{fmt.Sprintf("idle, over %s", idleWindow), idle, "≤ 0.5 ms per second", func(v float64) bool { return v <= 0.5 }},
		{fmt.Sprintf("open loop %d requests/s, fresh connections, over %s", wedgeRate, idleWindow), loaded, "", nil},
	} {
		tag := herd + ", " + f.what + ", ms of CPU per second per instance"
		b.add(newRow("CPU, "+tag+", "+every, "ms", f.v[1],
			"once per health interval (CANARY_INTERVAL=0): "+format(median(f.v[0]), "ms"), "", nil))
		b.add(newRow("CPU the "+every+" costs, "+tag, "ms", pairs(f.v), "the same run's pairs", f.target, f.goal))
	}
	return nil
}

// canaryCPU configures the herd with v and measures its instances' CPU
// idle, then under the open-loop load.
func (b *bench) canaryCPU(ctx context.Context, v variant) (idle, loaded float64, err error) {
	if err := b.configure(ctx, wedgeInstances, v); err != nil {
		return 0, 0, err
	}
	if err := b.quiet(ctx); err != nil {
		return 0, 0, err
	}
	if err := b.waitIdle(); err != nil {
		return 0, 0, err
	}
	if idle, err = b.instancesCPU(ctx, wedgeInstances, idleWindow); err != nil {
		return 0, 0, err
	}
	l := loadtest.New(loadtest.Config{URL: herdURL, Dial: b.s.DialContext})
	l.RunRate(wedgeRate, b.o.clients, "/")
	loaded, err = b.instancesCPU(ctx, wedgeInstances, idleWindow)
	if r := l.Stop(); err == nil && r.Failed > 0 {
		err = fmt.Errorf("%d of %d requests failed while measuring the canary's cost: %v", r.Failed, r.Total, r.Errors)
	}
	return idle, loaded, err
}

// instancesCPU is the mean CPU of app@1 … app@n over d, in milliseconds
// of CPU per second, from their cgroups' cpu.stat.
func (b *bench) instancesCPU(ctx context.Context, n int, d time.Duration) (float64, error) {
	var dirs []string
	for k := 1; k <= n; k++ {
		unit := fmt.Sprintf("app@%d.service", k)
		cg, err := b.sd.GetServicePropertyContext(ctx, unit, "ControlGroup")
		if err != nil {
			return 0, fmt.Errorf("%s ControlGroup: %w", unit, err)
		}
		dir, _ := cg.Value.Value().(string) // within the sandbox's cgroup namespace
		dirs = append(dirs, filepath.Join(b.s.Cgroup(), dir))
	}
	sum := func() (time.Duration, error) {
		var total time.Duration
		for _, dir := range dirs {
			c, err := cgroupCPU(dir)
			if err != nil {
				return 0, err
			}
			total += c
		}
		return total, nil
	}
	c0, err := sum()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	time.Sleep(d)
	c1, err := sum()
	if err != nil {
		return 0, err
	}
	return ms(c1-c0) / time.Since(start).Seconds() / float64(n), nil
}
