package herd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// lockPoll is how often Lock tries again while another command holds the
// lock.
const lockPoll = 50 * time.Millisecond

// Lock serialises the commands that change the herd's size or replace
// its instances (appctl reload, scale, start and stop) with the
// autoscaler and with each other, across
// processes and users: it takes flock(2) on the template's unit file,
// which every operator can open read-only and nobody writes through, and
// which dies with the process. It waits while another holds it, until ctx
// ends; unlock releases it.
func (h *Herd) Lock(ctx context.Context) (unlock func(), err error) {
	for {
		unlock, ok, err := h.TryLock()
		if err != nil || ok {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for another appctl reload or scale of %s: %w", h.app.Name(), ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// TryLock takes the lock of Lock if nobody holds it, and reports whether
// it did.
func (h *Herd) TryLock() (unlock func(), ok bool, err error) {
	f, err := os.Open(h.template)
	if err != nil {
		return nil, false, fmt.Errorf("lock %s: %w", h.app.Template(), err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("lock %s: %w", h.template, err)
	}
	return func() { f.Close() }, true, nil
}
