package activation

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Notifier sends state changes to the service manager over the sd_notify
// protocol (see sd_notify(3)). A Notifier with no socket, as returned by
// NewNotifier outside systemd, accepts every call and sends nothing, so code
// using it runs unchanged in a terminal or a container.
type Notifier struct {
	socket string
}

// NewNotifier returns a Notifier for the socket named by $NOTIFY_SOCKET.
func NewNotifier() *Notifier {
	return NewNotifierFor(os.Getenv("NOTIFY_SOCKET"))
}

// NewNotifierFor returns a Notifier that sends to the unix datagram socket at
// path; a leading '@' names an abstract socket. An empty path yields a
// Notifier that sends nothing.
func NewNotifierFor(path string) *Notifier {
	return &Notifier{socket: path}
}

// Enabled reports whether the Notifier has a socket to send to.
func (n *Notifier) Enabled() bool { return n.socket != "" }

// Notify sends the given assignments (e.g. "READY=1", "STATUS=warming up")
// as one datagram.
func (n *Notifier) Notify(assignments ...string) error {
	if !n.Enabled() || len(assignments) == 0 {
		return nil
	}
	for _, a := range assignments {
		if !strings.Contains(a, "=") || strings.Contains(a, "\n") {
			return fmt.Errorf("notify: malformed assignment %q: want one KEY=VALUE line", a)
		}
	}
	addr := &net.UnixAddr{Name: n.socket, Net: "unixgram"}
	conn, err := net.DialUnix("unixgram", nil, addr)
	if err != nil {
		return fmt.Errorf("notify %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(assignments, "\n"))); err != nil {
		return fmt.Errorf("notify %s: %w", n.socket, err)
	}
	return nil
}

// Ready tells the service manager that start-up (or a reload) finished.
// status, when not empty, is sent along as the STATUS= text.
func (n *Notifier) Ready(status string) error {
	return n.Notify(withStatus([]string{"READY=1"}, status)...)
}

// Status sets the free-form text shown by systemctl status.
func (n *Notifier) Status(status string) error {
	return n.Notify("STATUS=" + oneLine(status))
}

// Watchdog keeps the service manager's watchdog (WatchdogSec=) from firing.
func (n *Notifier) Watchdog() error { return n.Notify("WATCHDOG=1") }

// Stopping tells the service manager that the service began shutting down.
func (n *Notifier) Stopping(status string) error {
	return n.Notify(withStatus([]string{"STOPPING=1"}, status)...)
}

// Reloading tells the service manager that the service is reloading its
// configuration; send Ready once the reload finished.
func (n *Notifier) Reloading(status string) error {
	mono := "MONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10)
	return n.Notify(withStatus([]string{"RELOADING=1", mono}, status)...)
}

// ExtendTimeout asks the service manager to allow d more time for the current
// start, stop or runtime phase before it considers the service hung.
func (n *Notifier) ExtendTimeout(d time.Duration) error {
	return n.Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}

func withStatus(a []string, status string) []string {
	if status == "" {
		return a
	}
	return append(a, "STATUS="+oneLine(status))
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// monotonicUsec reads CLOCK_MONOTONIC, the clock systemd compares
// MONOTONIC_USEC= against.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e3
}
