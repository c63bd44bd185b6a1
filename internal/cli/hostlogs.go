package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/remote"
)

// hostRecord is one journal record of logs -o json (internal/journal's
// schema), with the host it came from.
type hostRecord struct {
	host   string
	time   time.Time
	fields map[string]any
}

// logsOnHosts reads logs -o json from every host at once and interleaves
// the records: in time order, or as they arrive when following. Each
// record says its host (a "host" key in JSON, a column in text).
func (o *options) logsOnHosts(cmd *cobra.Command) error {
	follow, _ := cmd.Flags().GetBool("follow")
	output, _ := cmd.Flags().GetString("output")
	argv := o.remoteArgs(cmd, "--output=json")
	var (
		mu      sync.Mutex
		records []hostRecord
		errs    = make([]error, len(o.hosts))
		wg      sync.WaitGroup
	)
	emit := func(r hostRecord) error {
		mu.Lock()
		defer mu.Unlock()
		if !follow {
			records = append(records, r)
			return nil
		}
		return writeRecord(o.stdout, r, output == "json")
	}
	stderr := &lockedWriter{w: o.stderr} // the hosts' lines, one at a time
	for i, h := range o.hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = o.hostRecords(cmd, h, argv, stderr, emit)
		}()
	}
	wg.Wait()
	if cmd.Context().Err() != nil {
		return nil // Ctrl-C while following, as without -H
	}
	sort.SliceStable(records, func(i, j int) bool { return records[i].time.Before(records[j].time) })
	for _, r := range records {
		if err := writeRecord(o.stdout, r, output == "json"); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// hostRecords runs logs on h, passes each record to emit and writes h's
// standard error, prefixed with its name, to stderr.
func (o *options) hostRecords(cmd *cobra.Command, h remote.Host, argv []string, stderr io.Writer, emit func(hostRecord) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		var err error
		for sc.Scan() {
			r := hostRecord{host: h.String()}
			if json.Unmarshal(sc.Bytes(), &r.fields) != nil {
				continue
			}
			s, _ := r.fields["time"].(string)
			r.time, _ = time.Parse(time.RFC3339Nano, s)
			if err == nil {
				err = emit(r)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
		done <- err
	}()
	err := o.sys.run(cmd.Context(), h, argv, pw, prefixed(stderr, h))
	pw.Close()
	if werr := <-done; err == nil {
		err = werr
	}
	return err
}

// writeRecord prints r: its JSON object with "host" added, or a line
// "15:04:05.000 host instance message".
func writeRecord(w io.Writer, r hostRecord, asJSON bool) error {
	if asJSON {
		r.fields["host"] = r.host
		b, err := json.Marshal(r.fields)
		if err != nil {
			return fmt.Errorf("writing records: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	unit, _ := r.fields["unit"].(string)
	inst := strings.TrimSuffix(unit, ".service")
	if i, _ := r.fields["instance"].(string); i == "" {
		inst = "socket"
	}
	msg, _ := r.fields["message"].(string)
	msg = strings.Map(func(c rune) rune {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return ' '
		}
		return c
	}, msg)
	_, err := fmt.Fprintf(w, "%s %-16s %-8s %s\n", r.time.Local().Format("15:04:05.000"), r.host, inst, msg)
	return err
}
