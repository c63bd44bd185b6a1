package cli

import (
	"github.com/spf13/cobra"
)

func (o *options) logsCmd() *cobra.Command {
	return &cobra.Command{Use: "logs", Short: "Show the journal of the socket and every instance", Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return nil }}
}
