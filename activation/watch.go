package activation

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCanaryInterval is how long an instance that accepts new
// connections may go without a sign that its serving path works (a
// request completed, or a canary answered) before it sends a canary; an
// instance that accepts nothing sends one per health interval only.
// $CANARY_INTERVAL and WithCanaryInterval override it.
const DefaultCanaryInterval = 100 * time.Millisecond

// defaultCanaryStuck is how long a canary may be out, while the instance
// completes no other request, before the serving path counts as stuck and
// the instance stops accepting. An answered canary takes well under a
// millisecond on an idle instance.
const defaultCanaryStuck = 100 * time.Millisecond

// Journal MESSAGE_IDs of the records an instance logs when it stops
// accepting new connections because its canary is stuck, and when it
// accepts again: journalctl MESSAGE_ID=… finds them for every instance.
const (
	MessageAcceptPaused  = "831198f78f7149138fc1462521969401"
	MessageAcceptResumed = "316c346b67584e30a555de4a1298870a"
)

// canaryWatch sends the canary, one at a time, and keeps what the last one
// found, which the health rounds read. It sends one every health interval.
// Besides, each accepted connection nudges it: when neither a request
// completed nor a canary answered within the interval, a canary goes out
// at once. So an idle instance wakes up no more often than its health
// interval asks (each wake-up of an idle Go process costs far more CPU
// than the canary request itself), a busy and healthy one sends no extra
// canary at all (its completed requests prove the path), and one whose
// requests stopped completing while connections keep arriving is probed
// within the interval.
//
// A canary that has been out for stuckAfter while the instance completed
// no other request means the serving path is stuck: the watch pauses the
// accept gate, so that the other instances sharing the socket take the new
// connections, and resumes it as soon as the canary answers. An instance
// that is only slow (busy with CPU-bound requests, say) still completes
// requests and keeps accepting. The health failure, which stops the
// watchdog pings, waits for the full health interval.
type canaryWatch struct {
	path       string
	interval   time.Duration // see DefaultCanaryInterval; 0: health interval only
	health     time.Duration // the health interval
	stuckAfter time.Duration
	progress   func() uint64 // requests completed so far, canaries excluded
	log        *slog.Logger
	changed    func()        // after a pause or a resume: send STATUS=
	nudges     chan struct{} // an accepted connection found no recent sign of life

	seen   atomic.Uint64 // progress when last looked at
	signAt atomic.Int64  // when progress last moved or a canary answered (Unix ns)

	// Set by start, read by the watch's goroutine.
	canary    *canary
	gate      *acceptGate
	stop      chan struct{}
	done      chan struct{}
	first     chan struct{} // closed once the first canary answered
	firstOnce sync.Once

	// outSince is when the canary out now was sent (UnixNano), 0 once it
	// returned; unlike sent it is kept current after halt, for the drain.
	outSince atomic.Int64

	mu       sync.Mutex
	sent     time.Time // when the canary out now was sent; zero when none is
	answered time.Time // when the last canary answered
	last     error     // what the last answer said
	paused   time.Time // when accepting stopped; zero while accepting
}

func newCanaryWatch(path string, interval, health, stuckAfter time.Duration, progress func() uint64, log *slog.Logger, changed func()) *canaryWatch {
	return &canaryWatch{path: path, interval: interval, health: health, stuckAfter: stuckAfter,
		progress: progress, log: log, changed: changed, nudges: make(chan struct{}, 1)}
}

// nudge tells the watch that a connection was accepted. It is called on
// the accepting goroutine: it never blocks, and it wakes the watch only
// when no request completed since it last looked.
func (w *canaryWatch) nudge() {
	if w.interval == 0 || w.quietFor() == 0 {
		return
	}
	select {
	case w.nudges <- struct{}{}:
	default:
	}
}

// quietFor is how long the serving path has shown no sign of life: no
// request completed and no canary answered.
func (w *canaryWatch) quietFor() time.Duration {
	now := time.Now()
	if n := w.progress(); n != w.seen.Load() {
		w.seen.Store(n)
		w.signAt.Store(now.UnixNano())
		return 0
	}
	return now.Sub(time.Unix(0, w.signAt.Load()))
}

// start sends the first canary at once and then as the type's
// documentation says, until halt.
func (w *canaryWatch) start(c *canary, g *acceptGate) {
	w.canary, w.gate = c, g
	w.stop, w.done, w.first = make(chan struct{}), make(chan struct{}), make(chan struct{})
	w.seen.Store(w.progress())
	w.signAt.Store(time.Now().UnixNano())
	go w.run()
}

