package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/autoscale"
	"github.com/unitkit/unitkit/internal/herd"
)

func (o *options) statusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the socket and every instance in one table",
		Long: `status shows the listening socket (addresses, state, connections waiting in
its queue) and, per instance: state, main PID, uptime, automatic restarts,
CPU use since start, resident memory, open files, and the instance's own
status text. With --json it prints the same as one JSON object, whose
fields stay compatible (new ones may be added):

  app                  the service name
  time                 when the figures were read (RFC 3339, UTC)
  socket.unit, socket.state, socket.sub_state
                       the socket unit and systemd's states for it
  socket.listen        its addresses, e.g. ["[::]:8080"]
  socket.queued, socket.backlog
                       connections waiting to be accepted, and the limit
  instances[]          one object per instance, numbered ones first:
    unit, instance     e.g. "app@3.service" and "3"
    state, sub_state   systemd's ActiveState and SubState
    pid                main process, 0 when not running
    started            when it started (RFC 3339), absent when not running
    uptime_seconds     seconds since it started
    restarts           automatic restarts (NRestarts)
    memory_restarts    of those, the times it stopped for its memory limit
                       (MEMORY_LIMIT) this boot
    cpu_percent        CPU used since start, percent of one CPU
    rss_bytes, fds     resident memory and open files (-1: unreadable)
    status             the instance's own STATUS= text
    enabled            whether it starts at boot
    backoff            only while it waits because it keeps failing:
                       failures_in_a_row, last_failure (e.g. "exit-code,
                       status 1"), next_attempt (RFC 3339), seconds_left
  summary              instances, running, starting, failed, backing_off,
                       enabled, rss_bytes: totals over the instances
  autoscale.on         whether appctl autoscale is on; then:
    unit, setting      the controller unit and its setting, e.g.
                       "1-4:cpu70:window1m0s"
    state              what it saw at its last look (updated, running,
                       cpu_percent_per_instance, queued, desired, note) and
                       last_decision (time, from, to, desired, reason)`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withHerd(cmd, func(h *herd.Herd) error {
				snap, err := h.Snapshot(cmd.Context())
				if err != nil {
					return err
				}
				as, err := readAutoscale(cmd.Context(), h)
				if err != nil {
					return err
				}
				if asJSON {
					return writeJSON(o.stdout, snap, nil, as)
				}
				return writeTable(o.stdout, snap, nil, as)
			})
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	return cmd
}

// statusJSON is the stable --json schema.
type statusJSON struct {
	App       string         `json:"app"`
	Time      string         `json:"time"`
	Socket    socketJSON     `json:"socket"`
	Instances []instanceJSON `json:"instances"`
	Summary   summaryJSON    `json:"summary"`
	Autoscale autoscaleJSON  `json:"autoscale"`
}

type autoscaleJSON struct {
	On      bool             `json:"on"`
	Unit    string           `json:"unit,omitempty"`
	Setting string           `json:"setting,omitempty"`
	State   *autoscale.State `json:"state,omitempty"`
}

// readAutoscale reads which autoscaler runs, and what it last decided.
func readAutoscale(ctx context.Context, h *herd.Herd) (autoscaleJSON, error) {
	spec, err := h.ActiveAutoscaler(ctx)
	if err != nil || spec == "" {
		return autoscaleJSON{}, err
	}
	st, err := autoscale.ReadState(autoscale.StateDir(h.App().Name(), spec))
	if err != nil {
		return autoscaleJSON{}, err
	}
	return autoscaleJSON{On: true, Unit: h.App().Autoscaler(spec), Setting: spec, State: st}, nil
}

type socketJSON struct {
	Unit     string   `json:"unit"`
	State    string   `json:"state"`
	SubState string   `json:"sub_state"`
	Listen   []string `json:"listen"`
	Queued   uint64   `json:"queued"`
	Backlog  uint32   `json:"backlog"`
}

type instanceJSON struct {
	Unit       string       `json:"unit"`
	Instance   string       `json:"instance"`
	State      string       `json:"state"`
	SubState   string       `json:"sub_state"`
	PID        uint32       `json:"pid"`
	Started    string       `json:"started,omitempty"`
	UptimeSec  float64      `json:"uptime_seconds"`
	Restarts   uint32       `json:"restarts"`
	MemRestart int          `json:"memory_restarts"`
	CPUPercent float64      `json:"cpu_percent"`
	RSSBytes   uint64       `json:"rss_bytes"`
	FDs        int          `json:"fds"`
	Status     string       `json:"status"`
	Enabled    bool         `json:"enabled"`
	CPUNow     *float64     `json:"cpu_percent_now,omitempty"`
	Backoff    *backoffJSON `json:"backoff,omitempty"`
}

type backoffJSON struct {
	Failures    int     `json:"failures_in_a_row"`
	LastFailure string  `json:"last_failure"`
	NextAttempt string  `json:"next_attempt"`
	SecondsLeft float64 `json:"seconds_left"`
}

type summaryJSON struct {
	Instances int    `json:"instances"`
	Running   int    `json:"running"`
	Starting  int    `json:"starting"`
	Failed    int    `json:"failed"`
	Backoff   int    `json:"backing_off"`
	Enabled   int    `json:"enabled"`
	RSSBytes  uint64 `json:"rss_bytes"`
}

// cpuNow maps units to their CPU use over the last refresh (appctl top).
type cpuNow map[string]float64

