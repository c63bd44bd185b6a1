package herd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// lockPoll is how often Lock tries again while another command holds the
// lock.
const lockPoll = 50 * time.Millisecond

// Lock serialises the commands that change the herd's size or replace
// its instances (appctl reload, scale, start, stop and import) with the
// autoscaler and with each other, across processes and users. It waits
// while another holds the lock, until ctx ends; unlock releases it.
//
// The lock is an abstract unix socket bound to a name of the service's
// (lockAddr): binding it fails while another process holds it, it needs
// no file or permission, and it is released when the process dies. A
// file would be replaced by a package upgrade: an earlier lock, flock(2)
// on the template's unit file, let an upgrade's appctl reload run beside
// an appctl scale that had locked the file before dpkg replaced it.
// Abstract names belong to the network namespace, which every operator
// and the autoscaler share with the host.
func (h *Herd) Lock(ctx context.Context) (unlock func(), err error) {
	for {
		unlock, ok, err := h.TryLock()
		if err != nil || ok {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the lock of %s, held by another appctl reload, scale, start, stop or import, or by the autoscaler: %w", h.app.Name(), ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// TryLock takes the lock of Lock if nobody holds it, and reports whether
// it did.
func (h *Herd) TryLock() (unlock func(), ok bool, err error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", h.app.Name(), err)
	}
	addr := lockAddr(h.app)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s (bind %s): %w", h.app.Name(), addr, err)
	}
	return func() { unix.Close(fd) }, true, nil
}

// lockAddr is the abstract socket address of app's lock ("@" stands for
// the leading NUL byte; ss -xlp shows who holds it).
func lockAddr(app App) string { return "@unitkit/" + app.Name() + "/herd" }
