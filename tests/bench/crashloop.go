package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unitkit/unitkit/internal/backoff"
)

// The crash loop: one instance of two fails at every start while the
// other serves, as a broken release on one instance would.
const (
	loopUnit = "app@2.service"
	// loopDropIn makes only loopUnit fail its warm-up (cmd/app's faults).
	loopDropIn = "/etc/systemd/system/app@2.service.d/fault.conf"
	loopFault  = "[Service]\nEnvironment=APP_FAULT=fail-start\n"
	// loopWarmup is how long the loop runs before it is measured, so that
	// a back-off has grown by then; loopWindow is how long it is measured.
	loopWarmup = 10 * time.Second
	loopWindow = 30 * time.Second
	// backoffCap is the longest wait between two attempts, which the
	// fixed instance must come back within; recoveryTimeout is when the
	// bench gives up on it and records the timeout as the figure.
	backoffCap      = backoff.DefaultMax
	recoveryTimeout = backoffCap + 5*time.Second
	// unitStarting is the MESSAGE_ID of systemd's "Starting …" record
	// (SD_MESSAGE_UNIT_STARTING).
	unitStarting = "7d4958e842da4a758f6c1cdc7b36dcc5"
)

// cpuPart is a cgroup of the sandbox whose share of the CPU time the
// crash loop's row shows apart.
type cpuPart struct{ name, cgroup string }

// cpuParts are the parts of the sandbox whose CPU time the crash loop's
// row shows, first the whole sandbox; what they leave is mostly the
// failing instance's own (its processes and its ExecStopPost=).
func cpuParts() []cpuPart {
	return []cpuPart{
		{"sandbox", ""}, {"systemd", "init.scope"},
		{"D-Bus", "system.slice/dbus.service"}, {"journald", "system.slice/systemd-journald.service"},
	}
}

// window is what the sandbox did over one measuring window.
type window struct {
	since, until time.Time
	cpu          []time.Duration // CPU time of each of cpuParts
	restarts     int64           // NRestarts of loopUnit
}

// shares are the window's CPU time of each of cpuParts, in percent of one
// CPU.
func (w window) shares() []float64 {
	v := make([]float64, len(w.cpu))
	for k, d := range w.cpu {
		v[k] = 100 * d.Seconds() / w.until.Sub(w.since).Seconds()
	}
	return v
}

// loopRun is one run of the crash loop.
type loopRun struct {
	cpu      []float64 // percent of one CPU of each of cpuParts, over the idle herd's
	base     float64   // the idle herd's percent of one CPU
	records  int       // journal records of loopUnit in the window
	attempts int64     // start attempts in the window
	starting bool      // attempts counted from "Starting" records
	recovery time.Duration
	timedOut bool
}

// crashLoop makes app@2 of 2 instances fail at every start and measures,
// over loopWindow after loopWarmup, the CPU the loop costs (the whole
// sandbox's, less the same window with the herd idle and no fault,
// measured in the same run), its journal records per start attempt, and
// how long app@2 takes to run again once the fault is removed.
func (b *bench) crashLoop(ctx context.Context) error {
	if _, out, err := b.appctl(ctx, "scale", "2"); err != nil {
		return fmt.Errorf("scale 2: %w\n%s", err, out)
	}
	var runs []loopRun
	for range b.o.runs {
		r, err := b.crashLoopOnce(ctx)
		if err != nil {
			return err
		}
		runs = append(runs, r)
	}
	b.crashLoopRows(runs)
	return nil
}

// crashLoopOnce measures one run: the idle baseline, the loop, the fix.
func (b *bench) crashLoopOnce(ctx context.Context) (loopRun, error) {
	if err := b.quiet(ctx); err != nil {
		return loopRun{}, err
	}
	if err := b.waitIdle(); err != nil {
		return loopRun{}, err
	}
	base, err := b.measureWindow(ctx)
	if err != nil {
		return loopRun{}, fmt.Errorf("idle baseline: %w", err)
	}
	if err := b.s.WriteFile(loopDropIn, []byte(loopFault), 0o644); err != nil {
		return loopRun{}, err
	}
	for _, args := range [][]string{{"daemon-reload"}, {"restart", "--no-block", loopUnit}} {
		if _, err := b.s.Run(ctx, append([]string{"systemctl"}, args...)...); err != nil {
			return loopRun{}, fmt.Errorf("starting the crash loop: %w", err)
		}
	}
	time.Sleep(loopWarmup)
	loop, err := b.measureWindow(ctx)
	if err != nil {
		return loopRun{}, fmt.Errorf("crash loop: %w", err)
	}
	records, starts, err := b.journalRecords(ctx, loopUnit, loop.since, loop.until)
	if err != nil {
		return loopRun{}, err
	}
	// NRestarts counts systemd's automatic restarts; a back-off that
	// starts the instance some other way would not move it.
	r := loopRun{base: base.shares()[0], records: records, attempts: loop.restarts}
	for k, v := range loop.shares() {
		r.cpu = append(r.cpu, v-base.shares()[k])
	}
	if r.attempts == 0 {
		r.attempts, r.starting = int64(starts), true
	}
	r.recovery, r.timedOut, err = b.fixCrashLoop(ctx)
	return r, err
}

