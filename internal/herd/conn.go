package herd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// ErrPermission reports that systemd (through polkit) refused an operation.
var ErrPermission = errors.New("permission denied")

// ErrUnreachable reports that systemd could not be reached over D-Bus.
var ErrUnreachable = errors.New("systemd is unreachable")

// ErrNotInstalled reports that the service's units are not installed.
var ErrNotInstalled = errors.New("not installed")

// Herd operates the units of one service through systemd's D-Bus API.
type Herd struct {
	app     App
	conn    *sddbus.Conn
	noQueue bool // Snapshot leaves Socket.Queued at 0 (see SkipAcceptQueue)
}

// SkipAcceptQueue makes later snapshots leave Socket.Queued at 0 instead
// of reading /proc/net/tcp and tcp6, where the kernel walks every TCP
// socket of the machine: 4 ms at 1,000 sockets, 42 ms at 11,000. For
// callers that look often and do not need the queue.
func (h *Herd) SkipAcceptQueue() { h.noQueue = true }

// Connect opens a connection to systemd and checks that the service's
// units are installed. A non-root caller goes through the system bus, so
// that polkit decides what it may do; root talks to systemd's private
// socket directly, which saves the bus daemon's hop on every call (appctl
// status makes a hundred at 32 instances), and uses the bus only if that
// fails.
func Connect(ctx context.Context, app App) (*Herd, error) {
	var conn *sddbus.Conn
	err := errors.New("not root")
	if os.Geteuid() == 0 {
		conn, err = sddbus.NewSystemdConnectionContext(ctx)
	}
	if err != nil {
		conn, err = sddbus.NewSystemConnectionContext(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v (is systemd PID 1 and D-Bus running? on a machine without systemd try make demo)", ErrUnreachable, err)
	}
	h := &Herd{app: app, conn: conn}
	if err := h.checkInstalled(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return h, nil
}

// Close closes the connection.
func (h *Herd) Close() { h.conn.Close() }

// App returns the service the Herd operates.
func (h *Herd) App() App { return h.app }

func (h *Herd) checkInstalled(ctx context.Context) error {
	p, err := h.conn.GetUnitPropertyContext(ctx, h.app.Socket(), "LoadState")
	if err != nil {
		return classify(fmt.Errorf("look up %s: %w", h.app.Socket(), err))
	}
	if state := strings.Trim(p.Value.String(), `"`); state != "loaded" {
		return fmt.Errorf("%w: %s is %s; install the package, or name another service with --app", ErrNotInstalled, h.app.Socket(), state)
	}
	files, err := h.conn.ListUnitFilesByPatternsContext(ctx, nil, []string{h.app.Template()})
	if err != nil {
		return classify(fmt.Errorf("look up %s: %w", h.app.Template(), err))
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: no unit file %s; install the package, or name another service with --app", ErrNotInstalled, h.app.Template())
	}
	return nil
}

// classify marks D-Bus errors that mean "not allowed" or "not reachable".
func classify(err error) error {
	var de dbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.AccessDenied",
			"org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
			"org.freedesktop.DBus.Error.AuthFailed":
			return fmt.Errorf("%w: %v", ErrPermission, err)
		case "org.freedesktop.DBus.Error.ServiceUnknown",
			"org.freedesktop.DBus.Error.NoReply",
			"org.freedesktop.DBus.Error.Disconnected":
			return fmt.Errorf("%w: %v", ErrUnreachable, err)
		}
	}
	return err
}

// JobError reports a systemd job that did not end with "done".
type JobError struct {
	Verb, Unit, Result string
	Detail             string // the unit's Result property, e.g. exit-code
}

func (e *JobError) Error() string {
	msg := fmt.Sprintf("%s %s: job %s", e.Verb, e.Unit, e.Result)
	if e.Detail != "" && e.Detail != "success" {
		msg += " (" + e.Detail + ")"
	}
	return msg
}

// jobFunc is one of go-systemd's job-starting methods.
type jobFunc func(ctx context.Context, name, mode string, ch chan<- string) (int, error)

// job asks systemd to start, stop or restart unit (with systemd's job
// mode, e.g. "replace") and waits for the job's result; for Type=notify
// units, a start is done once READY=1 arrived.
func (h *Herd) job(ctx context.Context, verb, unit, mode string, f jobFunc) (time.Duration, error) {
	start := time.Now()
	ch := make(chan string, 1) // buffered: go-systemd must never block on it
	if _, err := f(ctx, unit, mode, ch); err != nil {
		return 0, classify(fmt.Errorf("%s %s: %w", verb, unit, err))
	}
	select {
	case res := <-ch:
		if res != "done" {
			return time.Since(start), &JobError{Verb: verb, Unit: unit, Result: res, Detail: h.unitResult(unit)}
		}
		return time.Since(start), nil
	case <-ctx.Done():
		return time.Since(start), fmt.Errorf("%s %s: gave up after %s: %w", verb, unit, time.Since(start).Round(time.Millisecond), ctx.Err())
	}
}

func (h *Herd) unitResult(unit string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := h.conn.GetServicePropertyContext(ctx, unit, "Result")
	if err != nil {
		return ""
	}
	return strings.Trim(p.Value.String(), `"`)
}

func (h *Herd) start(ctx context.Context, unit string) (time.Duration, error) {
	return h.job(ctx, "start", unit, "replace", h.conn.StartUnitContext)
}

// startAlone starts unit without pulling in the units it wants or
// requires, and waits for it.
func (h *Herd) startAlone(ctx context.Context, unit string) (time.Duration, error) {
	return h.job(ctx, "start", unit, "ignore-dependencies", h.conn.StartUnitContext)
}

// queueStart asks systemd to start unit (with job mode mode) and returns
// once the job is queued, without waiting for its result.
func (h *Herd) queueStart(ctx context.Context, unit, mode string) error {
	if _, err := h.conn.StartUnitContext(ctx, unit, mode, nil); err != nil {
		return classify(fmt.Errorf("start %s: %w", unit, err))
	}
	return nil
}

func (h *Herd) stop(ctx context.Context, unit string) (time.Duration, error) {
	return h.job(ctx, "stop", unit, "replace", h.conn.StopUnitContext)
}

func (h *Herd) restart(ctx context.Context, unit string) (time.Duration, error) {
	return h.job(ctx, "restart", unit, "replace", h.conn.RestartUnitContext)
}
