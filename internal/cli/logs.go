package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/unitkit/unitkit/internal/herd"
	"github.com/unitkit/unitkit/internal/journal"
)

func (o *options) logsCmd() *cobra.Command {
	var (
		jo       journal.Options
		instance string
		output   string
	)
	cmd := &cobra.Command{
		Use:   "logs",
		Short: "Show the journal of the socket and every instance, interleaved",
		Long: `logs shows the journal records of the socket and of every instance in time
order, each line prefixed with its instance, in colour on a terminal. With -f
it keeps following, including instances started later. With -o json each
record is a JSON object (the schema is in the man page and stays compatible).

Reading the system journal needs root or membership in the systemd-journal
group.`,
		Example: "  appctl logs -n 100\n  appctl logs -f -i 3\n  appctl logs --since -1h -o json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			app, err := herd.NewApp(o.app)
			if err != nil {
				return err
			}
			if jo.Lines < 0 {
				return usageError(fmt.Errorf("-n %d: want 0 or more", jo.Lines))
			}
			switch output {
			case "text":
			case "json":
				jo.JSON = true
			default:
				return usageError(fmt.Errorf("-o %q: want text or json", output))
			}
			if cmd.Flags().Changed("since") && strings.TrimSpace(jo.Since) == "" {
				return usageError(fmt.Errorf("--since is empty: give a time such as -1h, today or 2026-01-31 12:00"))
			}
			if instance != "" {
				unit, err := app.ResolveInstance(instance)
				if err != nil {
					return err
				}
				jo.Instance = strings.TrimSuffix(strings.TrimPrefix(unit, app.Name()+"@"), ".service")
			}
			if len(o.hosts) > 0 {
				return o.onHosts(cmd)
			}
			jo.App, jo.Stderr = app.Name(), o.stderr
			f, isFile := o.stdout.(*os.File)
			jo.Color = !jo.JSON && isFile && term.IsTerminal(int(f.Fd()))
			return o.sys.stream(cmd.Context(), o.stdout, jo)
		},
	}
	cmd.Flags().BoolVarP(&jo.Follow, "follow", "f", false, "keep showing new records")
	cmd.Flags().VarP(decimalFlag(&jo.Lines, 50), "lines", "n", "show this many of the latest records first")
	cmd.Flags().StringVarP(&instance, "instance", "i", "", "only this instance (e.g. 3), without the socket's records")
	cmd.Flags().StringVar(&jo.Since, "since", "", "only records since this time (as journalctl --since)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}
