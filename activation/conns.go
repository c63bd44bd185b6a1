package activation

import (
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// connTracker follows every client connection of the server through its
// http.ConnState changes, so that a drain knows which connections still
// carry a request and which sit idle. Canary connections are not tracked.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]connEntry
}

type connEntry struct {
	state http.ConnState
	since time.Time
}

func newConnTracker() *connTracker {
	return &connTracker{conns: make(map[net.Conn]connEntry)}
}

// hook is the http.Server.ConnState callback.
func (t *connTracker) hook(c net.Conn, s http.ConnState) {
	if _, ok := c.(*canaryConn); ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(t.conns, c)
	default:
		t.conns[c] = connEntry{state: s, since: time.Now()}
	}
}

// busy counts connections that are reading or serving a request, or were
// accepted and have not sent one yet.
func (t *connTracker) busy() (busy, total int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range t.conns {
		if e.state != http.StateIdle {
			busy++
		}
	}
	return busy, len(t.conns)
}

// closeIdle closes keep-alive connections that have been idle for at least
// grace and reports how many remain open. A client that sends a request at
// the very moment its idle connection is closed sees an error; HTTP/1.1
// clients retry idempotent requests in that case. The grace keeps the
// window away from clients that are actively sending: each of their
// requests during a drain is answered with "Connection: close" instead.
//
// A connection counts as idle only while no request waits unread in its
// receive queue. The state changes when the server reads, so a process
// that was stalled (stopped, starved of CPU) when requests arrived still
// shows those connections idle since their last response; closing them
// would reset requests the client sent in good time.
func (t *connTracker) closeIdle(grace time.Duration) (open int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for c, e := range t.conns {
		if e.state == http.StateIdle && now.Sub(e.since) >= grace && !unread(c) {
			c.Close()
			delete(t.conns, c)
		}
	}
	return len(t.conns)
}

// unread reports whether bytes the client sent wait in c's receive queue
// (SIOCINQ), not yet read by the server. Connections without a descriptor
// report false.
func unread(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	if err := raw.Control(func(fd uintptr) { n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return false
	}
	return n > 0
}
