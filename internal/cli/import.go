package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/unitkit/unitkit/internal/ecosystem"
	"github.com/unitkit/unitkit/internal/herd"
)

// importFlags are appctl import's own flags.
type importFlags struct {
	only     string
	env      string
	writable []string
	dryRun   bool
}

func (o *options) importCmd() *cobra.Command {
	var f importFlags
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Run an app from its PM2 ecosystem file as the service's instances",
		Long: `import reads a PM2 ecosystem file (ecosystem.config.js or .cjs or .mjs,
which it evaluates with node as the calling user since it is code; .json; .yaml
or .yml) in any of PM2's forms ({apps: [...]}, one app object, or an array),
and makes the service run that app: it writes a drop-in for NAME@.service
(/etc/systemd/system/NAME@.service.d/50-import.conf) and, when the app's
environment sets PORT, one for NAME.socket so that the socket listens on that
port; then it reloads systemd, moves the socket if its address changed (the
instances stop, the socket restarts, they start again), replaces the running
instances one by one (as reload does) and scales to the app's instances.

Relative paths in the file (script, cwd) start from the file's directory.
It prints every PM2 field it mapped and the unit setting it became, every one
it did not map and why (logs go to the journal, watch has no equivalent,
max_restarts and min_uptime are left out because a start limit hit by one
instance fails the shared socket on systemd 252), the sandbox grants the app
needs, and what differs from PM2: instances are numbered from 1
(NODE_APP_INSTANCE=1 for NAME@1), and max_memory_restart becomes MemoryMax=,
a hard limit at which the instance is killed and the requests it holds fail.

Node.js apps are loaded with unitkit's preload module
(/usr/lib/NAME/node/preload.js, in the service's package), which makes an app written for PM2 serve
the socket systemd passes and report readiness (process.send('ready') with
wait_ready). Other programs must do that themselves.

The instances run as a dynamic user in a sandbox that hides /home, /root and
/tmp and makes the file system read-only. An app there is bound in read-only
(ProtectHome=tmpfs, BindReadOnlyPaths=); its files must be readable by others.
Directories the app writes, next to its code, are named with --writable: each
becomes a state directory (/var/lib/NAME/DIR; /var/log/NAME/DIR for log and
logs) bound over DIR.

If the new port is held by another process (PM2 still running the app), import
says which and stops before changing anything: run pm2 delete first. Input
errors (file missing or not evaluating, unknown exec_mode, bad instances,
sizes or timeouts, script missing) exit 2 and change nothing. --dry-run
prints the report and the files and changes nothing. import needs root.`,
		Example: "  appctl import ecosystem.config.js\n" +
			"  appctl import ecosystem.config.js --only api --env production --dry-run\n" +
			"  appctl import /home/deploy/shop/ecosystem.config.js --writable uploads --writable logs",
		Args: exactArgs(1, "give the ecosystem file, e.g. appctl import ecosystem.config.js"),
		RunE: func(cmd *cobra.Command, args []string) error { return o.runImport(cmd, args[0], f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.only, "only", "", "the app to import when the file defines several (as pm2 start --only)")
	fl.StringVar(&f.env, "env", "", "merge the app's env_NAME over its env (as pm2 start --env NAME)")
	fl.StringArrayVar(&f.writable, "writable", nil, "a directory, relative to the app's cwd, that the instances may write (repeatable)")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print what would be written and done, and change nothing")
	return cmd
}

// runImport plans the import, reports it, and applies it unless dry-run.
func (o *options) runImport(cmd *cobra.Command, file string, f importFlags) error {
	ctx := cmd.Context()
	plan, err := o.planImport(ctx, file, f)
	if err != nil {
		return err
	}
	limit, err := o.limit()
	if err != nil {
		return err
	}
	if plan.Instances > limit {
		return usageError(fmt.Errorf("instances: %d exceeds the limit of %d instances (raise it with APPCTL_MAX_INSTANCES)", plan.Instances, limit))
	}
	if err := plan.Report(o.stdout); err != nil {
		return err
	}
	warnLaterDropIns(o.stdout, o.app)
	if f.dryRun {
		if plan.Node && !exists(plan.Preload) {
			fmt.Fprintf(o.stdout, "\nwarning: %s is missing: install the service's package, which ships it, before importing\n", plan.Preload)
		}
		if err := plan.WriteFiles(o.stdout); err != nil {
			return err
		}
		fmt.Fprintln(o.stdout, "\ndry run: nothing was written or changed")
		return nil
	}
	if err := checkCanApply(plan); err != nil {
		return err
	}
	return o.withLockedHerd(cmd, func(h *herd.Herd) error { return apply(ctx, h, plan, o.stdout) })
}

// planImport reads the file and builds the plan; every mistake in it is a
// usage error.
func (o *options) planImport(ctx context.Context, file string, f importFlags) (*ecosystem.Plan, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: %w", file, err))
	}
	data, format, err := o.readEcosystem(ctx, abs)
	if err != nil {
		return nil, err
	}
	parsed, err := ecosystem.Parse(data, format)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: %w", file, err))
	}
	app, err := parsed.Pick(f.only)
	if err != nil {
		return nil, usageError(fmt.Errorf("%s: %w", file, err))
	}
	plan, err := ecosystem.Build(parsed, app, ecosystem.Options{
		Service: o.app, Source: abs, Env: f.env, Writable: f.writable,
		CPUs: runtime.NumCPU(), FS: os.DirFS("/"), LookPath: o.sys.lookPath,
	})
	if err != nil {
		return nil, usageError(fmt.Errorf("%s, app %s: %w", file, app.Name, err))
	}
	return plan, nil
}

