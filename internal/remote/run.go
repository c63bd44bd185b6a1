package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
)

// ExitError reports a remote command that ran and exited with a status
// other than 0.
type ExitError struct {
	Host Host
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("%s: failed (exit status %d)", e.Host, e.Code) }

// Run runs argv on h through ssh, each word quoted for the remote shell,
// with its output on stdout and stderr. ssh's own failures (the host
// unreachable, the key refused) come back as ErrUnreachable or
// ErrPermission naming the host; a program not found there as
// ErrUnreachable saying so; any other failure as *ExitError.
func (d Dialer) Run(ctx context.Context, h Host, argv []string, stdout, stderr io.Writer) error {
	cmd := d.Command(ctx, h, Quote(argv)...)
	var tail lockedBuffer
	cmd.Stdout, cmd.Stderr = stdout, io.MultiWriter(stderr, &tail)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("%s: running ssh: %w", h, err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", h, ctx.Err())
	}
	switch ee.ExitCode() {
	case 255:
		return classify(h, lastLine(tail.String()), 255)
	case 127:
		return fmt.Errorf("%s: %w: %s is not installed there (install the service's package)", h, ErrUnreachable, argv[0])
	}
	return &ExitError{Host: h, Code: ee.ExitCode()}
}

// Quote quotes each word of argv for a POSIX shell: ssh joins its command
// words with spaces and the remote login shell splits them again.
func Quote(argv []string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return out
}