// waitIdle waits, for at most 30 s, until the sandbox used at most 0.5% of
// one CPU over a second: systemd goes on working for several seconds after
// a large scale-down (measured: an "idle" baseline of 1.4% of one CPU,
// nearly all of it systemd's, right after scaling from 32 instances to 2,
// against 0.2% once settled), which would otherwise pass for the idle
// herd's cost.
func (b *bench) waitIdle() error {
	const limit = 0.5 // percent of one CPU
	var share float64
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		cpu0, err := b.sandboxCPU()
		if err != nil {
			return err
		}
		time.Sleep(time.Second)
		cpu1, err := b.sandboxCPU()
		if err != nil {
			return err
		}
		if share = 100 * (cpu1[0] - cpu0[0]).Seconds(); share <= limit {
			return nil
		}
	}
	fmt.Fprintf(os.Stderr, "bench: the sandbox still uses %.1f%% of one CPU after 30s; measuring the idle baseline anyway\n", share)
	return nil
}

// measureWindow reads the sandbox's CPU time and loopUnit's NRestarts
// before and after loopWindow.
func (b *bench) measureWindow(ctx context.Context) (window, error) {
	var w window
	cpu0, err := b.sandboxCPU()
	if err != nil {
		return w, err
	}
	w.since = time.Now()
	n0, err := b.nRestarts(ctx, loopUnit)
	if err != nil {
		return w, err
	}
	time.Sleep(loopWindow)
	n1, err := b.nRestarts(ctx, loopUnit)
	if err != nil {
		return w, err
	}
	w.until = time.Now()
	cpu1, err := b.sandboxCPU()
	if err != nil {
		return w, err
	}
	for k := range cpu1 {
		w.cpu = append(w.cpu, cpu1[k]-cpu0[k])
	}
	w.restarts = n1 - n0
	return w, nil
}

// sandboxCPU reads the CPU time of each of cpuParts: the whole sandbox's
// (its systemd, journald, D-Bus and every unit) first, from usage_usec in
// its root cgroup's cpu.stat, which cgroup2 keeps even without the cpu
// controller.
func (b *bench) sandboxCPU() ([]time.Duration, error) {
	var v []time.Duration
	for _, p := range cpuParts() {
		d, err := cgroupCPU(filepath.Join(b.s.Cgroup(), p.cgroup))
		if err != nil {
			return nil, err
		}
		v = append(v, d)
	}
	return v, nil
}

// cgroupCPU reads usage_usec from the cgroup dir's cpu.stat.
func cgroupCPU(dir string) (time.Duration, error) {
	path := filepath.Join(dir, "cpu.stat")
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("CPU time: %w", err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			usec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %q: %w", path, line, err)
			}
			return time.Duration(usec) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("%s: no usage_usec", path)
}

// nRestarts reads how many times systemd restarted unit automatically.
func (b *bench) nRestarts(ctx context.Context, unit string) (int64, error) {
	n, err := b.serviceUint(ctx, unit, "NRestarts")
	return int64(n), err
}

// journalRecords counts the records journalctl -u unit shows with a
// timestamp in [since, until), and among them systemd's "Starting …"
// records of the unit.
func (b *bench) journalRecords(ctx context.Context, unit string, since, until time.Time) (records, starts int, err error) {
	if _, err := b.s.Run(ctx, "journalctl", "--sync"); err != nil {
		return 0, 0, err
	}
	// --since takes whole seconds; the records are then picked by their
	// timestamp in microseconds.
	recs, err := b.unitJournal(ctx, unit, since)
	if err != nil {
		return 0, 0, err
	}
	for _, rec := range recs {
		if rec.at.Before(since) || !rec.at.Before(until) {
			continue
		}
		records++
		if rec.messageID == unitStarting {
			starts++
		}
	}
	return records, starts, nil
}

// journalRecord is one journal record of a unit: when, and its MESSAGE_ID.
type journalRecord struct {
	at        time.Time
	messageID string
}