// evalTimeout bounds the evaluation of a JavaScript ecosystem file.
const evalTimeout = 30 * time.Second

// evalScript prints what the ecosystem file at argv[1] exports as JSON:
// required as CommonJS, imported as an ES module when it is one, awaited
// when it exports a promise. Functions in it are dropped, as PM2 would
// never call them either.
const evalScript = `
const file = process.argv[1];
let exported;
try {
  exported = require(file);
} catch (err) {
  if (err.code !== 'ERR_REQUIRE_ESM') throw err;
  exported = import(require('node:url').pathToFileURL(file)).then((ns) => ns.default);
}
Promise.resolve(exported).then((v) => {
  if (v && v[Symbol.toStringTag] === 'Module') v = v.default; // require() of an ES module (Node 20.19+)
  process.stdout.write(JSON.stringify(v === undefined ? null : v), () => process.exit(0));
}, (err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
`

// readEcosystem returns the file's data: JSON printed by node for
// JavaScript, the file itself for JSON and YAML.
func (o *options) readEcosystem(ctx context.Context, path string) ([]byte, ecosystem.Format, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, 0, usageError(fmt.Errorf("%s: no such file: give the path of the PM2 ecosystem file", path))
	case err != nil:
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	case fi.IsDir():
		return nil, 0, usageError(fmt.Errorf("%s is a directory: give the ecosystem file in it, e.g. %s", path, filepath.Join(path, "ecosystem.config.js")))
	}
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".js", ".cjs", ".mjs":
		data, err := o.evalJS(ctx, path)
		return data, ecosystem.JSON, err
	case ".json", ".yaml", ".yml":
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", path, err)
		}
		if ext == ".json" {
			return data, ecosystem.JSON, nil
		}
		return data, ecosystem.YAML, nil
	default:
		return nil, 0, usageError(fmt.Errorf("%s: want a PM2 ecosystem file ending in .js, .cjs, .mjs, .json, .yaml or .yml", path))
	}
}

// evalJS runs node on the file, from its directory, and returns what it
// printed. A file that does not evaluate is a usage error with node's
// message.
func (o *options) evalJS(ctx context.Context, path string) ([]byte, error) {
	node, err := o.sys.lookPath("node")
	if err != nil {
		return nil, fmt.Errorf("%s is JavaScript and node is not installed to evaluate it: install Node.js, or write the file as JSON or YAML", path)
	}
	ctx, cancel := context.WithTimeout(ctx, evalTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "-e", evalScript, "--", path)
	cmd.Dir = filepath.Dir(path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	switch {
	case ctx.Err() != nil:
		return nil, usageError(fmt.Errorf("%s did not finish evaluating within %s: does it start a server or wait for something?", path, evalTimeout))
	case err != nil:
		return nil, usageError(fmt.Errorf("%s does not evaluate with %s (%v):\n%s", path, node, err, nodeMessage(stderr.String())))
	}
	return stdout.Bytes(), nil
}

// nodeMessage is what node said about an error, without the stack
// below the first frame: the location, the source line and the message.
func nodeMessage(stderr string) string {
	var out []string
	frames := 0
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "at ") {
			if frames++; frames > 1 {
				continue
			}
		}
		if strings.HasPrefix(l, "Node.js v") || len(out) >= 15 {
			continue
		}
		out = append(out, l)
	}
	return strings.TrimSpace(strings.Join(out, "\n"))
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkCanApply fails before anything changes when the import cannot
// complete: not root, or the Node preload is not installed.
func checkCanApply(plan *ecosystem.Plan) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("import writes drop-ins under /etc/systemd/system: run it as root (or try --dry-run)")
	}
	if plan.Node && !exists(plan.Preload) {
		return fmt.Errorf("%s is missing: install the service's package, which ships it, then import again", plan.Preload)
	}
	return nil
}
