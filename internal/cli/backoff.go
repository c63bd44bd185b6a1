package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/backoff"
	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/memrestart"
)

// backoffPoll is how often the wait looks for an operator's stop or
// restart: the longest such a command waits for a backing-off instance.
// Each look is one call to systemd (over its private socket, as root);
// every 100 ms through the bus cost 0.9% of a CPU in systemd and the bus
// daemon alone.
const backoffPoll = 250 * time.Millisecond

// backoffCmd is run as root by every instance's ExecStopPost= (see package
// backoff); operators read its result in status and metrics.
func (o *options) backoffCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "backoff UNIT",
		Short:  "After an instance exits, wait before systemd restarts it if it keeps failing (run by NAME@.service as ExecStopPost=)",
		Hidden: true,
		Args:   exactArgs(1, "give the instance unit, e.g. app@3.service"),
		RunE: func(cmd *cobra.Command, args []string) error {
			unit := args[0]
			if _, _, err := herd.ParseInstance(unit); err != nil {
				return err
			}
			result, _ := o.env("SERVICE_RESULT")
			if result == "" {
				return usageError(fmt.Errorf("SERVICE_RESULT is not set: appctl backoff is run by systemd as an instance's ExecStopPost="))
			}
			code, _ := o.env("EXIT_CODE")
			status, _ := o.env("EXIT_STATUS")
			b := &backoffRun{o: o, cmd: cmd, unit: unit, store: backoff.Store{Dir: backoff.DefaultDir}}
			return b.run(backoff.Failure{Result: result, Code: code, Status: status})
		},
	}
}

// backoffRun is one run of appctl backoff for one exit of one instance.
type backoffRun struct {
	o     *options
	cmd   *cobra.Command
	unit  string
	store backoff.Store
	h     *herd.Herd // connected on first use: a first failure needs no D-Bus
}

func (b *backoffRun) herd() (*herd.Herd, error) {
	if b.h != nil {
		return b.h, nil
	}
	app, _, err := herd.ParseInstance(b.unit)
	if err != nil {
		return nil, err
	}
	b.h, err = b.o.sys.connect(b.cmd.Context(), app)
	return b.h, err
}

func (b *backoffRun) run(f backoff.Failure) error {
	defer func() {
		if b.h != nil {
			b.h.Close()
		}
	}()
	if f.Result == "success" {
		stopped, err := b.stoppedOnPurpose()
		if err != nil || stopped {
			return err
		}
		f.Result = "exited on its own"
	}
	if f.Code == "exited" && f.Status == memrestart.ExitStatus {
		// It drained and stopped because its memory stayed above its
		// limit. That counts like any exit nobody asked for: restarted
		// at once after a healthy run, backing off if it keeps happening
		// right after start (a limit below what the instance needs).
		f.Result = "memory limit"
		b.recordMemory()
	}
	policy, errs := backoff.FromEnv(func(k string) string { v, _ := b.o.env(k); return v })
	for _, err := range errs {
		fmt.Fprintf(b.o.stderr, "<4>%s: %v\n", b.unit, err)
	}
	prev, err := b.store.Load(b.unit)
	if err != nil {
		fmt.Fprintf(b.o.stderr, "<4>%v; counting from scratch\n", err)
		prev = nil
	}
	st := policy.Next(prev, b.unit, f, time.Now())
	if st.Delay == 0 {
		return b.store.Save(st)
	}
	return b.wait(st)
}

// recordMemory counts a memory restart and says so in the journal.
func (b *backoffRun) recordMemory() {
	r, err := memrestart.Store{Dir: memrestart.DefaultDir}.Add(b.unit, time.Now())
	if err != nil {
		fmt.Fprintf(b.o.stderr, "<4>%v\n", err)
		return
	}
	fmt.Fprintf(b.o.stderr, "<5>%s stopped for its memory limit; systemd replaces it (%d memory restarts since boot)\n", b.unit, r.Count)
}

// stoppedOnPurpose tells a clean exit that systemd was asked for (a stop
// or restart job is on the unit) from one the instance made by itself,
// which systemd answers with a restart like any failure. The first forgets
// the back-off.
func (b *backoffRun) stoppedOnPurpose() (bool, error) {
	h, err := b.herd()
	if err != nil {
		return false, err
	}
	job, err := h.PendingJob(b.cmd.Context(), b.unit)
	if err != nil {
		return false, err
	}
	restart, _, err := h.StopSettings(b.cmd.Context(), b.unit)
	if err != nil {
		return false, err
	}
	if job != "" || restart != "always" {
		return true, b.store.Remove(b.unit)
	}
	return false, nil
}

// wait records st and waits its delay, unless systemd will not restart
// the unit anyway or an operator stops or restarts it meanwhile.
func (b *backoffRun) wait(st backoff.State) error {
	ctx := b.cmd.Context()
	h, err := b.herd()
	if err != nil {
		return b.sleep(st, err)
	}
	restart, timeout, err := h.StopSettings(ctx, b.unit)
	if err != nil {
		return b.sleep(st, err)
	}
	if restart == "no" {
		return b.store.Remove(b.unit)
	}
	// The wait counts against TimeoutStopSec=; leave a second of it.
	if limit := timeout - time.Second; timeout > 0 && st.Delay > limit {
		st.Delay = max(limit, 0)
		st.Next = st.FailedAt.Add(st.Delay)
	}
	if err := b.store.Save(st); err != nil {
		return err
	}
	b.announce(st, nil)
	job, err := h.WaitUnlessAsked(ctx, b.unit, st.Delay, backoffPoll)
	if err != nil {
		fmt.Fprintf(b.o.stderr, "<4>%s: cannot watch for a stop or restart (%v); waiting unwatched\n", b.unit, err)
		time.Sleep(time.Until(st.Next))
		return nil
	}
	if job != "" {
		fmt.Fprintf(b.o.stderr, "%s: back-off ended early: %s requested\n", b.unit, job)
		return b.store.Remove(b.unit)
	}
	return nil
}

// sleep waits out st without watching for an operator, when systemd cannot
// be asked: a crash loop must not spin because D-Bus is down.
func (b *backoffRun) sleep(st backoff.State, cause error) error {
	if err := b.store.Save(st); err != nil {
		return err
	}
	b.announce(st, cause)
	time.Sleep(time.Until(st.Next))
	return nil
}

// announce writes the attempt's one journal record: why the instance
// waits, and how long; cause, if any, says why nobody watches the wait.
func (b *backoffRun) announce(st backoff.State, cause error) {
	unwatched := ""
	if cause != nil {
		unwatched = fmt.Sprintf(" (unwatched: %v)", cause)
	}
	fmt.Fprintf(b.o.stderr, "<4>%s failed %d times in a row (last: %s); next attempt in %s%s\n",
		b.unit, st.Failures, st.Last, st.Delay.Round(time.Millisecond), unwatched)
}
