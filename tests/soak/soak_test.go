package soak

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

var t0 = time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// jrec is one journal line as journalctl -o json writes it.
func jrec(ms int, unit, inv string, fields ...string) string {
	s := fmt.Sprintf(`{"__REALTIME_TIMESTAMP":"%d","_PID":"1","UNIT":%q,"INVOCATION_ID":%q`, at(ms).UnixMicro(), unit, inv)
	for i := 0; i+1 < len(fields); i += 2 {
		s += fmt.Sprintf(",%q:%q", fields[i], fields[i+1])
	}
	return s + "}"
}

func started(ms int, unit, inv string) string {
	return jrec(ms, unit, inv, "MESSAGE_ID", msgJobDone, "JOB_RESULT", "done", "MESSAGE", "Started "+unit+" - app instance.")
}

func exited(ms int, unit, inv, code, status string) string {
	return jrec(ms, unit, inv, "MESSAGE_ID", msgProcessExit, "EXIT_CODE", code, "EXIT_STATUS", status, "MESSAGE", unit+": Main process exited")
}

// Deaths are the unclean ends of ready processes, each with the fault that
// explains it; clean exits, memory-limit exits and processes that never
// became ready are not deaths.
func TestDeaths(t *testing.T) {
	journal := strings.Join([]string{
		started(0, "app@1.service", "a"), started(0, "app@2.service", "b"), started(0, "app@3.service", "c"),
		started(0, "app@4.service", "d"), started(0, "app@5.service", "e"),
		exited(1000, "app@1.service", "a", "killed", "9"),
		jrec(4000, "app@2.service", "b", "MESSAGE", "app@2.service: Watchdog timeout (limit 3s)!"),
		exited(4100, "app@2.service", "b", "exited", "2"),
		exited(5000, "app@3.service", "c", "exited", "0"),
		exited(5000, "app@4.service", "d", "exited", "75"),
		exited(6000, "app@6.service", "f", "exited", "1"), // never ready: a crash loop
		exited(7000, "app@5.service", "e", "killed", "9"), // nobody killed it
		`{"__REALTIME_TIMESTAMP":"1","_PID":"1","UNIT":"ssh.service","MESSAGE_ID":"` + msgProcessExit + `","EXIT_CODE":"killed","EXIT_STATUS":"9"}`,
	}, "\n")
	recs, err := parseJournal(journal)
	if err != nil {
		t.Fatal(err)
	}
	faults := []Fault{
		{At: at(990), Kind: Kill, Target: "app@1.service"},
		{At: at(-300), Took: 400 * time.Millisecond, Kind: Wedge, Target: "app@2.service"}, // queued until b was ready
		{At: at(6900), Kind: Kill, Target: "app@5.service", Err: "no such process"},
	}
	got := deaths(recs, faults)
	want := map[string]string{
		"app@1.service": "kill -9 by the soak",
		"app@2.service": "wedge by the soak, then the watchdog",
		"app@5.service": "",
	}
	if len(got) != len(want) {
		t.Fatalf("deaths %+v, want %d", got, len(want))
	}
	for _, d := range got {
		if c, ok := want[d.Unit]; !ok || c != d.Cause {
			t.Errorf("%s (%s) cause %q, want %q", d.Unit, d.Exit, d.Cause, c)
		}
	}
}

// A failure is explained only by a death it was under way at and ended
// close to; a keep-alive failure prefers the instance it last heard from;
// a refused connection is never explained.
func TestAttribute(t *testing.T) {
	ds := []Death{{Unit: "app@1.service", At: at(1000)}, {Unit: "app@2.service", At: at(1100)},
		{Unit: "app@3.service", At: at(5000), Signalled: at(2000)}}
	reset := &net0{syscall.ECONNRESET}
	cases := []struct {
		name string
		f    loadtest.Failure
		want string
	}{
		{"reset at the death", loadtest.Failure{Start: at(900), End: at(1001), Err: reset}, "app@1.service"},
		{"keep-alive prefers its instance", loadtest.Failure{Start: at(900), End: at(1001), Err: reset, LastInstance: "2"}, "app@2.service"},
		{"the closest death", loadtest.Failure{Start: at(900), End: at(1090), Err: reset}, "app@2.service"},
		{"long before a known signal", loadtest.Failure{Start: at(1500), End: at(1600), Err: reset}, ""},
		{"just before a known signal", loadtest.Failure{Start: at(1500), End: at(1800), Err: reset}, "app@3.service"},
		{"began after every death", loadtest.Failure{Start: at(1200), End: at(1300), Err: reset}, ""},
		{"sent on a dead instance's idle connection", loadtest.Failure{Start: at(2020), End: at(2021), Err: reset, LastInstance: "3"}, "app@3.service"},
		{"sent on another instance's connection after a death", loadtest.Failure{Start: at(2020), End: at(2021), Err: reset, LastInstance: "1"}, ""},
		{"sent on a dead instance's connection long after", loadtest.Failure{Start: at(2600), End: at(2601), Err: reset, LastInstance: "3"}, ""},
		{"ended long after", loadtest.Failure{Start: at(0), End: at(5000), Err: reset}, ""},
		{"ended long before", loadtest.Failure{Start: at(-6000), End: at(-2500), Err: reset}, ""},
		{"refused", loadtest.Failure{Start: at(900), End: at(1000), Err: &net0{syscall.ECONNREFUSED}}, ""},
	}
	for _, c := range cases {
		got := attribute("fresh", []loadtest.Failure{c.f}, ds)[0]
		unit := ""
		if got.Death != nil {
			unit = got.Death.Unit
		}
		if unit != c.want {
			t.Errorf("%s: explained by %q, want %q", c.name, unit, c.want)
		}
		if c.name == "refused" && !got.Refused {
			t.Errorf("refused: not marked refused")
		}
	}
}

