// Command demo boots a throwaway systemd (package sandbox) with unitkit
// installed in it and opens a shell inside, for trying unitkit on a machine
// where systemd is not PID 1: containers, CI runners, some VMs. Leaving the
// shell tears the sandbox down. Run it through make demo, as root.
//
// The shell reads commands from standard input, so the demo also runs
// non-interactively:
//
//	echo 'curl -s localhost:8080' | make demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/unitkit/unitkit/tests/install"
	"github.com/unitkit/unitkit/tests/sandbox"
)

func main() {
	bin := flag.String("bin", "bin", "directory with the built commands, installed into /usr/bin")
	units := flag.String("units", "unit", "directory with the unit files, installed into /usr/lib/systemd/system")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "demo: unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	code, err := run(*bin, *units)
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

// run boots the sandbox, installs unitkit, and runs the shell; it returns
// the shell's exit status.
func run(bin, units string) (int, error) {
	if err := sandbox.Prerequisites(); err != nil {
		return 0, fmt.Errorf("%w (try: sudo make demo)", err)
	}
	// The shell gets Ctrl-C; the demo only tears down when it exits.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	fmt.Fprintln(os.Stderr, "demo: booting systemd in a sandbox...")
	s, err := sandbox.Boot(context.Background(), "unitkit-demo")
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if err := install.Herd(context.Background(), s, bin, units); err != nil {
		return 0, err
	}
	fmt.Fprint(os.Stderr, banner)
	shell := s.Command(context.Background(), "/bin/bash", "--norc", "-i")
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice == 0 {
		shell = s.Command(context.Background(), "/bin/bash", "--norc", "-s")
	}
	shell.Env = append(shell.Env, `PS1=(unitkit-demo) \w# `, "TERM="+os.Getenv("TERM"))
	shell.Stdin, shell.Stdout, shell.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = shell.Run()
	fmt.Fprintln(os.Stderr, "demo: tearing the sandbox down")
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

const banner = `
You are in a sandbox running systemd as PID 1, with unitkit installed:
app.socket listens on port 8080 and starts app@1 on the first connection.

  curl -i localhost:8080          # answered by an instance (see X-Instance)
  appctl scale 4                  # four instances on the one socket
  appctl status                   # the herd in one table (appctl top: live)
  appctl reload                   # rolling restart, no request lost
  appctl logs -f                  # every instance's journal, interleaved
  kill -9 $(systemctl show -p MainPID --value app@2); appctl status

Leave the shell (exit or Ctrl-D) to tear the sandbox down.

`
