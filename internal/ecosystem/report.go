package ecosystem

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Report writes what the plan maps, adds, grants and leaves out, each
// with its reason, and the notes.
func (p *Plan) Report(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "App %s from %s, as %s@.service instances:\n", p.App, p.Source, p.Service)
	section(tw, "\nMapped (PM2 field → unit setting):\n", p.Mapped, true)
	section(tw, "\nAdded for the app to run as an instance:\n", p.Added, false)
	section(tw, "\nSandbox grants (beyond "+p.Service+"@.service's sandbox):\n", p.Grants, false)
	if len(p.Unmapped) > 0 {
		fmt.Fprint(tw, "\nNot mapped:\n")
		for _, u := range p.Unmapped {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", u.Field, u.Value, u.Reason)
		}
	}
	if len(p.Notes) > 0 {
		fmt.Fprint(tw, "\nNotes:\n")
		for _, n := range p.Notes {
			fmt.Fprintf(tw, "  - %s\n", n)
		}
	}
	return tw.Flush()
}

// section writes settings as "field value → lines (note)".
func section(w io.Writer, title string, settings []Setting, withField bool) {
	if len(settings) == 0 {
		return
	}
	fmt.Fprint(w, title)
	for _, s := range settings {
		target := s.Action
		if len(s.Lines) > 0 {
			target = strings.Join(withoutResets(s.Lines), "; ")
		}
		if target == "" {
			target = "(nothing to write)"
		}
		if withField {
			fmt.Fprintf(w, "  %s\t%s\t→ %s", s.Field, s.Value, target)
		} else {
			label := s.Field
			if s.Value != "" {
				label += " " + s.Value
			}
			fmt.Fprintf(w, "  %s", target)
			if label != "" {
				fmt.Fprintf(w, " (%s)", label)
			}
		}
		if s.Note != "" {
			fmt.Fprintf(w, ": %s", s.Note)
		}
		fmt.Fprintln(w)
	}
}

// withoutResets drops the empty assignments (ExecStart=) that reset a
// list before the value: the report shows the value.
func withoutResets(lines []string) []string {
	var out []string
	for _, l := range lines {
		if !strings.HasSuffix(l, "=") {
			out = append(out, l)
		}
	}
	return out
}

// WriteFiles writes the drop-ins' paths and contents, for --dry-run.
func (p *Plan) WriteFiles(w io.Writer) error {
	for _, f := range p.Files {
		if _, err := fmt.Fprintf(w, "\n==> %s <==\n%s", f.Path, f.Content); err != nil {
			return err
		}
	}
	return nil
}
