package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/herd"
)

func (o *options) reloadCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Restart every instance in turn without losing capacity or requests",
		Long: `reload starts one extra (surge) instance, then restarts the instances one at a
time, each time waiting until the new process reports ready, and finally
stops the surge instance. Every instance drains its requests before it
exits, so clients see no failed request.

It stops at the first instance that does not become ready within --timeout;
the instances not reached yet keep serving what they ran before.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if timeout <= 0 {
				return usageError(fmt.Errorf("--timeout %s: want a positive duration, e.g. 90s", timeout))
			}
			return o.withLockedHerd(cmd, func(h *herd.Herd) error {
				return h.Reload(cmd.Context(), timeout, o.stdout)
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 90*time.Second, "how long each instance may take to become ready")
	return cmd
}

func (o *options) restartCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restart [INSTANCE...]",
		Short: "Restart instances at once (all running ones by default)",
		Long: `restart restarts the given instances (e.g. 2 or app@2), or every running one,
all at the same time, and waits until each is ready again. Connections wait in
the socket's queue meanwhile; use reload to restart without that pause.`,
		Example: "  appctl restart\n  appctl restart 2 3",
		RunE: func(cmd *cobra.Command, args []string) error {
			app, err := herd.NewApp(o.app)
			if err != nil {
				return err
			}
			for _, ref := range args {
				if _, err := app.ResolveInstance(ref); err != nil {
					return err
				}
			}
			return o.withHerd(cmd, func(h *herd.Herd) error { return h.Restart(cmd.Context(), args, o.stdout) })
		},
	}
}

func (o *options) startCmd() *cobra.Command {
	var noBlock bool
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start the socket and the instances that start at boot",
		Long: `start starts the socket, then the instances enabled for boot (the count of
the last appctl scale), waiting until each is ready. Only those start, even
when systemd has not yet reloaded after a scale that disabled others.

With --no-block it only queues the starts and returns; appctl status shows
how they went. The package's install scripts start the service this way.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withLockedHerd(cmd, func(h *herd.Herd) error {
				return h.Start(cmd.Context(), !noBlock, o.stdout)
			})
		},
	}
	cmd.Flags().BoolVar(&noBlock, "no-block", false, "queue the starts and return without waiting until the instances are ready")
	return cmd
}

func (o *options) stopCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stop",
		Short: "Stop every instance (each drains) and then the socket",
		Long: `stop stops the whole service: every instance drains its requests and exits,
then the socket closes and new connections are refused. What starts at boot
is unchanged; appctl start brings the service back.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.withLockedHerd(cmd, func(h *herd.Herd) error {
				return h.Stop(cmd.Context(), o.stdout)
			})
		},
	}
}
