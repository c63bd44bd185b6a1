package activation

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"

	sdactivation "github.com/coreos/go-systemd/v22/activation"
)

// DefaultAddr is where an instance listens when it was not socket-activated
// and neither an option nor $LISTEN_ADDR or $PORT names an address.
const DefaultAddr = ":8080"

// Listeners returns the listening sockets this process should serve.
//
// Under socket activation they are the descriptors systemd passed
// ($LISTEN_FDS, $LISTEN_PID): the ones named name ($LISTEN_FDNAMES, set by
// FileDescriptorName= and defaulting to the socket unit's name, e.g.
// "app.socket"), or all of them when name is empty and they share one name.
// A socket unit with several ListenStream= lines passes several descriptors
// under one name; all are returned.
//
// Otherwise Listeners listens on addr, or on $LISTEN_ADDR, $PORT (all
// interfaces) or DefaultAddr, in that order, so the same binary runs in a
// terminal, a container or Kubernetes. It reports whether the listeners came
// from systemd.
//
// The passed descriptors can be taken once: Listeners clears the LISTEN_*
// variables so that child processes do not see them. It puts them in
// non-blocking mode, which every process sharing a socket must agree on;
// the service unit should say NonBlocking=yes so that systemd does not clear
// the flag whenever it starts another instance.
func Listeners(ctx context.Context, name, addr string) ([]net.Listener, bool, error) {
	le, err := parseListenEnv(osEnv, os.Getpid())
	if err != nil {
		return nil, false, fmt.Errorf("listeners: %w", err)
	}
	if le.fds == 0 {
		ln, err := listenOwn(ctx, addr)
		if err != nil {
			return nil, false, err
		}
		return []net.Listener{ln}, false, nil
	}
	// Before os.NewFile sees them: a descriptor it finds blocking is one
	// it later flips back to blocking (in net.FileListener), and the flag
	// is shared with every other instance holding the socket.
	for fd := 3; fd < 3+le.fds; fd++ {
		_ = syscall.SetNonblock(fd, true)
	}
	mode, err := parseAcceptMode(osEnv)
	if err != nil {
		return nil, true, fmt.Errorf("listeners: %w", err)
	}
	files := sdactivation.Files(true)
	lns, err := pickListeners(files, name, mode)
	for _, f := range files {
		f.Close() // net.FileListener holds its own duplicate
	}
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return nil, true, fmt.Errorf("listeners: %w", err)
	}
	return lns, true, nil
}

func listenOwn(ctx context.Context, addr string) (net.Listener, error) {
	if addr == "" {
		var err error
		if addr, err = parseListenAddr(osEnv, DefaultAddr); err != nil {
			return nil, fmt.Errorf("listeners: %w", err)
		}
	} else if err := validateAddr(addr); err != nil {
		return nil, fmt.Errorf("listeners: address %q: %w", addr, err)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listeners: %w", err)
	}
	return ln, nil
}

// pickListeners turns the passed files named name (see Listeners) into
// listeners that accept the way mode says.
func pickListeners(files []*os.File, name, mode string) ([]net.Listener, error) {
	var names []string
	for _, f := range files {
		if !slices.Contains(names, f.Name()) {
			names = append(names, f.Name())
		}
	}
	if name == "" {
		if len(names) != 1 {
			return nil, fmt.Errorf("systemd passed sockets named %q; choose one by name (FileDescriptorName= in the socket unit)", names)
		}
		name = names[0]
	}
	var lns []net.Listener
	for _, f := range files {
		if f.Name() != name {
			continue
		}
		ln, err := net.FileListener(f)
		if err != nil {
			return lns, fmt.Errorf("socket %q is not a listening stream socket: %w", name, err)
		}
		if mode == AcceptExclusive {
			ln = exclusive(ln)
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		return nil, fmt.Errorf("no socket named %q among %q; set FileDescriptorName= in the socket unit or pick another name", name, names)
	}
	return lns, nil
}

// exclusive returns an exclusiveListener on ln, or ln itself, accepting
// as Go does, where the kernel lacks EPOLLEXCLUSIVE (before Linux 4.5) or
// /proc does not show Go's registration.
func exclusive(ln net.Listener) net.Listener {
	el, err := newExclusiveListener(ln)
	if err != nil {
		return ln
	}
	return el
}
