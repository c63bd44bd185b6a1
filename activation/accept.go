package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Accept modes ($ACCEPT_MODE), for the sockets systemd passes.
const (
	// AcceptShared uses Go's own accept loop as Go sets it up: every
	// instance's netpoller wakes for every new connection and all but one
	// find nothing; which one wins is a race, so connections spread
	// unevenly.
	AcceptShared = "shared"
	// AcceptExclusive keeps Go's accept loop but has Go's netpoller watch
	// the socket with EPOLLEXCLUSIVE, so that the kernel wakes one idle
	// instance per new connection instead of all of them, and an instance
	// that has just accepted queues behind the others: connections spread
	// evenly, and a busy instance leaves them to idle ones. The default.
	AcceptExclusive = "exclusive"
)

// exclusiveListener is a listener in Go's own netpoller whose socket the
// netpoller watches with EPOLLEXCLUSIVE once it accepts.
//
// Go registers a listening socket in its epoll instance edge-triggered and
// without EPOLLEXCLUSIVE, so every process holding a shared socket wakes for
// every connection (a thundering herd). exclusiveListener replaces that
// registration with one that has EPOLLEXCLUSIVE and the same data (the
// runtime's pointer to its poll descriptor, read from /proc/self/fdinfo):
// the kernel then wakes only the first process in the socket's wait queue
// that is waiting in epoll_wait, and passes over one that is busy. After
// each accepted connection it registers the socket anew (EPOLL_CTL_MOD is
// not allowed with EPOLLEXCLUSIVE), which moves this process to the end of
// the queue, so idle instances take new connections in turn; nginx re-adds
// its listening sockets for the same reason.
//
// Go's netpoller waits in epoll_wait whenever the process is idle, also
// while nothing accepts, and the kernel would hand such a process
// connections the other instances could serve at once. So the registration
// changes only at the first Accept (after a warm-up, not during it), and
// while the accept gate has paused the listener it is removed altogether.
//
// The shared socket must stay non-blocking (NonBlocking=yes in the
// service unit): a process asleep in a blocking accept(2) is one more
// exclusive waiter, and what the kernel hands it waits until it returns.
//
// Everything else is Go's: Accept, deadlines, and Close, whose removal from
// the epoll instance removes this registration. The runtime registers a
// descriptor once and removes it only when closing it; mu makes sure the
// descriptor is never registered again once Close has begun, when its
// number could already name another file.
type exclusiveListener struct {
	net.Listener // *net.TCPListener or *net.UnixListener

	fd   int             // the listener's descriptor, owned by Listener
	epfd int             // the runtime's epoll instance
	ev   unix.EpollEvent // EPOLLIN|EPOLLET|EPOLLEXCLUSIVE, the runtime's data
	goEv unix.EpollEvent // the runtime's own registration

	mu     sync.Mutex
	armed  bool // registered with EPOLLEXCLUSIVE (else Go's own registration)
	closed bool
	paused bool  // by interrupt: out of the socket's queue until clear
	broken error // a failed re-registration, returned by the next Accept
}

// exclusiveEvents are the events exclusiveListener registers: the kernel
// allows only EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLWAKEUP and
// EPOLLET beside EPOLLEXCLUSIVE, so Go's EPOLLRDHUP and EPOLLOUT, which
// mean nothing on a listening socket, are left out.
const exclusiveEvents = unix.EPOLLIN | unix.EPOLLET | unix.EPOLLEXCLUSIVE

// newExclusiveListener finds ln's registration in Go's netpoller, to take
// it over at the first Accept, and tries the exclusive registration once,
// so that a kernel without EPOLLEXCLUSIVE (before Linux 4.5) is found now.
// On failure ln is left as it was.
func newExclusiveListener(ln net.Listener) (*exclusiveListener, error) {
	fd, err := descriptor(ln)
	if err != nil {
		return nil, err
	}
	reg, err := pollerRegistration(fd)
	if err != nil {
		return nil, err
	}
	l := &exclusiveListener{Listener: ln, fd: fd, epfd: reg.epfd}
	l.ev.Events, l.goEv.Events = exclusiveEvents, reg.events
	setEventData(&l.ev, reg.data)
	setEventData(&l.goEv, reg.data)
	if err := l.reregister(); err != nil {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.fd, &l.goEv) // Go's own back
		return nil, err
	}
	if err := l.swap(&l.goEv); err != nil {
		// Not in the netpoller now: the first Accept says so, and
		// Serve ends instead of waiting for good.
		l.broken = err
	}
	return l, nil
}

// reregister removes the socket from the runtime's epoll instance and adds
// it again with EPOLLEXCLUSIVE, at the end of the socket's queue of
// exclusive waiters. A connection that arrives in between is not lost: the
// other instances may take it, and adding a socket that is ready reports it
// at once.
func (l *exclusiveListener) reregister() error { return l.swap(&l.ev) }

// swap replaces the socket's registration in the runtime's epoll instance
// with ev (EPOLL_CTL_MOD cannot add or drop EPOLLEXCLUSIVE), or adds ev if
// there is none.
func (l *exclusiveListener) swap(ev *unix.EpollEvent) error {
	if err := l.unregister(); err != nil {
		return err
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.fd, ev); err != nil {
		return os.NewSyscallError(fmt.Sprintf("epoll_ctl add events %#x", ev.Events), err)
	}
	return nil
}

