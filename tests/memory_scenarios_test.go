package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// memoryLimit runs every instance with a 48 MiB limit and the grow switch;
// the app itself needs about a third of that.
var memoryLimit = dropIn{"app@.service", "memory", "[Service]\nEnvironment=MEMORY_LIMIT=48M APP_FAULT=grow\n"}

// grow makes whichever instance takes the request allocate mb MiB and
// returns that instance's unit.
func (h *herd) grow(mb int) string {
	h.t.Helper()
	resp, err := h.s.HTTPClient(false).Post("http://127.0.0.1:8080/debug/grow?mb="+strconv.Itoa(mb), "", nil)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("X-Instance") == "" {
		h.t.Fatalf("POST /debug/grow: %s\n%s", resp.Status, body)
	}
	return "app@" + resp.Header.Get("X-Instance") + ".service"
}

// waitReplaced waits until unit runs with a main process other than old.
func (h *herd) waitReplaced(unit, old string, timeout time.Duration) time.Duration {
	h.t.Helper()
	return h.waitFor(unit+" replaced", timeout, func() bool {
		p := h.show(unit, "MainPID", "SubState")
		return p["MainPID"] != old && p["MainPID"] != "0" && p["SubState"] == "running"
	})
}

// records returns the times of unit's journal records whose message starts
// with prefix.
func (h *herd) records(unit, prefix string) []time.Time {
	h.t.Helper()
	var out []time.Time
	sc := bufio.NewScanner(strings.NewReader(h.s.Journal("-u", unit, "-o", "json", "--output-fields=MESSAGE")))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var rec struct {
			Message  any    `json:"MESSAGE"`
			Realtime string `json:"__REALTIME_TIMESTAMP"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		msg, _ := rec.Message.(string)
		us, err := strconv.ParseInt(rec.Realtime, 10, 64)
		if err == nil && strings.HasPrefix(msg, prefix) {
			out = append(out, time.UnixMicro(us))
		}
	}
	return out
}

// An instance that grows past its memory limit under load is drained and
// replaced with no failed request, the others keep serving, the count
// stays, and the restart shows in the journal, status and metrics.
func TestMemoryLimitReplacesAGrownInstance(t *testing.T) {
	h := newHerd(t, memoryLimit)
	h.appctl("scale", "3")
	fresh, kept := h.load(false), h.load(true)
	fresh.Run(8, "/")
	kept.Run(8, "/")
	h.waitFor("load under way", 10*time.Second, func() bool { return fresh.Snapshot().Total > 0 && kept.Snapshot().Total > 0 })

	unit := h.grow(64)
	old := h.show(unit, "MainPID")["MainPID"]
	took := h.waitReplaced(unit, old, 60*time.Second)
	t.Logf("%s grew past 48 MiB; drained and ready again after %s", unit, took.Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	checkLoad(t, "fresh connections", fresh.Stop(), 0)
	checkLoad(t, "keep-alive connections", kept.Stop(), 0)

	if got := h.running(); len(got) != 3 {
		t.Fatalf("running %v after the memory restart, want 3", got)
	}
	if n := len(h.records(unit, "memory limit exceeded")); n != 1 {
		t.Fatalf("%s logged %d memory-limit records, want 1:\n%s", unit, n, h.s.Journal("-u", unit))
	}
	status, _ := h.appctl("status")
	if !strings.Contains(status, "(1 memory)") {
		t.Fatalf("appctl status does not count the memory restart:\n%s", status)
	}
	metrics, _ := h.appctl("metrics")
	if want := fmt.Sprintf("unitkit_instance_memory_restarts_total{unit=%q} 1", unit); !strings.Contains(metrics, want) {
		t.Fatalf("appctl metrics lacks %s:\n%s", want, metrics)
	}
}

// Two instances above the limit at once restart one after the other: the
// second starts draining only after the first one's replacement is ready.
func TestMemoryLimitRestartsOneAtATime(t *testing.T) {
	h := newHerd(t, memoryLimit)
	h.appctl("scale", "3")
	ld := h.load(false)
	ld.Run(8, "/")
	h.waitFor("load under way", 10*time.Second, func() bool { return ld.Snapshot().Total > 0 })

	pids := map[string]string{}
	var grown []string
	for try := 0; len(grown) < 2 && try < 100; try++ {
		if unit := h.grow(40); !slices.Contains(grown, unit) {
			pids[unit] = h.show(unit, "MainPID")["MainPID"]
			grown = append(grown, unit)
		}
	}
	if len(grown) < 2 {
		t.Fatalf("100 requests reached only %v", grown)
	}
	for _, unit := range grown {
		h.waitReplaced(unit, pids[unit], 60*time.Second)
	}
	checkLoad(t, "fresh connections", ld.Stop(), 0)

	type restart struct {
		unit            string
		exceeded, ready time.Time
	}
	var rs []restart
	for _, unit := range grown {
		ex := h.records(unit, "memory limit exceeded")
		if len(ex) != 1 {
			t.Fatalf("%s logged %d memory-limit records, want 1", unit, len(ex))
		}
		r := restart{unit: unit, exceeded: ex[0]}
		for _, at := range h.records(unit, "ready") {
			if at.After(ex[0]) {
				r.ready = at
				break
			}
		}
		if r.ready.IsZero() {
			t.Fatalf("%s: no ready record after its memory restart", unit)
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b restart) int { return a.exceeded.Compare(b.exceeded) })
	first, second := rs[0], rs[1]
	t.Logf("%s stopped for memory at %s, its replacement ready at %s; %s stopped at %s",
		first.unit, first.exceeded.Format("15:04:05.000"), first.ready.Format("15:04:05.000"),
		second.unit, second.exceeded.Format("15:04:05.000"))
	if second.exceeded.Before(first.ready) {
		t.Fatalf("%s began its memory restart before %s's replacement was ready", second.unit, first.unit)
	}
	if got := h.running(); len(got) != 3 {
		t.Fatalf("running %v after the memory restarts, want 3", got)
	}
}

// A bad MEMORY_LIMIT is refused by the first instance that reads it, with
// a message naming it, and a reload then stops with the instances it had
// still serving.
func TestMemoryLimitBadValueChangesNothing(t *testing.T) {
	h := newHerd(t)
	h.appctl("scale", "2")
	before := h.mainPIDs(2)
	h.s.MustRun(t, "sh", "-c", "echo MEMORY_LIMIT=12Q >>/etc/default/app")
	out, code := h.appctl("reload", "--timeout", "20s")
	if code != 1 {
		t.Fatalf("appctl reload with MEMORY_LIMIT=12Q: exit %d, want 1\n%s", code, out)
	}
	if got := h.mainPIDs(2); !slices.Equal(got, before) {
		t.Fatalf("main PIDs %v → %v: the instances were replaced", before, got)
	}
	if log := h.s.Journal("-u", "app@3.service"); !strings.Contains(log, `MEMORY_LIMIT="12Q"`) {
		t.Fatalf("the surge instance did not say what was wrong:\n%s", log)
	}
	ld := h.load(false)
	for range 20 {
		ld.One("/")
	}
	checkLoad(t, "after the refused reload", ld.Stop(), 0)
}
