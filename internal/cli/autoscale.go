package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/autoscale"
	"github.com/unitkit/unitkit/internal/herd"
)

func (o *options) autoscaleCmd() *cobra.Command {
	var (
		cpu    int
		window time.Duration
		queue  int
	)
	cmd := &cobra.Command{
		Use:   "autoscale [MIN-MAX | off]",
		Short: "Grow and shrink the herd with its load, between MIN and MAX instances",
		Long: `autoscale MIN-MAX turns on a controller that sizes the herd to its load, in
the manner of Kubernetes' HorizontalPodAutoscaler. Every second it measures
the CPU the instances use; when they use more than --cpu percent of one CPU
each on average, it grows the herd at once to
desired = ceil(current × observed / target); when they use less, it shrinks
the herd only to the largest size needed during the last --window. It
resizes through the same path as appctl scale (placement, the count kept
for boot, instances draining as they stop). A load within 10% of the target
changes nothing.

With MIN 0 the herd stops entirely when idle: the socket keeps listening,
and the first connection starts NAME@1 (it then runs at least --window).
With --queue N the herd also grows when more than N connections per
instance wait in the socket's accept queue.

The controller is NAME-autoscale@SETTING.service, the setting being its
instance name; it starts and stops with NAME.socket and comes back after a
reboot. It is not in the path of any request: if it stops or fails, the
herd keeps its size. Each resize is logged with its reason (appctl logs
--unit NAME-autoscale@*, or journalctl) and the last one is shown by
appctl status.

autoscale off stops the controller and leaves the herd at the size it has.
autoscale without an argument shows the setting and the last decision.
appctl scale while autoscaling is on lasts until the controller's next
decision.`,
		Example: "  appctl autoscale 1-4\n  appctl autoscale 0-8 --cpu 50 --window 5m\n  appctl autoscale 2-6 --queue 32\n  appctl autoscale off",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageError(fmt.Errorf("autoscale takes MIN-MAX or off, got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				if set := ownFlagsSet(cmd); len(set) > 0 {
					return usageError(fmt.Errorf("autoscale without MIN-MAX shows the setting and takes no options, got %s: give MIN-MAX with them, e.g. appctl autoscale 1-4 --cpu 50", strings.Join(set, " ")))
				}
				return o.withHerd(cmd, func(h *herd.Herd) error { return o.showAutoscale(cmd, h) })
			}
			if args[0] == autoscale.Off {
				if set := ownFlagsSet(cmd); len(set) > 0 {
					return usageError(fmt.Errorf("autoscale off takes no options, got %s", strings.Join(set, " ")))
				}
				return o.withHerd(cmd, func(h *herd.Herd) error {
					if err := h.StartAutoscaler(cmd.Context(), autoscale.Off); err != nil {
						return err
					}
					fmt.Fprintf(o.stdout, "autoscale off; the instances running keep running (appctl scale N to change them)\n")
					return nil
				})
			}
			spec, err := o.autoscaleSpec(args[0], cpu, window, queue)
			if err != nil {
				return err
			}
			return o.withHerd(cmd, func(h *herd.Herd) error {
				if err := h.StartAutoscaler(cmd.Context(), spec.String()); err != nil {
					return err
				}
				fmt.Fprintf(o.stdout, "autoscale on: %s (%s)\n", spec.Describe(), h.App().Autoscaler(spec.String()))
				return nil
			})
		},
	}
	cmd.Flags().Var(decimalFlag(&cpu, autoscale.DefaultCPU), "cpu", "target CPU use per instance, percent of one CPU (1-100)")
	cmd.Flags().DurationVar(&window, "window", autoscale.DefaultWindow, "how long fewer instances must have sufficed before the herd shrinks")
	cmd.Flags().Var(decimalFlag(&queue, 0), "queue", "also grow when more than this many connections per instance wait in the socket's queue (0: off)")
	return cmd
}

// autoscaleSpec builds and checks the setting from the command line.
func (o *options) autoscaleSpec(arg string, cpu int, window time.Duration, queue int) (autoscale.Spec, error) {
	lo, hi, err := autoscale.ParseRange(arg)
	if err != nil {
		return autoscale.Spec{}, usageError(err)
	}
	limit, err := o.limit()
	if err != nil {
		return autoscale.Spec{}, err
	}
	spec := autoscale.Spec{Min: lo, Max: hi, CPU: cpu, Window: window, Queue: queue}
	if err := spec.Validate(limit); err != nil {
		return autoscale.Spec{}, usageError(err)
	}
	return spec, nil
}

// showAutoscale prints the running controller's setting and last decision.
func (o *options) showAutoscale(cmd *cobra.Command, h *herd.Herd) error {
	spec, err := h.ActiveAutoscaler(cmd.Context())
	if err != nil {
		return err
	}
	if spec == "" {
		fmt.Fprintln(o.stdout, "autoscale: off")
		return nil
	}
	st, err := autoscale.ReadState(autoscale.StateDir(h.App().Name(), spec))
	if err != nil {
		return err
	}
	fmt.Fprintln(o.stdout, autoscaleLine(spec, st))
	return nil
}

// autoscaleLine is the autoscale line of appctl status.
func autoscaleLine(spec string, st *autoscale.State) string {
	if st == nil {
		return fmt.Sprintf("autoscale: %s (starting)", spec)
	}
	line := fmt.Sprintf("autoscale: %s; now %d running, CPU %.0f%% per instance, %d queued, desired %d",
		st.Setting, st.Running, st.CPUPercent, st.Queued, st.Desired)
	if st.Note != "" {
		line += "; " + st.Note
	}
	if d := st.Last; d != nil {
		line += fmt.Sprintf("\n  last resize %d→%d at %s: %s", d.From, d.To, d.Time.Local().Format(time.TimeOnly), d.Reason)
	}
	return line
}

// autoscalerCmd is run as root by NAME-autoscale@SETTING.service; operators
// use autoscale.
func (o *options) autoscalerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "autoscaler SETTING",
		Short:  "Size the herd to its load with SETTING, or turn autoscaling off (run by NAME-autoscale@SETTING.service)",
		Hidden: true,
		Args:   exactArgs(1, "give the setting, e.g. 1-4:cpu70:window1m0s, or off"),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, err := o.limit()
			if err != nil {
				return err
			}
			if args[0] == autoscale.Off {
				return o.withHerd(cmd, func(h *herd.Herd) error {
					return h.KeepAutoscaler(cmd.Context(), autoscale.Off, notifyReady, o.stderr)
				})
			}
			spec, err := autoscale.ParseSpec(args[0], limit)
			if err != nil {
				return usageError(err)
			}
			return o.withHerd(cmd, func(h *herd.Herd) error {
				if err := h.KeepAutoscaler(cmd.Context(), spec.String(), notifyReady, o.stderr); err != nil {
					return err
				}
				// The unit's RuntimeDirectory=, where appctl status looks.
				dir := autoscale.StateDir(h.App().Name(), spec.String())
				if spec.Queue == 0 {
					h.SkipAcceptQueue() // the controller looks every second
				}
				c := &autoscale.Controller{Spec: spec, Herd: h, Dir: dir, Log: o.stderr}
				return c.Run(cmd.Context())
			})
		},
	}
}
