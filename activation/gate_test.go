package activation

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// listenerKinds are the listeners an instance can stop accepting on, each
// made by a function returning two listeners on one listening socket, as
// two instances sharing a socket hold it, and an address to dial.
func listenerKinds() map[string]func(t *testing.T) (a, b net.Listener, network, addr string) {
	return map[string]func(t *testing.T) (net.Listener, net.Listener, string, string){
		"tcp": func(t *testing.T) (net.Listener, net.Listener, string, string) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return ln, duplicate(t, ln), "tcp", ln.Addr().String()
		},
		"unix": func(t *testing.T) (net.Listener, net.Listener, string, string) {
			path := filepath.Join(t.TempDir(), "sock")
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			return ln, duplicate(t, ln), "unix", path
		},
		AcceptExclusive: func(t *testing.T) (net.Listener, net.Listener, string, string) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			a, b := exclusiveOn(t, ln), exclusiveOn(t, ln)
			ln.Close() // the exclusive listeners hold their own duplicates
			return a, b, "tcp", a.Addr().String()
		},
	}
}

// duplicate returns a second listener on ln's socket.
func duplicate(t *testing.T, ln net.Listener) net.Listener {
	t.Helper()
	f, err := ln.(interface{ File() (*os.File, error) }).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dup, err := net.FileListener(f)
	if err != nil {
		t.Fatal(err)
	}
	return dup
}

// exclusiveOn returns an exclusiveListener on ln's socket, as Listeners
// makes one with ACCEPT_MODE=exclusive.
func exclusiveOn(t *testing.T, ln net.Listener) net.Listener {
	t.Helper()
	el := exclusive(duplicate(t, ln))
	if _, ok := el.(*exclusiveListener); !ok {
		el.Close()
		t.Skip("no EPOLLEXCLUSIVE on this kernel")
	}
	return el
}

// A paused listener does not accept, also when Accept was already waiting
// in the inner listener, and never returns the interruption; resumed, it
// hands over the connection that waited; Close ends a paused Accept.
func TestGatedListener(t *testing.T) {
	for kind, listen := range listenerKinds() {
		t.Run(kind, func(t *testing.T) {
			inner, other, network, addr := listen(t)
			other.Close()
			intr := interrupterOf(inner)
			if intr == nil {
				t.Fatalf("%T cannot be interrupted", inner)
			}
			gl := newGatedListener(inner, intr, func() {})
			g := &acceptGate{lns: []*gatedListener{gl}}
			accepted := acceptInBackground(gl)
			time.Sleep(20 * time.Millisecond) // let Accept wait in the inner listener
			if err := g.pause(); err != nil {
				t.Fatal(err)
			}
			c, err := net.Dial(network, addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			select {
			case r := <-accepted:
				t.Fatalf("a paused listener returned %v, %v", r.conn, r.err)
			case <-time.After(200 * time.Millisecond):
			}
			if err := g.resume(); err != nil {
				t.Fatal(err)
			}
			r := waitAccepted(t, accepted)
			if r.err != nil {
				t.Fatalf("Accept after resume: %v", r.err)
			}
			r.conn.Close()

			accepted = acceptInBackground(gl)
			time.Sleep(20 * time.Millisecond)
			if err := g.pause(); err != nil {
				t.Fatal(err)
			}
			gl.Close()
			if r := waitAccepted(t, accepted); !errors.Is(r.err, net.ErrClosed) {
				t.Fatalf("Accept on a listener closed while paused: %v, %v; want net.ErrClosed", r.conn, r.err)
			}
		})
	}
}

type acceptResult struct {
	conn net.Conn
	err  error
}

func acceptInBackground(ln net.Listener) <-chan acceptResult {
	out := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		out <- acceptResult{c, err}
	}()
	return out
}

func waitAccepted(t *testing.T, accepted <-chan acceptResult) acceptResult {
	t.Helper()
	select {
	case r := <-accepted:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not return within 10s")
		return acceptResult{}
	}
}

// A listener whose Accept cannot be interrupted is served as it is.
func TestUngatedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var log lockedLog
	inst, err := New(WithListeners(ln), WithLogger(slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		t.Fatal(err)
	}
	plain := struct{ net.Listener }{ln} // hides SetDeadline
	out, g := inst.gateListeners([]net.Listener{plain, ln}, func() {})
	if out[0] != net.Listener(plain) || g.gated() != 1 {
		t.Fatalf("gated %d listeners, first served as %T", g.gated(), out[0])
	}
	if !log.has("listener cannot be paused", "level=DEBUG") {
		t.Errorf("no debug record about the ungated listener:\n%s", log.String())
	}
}

