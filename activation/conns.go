package activation

import (
	"net"
	"net/http"
	"sync"
	"time"
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
func (t *connTracker) closeIdle(grace time.Duration) (open int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for c, e := range t.conns {
		if e.state == http.StateIdle && now.Sub(e.since) >= grace {
			c.Close()
			delete(t.conns, c)
		}
	}
	return len(t.conns)
}