// net0 wraps an errno the way the HTTP client's errors do.
type net0 struct{ errno syscall.Errno }

func (e *net0) Error() string { return "read: " + e.errno.Error() }
func (e *net0) Unwrap() error { return e.errno }

// The journal check flags lost notifications, start limits and rate
// limiting once each, and leaves the faults' expected records alone.
func TestJournalErrors(t *testing.T) {
	recs := []record{
		{PID: "1", Unit: "app@2.service", Message: "app@2.service: Got notification message from PID 12, but reception only permitted for main PID 11"},
		{PID: "1", Unit: "app@2.service", Message: "app@2.service: Got notification message from PID 13, but reception only permitted for main PID 11"},
		{PID: "1", Unit: "app@3.service", Message: "app@3.service: Watchdog timeout (limit 3s)!"},
		{PID: "1", Unit: "app@3.service", Message: "Failed to start app@3.service - app instance 3."},
		{Comm: "systemd-journal", Message: "Suppressed 1200 messages from app@3.service"},
		{PID: "40", Unit: "app@4.service", Message: "notify watchdog", Priority: 4},
		{PID: "40", Unit: "app@4.service", Message: "notify ready", Priority: 6},
	}
	v := journalErrors(recs)
	if len(v) != 3 {
		t.Fatalf("violations %+v, want 3 (one per kind)", v)
	}
}

// systemctl show's blocks become instances in number order; other units
// are left out.
func TestParseInstances(t *testing.T) {
	out := "Id=app@10.service\nActiveState=active\nSubState=running\nMainPID=42\n\nId=app@2.service\nActiveState=activating\nSubState=auto-restart\nMainPID=0\n\nId=app-persist@4.service\nActiveState=inactive\nSubState=dead\nMainPID=0\n"
	got := parseInstances(out)
	if len(got) != 2 || got[0].Number != 2 || got[0].Sub != "auto-restart" || got[1].Number != 10 || got[1].PID != 42 {
		t.Fatalf("got %+v", got)
	}
}

// The report names the seed to replay and lists every violation.
func TestMarkdown(t *testing.T) {
	r := &Report{Seed: 42, Duration: time.Minute, FinalCount: 3, Loads: map[string]loadtest.Result{"fresh": {Total: 10, Failed: 1}},
		Faults:     []Fault{{At: t0, Kind: Kill, Target: "app@1.service"}},
		Failed:     []Failed{{Load: "fresh", Failure: loadtest.Failure{Start: t0, End: t0, Err: errors.New("EOF")}}},
		Violations: []Violation{{"unexplained failure", "07:00:00.000 fresh POST / after 0s: EOF"}},
		Context:    []string{"07:00:00.000 app@1.service app[12]: draining"}}
	md := r.Markdown()
	for _, want := range []string{"SEED=42", "| fresh | 120/s", "| UNEXPLAINED | 1 |", "**unexplained failure**", "| kill -9 | 1 | 0 |", "app[12]: draining\n```"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// The windows of deaths cover what they cover, overlaps counted once.
func TestCoverage(t *testing.T) {
	ds := []Death{{At: at(10000)}, {At: at(10500)}, {At: at(50000), Signalled: at(30000)}}
	// Windows: [7000, 10500] ∪ [7500, 11000] = 4 s, [29750, 30500] = 0.75 s.
	got := coverage(ds, at(0), at(100000))
	if want := 4.75 / 100; got < want-0.001 || got > want+0.001 {
		t.Fatalf("coverage %.4f, want %.4f", got, want)
	}
}

// A record is dated when it was sent, where journald says so, not when
// journald read it.
func TestParseJournalSourceTime(t *testing.T) {
	recs, err := parseJournal(`{"__REALTIME_TIMESTAMP":"3000000","_SOURCE_REALTIME_TIMESTAMP":"1000000","_PID":"1"}` + "\n" +
		`{"__REALTIME_TIMESTAMP":"3000000","_PID":"1"}` + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := []int64{recs[0].At.UnixMicro(), recs[1].At.UnixMicro()}; got[0] != 1000000 || got[1] != 3000000 {
		t.Errorf("dated %v, want [1000000 3000000]", got)
	}
}