// An instance whose handler is stuck stops accepting from the socket it
// shares with another instance, which takes every new connection; STATUS=
// and readiness say so. Once the handler answers again it accepts again;
// it serves alone once the other is gone, and stops promptly.
func TestStuckInstanceStopsAccepting(t *testing.T) {
	for _, kind := range []string{"tcp", AcceptExclusive} {
		t.Run(kind, func(t *testing.T) {
			lnA, lnB, _, addr := listenerKinds()[kind](t)
			a, b := startGateInstance(t, "a", lnA), startGateInstance(t, "b", lnB)
			if kind == AcceptExclusive && !a.log.has("msg=ready", "accept=exclusive", "gated_listeners=1") {
				t.Fatalf("instance a is not accepting exclusively, gated:\n%s", a.log.String())
			}

			a.wedge()
			a.waitLog(t, "stopped accepting new connections", "canary_out=", "message_id="+MessageAcceptPaused)
			before := a.accepted.Load()
			for k := range 40 {
				if got := fresh(t, addr); got != "b" {
					t.Fatalf("request %d answered by %q, want b", k, got)
				}
			}
			if n := a.accepted.Load() - before; n != 0 {
				t.Errorf("the stuck instance accepted %d connections", n)
			}
			if !a.notify.has("STATUS=ready: ", "; not accepting new connections: canary stuck for") {
				t.Errorf("no STATUS= saying the instance does not accept among %q", a.notify.lines())
			}
			if ok, _, failure := a.inst.readiness(); ok || !strings.Contains(failure, "not accepting") {
				t.Errorf("readiness of the stuck instance: %v %q", ok, failure)
			}

			a.unwedge()
			a.waitLog(t, "canary answered again; accepting new connections", "paused=", "message_id="+MessageAcceptResumed)
			if err := b.stop(t); err != nil {
				t.Fatal(err)
			}
			if got := fresh(t, addr); got != "a" {
				t.Fatalf("with b gone, answered by %q, want a", got)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
				ok, _, failure := a.inst.readiness() // as of the next health round
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not ready 10s after resuming: %q", failure)
				}
			}
			a.wedge()
			for deadline := time.Now().Add(10 * time.Second); a.inst.watch.stuckFor() == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("wedged again, the instance did not stop accepting within 10s")
				}
			}
			if err := a.stop(t); err != nil { // listeners closed while paused
				t.Fatal(err)
			}
		})
	}
}

// A connection accepted while no request completes sends a canary once
// the canary interval has passed without a sign of life, so an instance
// finds its handler stuck within about two canary intervals even though
// its health interval is long; once the handler answers, the connection
// that arrived meanwhile is served.
func TestAcceptNudgesCanary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := startGateInstance(t, "a", ln, WithHealthInterval(time.Hour))
	a.wedge()
	answered := make(chan string, 1)
	go func() {
		code, body := probe(t, "http://"+ln.Addr().String()+"/")
		answered <- strconv.Itoa(code) + " " + body
	}()
	a.waitLog(t, "stopped accepting new connections") // only the request's canary can be stuck
	a.unwedge()
	select {
	case got := <-answered:
		if got != "200 a" {
			t.Errorf("the request that arrived during the wedge got %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request that arrived during the wedge was not answered once the handler was free")
	}
	a.waitLog(t, "canary answered again; accepting new connections")
}

