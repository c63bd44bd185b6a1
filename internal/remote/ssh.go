package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ErrUnreachable reports that ssh could not reach the host, or that the
// program to run is not installed there.
var ErrUnreachable = errors.New("host unreachable")

// ErrPermission reports that the host refused the operator's ssh key.
var ErrPermission = errors.New("permission denied")

// Dialer opens connections to hosts through ssh.
type Dialer struct {
	// SSH is the ssh program and any options of the caller's own, e.g.
	// {"/usr/bin/ssh"}; the destination and command are appended after
	// "--".
	SSH []string
}

// options are always given to ssh: no X11 or agent forwarding, no
// terminal, never a prompt (a password or an unknown host key fails with
// ssh's message instead of hanging), and a bounded connect time.
var options = []string{"-xaT", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"}

// Command returns the ssh command that runs remote (words joined with
// spaces by ssh and split again by the remote shell: callers quote) on h.
func (d Dialer) Command(ctx context.Context, h Host, remote ...string) *exec.Cmd {
	ssh := d.SSH
	if len(ssh) == 0 {
		ssh = []string{"ssh"}
	}
	argv := append(append(append([]string{}, ssh[1:]...), options...), "--", h.String())
	cmd := exec.CommandContext(ctx, ssh[0], append(argv, remote...)...)
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// classify turns ssh's last message (it exits with 255 when it fails)
// into an error naming the host.
func classify(h Host, msg string, code int) error {
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "permission denied"):
		return fmt.Errorf("%s: %w: %s (is your key in the remote ~/.ssh/authorized_keys?)", h, ErrPermission, msg)
	case strings.Contains(low, "host key verification failed"):
		return fmt.Errorf("%s: %w: %s (connect once with ssh to check and record its key in known_hosts)", h, ErrUnreachable, msg)
	}
	return fmt.Errorf("%s: %w: %s", h, ErrUnreachable, nonEmpty(msg, fmt.Sprintf("ssh failed (exit status %d)", code)))
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// lastLine is the last line of s that is not blank, without control
// characters.
func lastLine(s string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return strings.Map(func(r rune) rune {
				if r < 0x20 || r == 0x7f {
					return -1
				}
				return r
			}, l)
		}
	}
	return ""
}

// lockedBuffer is ssh's standard error, written by exec's copier and read
// on failure; it keeps the last 4 KiB.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if n := b.buf.Len(); n > 4096 {
		b.buf.Next(n - 4096)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
