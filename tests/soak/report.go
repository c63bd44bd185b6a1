package soak

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// Report is what a soak found.
type Report struct {
	Seed       uint64
	Duration   time.Duration // faults ran this long
	Settled    time.Duration // the herd took this long to converge afterwards
	FinalCount int           // the count appctl last set
	Loads      map[string]loadtest.Result
	Faults     []Fault
	Deaths     []Death
	Failed     []Failed
	Violations []Violation
	Context    []string // the journal around the unexplained failures and deaths
	Coverage   float64  // share of the run within some death's window (see coverage)
}

// loadOrder is the order loads appear in the report.
var loadOrder = []string{"fresh", "keep-alive", "long"}

// Unexplained counts the failed requests no death explains, refused
// connections included.
func (r *Report) Unexplained() int {
	n := 0
	for _, f := range r.Failed {
		if f.Death == nil {
			n++
		}
	}
	return n
}

// report gathers the journal, attributes the failures and checks the herd
// at rest.
func (s *soak) report(ctx context.Context, settled time.Duration, loads map[string]loadtest.Result) (*Report, error) {
	recs, err := s.journal(ctx, s.started.Add(-time.Second))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	rep := &Report{Seed: s.cfg.Seed, Duration: s.cfg.Duration, Settled: settled, FinalCount: s.target, Loads: loads, Faults: append([]Fault(nil), s.faults...)}
	s.mu.Unlock()
	rep.Deaths = deaths(recs, rep.Faults)
	rep.Coverage = coverage(rep.Deaths, s.started, time.Now())
	for _, kind := range loadOrder {
		rep.Failed = append(rep.Failed, attribute(kind, loads[kind].Failures, rep.Deaths)...)
	}
	rep.Violations = s.violations(ctx, rep, recs)
	rep.Context = journalAround(rep, recs)
	return rep, nil
}

// contextLines bounds the journal a report quotes.
const contextLines = 400

// journalAround quotes the journal of the service's units from 2 s before each
// unexplained failure or death to 1 s after it: what the instances and
// appctl said then is what a reader needs to find the cause.
func journalAround(rep *Report, recs []record) []string {
	var spans [][2]time.Time
	for _, f := range rep.Failed {
		if !f.Refused && f.Death == nil {
			spans = append(spans, [2]time.Time{f.Failure.Start.Add(-2 * time.Second), f.Failure.End.Add(time.Second)})
		}
	}
	for _, d := range rep.Deaths {
		if d.Cause == "" {
			spans = append(spans, [2]time.Time{d.At.Add(-2 * time.Second), d.At.Add(time.Second)})
		}
	}
	var out []string
	for _, r := range recs {
		unit := r.Unit
		if unit == "" {
			unit = r.Service
		}
		if !strings.HasPrefix(unit, "app") || !within(r.At, spans) {
			continue
		}
		if len(out) == contextLines {
			out = append(out, "…")
			break
		}
		out = append(out, fmt.Sprintf("%s %s %s[%s]: %s", r.At.Format("15:04:05.000"), unit, r.Comm, r.PID, r.Message))
	}
	return out
}

func within(t time.Time, spans [][2]time.Time) bool {
	for _, s := range spans {
		if !t.Before(s[0]) && !t.After(s[1]) {
			return true
		}
	}
	return false
}

// violations lists every broken invariant.
func (s *soak) violations(ctx context.Context, rep *Report, recs []record) []Violation {
	var v []Violation
	for _, f := range rep.Failed {
		switch {
		case f.Refused:
			v = append(v, Violation{"refused", describe(f)})
		case f.Death == nil:
			v = append(v, Violation{"unexplained failure", describe(f)})
		}
	}
	for _, d := range rep.Deaths {
		if d.Cause == "" {
			v = append(v, Violation{"unexplained death", fmt.Sprintf("%s %s (%s, ready since %s)", d.At.Format("15:04:05.000"), d.Unit, d.Exit, d.Ready.Format("15:04:05.000"))})
		}
	}
	for _, f := range rep.Faults {
		if strings.HasPrefix(f.Err, "hung:") {
			v = append(v, Violation{"hung command", fmt.Sprintf("%s %s %s: %s", f.At.Format("15:04:05.000"), f.Kind, f.Target, firstLine(f.Err))})
		}
	}
	if ok, why := s.converged(ctx); !ok {
		v = append(v, Violation{"count did not converge", fmt.Sprintf("after %s: %s", rep.Settled.Round(time.Millisecond), why)})
	}
	v = append(v, s.leaks(ctx)...)
	return append(v, journalErrors(recs)...)
}

func describe(f Failed) string {
	return fmt.Sprintf("%s %s POST %s after %s: %v", f.Failure.Start.Format("15:04:05.000"), f.Load, f.Failure.Path,
		f.Failure.End.Sub(f.Failure.Start).Round(time.Millisecond), f.Failure.Err)
}

// Markdown renders the report.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak report\n\nSeed %d (replay: `make soak SEED=%d DURATION=%s`). Faults for %s; the herd then settled on %d instances in %s.\n\n",
		r.Seed, r.Seed, r.Duration, r.Duration, r.FinalCount, r.Settled.Round(time.Millisecond))
	r.writeLoads(&b)
	r.writeFaults(&b)
	r.writeCauses(&b)
	r.writeViolations(&b)
	r.writeFailures(&b)
	return b.String()
}

