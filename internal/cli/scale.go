package cli

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/herd"
)

func (o *options) scaleCmd() *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "scale N|+N|-N|max",
		Short: "Run exactly N instances, and start that many at boot",
		Long: `scale starts or stops instances so that exactly N run: NAME@1 … NAME@N.
New instances start together and count once systemd reports them ready
(READY=1); if one fails, the ones just started are stopped again and nothing
changes. Instances above N stop one at a time, highest first, each draining
its requests. The count is recorded so that it comes back after a reboot.

N may be absolute, a change (+2, -1), or max (one per CPU available). With 0,
the socket keeps listening and its next connection starts NAME@1.`,
		Example: "  appctl scale 4\n  appctl scale +2\n  appctl scale -1\n  appctl scale max",
		Args:    exactArgs(1, "give the number of instances, e.g. appctl scale 4"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := parseCount(args[0])
			if err != nil {
				return usageError(err)
			}
			if !cmd.Flags().Changed("limit") {
				if limit, err = o.limit(); err != nil {
					return err
				}
			} else if limit < 1 {
				return usageError(fmt.Errorf("--limit %d: want at least 1", limit))
			}
			if !c.relative {
				// Known before systemd is asked how many run.
				if _, err := c.resolve(0, runtime.NumCPU(), limit); err != nil {
					return usageError(err)
				}
			}
			want := func(running int) (int, error) {
				n, err := c.resolve(running, runtime.NumCPU(), limit)
				if err != nil {
					return 0, usageError(err)
				}
				return n, nil
			}
			return o.withLockedHerd(cmd, func(h *herd.Herd) error { return o.scale(cmd, h, want) })
		},
	}
	cmd.Flags().Var(decimalFlag(&limit, defaultLimit), "limit", "refuse to scale above this many instances (env APPCTL_MAX_INSTANCES)")
	return cmd
}

// scale resizes the herd and warns if the autoscaler will resize it
// again; the caller holds the herd's lock.
func (o *options) scale(cmd *cobra.Command, h *herd.Herd, want func(int) (int, error)) error {
	if err := h.Scale(cmd.Context(), want, o.stdout); err != nil {
		return err
	}
	if spec, err := h.ActiveAutoscaler(cmd.Context()); err == nil && spec != "" {
		fmt.Fprintf(o.stderr, "note: autoscaling is on (%s) and resizes the herd again at its next look; appctl autoscale off keeps this count\n", spec)
	}
	return nil
}

// exactArgs is cobra.ExactArgs with a usage error that says what to do.
func exactArgs(n int, hint string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError(fmt.Errorf("%s takes %d argument(s), got %d: %s", cmd.Name(), n, len(args), hint))
		}
		return nil
	}
}

// noArgs rejects positional arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(fmt.Errorf("%s takes no arguments, got %q", cmd.Name(), args[0]))
	}
	return nil
}
