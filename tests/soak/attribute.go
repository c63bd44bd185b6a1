package soak

import (
	"errors"
	"sort"
	"syscall"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// How close to a death a failed request must end to be explained by it.
// The client sees the reset when the process dies. When the soak knows
// when the process was signalled (its own kill -9, systemd's watchdog
// record), a request may fail only a scheduler tick before that. Otherwise
// the death dates from systemd's record of it, which can come a second or
// more late while PID 1 is busy with a daemon-reload or an upgrade. The
// client may be late by a scheduler tick on a busy machine.
const (
	signalLead   = 250 * time.Millisecond // before the signal
	failedBefore = 3 * time.Second        // before systemd records the death
	failedAfter  = 500 * time.Millisecond // after either
)

// Failed is a failed request with what explains it.
type Failed struct {
	Load    string // fresh, keep-alive or long
	Failure loadtest.Failure
	Refused bool   // the connection was refused: never explained
	Death   *Death // the death that explains it, nil if none does
}

// coverage is the share of the span from first to last that lies within
// some death's window: the chance that a failure at a random moment would
// be taken for explained. It says how much the attribution proves.
func coverage(ds []Death, first, last time.Time) float64 {
	if !last.After(first) {
		return 0
	}
	ws := make([][2]time.Time, 0, len(ds))
	for i := range ds {
		at, lead := ds[i].moment()
		ws = append(ws, [2]time.Time{at.Add(-lead), at.Add(failedAfter)})
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i][0].Before(ws[j][0]) })
	var covered time.Duration
	var end time.Time
	for _, w := range ws {
		lo, hi := maxTime(w[0], first, end), minTime(w[1], last)
		if hi.After(lo) {
			covered += hi.Sub(lo)
			end = hi
		}
	}
	return covered.Seconds() / last.Sub(first).Seconds()
}

func maxTime(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// attribute pairs each failure with the death of a ready process it
// coincides with: the request was under way when the process died and
// failed when it did. A keep-alive request prefers the instance its
// connection last heard from.
func attribute(load string, failures []loadtest.Failure, ds []Death) []Failed {
	out := make([]Failed, 0, len(failures))
	for _, f := range failures {
		fd := Failed{Load: load, Failure: f, Refused: errors.Is(f.Err, syscall.ECONNREFUSED)}
		if !fd.Refused {
			fd.Death = explain(f, ds)
		}
		out = append(out, fd)
	}
	return out
}

// explain finds the death a failure coincides with: under way at its
// moment and ended within its window; the closest one, but the instance a
// keep-alive connection last heard from first. A keep-alive request sent
// on the connection of an instance that has just died is explained too if
// it began within failedAfter of the death: the dead process held that
// connection, and the client learns it is closed only when it uses it.
func explain(f loadtest.Failure, ds []Death) *Death {
	var best *Death
	var bestGap time.Duration
	for i := range ds {
		d := &ds[i]
		at, lead := d.moment()
		held := f.LastInstance != "" && d.Unit == "app@"+f.LastInstance+".service"
		began := at
		if held {
			began = at.Add(failedAfter)
		}
		if f.Start.After(began) || f.End.Before(at.Add(-lead)) || f.End.After(at.Add(failedAfter)) {
			continue
		}
		gap := f.End.Sub(at).Abs()
		if held {
			gap -= time.Hour // preferred over any other
		}
		if best == nil || gap < bestGap {
			best, bestGap = d, gap
		}
	}
	return best
}
