package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"
)

// interrupter makes a listener's blocked Accept return early: after
// interrupt, the Accept waiting now and every later one return an error
// that interrupted recognises, until clear.
type interrupter interface {
	interrupt() error
	clear() error
	interrupted(err error) bool
}

// deadliner is a listener with an accept deadline, as *net.TCPListener and
// *net.UnixListener have.
type deadliner interface {
	SetDeadline(t time.Time) error
}

// deadlineInterrupter interrupts Accept with a deadline in the past.
type deadlineInterrupter struct{ ln deadliner }

// pastDeadline is any time already gone: Accept fails at once.
var pastDeadline = time.Unix(1, 0)

func (d deadlineInterrupter) interrupt() error { return d.ln.SetDeadline(pastDeadline) }
func (d deadlineInterrupter) clear() error     { return d.ln.SetDeadline(time.Time{}) }

// interrupted recognises the deadline's error. The gate owns the deadline,
// so any timeout is one of its own.
func (deadlineInterrupter) interrupted(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// interrupterOf returns how ln's Accept can be interrupted, or nil when it
// cannot be.
func interrupterOf(ln net.Listener) interrupter {
	switch l := ln.(type) {
	case *exclusiveListener:
		return l
	case deadliner:
		return deadlineInterrupter{l}
	}
	return nil
}

// gatedListener is a listener whose accepting can be paused. While it is
// paused, Accept waits without calling the inner Accept, so that the
// connections queued on a shared socket go to the other instances; pausing
// interrupts an Accept already blocked in the inner listener. The
// interruption never reaches the caller: http.Server would take it for a
// temporary error and sleep up to a second before accepting again.
type gatedListener struct {
	net.Listener
	intr     interrupter
	accepted func() // called after each connection accepted

	mu        sync.Mutex
	paused    bool
	accepting chan struct{} // closed while accepting
	inside    int           // Accepts running in the inner listener
	left      chan struct{} // while paused: closed once none is inside
	closed    chan struct{} // closed by Close
	closeOnce sync.Once
}

func newGatedListener(ln net.Listener, intr interrupter, accepted func()) *gatedListener {
	accepting := make(chan struct{})
	close(accepting)
	return &gatedListener{Listener: ln, intr: intr, accepted: accepted, accepting: accepting, closed: make(chan struct{})}
}

// Accept waits until the listener accepts, then returns the inner
// listener's next connection. A connection the inner listener took just
// as the pause began is returned: it is this instance's to serve.
func (l *gatedListener) Accept() (net.Conn, error) {
	for {
		if err := l.enter(); err != nil {
			return nil, err
		}
		c, err := l.Listener.Accept()
		l.leave()
		if err != nil && l.intr.interrupted(err) {
			continue // paused meanwhile, or paused and resumed: look again
		}
		if err == nil {
			l.accepted()
		}
		return c, err
	}
}

// enter waits while the listener is paused and counts the Accept in. It
// returns an error wrapping net.ErrClosed once Close was called.
func (l *gatedListener) enter() error {
	for {
		l.mu.Lock()
		paused, accepting := l.paused, l.accepting
		if !paused {
			l.inside++
		}
		l.mu.Unlock()
		if !paused {
			return nil
		}
		select {
		case <-accepting:
		case <-l.closed:
			return l.closedError()
		}
	}
}

// leave counts an Accept out of the inner listener.
func (l *gatedListener) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inside--
	if l.inside == 0 && l.left != nil {
		close(l.left)
		l.left = nil
	}
}

func (l *gatedListener) closedError() error {
	addr := l.Addr()
	return &net.OpError{Op: "accept", Net: addr.Network(), Addr: addr, Err: net.ErrClosed}
}

// pause stops accepting and interrupts an Accept blocked in the inner
// listener. The returned channel is closed once no Accept is left inside
// the inner listener: from then on, no connection is taken.
func (l *gatedListener) pause() (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	left := make(chan struct{})
	if l.paused || l.inside == 0 {
		close(left)
	} else {
		l.left = left
	}
	if l.paused {
		return left, nil
	}
	l.paused, l.accepting = true, make(chan struct{})
	if err := l.intr.interrupt(); err != nil {
		return left, fmt.Errorf("pause accepting on %s: %w", l.Addr(), err)
	}
	return left, nil
}

// resume accepts again.
func (l *gatedListener) resume() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.paused {
		return nil
	}
	l.paused = false
	if l.left != nil { // Accepts still inside need not be waited for any more
		close(l.left)
		l.left = nil
	}
	err := l.intr.clear()
	close(l.accepting)
	if err != nil {
		return fmt.Errorf("resume accepting on %s: %w", l.Addr(), err)
	}
	return nil
}

// Close closes the inner listener and ends a paused Accept.
func (l *gatedListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// acceptGate pauses and resumes accepting on every listener of an
// instance that can be paused.
type acceptGate struct {
	lns []*gatedListener
}

// gateListeners wraps every listener whose Accept can be interrupted in a
// gatedListener, which calls accepted after each connection it accepts,
// and returns the listeners to serve, in order, with the gate over them.
// The others are served as they are.
func (i *Instance) gateListeners(lns []net.Listener, accepted func()) ([]net.Listener, *acceptGate) {
	g := &acceptGate{}
	out := make([]net.Listener, len(lns))
	for k, ln := range lns {
		intr := interrupterOf(ln)
		if intr == nil {
			i.log.Debug("listener cannot be paused: its Accept cannot be interrupted (no SetDeadline); a stuck canary will not stop it accepting",
				"address", ln.Addr().String(), "type", fmt.Sprintf("%T", ln))
			out[k] = ln
			continue
		}
		gl := newGatedListener(ln, intr, accepted)
		g.lns = append(g.lns, gl)
		out[k] = gl
	}
	return out, g
}

// pauseWait bounds how long pause waits for interrupted Accepts to
// return.
const pauseWait = time.Second

// pause stops accepting on every gated listener and returns once none of
// them is inside its inner Accept any more (or after pauseWait, with an
// error).
func (g *acceptGate) pause() error {
	var errs []error
	var waits []<-chan struct{}
	for _, l := range g.lns {
		left, err := l.pause()
		errs, waits = append(errs, err), append(waits, left)
	}
	deadline := time.NewTimer(pauseWait)
	defer deadline.Stop()
	for k, left := range waits {
		select {
		case <-left:
		case <-deadline.C:
			return errors.Join(append(errs, fmt.Errorf("accept on %s still running %s after it was interrupted", g.lns[k].Addr(), pauseWait))...)
		}
	}
	return errors.Join(errs...)
}

// resume accepts again on every gated listener.
func (g *acceptGate) resume() error {
	var errs []error
	for _, l := range g.lns {
		errs = append(errs, l.resume())
	}
	return errors.Join(errs...)
}

// gated reports how many listeners the gate holds.
func (g *acceptGate) gated() int { return len(g.lns) }

// ungated returns the listener a gatedListener wraps, or ln itself.
func ungated(ln net.Listener) net.Listener {
	if gl, ok := ln.(*gatedListener); ok {
		return gl.Listener
	}
	return ln
}
