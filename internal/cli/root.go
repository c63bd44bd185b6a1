// Package cli is appctl's command line: one file per verb, each a thin
// layer over package herd, which does the work over D-Bus.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/journal"
	"github.com/unitkit/unitkit/internal/remote"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// defaultApp is the service operated unless --app or APPCTL_APP say
// otherwise. Packages built for another service set it at link time
// (-X github.com/unitkit/unitkit/internal/cli.defaultApp=shop); the command
// is then called shopctl.
var defaultApp = herd.DefaultApp

// commandName is how the command calls itself: appctl for the default app.
func commandName() string { return defaultApp + "ctl" }

// defaultLimit is the largest instance count scale accepts unless told
// otherwise: generous, but a typo (scale 500) is caught.
const defaultLimit = 64

// env is how the CLI reads its environment (os.LookupEnv outside tests).
type env func(string) (string, bool)

// system is what appctl reaches beyond its own process: systemd over
// D-Bus, the journal, and the programs in $PATH (node, for import). Every
// command checks its whole command line before it reaches any of them, so
// that a usage error changes nothing; the tests replace them to hold the
// commands to that.
type system struct {
	connect  func(context.Context, herd.App) (*herd.Herd, error)     // herd.Connect
	stream   func(context.Context, io.Writer, journal.Options) error // journal.Stream
	lookPath func(string) (string, error)                            // exec.LookPath
	// run runs a command line on another host (remote.Dialer.Run).
	run func(ctx context.Context, h remote.Host, argv []string, stdout, stderr io.Writer) error
}

// hostSystem is the machine appctl runs on.
func hostSystem() system {
	return system{connect: herd.Connect, stream: journal.Stream, lookPath: exec.LookPath, run: remote.Dialer{}.Run}
}

// options are the flags every command shares, and what the commands
// reach.
type options struct {
	app       string
	hostFlags []string      // the -H values as given
	hosts     []remote.Host // parsed; none for this machine
	stdout    io.Writer
	stderr    io.Writer
	env       env
	sys       system
}

// Main runs appctl with args and returns its exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return execute(ctx, NewRoot(stdout, stderr, os.LookupEnv), args, stderr)
}

// execute runs the command tree root with args and turns its outcome into
// the exit status, with the message and hint on stderr.
func execute(ctx context.Context, root *cobra.Command, args []string, stderr io.Writer) int {
	root.SetArgs(quoteNegativeCounts(args))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var usage *herd.UsageError
	if errors.As(err, &usage) {
		fmt.Fprintf(stderr, "%s: %v\nTry '%s --help'.\n", commandName(), err, commandName())
		return exitUsage
	}
	fmt.Fprintf(stderr, "%s: %v\n", commandName(), err)
	if hint := hintFor(err); hint != "" {
		fmt.Fprintln(stderr, hint)
	}
	return exitFailure
}

// NewRoot builds the command tree. Documentation and completions are
// generated from it.
func NewRoot(stdout, stderr io.Writer, lookup env) *cobra.Command {
	return newRoot(&options{stdout: stdout, stderr: stderr, env: lookup, sys: hostSystem()})
}