func toJSON(s herd.Snapshot, now cpuNow, as autoscaleJSON) statusJSON {
	out := statusJSON{
		App: s.App, Time: s.Time.UTC().Format(time.RFC3339Nano), Autoscale: as,
		Socket: socketJSON{Unit: s.Socket.Unit, State: s.Socket.State, SubState: s.Socket.SubState,
			Listen: s.Socket.Listen, Queued: s.Socket.Queued, Backlog: s.Socket.Backlog},
		Instances: []instanceJSON{},
	}
	if out.Socket.Listen == nil {
		out.Socket.Listen = []string{}
	}
	for _, in := range s.Instances {
		j := instanceJSON{Unit: in.Unit, Instance: in.Name, State: in.State, SubState: in.SubState, PID: in.PID,
			Restarts: in.Restarts, MemRestart: in.MemoryRestarts, RSSBytes: in.RSS, FDs: in.FDs, Status: in.Status, Enabled: in.Enabled}
		if !in.Started.IsZero() {
			j.Started = in.Started.UTC().Format(time.RFC3339Nano)
			j.UptimeSec = s.Time.Sub(in.Started).Seconds()
			if j.UptimeSec > 0 {
				j.CPUPercent = 100 * in.CPUTime / j.UptimeSec
			}
		}
		if v, ok := now[in.Unit]; ok {
			j.CPUNow = &v
		}
		if b := in.Backoff; b != nil {
			j.Backoff = &backoffJSON{Failures: b.Failures, LastFailure: b.Last.String(),
				NextAttempt: b.Next.UTC().Format(time.RFC3339Nano), SecondsLeft: b.Next.Sub(s.Time).Seconds()}
		}
		out.Instances = append(out.Instances, j)
		out.Summary.add(in)
	}
	return out
}

func (s *summaryJSON) add(in herd.Instance) {
	s.Instances++
	switch {
	case in.Backoff != nil:
		s.Backoff++
	case in.Running():
		s.Running++
	case in.State == "activating":
		s.Starting++
	case in.State == "failed":
		s.Failed++
	}
	if in.Enabled {
		s.Enabled++
	}
	s.RSSBytes += in.RSS
}

func writeJSON(w io.Writer, s herd.Snapshot, now cpuNow, as autoscaleJSON) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(toJSON(s, now, as))
}

// writeTable prints the status table; with now, the CPU column is the use
// over the last refresh instead of since start.
func writeTable(w io.Writer, s herd.Snapshot, now cpuNow, as autoscaleJSON) error {
	j := toJSON(s, now, as)
	fmt.Fprintf(w, "%s  %s  %s  queued %d/%d\n", j.Socket.Unit, state(j.Socket.State, j.Socket.SubState),
		strings.Join(j.Socket.Listen, " "), j.Socket.Queued, j.Socket.Backlog)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	cpu := "CPU%"
	if now != nil {
		cpu = "CPU%NOW"
	}
	fmt.Fprintf(tw, "INSTANCE\tSTATE\tPID\tUPTIME\tRESTARTS\t%s\tRSS\tFDS\tBOOT\tSTATUS\n", cpu)
	for _, in := range j.Instances {
		c := in.CPUPercent
		if in.CPUNow != nil {
			c = *in.CPUNow
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\n",
			strings.TrimSuffix(in.Unit, ".service"), instanceState(in), pid(in.PID),
			uptime(in.UptimeSec), restarts(in), c, mib(in.RSSBytes), fds(in.FDs), yesNo(in.Enabled), in.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	sm := j.Summary
	backingOff := ""
	if sm.Backoff > 0 {
		backingOff = fmt.Sprintf(", %d backing off", sm.Backoff)
	}
	if _, err := fmt.Fprintf(w, "%s: %d running, %d starting, %d failed%s; %d start at boot; %s resident\n",
		herd.Instances(sm.Instances), sm.Running, sm.Starting, sm.Failed, backingOff, sm.Enabled, mib(sm.RSSBytes)); err != nil {
		return err
	}
	if as.On {
		_, err := fmt.Fprintln(w, autoscaleLine(as.Setting, as.State))
		return err
	}
	return nil
}

// restarts is the RESTARTS column: systemd's count, and how many of those
// were for the memory limit, e.g. "3 (2 memory)".
func restarts(in instanceJSON) string {
	if in.MemRestart > 0 {
		return fmt.Sprintf("%d (%d memory)", in.Restarts, in.MemRestart)
	}
	return fmt.Sprint(in.Restarts)
}

func state(active, sub string) string { return active + " (" + sub + ")" }

// instanceState is systemd's state, or the back-off an instance waits out:
// "backoff (5 failed, next in 6.4s)".
func instanceState(in instanceJSON) string {
	if b := in.Backoff; b != nil {
		return fmt.Sprintf("backoff (%d failed, next in %s)", b.Failures, time.Duration(b.SecondsLeft*float64(time.Second)).Round(100*time.Millisecond))
	}
	return state(in.State, in.SubState)
}

func pid(p uint32) string {
	if p == 0 {
		return "-"
	}
	return fmt.Sprint(p)
}

func uptime(sec float64) string {
	if sec <= 0 {
		return "-"
	}
	d := time.Duration(sec * float64(time.Second))
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func mib(b uint64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
}

func fds(n int) string {
	if n < 0 {
		return "-"
	}
	return fmt.Sprint(n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