// unitJournal reads unit's journal records from a second before since.
func (b *bench) unitJournal(ctx context.Context, unit string, since time.Time) ([]journalRecord, error) {
	out, err := b.s.Run(ctx, "journalctl", "--no-pager", "-o", "json", "-u", unit, "--since", "@"+strconv.FormatInt(since.Unix()-1, 10))
	if err != nil {
		return nil, err
	}
	var recs []journalRecord
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Realtime  string `json:"__REALTIME_TIMESTAMP"`
			MessageID string `json:"MESSAGE_ID"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("journalctl -o json: %w", err)
		}
		usec, err := strconv.ParseInt(rec.Realtime, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("journalctl -o json: __REALTIME_TIMESTAMP %q: %w", rec.Realtime, err)
		}
		recs = append(recs, journalRecord{time.UnixMicro(usec), rec.MessageID})
	}
	return recs, sc.Err()
}

// fixCrashLoop removes the fault and times, from the removal and
// including the daemon-reload, until loopUnit is running (READY) again.
// After recoveryTimeout it gives up, reports the timeout as the time, and
// restarts the unit so that the next run starts from a healthy herd.
func (b *bench) fixCrashLoop(ctx context.Context) (time.Duration, bool, error) {
	start := time.Now()
	if _, err := b.s.Run(ctx, "rm", "-f", loopDropIn); err != nil {
		return 0, false, err
	}
	if _, err := b.s.Run(ctx, "systemctl", "daemon-reload"); err != nil {
		return 0, false, err
	}
	d, ok, err := b.waitRunning(ctx, loopUnit, 0, start, recoveryTimeout)
	if err != nil || ok {
		return d, false, err
	}
	fmt.Fprintf(os.Stderr, "bench: %s not running %s after its fault was removed; restarting it\n", loopUnit, recoveryTimeout)
	if _, err := b.s.Run(ctx, "systemctl", "restart", loopUnit); err != nil {
		return 0, true, fmt.Errorf("%s after the crash loop: %w", loopUnit, err)
	}
	return recoveryTimeout, true, nil
}

// crashLoopRows adds the crash loop's rows.
func (b *bench) crashLoopRows(runs []loopRun) {
	var base, perAttempt, records, attempts, recovery []float64
	cpu := make([][]float64, len(cpuParts()))
	starting, timeouts := false, 0
	for _, r := range runs {
		for k, v := range r.cpu {
			cpu[k] = append(cpu[k], v)
		}
		base = append(base, r.base)
		// With no attempt in the window, the records are those of none.
		perAttempt = append(perAttempt, float64(r.records)/float64(max(r.attempts, 1)))
		records, attempts = append(records, float64(r.records)), append(attempts, float64(r.attempts))
		recovery = append(recovery, r.recovery.Seconds())
		starting = starting || r.starting
		if r.timedOut {
			timeouts++
		}
	}
	tag := fmt.Sprintf("crash loop (%s of 2 fails at every start), %s after its first %s", loopUnit, loopWindow, loopWarmup)
	ref := "idle herd, no fault: " + format(median(base), "percent") + " of one CPU; of the loop's:"
	rest := slices.Clone(cpu[0])
	for k, p := range cpuParts()[1:] {
		ref += fmt.Sprintf(" %s %s,", p.name, format(median(cpu[k+1]), "percent"))
		for i, v := range cpu[k+1] {
			rest[i] -= v
		}
	}
	ref += " " + loopUnit + " (ExecStopPost= included) and the rest " + format(median(rest), "percent")
	b.add(newRow(tag+": CPU it costs, over the idle herd's", "percent", cpu[0], ref,
		"≤ 2% of one CPU", func(v float64) bool { return v <= 2 }))
	b.add(newRow(tag+": journal records per start attempt (journalctl -u "+loopUnit+")", "per", perAttempt,
		format(median(records), "count")+" records in the window", "≤ 1 per attempt", func(v float64) bool { return v <= 1 }))
	counted := "NRestarts"
	if starting {
		counted = `"Starting" records (NRestarts did not move)`
	}
	b.add(newRow(tag+": start attempts", "count", attempts, "counted by "+counted, "", nil))
	ref = ""
	if timeouts > 0 {
		ref = fmt.Sprintf("%d of %d runs not running after %s (recorded as %s)", timeouts, len(runs), recoveryTimeout, recoveryTimeout)
	}
	b.add(newRow("crash loop fixed (drop-in removed, daemon-reload) until "+loopUnit+" is running and READY", "s", recovery, ref,
		fmt.Sprintf("within its back-off cap (%s)", backoffCap), func(v float64) bool { return v <= backoffCap.Seconds() }))
}
