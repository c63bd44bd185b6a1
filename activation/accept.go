package activation

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Accept modes ($ACCEPT_MODE), for the sockets systemd passes.
const (
	// AcceptShared uses Go's own accept loop: every instance's netpoller
	// wakes for every new connection and all but one find nothing. The
	// default.
	AcceptShared = "shared"
	// AcceptExclusive waits for connections with EPOLLEXCLUSIVE on a
	// thread of its own, so that the kernel wakes one idle instance per
	// new connection instead of all of them, and an instance that has just
	// accepted queues behind the others: connections spread evenly. The
	// waiting thread keeps the process's Go scheduler slot (P) until the
	// runtime's monitor takes it back, 20µs to 10ms later; with one CPU
	// per instance nothing else runs meanwhile, which costs throughput and
	// tail latency (docs/decisions.md has the measurements).
	AcceptExclusive = "exclusive"
)

// exclusiveListener accepts from a listening socket shared with other
// processes, waking only when the kernel picks this process.
//
// Go's netpoller registers a listener edge-triggered and without
// EPOLLEXCLUSIVE, so every process holding a shared socket wakes for every
// connection (a thundering herd). This listener keeps the socket out of
// Go's netpoller and waits in epoll_wait(2) on a private epoll instance
// where the socket is registered with EPOLLEXCLUSIVE. The kernel then wakes
// only the first process in the socket's wait queue that is waiting, and
// skips a process that is busy (not waiting). Before it waits again after
// accepting, the listener registers the socket anew, which moves this
// process to the end of the queue: idle instances take new connections in
// turn, as nginx re-adds its listening sockets for the same reason.
//
// Accepted connections are ordinary net.Conns in Go's netpoller. Close
// wakes a waiting Accept through an eventfd and closes only this process's
// descriptor: the socket and its queue stay with systemd and the other
// instances. interrupt wakes it the same way, so that an instance can stop
// accepting (see gatedListener): a process not waiting in epoll_wait is
// skipped by the kernel, and its share goes to the others.
type exclusiveListener struct {
	fd   int // our own duplicate of the listening socket
	epfd int // epoll instance with fd (EPOLLEXCLUSIVE) and evfd
	evfd int // eventfd written by Close and interrupt to wake a waiting Accept
	addr net.Addr

	closed       atomic.Bool
	closeOnce    sync.Once
	interrupting atomic.Bool // Accept returns errAcceptInterrupted until clear
	wakeMu       sync.Mutex  // held while evfd is written or closed

	mu       sync.Mutex // held by Accept while it uses the descriptors
	accepted bool       // accepted since the socket was last registered
	events   [2]unix.EpollEvent
}

// newExclusiveListener takes a duplicate of the listening socket fd and
// sets up the epoll instance. The caller keeps fd.
func newExclusiveListener(fd int, addr net.Addr) (_ *exclusiveListener, err error) {
	l := &exclusiveListener{fd: -1, epfd: -1, evfd: -1, addr: addr}
	defer func() {
		if err != nil {
			l.closeFDs()
		}
	}()
	if l.fd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3); err != nil {
		return nil, fmt.Errorf("duplicate the listening socket: %w", err)
	}
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.evfd)}
	if err = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.evfd, &ev); err != nil {
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	if err = l.register(); err != nil {
		return nil, err
	}
	return l, nil
}

// register adds the socket to the epoll instance, at the end of the
// socket's queue of exclusive waiters.
func (l *exclusiveListener) register() error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(l.fd)}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, l.fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl EPOLLEXCLUSIVE: %w", err)
	}
	return nil
}

// requeue moves this process to the end of the socket's queue of waiters
// (EPOLL_CTL_MOD is not allowed with EPOLLEXCLUSIVE, hence DEL and ADD).
func (l *exclusiveListener) requeue() error {
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.fd, nil); err != nil {
		return fmt.Errorf("epoll_ctl del: %w", err)
	}
	return l.register()
}

