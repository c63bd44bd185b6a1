package herd

import (
	"context"
	"fmt"
	"io"
)

// persist records n as the instance count by starting the one-shot unit
// NAME-persist@n.service, which runs Persist as root. Going through a unit
// lets an operator whom polkit allows to manage this service's units, and
// nothing else, change what starts at boot: enabling unit files directly
// would need a right that covers every unit on the machine.
func (h *Herd) persist(ctx context.Context, n int, out io.Writer) error {
	if _, err := h.start(ctx, h.app.Persist(n)); err != nil {
		return fmt.Errorf("record %d instances for boot (see journalctl -u %s): %w", n, h.app.Persist(n), err)
	}
	switch n {
	case 0:
		fmt.Fprintf(out, "%s: no instance starts at boot\n", h.app.Target())
	case 1:
		fmt.Fprintf(out, "%s: %s starts at boot\n", h.app.Target(), h.app.Instance(1))
	default:
		fmt.Fprintf(out, "%s: instances 1-%d start at boot\n", h.app.Target(), n)
	}
	return nil
}

// Persist makes instances 1 … n, and no other, start at boot: it enables
// them (and the socket and target), disables the other enabled instances,
// places each on its share of the CPUs (mode PlaceCPUs) or on all of them
// (PlaceNone), and reloads systemd so the target's dependencies and the
// placement drop-ins are current. It is run as root by
// NAME-persist@.service.
func (h *Herd) Persist(ctx context.Context, n int, mode string) error {
	if err := h.place(ctx, n, mode); err != nil {
		return err
	}
	wants, err := h.targetWants(ctx)
	if err != nil {
		return err
	}
	enable := []string{h.app.Socket(), h.app.Target()}
	for i := 1; i <= n; i++ {
		enable = append(enable, h.app.Instance(i))
	}
	if _, _, err := h.conn.EnableUnitFilesContext(ctx, enable, false, true); err != nil {
		return classify(fmt.Errorf("enable %v: %w", enable, err))
	}
	var disable []string
	for _, u := range wants {
		if num := h.app.number(u); num == 0 || num > n {
			disable = append(disable, u)
		}
	}
	if len(disable) > 0 {
		if _, err := h.conn.DisableUnitFilesContext(ctx, disable, false); err != nil {
			return classify(fmt.Errorf("disable %v: %w", disable, err))
		}
	}
	if err := h.conn.ReloadContext(ctx); err != nil {
		return classify(fmt.Errorf("reload systemd: %w", err))
	}
	return nil
}
