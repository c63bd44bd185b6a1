package activation

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// drainPoll is how often a drain looks at the remaining connections.
const drainPoll = 10 * time.Millisecond

// drain stops the instance without failing a request:
//
//  1. STOPPING=1 and readiness off; EXTEND_TIMEOUT_USEC= so that systemd
//     allows the whole drain even if TimeoutStopSec= is shorter.
//  2. Close our listeners. Under socket activation that closes only this
//     process's descriptor: the socket and its queue of not yet accepted
//     connections stay with systemd and the other instances.
//  3. Wait until every connection accepted so far has finished: requests
//     in flight complete, each response from now on carries
//     "Connection: close", and keep-alive connections idle for idleGrace
//     are closed. http.Server.Shutdown is not used for this: it closes
//     connections whose request arrives after it started, unanswered.
//  4. Close the server; anything still open after the drain timeout,
//     after a second stop signal, or once the serving path has been stuck
//     for the watchdog period (see wedged), is cut off and reported.
func (i *Instance) drain(srv *http.Server, lns []net.Listener, canaryLn *canaryListener,
	served <-chan struct{}, sigs <-chan os.Signal, cause string) error {
	i.watch.halt() // accepting stays as it is until the listeners close
	i.setState(stateDraining)
	timeout := i.cfg.drainTimeout
	i.log.Info("draining", "cause", cause, "in_flight", i.inFlight.Load(), "drain_timeout", timeout)
	why, stopStatus := "", i.statusLine()
	if cause == causeMemoryLimit {
		why = i.mem.summary() // say in systemctl status why it stops by itself
		stopStatus = i.drainStatus(why)
	}
	i.logErr("notify stopping", i.notify.Stopping(stopStatus))
	i.logErr("notify extend timeout", i.notify.ExtendTimeout(timeout+extendMargin))

	closeAll(lns)
	canaryLn.Close()
	for range lns {
		<-served // every accepted connection is now tracked
	}

	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	poll := time.NewTicker(drainPoll)
	defer poll.Stop()
	status := time.NewTicker(i.cfg.statusInterval)
	defer status.Stop()
	forced := ""
wait:
	for {
		if busy, _ := i.conns.busy(); busy == 0 && i.conns.closeIdle(idleGrace) == 0 {
			break
		}
		select {
		case <-poll.C:
			if stuck := i.wedged(); stuck != "" {
				forced = stuck
				break wait
			}
		case <-status.C:
			i.logErr("notify status", i.notify.Status(i.drainStatus(why)))
		case <-deadline.C:
			forced = "drain timeout " + timeout.String() + " reached"
			break wait
		case sig := <-sigs:
			if sig != syscall.SIGHUP {
				forced = "second stop signal " + sig.String()
				break wait
			}
		}
	}
	busy, open := i.conns.busy()
	inFlight := i.inFlight.Load()
	srv.Close()
	i.setState(stateStopped)
	if forced != "" {
		i.log.Error("drain cut short", "reason", forced, "in_flight", inFlight, "busy_connections", busy, "open_connections", open)
		return fmt.Errorf("activation: %s with %d requests in flight: %w", forced, inFlight, ErrDrainTimeout)
	}
	i.log.Info("drained", "took", time.Since(start), "served", i.served.Load())
	return nil
}

// wedged says why the drain should stop waiting when the serving path is
// stuck: the canary sent before the drain has had no answer for the
// watchdog period. The requests in flight then wait for a handler that
// does not return, and systemd, which stops watching an instance once it
// stops it, would have killed the instance by now had it kept running; so
// an instance wedged when stopped ends within its watchdog period, not
// its drain timeout. Without a watchdog the drain timeout alone applies.
func (i *Instance) wedged() string {
	if i.watchdog == 0 {
		return ""
	}
	if out := i.watch.canaryOut(); out >= i.watchdog {
		return fmt.Sprintf("serving path stuck: the canary has had no answer for %s, the watchdog period is %s",
			out.Round(time.Millisecond), i.watchdog)
	}
	return ""
}

// drainStatus is the STATUS= text while draining; why, when not empty,
// says why the instance stops, e.g. "memory limit 64.0 MiB, rss 180.3 MiB".
func (i *Instance) drainStatus(why string) string {
	busy, open := i.conns.busy()
	head := "draining"
	if why != "" {
		head += " (" + why + ")"
	}
	return fmt.Sprintf("%s: %d requests in flight, %d connections busy, %d open", head, i.inFlight.Load(), busy, open)
}
