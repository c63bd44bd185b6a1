package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// ErrUnreachable reports that ssh could not reach the host or run
// systemd-stdio-bridge there.
var ErrUnreachable = errors.New("host unreachable")

// ErrPermission reports that the host refused the operator's ssh key.
var ErrPermission = errors.New("permission denied")

// Bridge is the program that connects ssh's standard streams to the
// remote system bus.
const Bridge = "systemd-stdio-bridge"

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

// Systemd opens a go-systemd connection to the system manager on h. Like
// go-systemd's own constructors, it uses two D-Bus connections (calls and
// signals), so two ssh sessions.
func (d Dialer) Systemd(ctx context.Context, h Host) (*sddbus.Conn, error) {
	return sddbus.NewConnection(func() (*dbus.Conn, error) { return d.Bus(ctx, h) })
}

// Bus opens a D-Bus connection to the system bus of h, authenticated and
// registered as godbus's SystemBus does. The ssh session ends when the
// connection is closed or ctx is done.
func (d Dialer) Bus(ctx context.Context, h Host) (*dbus.Conn, error) {
	p, err := d.start(ctx, h)
	if err != nil {
		return nil, err
	}
	conn, err := dbus.NewConn(p, dbus.WithContext(ctx))
	if err == nil {
		err = conn.Auth(nil)
		if err == nil {
			err = conn.Hello()
		}
	}
	if err != nil {
		p.Close()
		return nil, p.explain(err)
	}
	return conn, nil
}

// start runs ssh with systemd-stdio-bridge on h.
func (d Dialer) start(ctx context.Context, h Host) (*process, error) {
	cmd := d.Command(ctx, h, Bridge)
	p := &process{host: h, cmd: cmd}
	cmd.Stderr = &p.stderr
	var err error
	if p.in, err = cmd.StdinPipe(); err != nil {
		return nil, fmt.Errorf("%s: ssh: %w", h, err)
	}
	if p.out, err = cmd.StdoutPipe(); err != nil {
		return nil, fmt.Errorf("%s: ssh: %w", h, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: running ssh: %w", h, err)
	}
	return p, nil
}

// process is a running ssh as the io.ReadWriteCloser a D-Bus connection
// runs over.
type process struct {
	host   Host
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    io.ReadCloser
	stderr lockedBuffer
	once   sync.Once
	err    error // of Wait
}

func (p *process) Read(b []byte) (int, error)  { return p.out.Read(b) }
func (p *process) Write(b []byte) (int, error) { return p.in.Write(b) }

// Close ends the session: end of input first, which ends the bridge and
// ssh, then a kill if ssh is still there after WaitDelay.
func (p *process) Close() error {
	p.once.Do(func() {
		p.in.Close()
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case p.err = <-done:
		case <-time.After(2 * time.Second):
			_ = p.cmd.Process.Kill()
			p.err = <-done
		}
	})
	return nil
}

// explain turns the failure of a connection's set-up into an error that
// names the host and says why, from what ssh wrote.
func (p *process) explain(err error) error {
	p.Close()
	code := 0
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		code = ee.ExitCode()
	}
	msg := lastLine(p.stderr.String())
	if code == 127 || strings.Contains(strings.ToLower(msg), "not found") {
		return fmt.Errorf("%s: %w: %s is not installed there (it comes with systemd): %s", p.host, ErrUnreachable, Bridge, msg)
	}
	if code == 255 || msg != "" {
		return classify(p.host, msg, code)
	}
	return fmt.Errorf("%s: %w: D-Bus over ssh: %v", p.host, ErrUnreachable, err)
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
