package soak

import (
	"errors"
	"syscall"
	"time"

	"github.com/unitkit/unitkit/internal/loadtest"
)

// How close to a death a failed request must end to be explained by it.
// The client sees the reset when the process dies; systemd records the
// death when it gets to it, which can be a second or more later while it
// is busy with a daemon-reload or an upgrade (1.3 s seen), and the client
// may be late by a scheduler tick on a busy machine.
const (
	failedBefore = 3 * time.Second // the request may end this long before systemd records the death
	failedAfter  = time.Second     // … or this long after it
)

// Failed is a failed request with what explains it.
type Failed struct {
	Load    string // fresh, keep-alive or long
	Failure loadtest.Failure
	Refused bool   // the connection was refused: never explained
	Death   *Death // the death that explains it, nil if none does
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

func explain(f loadtest.Failure, ds []Death) *Death {
	var best *Death
	for i := range ds {
		d := &ds[i]
		if f.Start.After(d.At) || f.End.Before(d.At.Add(-failedBefore)) || f.End.After(d.At.Add(failedAfter)) {
			continue
		}
		if best == nil || (f.LastInstance != "" && d.Unit == "app@"+f.LastInstance+".service") {
			best = d
		}
	}
	return best
}
