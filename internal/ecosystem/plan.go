package ecosystem

import (
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// PreloadPath is the module that makes an unmodified PM2-style Node app an
// instance of service (the socket systemd passes, READY=1, the drain):
// the service's package installs unitkit's Node package (contrib/node) in
// /usr/lib/NAME/node, a path of its own (nfpm.yaml).
func PreloadPath(service string) string { return "/usr/lib/" + service + "/node/preload.js" }

// DropInName is the file name of the drop-ins an import writes.
const DropInName = "50-import.conf"

// unitDir is where the administrator's drop-ins go.
const unitDir = "/etc/systemd/system"

// ServiceDropIn is the path of the drop-in an import writes for the
// instances of service.
func ServiceDropIn(service string) string {
	return path.Join(unitDir, service+"@.service.d", DropInName)
}

// SocketDropIn is the path of the drop-in an import writes for the socket
// of service.
func SocketDropIn(service string) string {
	return path.Join(unitDir, service+".socket.d", DropInName)
}

// Options are what Build needs besides the app.
type Options struct {
	Service  string                       // the herd: NAME@.service and NAME.socket
	Source   string                       // the ecosystem file, absolute: relative paths in it start from its directory
	Env      string                       // --env NAME: env_NAME is merged over env, as pm2 start --env NAME does
	Writable []string                     // directories, relative to the app's cwd, that instances may write
	CPUs     int                          // for instances "max", 0 and -1
	FS       fs.FS                        // the machine's files, rooted at / (os.DirFS("/"))
	LookPath func(string) (string, error) // finds a program in $PATH (exec.LookPath)
}

// Setting is what one PM2 field, or unitkit for it, puts in a drop-in.
type Setting struct {
	Field  string   // the PM2 field, e.g. "kill_timeout" or "env.PORT"; empty for what unitkit adds
	Value  string   // the field's value as written, for the report
	Lines  []string // the unit file lines, e.g. "TimeoutStopSec=15s"
	Action string   // what appctl import does instead of writing a line, e.g. "appctl scale 2"
	Note   string   // what differs from PM2, or why the setting is there
}

// comment is the line that precedes the setting in the drop-in.
func (s Setting) comment() string {
	c := s.Field
	if s.Value != "" {
		c += ": " + s.Value
	}
	if s.Note != "" {
		if c != "" {
			c += " — "
		}
		c += s.Note
	}
	return c
}

// DropIn is a file to write.
type DropIn struct {
	Path    string
	Content string
}

// Plan is what an app means for the herd.
type Plan struct {
	App       string     // the PM2 app's name
	Source    string     // the ecosystem file
	Service   string     // the herd
	Instances int        // the count to scale to
	Port      int        // the socket's port; 0 when the app sets no PORT and the socket keeps its address
	Node      bool       // the app runs on Node.js
	Preload   string     // the preload module Node apps are loaded with (PreloadPath)
	Mapped    []Setting  // from PM2 fields
	Added     []Setting  // what unitkit adds for the app to run as an instance
	Grants    []Setting  // what the sandbox allows beyond app@.service, and why
	Unmapped  []Unmapped // PM2 fields with no equivalent, and why
	Notes     []string   // what the operator should know
	Files     []DropIn   // the drop-ins to write: the service's, and the socket's when Port is set
}

// builder carries one Build.
type builder struct {
	o          Options
	app        App
	fields     map[string]any
	cwd        string
	progs      []string // the interpreter, if any, and the script
	cwdSetting Setting
	p          *Plan
}

// Build maps app to a plan. Every error is an *InputError: the file, or
// what was asked of it, must change.
func Build(file File, app App, o Options) (*Plan, error) {
	fields, unmapped := normalize(app.fields, o.Env)
	b := &builder{o: o, app: app, fields: fields, p: &Plan{
		App: app.Name, Source: o.Source, Service: o.Service,
		Unmapped: append(slices.Clone(file.Unmapped), unmapped...),
	}}
	for _, step := range []func() error{b.checkEnvBlock, b.workingDirectory, b.command, b.environment,
		b.lifecycle, b.scale, b.sandbox, b.files} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return b.p, nil
}

// checkEnvBlock makes sure --env NAME names an env_NAME block.
func (b *builder) checkEnvBlock() error {
	if b.o.Env == "" {
		return nil
	}
	if _, ok := b.fields["env_"+b.o.Env]; ok {
		return nil
	}
	var have []string
	for k := range b.app.fields {
		if rest, ok := strings.CutPrefix(k, "env_"); ok && rest != "" {
			have = append(have, rest)
		}
	}
	slices.Sort(have)
	if len(have) == 0 {
		return inputErr("--env", "app %s has no env_%s block (it has none at all)", b.app.Name, b.o.Env)
	}
	return inputErr("--env", "app %s has no env_%s block; it has: %s", b.app.Name, b.o.Env, strings.Join(have, ", "))
}

// workingDirectory resolves cwd against the ecosystem file's directory.
func (b *builder) workingDirectory() error {
	base := path.Dir(b.o.Source)
	b.cwd = base
	s := Setting{Field: "cwd", Note: "the ecosystem file's directory, from which PM2 is usually started"}
	if v, ok := b.fields["cwd"]; ok {
		c, err := str("cwd", v)
		if err != nil {
			return err
		}
		s.Value, s.Note = strconv.Quote(c), ""
		if !path.IsAbs(c) {
			c = path.Join(base, c)
		}
		b.cwd = path.Clean(c)
	}
	if err := workingDirectory(b.cwd); err != nil {
		return inputErr("cwd", "%v", err)
	}
	if err := b.isDir("cwd", b.cwd); err != nil {
		return err
	}
	s.Lines = []string{"WorkingDirectory=" + strings.ReplaceAll(b.cwd, "%", "%%")}
	b.cwdSetting = s // reported after the command
	return nil
}

// scale reads instances and exec_mode.
func (b *builder) scale() error {
	n, err := instanceCount(b.fields["instances"], b.o.CPUs)
	if err != nil {
		return err
	}
	b.p.Instances = n
	s := Setting{Field: "instances", Action: "appctl scale " + strconv.Itoa(n),
		Note: "instances " + b.o.Service + "@1 … " + b.o.Service + "@" + strconv.Itoa(n) + ", also after a reboot"}
	if v, ok := b.fields["instances"]; ok {
		s.Value = shorten(v)
		if n2, err := integer("instances", v, ""); err != nil || n2 <= 0 {
			s.Note += " (" + strconv.Itoa(b.o.CPUs) + " CPUs)"
		}
	} else {
		s.Value, s.Note = "(not set)", "PM2 runs 1 by default; "+s.Note
	}
	b.p.Mapped = append(b.p.Mapped, s)
	mode := "fork"
	if v, ok := b.fields["exec_mode"]; ok {
		m, err := str("exec_mode", v)
		if err != nil {
			return err
		}
		switch m {
		case "cluster", "cluster_mode", "fork", "fork_mode":
			mode = strings.TrimSuffix(m, "_mode")
		default:
			return inputErr("exec_mode", "%q: want cluster, cluster_mode, fork or fork_mode", m)
		}
	}
	note := "every instance serves the one socket " + b.o.Service + ".socket, as PM2's cluster workers shared its port"
	if mode == "fork" && n > 1 {
		note = "several fork-mode instances work here: they all serve the one socket " + b.o.Service + ".socket"
	}
	b.p.Mapped = append(b.p.Mapped, Setting{Field: "exec_mode", Value: strconv.Quote(mode), Note: note})
	return nil
}

// files renders the drop-ins.
func (b *builder) files() error {
	header := func(unit string) []string {
		return []string{
			"Written by appctl import from " + oneLine(b.o.Source) + " (app " + strconv.Quote(b.app.Name) + ").",
			"Import again to change it; settings in a drop-in read after this one win (systemctl edit " + unit + ").",
		}
	}
	var service, socket []Setting
	for _, group := range [][]Setting{b.p.Mapped, b.p.Added, b.p.Grants} {
		for _, s := range group {
			if len(s.Lines) > 0 && strings.HasPrefix(s.Lines[0], "ListenStream=") {
				socket = append(socket, s)
			} else {
				service = append(service, s)
			}
		}
	}
	for _, s := range slices.Concat(service, socket) {
		for _, l := range s.Lines {
			if len(l) >= maxLine {
				return inputErr(s.Field, "the line for it would be %d bytes, and systemd reads at most %d: shorten the value", len(l), maxLine-1)
			}
		}
	}
	b.p.Files = []DropIn{{Path: ServiceDropIn(b.o.Service), Content: dropIn(header(b.o.Service+"@.service"), "Service", service)}}
	if len(socket) > 0 {
		b.p.Files = append(b.p.Files, DropIn{Path: SocketDropIn(b.o.Service), Content: dropIn(header(b.o.Service+".socket"), "Socket", socket)})
	}
	return nil
}

// oneLine quotes s if it would not fit on one comment line.
func oneLine(s string) string {
	if plainPath(s) {
		return s
	}
	return strconv.Quote(s)
}

// note adds a line for the operator.
func (b *builder) note(s string) { b.p.Notes = append(b.p.Notes, s) }