// halt stops the watch and waits for its goroutine; accepting stays as it
// is. A canary still out is left to return (or not) on its own.
func (w *canaryWatch) halt() {
	if w.stop == nil {
		return
	}
	close(w.stop)
	<-w.done
}

func (w *canaryWatch) run() {
	defer close(w.done)
	results := make(chan error, 1) // one canary out at a time: never blocks
	tick := time.NewTicker(w.health)
	defer tick.Stop()
	stuck := time.NewTimer(w.stuckAfter)
	defer stuck.Stop()
	due := time.NewTimer(w.interval) // a nudge waiting for the interval to pass
	due.Stop()
	defer due.Stop()
	out, servedAtSend, waiting := false, uint64(0), false
	send := func() {
		out, servedAtSend = true, w.progress()
		w.send(results)
		stuck.Reset(w.stuckAfter)
	}
	send()
	for {
		select {
		case <-w.stop:
			return
		case <-tick.C:
			if !out {
				send()
			}
		case <-w.nudges:
			if out || waiting {
				continue
			}
			if quiet := w.quietFor(); quiet < w.interval {
				waiting = true
				due.Reset(w.interval - quiet)
				continue
			}
			send()
		case <-due.C:
			waiting = false
			if !out && w.quietFor() >= w.interval {
				send()
			}
		case err := <-results:
			out = false
			stuck.Stop()
			w.answer(err)
		case <-stuck.C:
			if n := w.progress(); n != servedAtSend {
				servedAtSend = n // slow, not stuck: other requests still complete
				stuck.Reset(w.stuckAfter)
				continue
			}
			w.pause()
		}
	}
}

// send sends one canary; its result arrives on results.
func (w *canaryWatch) send(results chan<- error) {
	now := time.Now()
	w.mu.Lock()
	w.sent = now
	w.mu.Unlock()
	w.outSince.Store(now.UnixNano())
	go func() {
		err := w.canary.roundTrip()
		w.outSince.Store(0)
		results <- err // buffered: never blocks, even after halt
	}()
}

// canaryOut is how long the canary out now has gone unanswered, 0 when
// none is out; it stays current after halt.
func (w *canaryWatch) canaryOut() time.Duration {
	since := w.outSince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// answer records a canary's answer and, if accepting was paused, resumes it.
func (w *canaryWatch) answer(err error) {
	now := time.Now()
	w.mu.Lock()
	took, paused := now.Sub(w.sent), w.paused
	w.sent, w.answered, w.last, w.paused = time.Time{}, now, err, time.Time{}
	w.mu.Unlock()
	w.signAt.Store(now.UnixNano())
	w.firstOnce.Do(func() { close(w.first) })
	if paused.IsZero() {
		return
	}
	if err := w.gate.resume(); err != nil {
		w.log.Error("canary answered again; accepting again failed", "error", err)
	}
	w.log.Info("canary answered again; accepting new connections", "canary_took", took,
		"paused", now.Sub(paused), "message_id", MessageAcceptResumed)
	w.changed()
}

// pause stops accepting, the canary being stuck.
func (w *canaryWatch) pause() {
	w.mu.Lock()
	out := time.Since(w.sent)
	if w.gate.gated() > 0 {
		w.paused = time.Now()
	}
	w.mu.Unlock()
	if w.gate.gated() == 0 {
		w.log.Warn("canary stuck; no listener can stop accepting", "canary_out", out)
		return
	}
	if err := w.gate.pause(); err != nil {
		w.log.Error("canary stuck; stopping accepting failed", "canary_out", out, "error", err)
	}
	w.log.Warn("canary stuck; stopped accepting new connections", "canary_out", out, "message_id", MessageAcceptPaused)
	w.changed()
}

// waitFirst waits up to timeout for the first canary's answer and returns
// liveness.
func (w *canaryWatch) waitFirst(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.first:
	case <-t.C:
	}
	return w.liveness(timeout)
}

// liveness is what the canary says about the serving path: an error when
// the canary out now has been out for longer than timeout, before the
// first answer, or when the last answer was a failure.
func (w *canaryWatch) liveness(timeout time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.sent.IsZero() {
		if out := time.Since(w.sent); out > timeout {
			return fmt.Errorf("canary GET %s: no answer for %s", w.path, out.Round(time.Millisecond))
		}
	}
	if w.answered.IsZero() {
		return fmt.Errorf("canary GET %s: no answer yet", w.path)
	}
	return w.last
}

// stuckFor is, while accepting is paused, how long the canary has been
// out; 0 while accepting.
func (w *canaryWatch) stuckFor() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused.IsZero() {
		return 0
	}
	return time.Since(w.sent)
}