// errAcceptInterrupted is what Accept returns between interrupt and clear.
var errAcceptInterrupted = errors.New("accept interrupted")

// Accept waits for and returns the next connection. It returns an error
// wrapping net.ErrClosed once Close was called, and one wrapping
// errAcceptInterrupted between interrupt and clear.
func (l *exclusiveListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.closed.Load() {
			return nil, l.opError(net.ErrClosed)
		}
		if l.interrupting.Load() {
			return nil, l.opError(errAcceptInterrupted)
		}
		// A blocking socket: os.NewFile then leaves it out of Go's
		// netpoller, and net.FileConn makes its duplicate non-blocking.
		nfd, _, err := unix.Accept4(l.fd, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			l.accepted = true
			return l.conn(nfd)
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		case !errors.Is(err, unix.EAGAIN):
			return nil, l.opError(os.NewSyscallError("accept4", err))
		}
		if l.accepted {
			if err := l.requeue(); err != nil {
				return nil, l.opError(err)
			}
			l.accepted = false
		}
		n, err := unix.EpollWait(l.epfd, l.events[:], -1)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return nil, l.opError(os.NewSyscallError("epoll_wait", err))
		}
		l.drainWake(l.events[:max(n, 0)])
	}
}

// drainWake reads the eventfd when it is among events, so that a wake-up
// seen once does not wake every later epoll_wait too (the loop looks at
// closed and interrupted before it waits again).
func (l *exclusiveListener) drainWake(events []unix.EpollEvent) {
	for _, ev := range events {
		if ev.Fd == int32(l.evfd) {
			var count [8]byte
			_, _ = unix.Read(l.evfd, count[:]) // EAGAIN: drained already
			return
		}
	}
}

// wake makes a waiting epoll_wait return.
func (l *exclusiveListener) wake() error {
	l.wakeMu.Lock()
	defer l.wakeMu.Unlock()
	if l.evfd < 0 {
		return l.opError(net.ErrClosed)
	}
	var one [8]byte
	one[0] = 1 // any non-zero 8-byte count wakes epoll_wait
	if _, err := unix.Write(l.evfd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return os.NewSyscallError("write eventfd", err)
	}
	return nil
}

// interrupt makes the Accept waiting now, and every later one until
// clear, return an error wrapping errAcceptInterrupted.
func (l *exclusiveListener) interrupt() error {
	l.interrupting.Store(true)
	return l.wake()
}

// clear undoes interrupt.
func (l *exclusiveListener) clear() error {
	l.interrupting.Store(false)
	return nil
}

// interrupted recognises the error of an interrupted Accept.
func (l *exclusiveListener) interrupted(err error) bool {
	return errors.Is(err, errAcceptInterrupted)
}

// conn turns an accepted descriptor into a net.Conn in Go's netpoller.
func (l *exclusiveListener) conn(nfd int) (net.Conn, error) {
	f := os.NewFile(uintptr(nfd), "")
	c, err := net.FileConn(f) // a non-blocking duplicate
	f.Close()
	if err != nil {
		return nil, l.opError(err)
	}
	return c, nil
}

// opError wraps err the way net's listeners do, so that http.Server treats
// temporary failures (EMFILE, ENFILE, …) as such and retries.
func (l *exclusiveListener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: l.addr.Network(), Addr: l.addr, Err: err}
}

// Close stops Accept and closes this process's descriptors of the socket.
func (l *exclusiveListener) Close() error {
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		_ = l.wake()
		l.mu.Lock() // wait for a running Accept to return
		defer l.mu.Unlock()
		l.closeFDs()
	})
	return nil
}

func (l *exclusiveListener) closeFDs() {
	l.wakeMu.Lock()
	defer l.wakeMu.Unlock()
	for _, fd := range []*int{&l.fd, &l.epfd, &l.evfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// Addr is the socket's local address.
func (l *exclusiveListener) Addr() net.Addr { return l.addr }
