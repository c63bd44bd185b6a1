package soak

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Journal message IDs systemd gives the records the soak reads.
const (
	msgProcessExit = "98e322203f7a4ed290d09fe03c09fe15" // a unit's process exited
	msgJobDone     = "39f53479d3a045ac8e11786248231fbf" // a job finished (e.g. "Started …")
)

// record is one journal entry, with the fields the soak reads.
type record struct {
	At         time.Time
	Unit       string // the unit systemd's own record is about
	Service    string // the unit whose process wrote the record
	MessageID  string
	Invocation string
	Message    string
	ExitCode   string
	ExitStatus string
	JobResult  string
	Priority   int
	PID        string
	Comm       string
}

// journal reads the sandbox's journal since t.
func (s *soak) journal(ctx context.Context, since time.Time, args ...string) ([]record, error) {
	all := append([]string{"journalctl", "--no-pager", "-o", "json", "--since", "@" + strconv.FormatInt(since.Unix(), 10)}, args...)
	out, err := s.run(ctx, cmdTimeout, all...)
	if err != nil {
		return nil, err
	}
	return parseJournal(out)
}

// parseJournal reads journalctl -o json's lines.
func parseJournal(out string) ([]record, error) {
	var recs []record
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		str := func(k string) string { v, _ := m[k].(string); return v }
		us, _ := strconv.ParseInt(str("__REALTIME_TIMESTAMP"), 10, 64)
		// When the kernel queued the record to journald, not when journald
		// got to it: on a busy machine journald falls seconds behind, and
		// a death would seem to come after the failures it caused.
		if src, err := strconv.ParseInt(str("_SOURCE_REALTIME_TIMESTAMP"), 10, 64); err == nil && src > 0 {
			us = src
		}
		prio, _ := strconv.Atoi(str("PRIORITY"))
		recs = append(recs, record{
			At: time.UnixMicro(us), Unit: str("UNIT"), Service: str("_SYSTEMD_UNIT"), MessageID: str("MESSAGE_ID"), Invocation: str("INVOCATION_ID"),
			Message: str("MESSAGE"), ExitCode: str("EXIT_CODE"), ExitStatus: str("EXIT_STATUS"), JobResult: str("JOB_RESULT"),
			Priority: prio, PID: str("_PID"), Comm: str("_COMM"),
		})
	}
	return recs, sc.Err()
}

// Death is a process of an instance that had become ready and ended other
// than by draining: what can fail the requests it held.
type Death struct {
	Unit       string
	Invocation string
	Ready      time.Time // when systemd reported it started (READY=1)
	At         time.Time // when systemd saw it end
	Exit       string    // e.g. "killed 9", "exited 2"
	Cause      string    // the fault that explains it; "" if none does
	// Signalled is when the process was sent the signal that ended it,
	// when known: the soak's kill -9 returning, or systemd recording the
	// watchdog timeout just before it sends SIGABRT. It dates the death
	// better than At, which systemd records when it gets to it.
	Signalled time.Time
}

// moment is the best estimate of when the process died, and lead how much
// earlier than that a request it held may have failed.
func (d *Death) moment() (at time.Time, lead time.Duration) {
	if !d.Signalled.IsZero() {
		return d.Signalled, signalLead
	}
	return d.At, failedBefore
}

// deaths reads, from systemd's own records, every ready instance process
// that ended other than cleanly (exit 0, or 75 for the memory limit), and
// names the fault behind each.
func deaths(recs []record, faults []Fault) []Death {
	ready := map[string]time.Time{}
	watchdog := map[string]time.Time{}
	var out []Death
	for _, r := range recs {
		if _, ok := instanceNumber(r.Unit); !ok || r.PID != "1" {
			continue
		}
		switch {
		case r.MessageID == msgJobDone && r.JobResult == "done" && strings.HasPrefix(r.Message, "Started "):
			ready[r.Invocation] = r.At
		case strings.Contains(r.Message, "Watchdog timeout"):
			watchdog[r.Invocation] = r.At
		case r.MessageID == msgProcessExit:
			at, wasReady := ready[r.Invocation]
			if !wasReady || (r.ExitCode == "exited" && (r.ExitStatus == "0" || r.ExitStatus == "75")) {
				continue
			}
			d := Death{Unit: r.Unit, Invocation: r.Invocation, Ready: at, At: r.At, Exit: r.ExitCode + " " + r.ExitStatus}
			d.Cause, d.Signalled = cause(d, watchdog[r.Invocation], faults)
			out = append(out, d)
		}
	}
	return out
}

// cause names the fault behind a death: the soak's kill -9 of that unit
// just before (and when it returned), or the hang or wedge done to that
// process while it lived (then the watchdog, or a stop's drain, ended it).
func cause(d Death, watchdog time.Time, faults []Fault) (string, time.Time) {
	var hurt *Fault
	for i := range faults {
		f := &faults[i]
		// A fault takes effect between its start and its end: a wedge
		// request may wait in the socket's queue for the instance that
		// takes it to become ready.
		if f.Target != d.Unit || f.Err != "" || f.At.Add(f.Took).Before(d.Ready) || f.At.After(d.At) {
			continue
		}
		switch f.Kind {
		case Kill:
			if d.Exit == "killed 9" && d.At.Sub(f.At) < 5*time.Second {
				return "kill -9 by the soak", f.At.Add(f.Took)
			}
		case Wedge, Hang:
			hurt = f
		}
	}
	switch {
	case hurt != nil && !watchdog.IsZero():
		return fmt.Sprintf("%s by the soak, then the watchdog", hurt.Kind), watchdog
	case hurt != nil:
		return fmt.Sprintf("%s by the soak, then %s", hurt.Kind, d.Exit), time.Time{}
	}
	return "", time.Time{}
}

// badJournal lists the journal records that mean something was lost or
// went wrong beyond the faults: notifications systemd refused or that the
// library could not send, rate-limited logs, start limits, a failing
// socket, assertions.
var badJournal = regexp.MustCompile(`reception only permitted|Start request repeated|start-limit|Suppressed \d+ messages|Missed \d+ kernel messages|Assertion|Freezing execution|app\.socket: Failed|Failed to (kill|send|set|enqueue|listen)`)

// journalErrors finds bad records since t: systemd's and journald's
// warnings that match badJournal, and the library's "notify …" warnings.
func journalErrors(recs []record) []Violation {
	var v []Violation
	seen := map[string]int{}
	for _, r := range recs {
		bad := (r.PID == "1" || r.Comm == "systemd-journal") && badJournal.MatchString(r.Message)
		bad = bad || (strings.HasPrefix(r.Unit, "app") && strings.HasPrefix(r.Message, "notify ") && r.Priority <= 4)
		if !bad {
			continue
		}
		key := digits.ReplaceAllString(r.Message, "N")
		if seen[key]++; seen[key] == 1 {
			v = append(v, Violation{"journal error", r.At.Format("15:04:05.000") + " " + r.Message})
		}
	}
	sort.SliceStable(v, func(i, j int) bool { return v[i].Detail < v[j].Detail })
	return v
}

var digits = regexp.MustCompile(`\d+`)
