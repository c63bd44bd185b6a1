package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unitkit/unitkit/internal/atomicfile"
	"github.com/unitkit/unitkit/internal/ecosystem"
	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/porthold"
)

// importReloadTimeout is how long each replaced instance may take to
// become ready.
const importReloadTimeout = 90 * time.Second

// apply writes the plan's drop-ins, reloads systemd, moves the socket if
// its address changed, replaces the running instances and scales; the
// caller holds the herd's lock throughout, as for appctl reload and scale.
func apply(ctx context.Context, h *herd.Herd, plan *ecosystem.Plan, out io.Writer) error {
	before, err := h.Snapshot(ctx)
	if err != nil {
		return err
	}
	if plan.Port != 0 && !listensOn(before.Socket.Listen, plan.Port) {
		if err := portFree(plan); err != nil {
			return err
		}
	}
	fmt.Fprintln(out)
	if err := writeDropIns(plan, out); err != nil {
		return err
	}
	if err := h.DaemonReload(ctx); err != nil {
		return err
	}
	after, err := h.Snapshot(ctx)
	if err != nil {
		return err
	}
	if err := replace(ctx, h, plan, before, after, out); err != nil {
		return fmt.Errorf("%w\nThe drop-ins are in place; fix the cause and run appctl import again, or remove them (rm %s; systemctl daemon-reload)",
			err, strings.Join(paths(plan), " "))
	}
	fmt.Fprintf(out, "%s now runs %s from %s: see appctl status and appctl logs -f\n", plan.Service, plan.App, plan.Source)
	return nil
}

// replace brings the instances onto the imported app: when the socket's
// address changed and it listens, everything stops and starts again on
// the new one; otherwise the running instances are replaced one by one.
// Then the count is set.
func replace(ctx context.Context, h *herd.Herd, plan *ecosystem.Plan, before, after herd.Snapshot, out io.Writer) error {
	moved := !slices.Equal(before.Socket.Listen, after.Socket.Listen)
	if moved && before.Socket.State == "active" {
		fmt.Fprintf(out, "%s moves from %s to %s: stopping the instances and the socket, then starting them again\n",
			plan.Service+".socket", strings.Join(before.Socket.Listen, " "), strings.Join(after.Socket.Listen, " "))
		if err := h.Stop(ctx, out); err != nil {
			return err
		}
		if err := h.Start(ctx, true, out); err != nil {
			return fmt.Errorf("start %s on its new address: %w", plan.Service, err)
		}
	} else if err := h.Reload(ctx, importReloadTimeout, out); err != nil {
		return err
	}
	want := func(int) (int, error) { return plan.Instances, nil }
	return h.Scale(ctx, want, out)
}

// listensOn reports whether one of the socket's addresses (e.g. [::]:8080)
// has the port.
func listensOn(addrs []string, port int) bool {
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil && p == strconv.Itoa(port) {
			return true
		}
	}
	return false
}

// portFree fails, naming the holder, when another process listens on the
// port the socket is to move to: typically PM2, still running the app.
func portFree(plan *ecosystem.Plan) error {
	holders, err := porthold.Find("/proc", plan.Port)
	if err != nil || len(holders) == 0 {
		return nil // the socket's start will say if it is taken after all
	}
	names := make([]string, len(holders))
	pm2, app := false, plan.App
	for i, hd := range holders {
		names[i] = hd.String()
		if hd.PM2 {
			pm2 = true
			if hd.PM2Name != "" {
				app = hd.PM2Name
			}
		}
	}
	msg := fmt.Sprintf("port %d, where %s.socket is to listen, is in use by %s; nothing was changed",
		plan.Port, plan.Service, strings.Join(names, ", "))
	if pm2 {
		return fmt.Errorf("%s\nhint: PM2 still runs the app: pm2 delete %s (and pm2 save, so that it does not come back at boot), then import again", msg, app)
	}
	return fmt.Errorf("%s\nhint: stop that process, then import again", msg)
}

// writeDropIns writes the plan's files and removes a socket drop-in left
// by an earlier import when this one sets no port.
func writeDropIns(plan *ecosystem.Plan, out io.Writer) error {
	for _, f := range plan.Files {
		if err := atomicfile.WriteFile(f.Path, []byte(f.Content)); err != nil {
			return err
		}
		fmt.Fprintf(out, "wrote %s\n", f.Path)
	}
	if plan.Port == 0 {
		stale := ecosystem.SocketDropIn(plan.Service)
		switch err := os.Remove(stale); {
		case err == nil:
			fmt.Fprintf(out, "removed %s, written by an earlier import: the app sets no PORT\n", stale)
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("remove %s: %w", stale, err)
		}
	}
	return nil
}

func paths(plan *ecosystem.Plan) []string {
	var p []string
	for _, f := range plan.Files {
		p = append(p, f.Path)
	}
	return p
}

// warnLaterDropIns names the drop-ins of the service's template and
// socket that systemd reads after the import's, whose settings win.
func warnLaterDropIns(out io.Writer, service string) {
	for _, unit := range []string{service + "@.service", service + ".socket"} {
		for _, dir := range []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system"} {
			files, _ := filepath.Glob(filepath.Join(dir, unit+".d", "*.conf"))
			for _, f := range files {
				if filepath.Base(f) > ecosystem.DropInName {
					fmt.Fprintf(out, "warning: %s is read after the import's drop-in, so what it sets wins (an ExecStart= there runs another program; remove it if it ran the app before)\n", f)
				}
			}
		}
	}
}