func (r *Report) writeLoads(b *strings.Builder) {
	rates := map[string]string{
		"fresh":      fmt.Sprintf("%d/s, a new connection each", freshRate),
		"keep-alive": fmt.Sprintf("%d/s on 8 connections", keptRate),
		"long":       fmt.Sprintf("%d/s of %s each", longRate, longRequest),
	}
	b.WriteString("## Load (constant rate, POST, never retried)\n\n| traffic | rate | requests | failed |\n|---|---|---:|---:|\n")
	for _, kind := range loadOrder {
		l := r.Loads[kind]
		fmt.Fprintf(b, "| %s | %s | %d | %d |\n", kind, rates[kind], l.Total, l.Failed)
	}
	b.WriteString("\n")
}

func (r *Report) writeFaults(b *strings.Builder) {
	count, failed := map[Kind]int{}, map[Kind]int{}
	for _, f := range r.Faults {
		count[f.Kind]++
		if f.Err != "" {
			failed[f.Kind]++
		}
	}
	fmt.Fprintf(b, "## Faults (%d)\n\n| fault | times | of which the command failed |\n|---|---:|---:|\n", len(r.Faults))
	for _, k := range Kinds {
		fmt.Fprintf(b, "| %s | %d | %d |\n", k, count[k], failed[k])
	}
	b.WriteString("\nA command may fail for a reason the soak caused: a reload or scale that meets the crash-looping instance or a broken release stops there, as it should. The timeline below lists each with its output.\n\n")
}

func (r *Report) writeCauses(b *strings.Builder) {
	byCause := map[string][]Failed{}
	for _, f := range r.Failed {
		c := failedCause(f)
		byCause[c] = append(byCause[c], f)
	}
	causes := make([]string, 0, len(byCause))
	for c := range byCause {
		causes = append(causes, c)
	}
	sort.Strings(causes)
	fmt.Fprintf(b, "## Failed requests by cause (%d)\n\n| cause | requests | widest gap to the death, before / after |\n|---|---:|---|\n", len(r.Failed))
	for _, c := range causes {
		fmt.Fprintf(b, "| %s | %d | %s / %s |\n", c, len(byCause[c]), widestGap(byCause[c], -1), widestGap(byCause[c], 1))
	}
	fmt.Fprintf(b, "\n%d instance processes died while serving. A failed request is explained by a death when it was under way then and ended at most %s before or %s after it: before the signal, when the soak knows it (its own `kill -9`, systemd's watchdog record), else %s before systemd recorded the death; a keep-alive request may also have been sent up to %s after the death on a connection that instance answered last (the client learns it is closed only by using it). Those windows cover %.0f%% of the run: the chance that a failure at a random moment would pass for explained.\n\n",
		len(r.Deaths), signalLead, failedAfter, failedBefore, failedAfter, 100*r.Coverage)
}

// writeFailures lists every failed request with its cause.
func (r *Report) writeFailures(b *strings.Builder) {
	fmt.Fprintf(b, "## Every failed request (%d)\n\n<details><summary>the list</summary>\n\n| ended | traffic | took | error | cause | death |\n|---|---|---:|---|---|---|\n", len(r.Failed))
	for _, f := range r.Failed {
		death := ""
		if f.Death != nil {
			at, _ := f.Death.moment()
			death = fmt.Sprintf("%s %s, %+dms", f.Death.Unit, f.Death.Exit, f.Failure.End.Sub(at).Milliseconds())
		}
		errText := strings.ReplaceAll(fmt.Sprint(f.Failure.Err), "|", "/")
		load := f.Load
		if f.Failure.LastInstance != "" {
			load += ", last from app@" + f.Failure.LastInstance
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", f.Failure.End.Format("15:04:05.000"), load,
			f.Failure.End.Sub(f.Failure.Start).Round(time.Millisecond), errText, failedCause(f), death)
	}
	b.WriteString("\n</details>\n\n")
}

// failedCause is a failure's line in the table of causes.
func failedCause(f Failed) string {
	switch {
	case f.Refused:
		return "UNEXPLAINED: connection refused"
	case f.Death == nil:
		return "UNEXPLAINED"
	case f.Death.Cause == "":
		return "an unexplained death (" + f.Death.Exit + ")"
	}
	return f.Death.Cause
}

func (r *Report) writeViolations(b *strings.Builder) {
	fmt.Fprintf(b, "## Violations (%d)\n\n", len(r.Violations))
	if len(r.Violations) == 0 {
		b.WriteString("None: no connection refused, no unexplained failure or death, the count converged, nothing leaked (processes, socket descriptors, cgroups, drop-ins, failed units, journal errors).\n\n")
	}
	for _, v := range r.Violations {
		fmt.Fprintf(b, "- **%s**: %s\n", v.Invariant, v.Detail)
	}
	if len(r.Context) > 0 {
		b.WriteString("\nThe journal of the service's units around them:\n\n```\n" + strings.Join(r.Context, "\n") + "\n```\n")
	}
	b.WriteString("\n## Timeline of faults\n\n| time | fault | target | took | outcome |\n|---|---|---|---:|---|\n")
	for _, f := range r.Faults {
		outcome := "ok"
		if f.Err != "" {
			outcome = strings.ReplaceAll(firstLine(f.Err), "|", "/")
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", f.At.Format("15:04:05.000"), f.Kind, f.Target, f.Took.Round(time.Millisecond), outcome)
	}
}

// widestGap is the largest distance between an explained failure's end and
// its death, on one side: sign < 0 for failures that ended before systemd
// recorded the death, > 0 after.
func widestGap(fs []Failed, sign int) time.Duration {
	var widest time.Duration
	for _, f := range fs {
		if f.Death != nil {
			widest = max(widest, f.Failure.End.Sub(f.Death.At)*time.Duration(sign))
		}
	}
	return widest.Round(time.Millisecond)
}
