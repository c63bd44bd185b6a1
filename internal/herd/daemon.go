package herd

import (
	"context"
	"fmt"
)

// DaemonReload makes systemd read the unit files and drop-ins again, as
// systemctl daemon-reload does. Running units keep what they were started
// with until they restart.
func (h *Herd) DaemonReload(ctx context.Context) error {
	if err := h.conn.ReloadContext(ctx); err != nil {
		return classify(fmt.Errorf("reload systemd: %w", err))
	}
	return nil
}
