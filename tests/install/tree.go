package install

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"

	"github.com/unitkit/unitkit/tests/sandbox"
)

// Tree copies the directory src of the host to dst in the sandbox,
// following symbolic links (npm links local packages into node_modules),
// owned by root and readable by everyone: the instances run as a dynamic
// user.
func Tree(ctx context.Context, s *sandbox.Sandbox, src, dst string) error {
	var archive, stderr bytes.Buffer
	pack := exec.CommandContext(ctx, "tar", "-C", src, "--dereference", "--owner=0", "--group=0",
		"--mode=u+rwX,go+rX", "-cf", "-", ".")
	pack.Stdout, pack.Stderr = &archive, &stderr
	if err := pack.Run(); err != nil {
		return fmt.Errorf("pack %s: %w\n%s", src, err, stderr.String())
	}
	if _, err := s.Run(ctx, "mkdir", "-p", dst); err != nil {
		return err
	}
	unpack := s.Command(ctx, "tar", "-C", dst, "--no-same-permissions", "-xf", "-")
	unpack.Stdin = &archive
	if out, err := unpack.CombinedOutput(); err != nil {
		return fmt.Errorf("unpack into %s: %w\n%s", dst, err, out)
	}
	return nil
}
