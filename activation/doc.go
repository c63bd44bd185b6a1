// Package activation makes a Go server a well-behaved instance of a
// socket-activated systemd service, one of many sharing a single listening
// socket.
//
// systemd holds the listening socket (app.socket) and hands the same
// descriptor to every instance of a template unit (app@1.service …
// app@N.service). Because the socket outlives every process, connections
// queue in the kernel while an instance restarts instead of being refused.
// This package does the instance's side of that contract:
//
//   - it takes the listeners systemd passed ($LISTEN_FDS, matched by
//     $LISTEN_FDNAMES), or listens on $LISTEN_ADDR, $PORT or :8080 when run
//     outside systemd, so the same binary works in a terminal, a container
//     or Kubernetes;
//   - it accepts with Go's own loop, with the shared socket watched so
//     that the kernel wakes one idle instance per connection, in turn,
//     and passes over busy ones (an even spread); $ACCEPT_MODE=shared
//     leaves Go's registration as it is, waking every instance;
//   - it bounds what one keep-alive connection carries
//     ($KEEPALIVE_REQUESTS, default 100; $KEEPALIVE_TIME, default 1m):
//     the response that reaches a bound says "Connection: close", so
//     long-lived clients reconnect and spread over the instances;
//   - it runs an optional warm-up hook, then sends READY=1;
//   - it keeps STATUS= current (requests served, in flight, draining, not
//     accepting, failing checks), as shown by systemctl status;
//   - it proves its serving path with a canary request that travels
//     through the real http.Server and the handler given to Serve over an
//     in-memory connection: every health interval, and as soon as
//     connections keep arriving while no request has completed for 100ms
//     ($CANARY_INTERVAL). A canary without an answer for 100ms while the
//     instance completes no other request stops it accepting at once, so
//     that the other instances take the new connections, until the canary
//     answers again (see Wedged handlers below);
//   - it sends WATCHDOG=1 only while the canary answers: a handler wedged
//     for a health interval stops the pings and systemd replaces the
//     instance;
//   - it answers /healthz (liveness: the canary) and /readyz (readiness:
//     serving, accepting, the canary and the WithHealthCheck checks of its
//     dependencies) itself;
//   - on SIGHUP it runs a reload hook between RELOADING=1 and READY=1;
//   - on SIGTERM or SIGINT it drains without failing a request: STOPPING=1,
//     close its own copy of the listener (the other instances keep
//     accepting from the shared queue), answer every further request with
//     "Connection: close", wait for the requests in flight up to the drain
//     timeout ($DRAIN_TIMEOUT, default 30s, announced to systemd with
//     EXTEND_TIMEOUT_USEC=), then exit;
//   - it drains and exits by itself when its resident memory stays above
//     a limit (see Memory limit below), one instance at a time;
//   - it logs structured records to the journal with upper-case field
//     names (INSTANCE, REQUEST_ID, …) and priorities when stderr is the
//     journal, and text or JSON ($LOG_FORMAT) on stderr otherwise.
//
// # Usage
//
// Serve is all most programs need:
//
//	func main() {
//		mux := http.NewServeMux()
//		mux.HandleFunc("/", hello)
//		if err := activation.Serve(context.Background(), mux); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// New followed by Instance.Serve gives access to the instance first: its
// name, logger and counters (for metrics), or its probe handlers if they
// are to be mounted elsewhere (WithHealthPaths). Listeners, Notifier and
// NewLogger are the pieces Serve is built from, usable on their own by a
// server that is not net/http.
//
// # Units
//
// The package expects units like these (the unitkit repository ships
// complete, commented ones):
//
//	# app.socket
//	[Socket]
//	ListenStream=8080
//
//	# app@.service
//	[Unit]
//	PartOf=app.socket
//	StartLimitIntervalSec=0
//	[Service]
//	Type=notify
//	Sockets=app.socket
//	NonBlocking=yes
//	Environment=INSTANCE=%i
//	ExecStart=/usr/bin/app
//	ExecReload=/bin/kill -HUP $MAINPID
//	WatchdogSec=10s
//	TimeoutStopSec=40s
//	KillMode=mixed
//	Restart=always
//	RestartSec=0
//	ExecStopPost=-+/usr/bin/appctl backoff %n
//
// NonBlocking=yes matters: all instances share the socket's O_NONBLOCK flag,
// and without it systemd clears the flag whenever it starts an instance;
// any other instance that calls accept() meanwhile blocks in the kernel
// and, told to stop, hangs until the next connection arrives.
// Type=notify makes systemd wait for READY=1. Sockets= hands every instance
// the one listening socket. INSTANCE names the instance in logs and
// headers. WatchdogSec= enables the canary-gated watchdog. TimeoutStopSec=
// should exceed the drain timeout; if it does not, the instance asks for
// more time with EXTEND_TIMEOUT_USEC=. KillMode=mixed sends SIGTERM to the
// main process only, so it can drain. StartLimitIntervalSec=0 and PartOf=
// (not Requires=) keep one instance's failures from closing the socket.
//
// # Wedged handlers
//
// A deadlocked handler would keep taking its share of the new connections
// until the watchdog killed the instance, and every one of them would hang
// until then. So besides the canary of every health interval, each
// accepted connection looks whether a request completed (or a canary
// answered) within the canary interval ($CANARY_INTERVAL or
// WithCanaryInterval, default 100ms; 0 turns this off); if none did, a
// canary goes out. A busy, healthy instance thus sends no extra canary,
// and an idle one wakes up no more often than its health interval asks.
// When a canary has been out for 100ms and no other request completed
// meanwhile, the instance stops accepting: it logs a warning with
// MESSAGE_ID=MessageAcceptPaused and how long the canary has been out,
// STATUS= and /readyz say so, and it no longer calls accept on the shared
// socket, whose queued connections go to the other instances. When the
// canary answers, it logs MessageAcceptResumed and accepts again. A wedge
// therefore costs the requests that reached the instance within about
// 200ms, not within the watchdog period. An instance that is only busy
// still completes requests and keeps accepting. Listeners that cannot be
// paused (one given to WithListeners without SetDeadline) keep accepting,
// as a debug record says.
//
// Named checks (WithHealthCheck) watch dependencies, which every instance
// usually shares: a failing check makes /readyz answer 503 and STATUS= say
// why, so that a load balancer can route elsewhere, and nothing more. The
// instance keeps accepting, /healthz keeps answering 200 and the watchdog
// keeps being pinged, so that a failing database never makes systemd kill
// every instance, nor every instance stop accepting.
//
// # Memory limit
//
// A leaking instance is better replaced gracefully than killed. With a
// memory limit set — $MEMORY_LIMIT, a size such as 512M or 1G (K, M, G, T
// in base 1024, as MemoryMax= takes them; at least 4M), or by default the
// memory.high of the instance's cgroup (MemoryHigh= of the unit), or
// WithMemoryLimit — a serving instance samples its resident memory every
// second. On the first sample above the limit it returns freed heap to
// the system (runtime/debug.FreeOSMemory), since only live memory should
// count; after three samples in a row above it, the instance logs a
// warning with MESSAGE_ID=MessageMemoryLimit and drains exactly as on
// SIGTERM, STATUS= saying why, and Serve returns ErrMemoryLimit. The
// program should then exit with ExitMemoryLimit (75, EX_TEMPFAIL): with
// SuccessExitStatus=0 75 and Restart=always systemd starts a fresh
// instance, and the exit status tells a restart for memory from a crash.
//
// Only one instance of the herd stops for memory at a time, so that a leak
// they all share never takes every instance away at once. They agree with
// flock(2) on the executable they all run: an instance holds it shared
// from the start of Serve until READY=1, one that stops for memory holds
// it exclusively until it exits (and for at least two seconds, so that
// every peer sees it taken), and an instance over the limit waits
// (logging so once, and saying so in STATUS=) until the exclusive lock is
// free at two samples in a row; so the quickest stop comes at the fourth
// sample above the limit. MemoryMax= remains the hard limit at which the
// kernel kills.
//
// # Limits
//
// Hijacked connections (WebSockets) are not waited for. A keep-alive
// connection left idle for a second is closed during a drain; a client that
// sends on it at that very moment sees the usual HTTP/1.1 race and should
// retry, as HTTP clients do for idempotent requests.
package activation