// newRoot builds the command tree over o.
func newRoot(o *options) *cobra.Command {
	stdout, stderr := o.stdout, o.stderr
	root := &cobra.Command{
		Use:   commandName(),
		Short: "Operate a herd of socket-activated instances under systemd",
		Long: `appctl operates a service run by systemd as one listening socket (NAME.socket)
shared by instances of a template unit (NAME@1.service … NAME@N.service).
It talks to systemd over D-Bus and keeps no state of its own: scale, status,
top, reload, restart, start, stop, logs and metrics; import runs an app from
its PM2 ecosystem file.

It runs as root, or as a member of the operator group that the polkit rule
shipped with the service allows to manage that service's units and no other.

With -H [user@]host it operates the service on another machine instead,
as systemctl -H does: through ssh with your own keys, agent and
known_hosts (never a prompt), running that host's appctl. -H may be given
several times or as a comma-separated list: status then prints one table
with a HOST column (--json: an array, each entry with its "host"), logs
interleaves the hosts' records, and scale, reload, restart, start, stop,
metrics and autoscale run on each host in turn and stop at the first that
fails; top takes one host, and import, persist, autoscaler and backoff run
only on the host itself. Errors name their host.

Environment: APPCTL_APP names the service (default app), like --app;
APPCTL_MAX_INSTANCES is the default of scale --limit (64).

Exit status: 0 on success, 1 when an operation failed (an instance did not
become ready, permission denied, systemd unreachable, service not installed),
2 for a usage error (bad count, unknown instance, bad flag); a usage error
changes nothing.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validateApp(cmd, args); err != nil {
				return err
			}
			return o.validateHosts(cmd)
		},
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError(fmt.Errorf("unknown command %q", args[0]))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.PersistentFlags().StringArrayVarP(&o.hostFlags, "host", "H", nil, hostHelp)
	root.PersistentFlags().StringVar(&o.app, "app", "", "the service to operate (env APPCTL_APP, default \""+defaultApp+"\")")
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	root.AddCommand(o.scaleCmd(), o.statusCmd(), o.topCmd(), o.reloadCmd(), o.restartCmd(),
		o.startCmd(), o.stopCmd(), o.logsCmd(), o.metricsCmd(), o.importCmd(), o.autoscaleCmd(), o.persistCmd(), o.backoffCmd(), o.autoscalerCmd())
	return root
}

// validateApp settles which service is operated: --app, $APPCTL_APP or
// "app", checked against systemd's unit-name rules.
func (o *options) validateApp(cmd *cobra.Command, _ []string) error {
	if !cmd.Flags().Changed("app") {
		if v, ok := o.env("APPCTL_APP"); ok {
			o.app = v
		} else {
			o.app = defaultApp
		}
	}
	_, err := herd.NewApp(o.app)
	return err
}

// connect opens the connection to systemd for the chosen service.
func (o *options) connect(ctx context.Context) (*herd.Herd, error) {
	app, err := herd.NewApp(o.app)
	if err != nil {
		return nil, err
	}
	return o.sys.connect(ctx, app)
}

// withHerd connects to systemd for the chosen service, runs fn, and
// disconnects.
func (o *options) withHerd(cmd *cobra.Command, fn func(*herd.Herd) error) error {
	if len(o.hosts) > 0 {
		return o.onHosts(cmd)
	}
	h, err := o.connect(cmd.Context())
	if err != nil {
		return err
	}
	defer h.Close()
	return fn(h)
}

// withLockedHerd is withHerd holding the herd's lock (Herd.Lock) while fn
// runs: for the commands that start, stop, replace or count instances, so
// that they never run beside each other or the autoscaler.
func (o *options) withLockedHerd(cmd *cobra.Command, fn func(*herd.Herd) error) error {
	return o.withHerd(cmd, func(h *herd.Herd) error {
		unlock, err := h.Lock(cmd.Context())
		if err != nil {
			return err
		}
		defer unlock()
		return fn(h)
	})
}

// limit reads $APPCTL_MAX_INSTANCES, the default for scale --limit.
func (o *options) limit() (int, error) {
	v, ok := o.env("APPCTL_MAX_INSTANCES")
	if !ok || v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || !isDigits(v) || n < 1 || n > 10000 {
		return 0, usageError(fmt.Errorf("APPCTL_MAX_INSTANCES=%q: want a whole number from 1 to 10000, in digits only", v))
	}
	return n, nil
}

// usageError marks err as the operator's mistake (exit 2).
func usageError(err error) error {
	var u *herd.UsageError
	if errors.As(err, &u) {
		return err
	}
	return herd.Usage(err)
}

// hintFor says what to do about the common failures.
func hintFor(err error) string {
	switch {
	case errors.Is(err, herd.ErrPermission):
		return "hint: run as root, or as a member of the service's operator group (see the polkit rule shipped with it, e.g. /usr/share/polkit-1/rules.d/50-app-operators.rules)"
	case errors.Is(err, herd.ErrUnreachable):
		return "hint: appctl needs systemd as PID 1 and the system D-Bus; on a machine without them, try make demo"
	case errors.Is(err, remote.ErrPermission):
		return "hint: -H logs in with ssh as you would (keys, agent, ~/.ssh/config); check that ssh HOST true works without a prompt"
	case errors.Is(err, remote.ErrUnreachable):
		return "hint: -H needs ssh to reach the host, its key in your known_hosts, and the service's package there"
	case errors.Is(err, herd.ErrNotInstalled):
		return "hint: install the service's package, or choose another service with --app or APPCTL_APP"
	}
	return ""
}

// negativeCount matches an argument like -2, which would otherwise be
// taken for a flag.
var negativeCount = regexp.MustCompile(`^-[0-9]+$`)

// quoteNegativeCounts lets appctl scale -2 mean "two fewer" by ending flag
// parsing before the first argument after scale that looks like -N.
func quoteNegativeCounts(args []string) []string {
	for i, a := range args {
		if a != "scale" {
			continue
		}
		for j := i + 1; j < len(args); j++ {
			if args[j] == "--" {
				return args
			}
			if negativeCount.MatchString(args[j]) {
				out := append([]string{}, args[:j]...)
				out = append(out, "--")
				return append(out, args[j:]...)
			}
		}
		return args
	}
	return args
}
