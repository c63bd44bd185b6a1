// Command docgen writes appctl's man pages and shell completions, generated
// from its command definitions, into a directory:
//
//	go run ./internal/docgen -out dist/docs
//
// creates man1/appctl.1 (and a page per command) and completions/appctl.bash,
// completions/_appctl (zsh) and completions/appctl.fish; built for another
// service (-ldflags -X ...cli.defaultApp=shop) the command and files are
// called shopctl. make docs runs it; the packages ship its output.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/unitkit/unitkit/internal/cli"
)

func main() {
	out := flag.String("out", "dist/docs", "directory to write man1/ and completions/ into")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "docgen: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
}

// generate writes the man pages and completions under dir.
func generate(dir string) error {
	root := cli.NewRoot(io.Discard, io.Discard, os.LookupEnv)
	root.DisableAutoGenTag = true
	man := filepath.Join(dir, "man1")
	comp := filepath.Join(dir, "completions")
	for _, d := range []string{man, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	header := &doc.GenManHeader{Title: "APPCTL", Section: "1", Source: "unitkit", Manual: "unitkit manual", Date: sourceDate()}
	if err := doc.GenManTree(root, header, man); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	name := root.Name()
	for file, gen := range map[string]func(*cobra.Command, string) error{
		name + ".bash": func(c *cobra.Command, f string) error { return c.GenBashCompletionFileV2(f, true) },
		"_" + name:     func(c *cobra.Command, f string) error { return c.GenZshCompletionFile(f) },
		name + ".fish": func(c *cobra.Command, f string) error { return c.GenFishCompletionFile(f, true) },
	} {
		if err := gen(root, filepath.Join(comp, file)); err != nil {
			return fmt.Errorf("completion %s: %w", file, err)
		}
	}
	return nil
}

// sourceDate is $SOURCE_DATE_EPOCH when set, so that builds are
// reproducible, else now.
func sourceDate() *time.Time {
	t := time.Now().UTC()
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		var sec int64
		if _, err := fmt.Sscan(v, &sec); err == nil {
			t = time.Unix(sec, 0).UTC()
		}
	}
	return &t
}