// unregister removes the socket from the runtime's epoll instance, if it
// is there.
func (l *exclusiveListener) unregister() error {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.fd, nil); err != nil && !errors.Is(err, unix.ENOENT) {
		return os.NewSyscallError("epoll_ctl del", err)
	}
	return nil
}

// Accept waits for and returns the next connection, then queues this
// process behind the others for the next one.
func (l *exclusiveListener) Accept() (net.Conn, error) {
	if err := l.arm(); err != nil {
		return nil, &net.OpError{Op: "accept", Net: l.Addr().Network(), Addr: l.Addr(), Err: err}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.armed && !l.closed && !l.paused {
		if err := l.reregister(); err != nil {
			// Not in the netpoller any more: no later Accept would
			// ever wake. The next one says so and Serve ends.
			l.broken = err
		}
	}
	return c, nil
}

// arm registers the socket with EPOLLEXCLUSIVE the first time Accept runs
// (not while paused or closed), and returns a failed re-registration.
func (l *exclusiveListener) arm() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil || l.armed || l.closed || l.paused {
		return l.broken
	}
	if err := l.reregister(); err != nil {
		l.broken = err
		return err
	}
	l.armed = true
	return nil
}

// SetDeadline sets the deadline of the listener's Accept, as
// *net.TCPListener's does.
func (l *exclusiveListener) SetDeadline(t time.Time) error {
	d, ok := l.Listener.(deadliner)
	if !ok {
		return fmt.Errorf("%T has no deadline: %w", l.Listener, errors.ErrUnsupported)
	}
	return d.SetDeadline(t)
}

// interrupt takes the socket out of the runtime's epoll instance, so that
// the kernel wakes the other instances for new connections, and makes the
// Accept waiting now, and every later one until clear, return a timeout.
func (l *exclusiveListener) interrupt() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.armed && !l.closed && !l.paused {
		if err := l.unregister(); err != nil {
			return err
		}
	}
	l.paused = true
	return l.SetDeadline(pastDeadline)
}

// clear undoes interrupt: this process is back at the end of the queue.
func (l *exclusiveListener) clear() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.SetDeadline(time.Time{}); err != nil {
		return err
	}
	if l.closed || !l.paused {
		return nil
	}
	l.paused = false
	if !l.armed { // Go's own registration is still in place
		return nil
	}
	if err := l.reregister(); err != nil {
		l.broken = err
		return err
	}
	return nil
}

// interrupted recognises the error of an interrupted Accept.
func (l *exclusiveListener) interrupted(err error) bool {
	return deadlineInterrupter{}.interrupted(err)
}

// Close closes the listener; the socket is never registered again.
func (l *exclusiveListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return l.Listener.Close()
}

// descriptor returns ln's descriptor, which ln keeps owning.
func descriptor(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := raw.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// registration is one entry of an epoll instance, as /proc/PID/fdinfo
// shows it.
type registration struct {
	epfd   int
	events uint32
	data   uint64
}

// pollerRegistration finds the epoll instance of this process that watches
// fd (Go's netpoller: no other epoll instance holds a listener) and the
// events and data it registered fd with.
func pollerRegistration(fd int) (registration, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return registration{}, err
	}
	for _, e := range entries {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); link != "anon_inode:[eventpoll]" {
			continue
		}
		epfd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		info, err := os.ReadFile("/proc/self/fdinfo/" + e.Name())
		if err != nil {
			continue
		}
		if reg, ok, err := parseEpollInfo(string(info), fd); err != nil || ok {
			reg.epfd = epfd
			return reg, err
		}
	}
	return registration{}, fmt.Errorf("no epoll instance of this process watches descriptor %d", fd)
}

// parseEpollInfo reads fd's entry from an epoll instance's fdinfo, whose
// lines for watched descriptors read
// "tfd: FD events: HEX data: HEX pos:... ino:... sdev:..." (proc(5)).
func parseEpollInfo(info string, fd int) (registration, bool, error) {
	want := strconv.Itoa(fd)
	for line := range strings.Lines(info) {
		f := strings.Fields(line)
		if len(f) < 6 || f[0] != "tfd:" || f[1] != want {
			continue
		}
		if f[2] != "events:" || f[4] != "data:" {
			return registration{}, false, fmt.Errorf("epoll fdinfo: unexpected line %q", line)
		}
		events, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil {
			return registration{}, false, fmt.Errorf("epoll fdinfo: events in %q: %w", line, err)
		}
		data, err := strconv.ParseUint(f[5], 16, 64)
		if err != nil {
			return registration{}, false, fmt.Errorf("epoll fdinfo: data in %q: %w", line, err)
		}
		return registration{events: uint32(events), data: data}, true, nil
	}
	return registration{}, false, nil
}

// setEventData stores data as the 64-bit data of ev. x/sys spells that
// union as Fd and Pad, the two 32-bit halves of its memory on every Linux
// architecture (with padding before Fd where the kernel's struct is not
// packed).
func setEventData(ev *unix.EpollEvent, data uint64) {
	*(*uint64)(unsafe.Pointer(&ev.Fd)) = data
}
