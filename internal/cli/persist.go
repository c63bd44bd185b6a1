package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/herd"
)

// persistCmd is run as root by NAME-persist@N.service (see herd.Persist);
// operators use scale.
func (o *options) persistCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "persist N",
		Short:  "Make instances 1 to N, and no other, start at boot, each on its share of the CPUs (run by NAME-persist@N.service)",
		Hidden: true,
		Args:   exactArgs(1, "give the number of instances"),
		RunE: func(cmd *cobra.Command, args []string) error {
			limit, err := o.limit()
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 0 || n > limit || strconv.Itoa(n) != args[0] {
				return usageError(fmt.Errorf("invalid count %q: want a whole number from 0 to %d", args[0], limit))
			}
			mode, _ := o.env("APPCTL_PLACEMENT")
			switch mode {
			case "":
				mode = herd.PlaceCPUs
			case herd.PlaceCPUs, herd.PlaceNone:
			default:
				return usageError(fmt.Errorf("APPCTL_PLACEMENT=%q: want cpus or none", mode))
			}
			return o.withHerd(cmd, func(h *herd.Herd) error { return h.Persist(cmd.Context(), n, mode, notifyReady, o.stderr) })
		},
	}
}

// notifyReady tells systemd the count is recorded: NAME-persist@.service is
// Type=notify, so appctl scale stops waiting here, before any reload.
func notifyReady() error {
	sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
	if err == nil && !sent {
		return errors.New("NOTIFY_SOCKET is not set: appctl persist is run by systemd as NAME-persist@N.service")
	}
	return err
}