// A failing named check makes the instance unready and nothing more: it
// keeps accepting, its liveness stays 200 and it keeps pinging the
// watchdog, so that a dependency every instance shares cannot stop them
// all.
func TestFailingCheckDoesNotPause(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "400000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var failing atomic.Bool
	a := startGateInstance(t, "a", ln, WithHealthCheck("database", func(context.Context) error {
		if failing.Load() {
			return errors.New("connection refused")
		}
		return nil
	}),
		// Not the point here: a loaded machine must not stop it accepting
		// for its own sake.
		func(c *config) error { c.canaryStuck = time.Minute; return nil })
	failing.Store(true)
	a.waitLog(t, "health check failing", "check database: connection refused")
	pings := a.notify.count("WATCHDOG=1")
	url := "http://" + ln.Addr().String()
	for range 5 {
		if got := fresh(t, ln.Addr().String()); got != "a" {
			t.Fatalf("answered by %q", got)
		}
		for path, want := range map[string]int{"/healthz": 200, "/readyz": 503} {
			if code, body := probe(t, url+path); code != want {
				t.Errorf("GET %s while a check fails: %d %s, want %d", path, code, body, want)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	a.notify.waitCount(t, "WATCHDOG=1", pings+2)
	if !a.notify.has("STATUS=ready: ", "; not ready: check database: connection refused") {
		t.Errorf("no STATUS= naming the failing check among %q", a.notify.lines())
	}
	if a.inst.watch.stuckFor() != 0 || a.log.has("stopped accepting") {
		t.Errorf("a failing check stopped the instance accepting:\n%s", a.log.String())
	}
	failing.Store(false)
	a.waitLog(t, "health check passing again")
	if code, body := probe(t, url+"/readyz"); code != 200 {
		t.Errorf("GET /readyz once the check passes: %d %s", code, body)
	}
}

// gateInstance is an Instance serving one listener with a handler that can
// be made to hang, as a deadlock would.
type gateInstance struct {
	name     string
	inst     *Instance
	log      *lockedLog
	notify   *notifyRecorder
	accepted atomic.Int64 // client connections accepted
	cancel   context.CancelFunc
	done     chan error

	mu     sync.Mutex
	wedged chan struct{} // non-nil: every request waits until it is closed
}

func startGateInstance(t *testing.T, name string, ln net.Listener, opts ...Option) *gateInstance {
	t.Helper()
	g := &gateInstance{name: name, log: &lockedLog{}, notify: newNotifyRecorder(t), done: make(chan error, 1)}
	opts = append([]Option{WithListeners(ln), WithoutSignals(), WithNotifier(NewNotifierFor(g.notify.path)),
		WithLogger(slog.New(slog.NewTextHandler(g.log, nil))), WithStatusInterval(100 * time.Millisecond),
		WithHealthInterval(100 * time.Millisecond), // a canary every 100ms without traffic too
		WithServer(func(srv *http.Server) {
			srv.ConnState = func(c net.Conn, s http.ConnState) {
				if _, canary := c.(*canaryConn); !canary && s == http.StateNew {
					g.accepted.Add(1)
				}
			}
		})}, opts...)
	inst, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	g.inst = inst
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	go func() { g.done <- inst.Serve(ctx, http.HandlerFunc(g.serve)) }()
	t.Cleanup(func() {
		g.unwedge()
		cancel()
		<-g.done
		if t.Failed() {
			t.Logf("instance %s log:\n%s", name, g.log.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); inst.state() != stateReady; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("instance %s not ready within 10s:\n%s", name, g.log.String())
		}
	}
	return g
}

func (g *gateInstance) serve(w http.ResponseWriter, _ *http.Request) {
	g.mu.Lock()
	wedged := g.wedged
	g.mu.Unlock()
	if wedged != nil {
		<-wedged
	}
	w.Header().Set("X-Instance", g.name)
	_, _ = io.WriteString(w, g.name)
}

func (g *gateInstance) wedge() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wedged == nil {
		g.wedged = make(chan struct{})
	}
}

func (g *gateInstance) unwedge() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.wedged != nil {
		close(g.wedged)
		g.wedged = nil
	}
}

// stop ends Serve and returns its error, failing the test after 10s.
func (g *gateInstance) stop(t *testing.T) error {
	t.Helper()
	g.cancel()
	select {
	case err := <-g.done:
		g.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("instance %s did not stop within 10s:\n%s", g.name, g.log.String())
		return nil
	}
}

// waitLog waits until one line of the instance's log holds every part.
func (g *gateInstance) waitLog(t *testing.T, parts ...string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !g.log.has(parts...); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("instance %s logged no line with %q within 10s:\n%s", g.name, parts, g.log.String())
		}
	}
}

// fresh sends one request to the TCP address addr on a new connection and
// returns which instance answered.
func fresh(t *testing.T, addr string) string {
	t.Helper()
	code, body := probe(t, "http://"+addr+"/")
	if code != http.StatusOK {
		t.Fatalf("GET /: %d %s", code, body)
	}
	return body
}

// probe sends one GET on a new connection and returns the status and body.
func probe(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func (r *notifyRecorder) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...)
}

// has reports whether an assignment starting with prefix and containing
// part arrived.
func (r *notifyRecorder) has(prefix, part string) bool {
	for _, a := range r.lines() {
		if strings.HasPrefix(a, prefix) && strings.Contains(a, part) {
			return true
		}
	}
	return false
}

// count reports how many assignments equal a.
func (r *notifyRecorder) count(a string) int {
	n := 0
	for _, l := range r.lines() {
		if l == a {
			n++
		}
	}
	return n
}

// waitCount waits until a arrived at least n times.
func (r *notifyRecorder) waitCount(t *testing.T, a string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); r.count(a) < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%q arrived %d times within 10s, want %d", a, r.count(a), n)
		}
	}
}
