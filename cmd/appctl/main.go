// Command appctl operates a herd of socket-activated instances under
// systemd: scale, status, top, reload, restart, start, stop and logs. See
// appctl --help, or the man page appctl(1).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/unitkit/unitkit/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
