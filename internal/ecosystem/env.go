package ecosystem

import (
	"strconv"
	"strings"
	"time"
)

// stopMargin is what TimeoutStopSec= allows beyond the drain, as
// app@.service does (DRAIN_TIMEOUT=30s, TimeoutStopSec=40s).
const stopMargin = 10000

// environment maps env, env_NAME (with --env NAME) and port to
// Environment= lines and, for PORT, the socket's address; Node apps also
// get the preload.
func (b *builder) environment() error {
	env, from, err := b.mergedEnv()
	if err != nil {
		return err
	}
	instVar, err := b.instanceVar()
	if err != nil {
		return err
	}
	for _, k := range sortedKeys(env) {
		field := from[k] + "." + k
		switch {
		case k == instVar:
			b.p.Unmapped = append(b.p.Unmapped, Unmapped{Field: field, Value: strconv.Quote(env[k]),
				Reason: "PM2 sets it for each instance itself; here the unit does (see below)"})
			continue
		case k == "NODE_OPTIONS" && b.p.Node:
			continue // merged with the preload below
		}
		s := Setting{Field: field, Value: strconv.Quote(env[k]), Lines: []string{envLine(k, env[k])}}
		if k == "PORT" {
			if err := b.socket(field, env[k]); err != nil {
				return err
			}
			s.Note = "the app still listens on PORT; " + b.o.Service + ".socket now holds that port and serves it"
			if b.p.Node {
				s.Note += " (through the preload)"
			}
		}
		b.p.Mapped = append(b.p.Mapped, s)
	}
	if _, ok := env["PORT"]; !ok {
		b.note("The app sets no PORT: " + b.o.Service + ".socket keeps its address (port 8080 unless a drop-in changed it); the app must serve the socket it is passed.")
	}
	b.p.Added = append(b.p.Added, Setting{
		Field: "", Lines: []string{"Environment=" + instVar + "=%i"},
		Note: instVar + " is the instance number, from 1 (" + b.o.Service + "@1); PM2 numbered from 0",
	})
	b.note("Instances are numbered from 1, PM2's from 0: code that runs a job only where " + instVar + " is '0' must test '1'.")
	if b.p.Node {
		b.node(env["NODE_OPTIONS"], from["NODE_OPTIONS"])
	} else {
		b.note("The app does not run on Node.js, so it gets no preload: it must serve the socket systemd passes (LISTEN_FDS, fd 3) and send READY=1 (sd_notify), as the activation library does, or its start times out.")
	}
	return nil
}

// mergedEnv is env with env_NAME over it (pm2 start --env NAME) and the
// port field over both (PM2's shortcut for PORT), with where each
// variable came from.
func (b *builder) mergedEnv() (map[string]string, map[string]string, error) {
	env, from := map[string]string{}, map[string]string{}
	blocks := []string{"env"}
	if b.o.Env != "" {
		blocks = append(blocks, "env_"+b.o.Env)
	}
	for _, name := range blocks {
		v, ok := b.fields[name]
		if !ok {
			continue
		}
		e, err := environment(name, v)
		if err != nil {
			return nil, nil, err
		}
		for k, val := range e {
			env[k], from[k] = val, name
		}
	}
	if v, ok := b.fields["port"]; ok {
		p, err := scalar("port", v)
		if err != nil {
			return nil, nil, err
		}
		env["PORT"], from["PORT"] = p, "port"
	}
	return env, from, nil
}

// instanceVar is the variable that holds the instance number
// (instance_var, default NODE_APP_INSTANCE).
func (b *builder) instanceVar() (string, error) {
	v, ok := b.fields["instance_var"]
	if !ok {
		return "NODE_APP_INSTANCE", nil
	}
	s, err := str("instance_var", v)
	if err != nil {
		return "", err
	}
	if !envName.MatchString(s) {
		return "", inputErr("instance_var", "%q is not a valid variable name: use letters, digits and _, not starting with a digit", s)
	}
	b.p.Mapped = append(b.p.Mapped, Setting{Field: "instance_var", Value: strconv.Quote(s), Note: "names the variable below"})
	return s, nil
}

// socket maps PORT to the socket's address.
func (b *builder) socket(field, value string) error {
	port, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || port < 1 || port > 65535 {
		return inputErr(field, "%q: want a TCP port number from 1 to 65535 (the socket listens there)", value)
	}
	b.p.Port = port
	b.p.Mapped = append(b.p.Mapped, Setting{
		Field: field, Value: strconv.Quote(value),
		Lines: []string{"ListenStream=", "ListenStream=" + strconv.Itoa(port)},
		Note:  b.o.Service + ".socket listens where the app did under PM2, so whatever pointed at it still reaches it",
	})
	return nil
}

// node adds what a Node.js app needs to run unmodified as an instance.
func (b *builder) node(userOptions, from string) {
	b.p.Preload = PreloadPath(b.o.Service)
	opts := "--require " + b.p.Preload
	note := "the preload serves the socket systemd passes, reports READY=1 and drains on SIGTERM"
	if userOptions != "" {
		opts += " " + userOptions
		note += "; " + from + ".NODE_OPTIONS follows it"
	}
	b.p.Added = append(b.p.Added, Setting{Lines: []string{envLine("NODE_OPTIONS", opts)}, Note: note})
	b.p.Grants = append(b.p.Grants,
		Setting{Lines: []string{"NotifyAccess=all"}, Note: "the preload notifies systemd through the systemd-notify helper, a child process, not the main process"},
		Setting{Lines: []string{"MemoryDenyWriteExecute=no"}, Note: "V8's JIT compiler needs memory that is written, then executed"},
	)
}

// lifecycle maps readiness, stop, memory and restart fields.
func (b *builder) lifecycle() error {
	for _, step := range []func() error{b.waitReady, b.timeouts, b.memory, b.restart} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (b *builder) waitReady() error {
	v, ok := b.fields["wait_ready"]
	if !ok {
		return nil
	}
	wait, err := boolean("wait_ready", v)
	if err != nil {
		return err
	}
	switch {
	case !b.p.Node:
		b.p.Unmapped = append(b.p.Unmapped, Unmapped{Field: "wait_ready", Value: strconv.FormatBool(wait),
			Reason: "only Node apps get the preload that turns process.send('ready') into READY=1; the app sends READY=1 itself"})
	case wait:
		b.p.Mapped = append(b.p.Mapped, Setting{Field: "wait_ready", Value: "true",
			Lines: []string{"Environment=UNITKIT_WAIT_READY=1"},
			Note:  "the instance counts as ready at the app's process.send('ready'), which the preload turns into READY=1"})
	default:
		b.p.Mapped = append(b.p.Mapped, Setting{Field: "wait_ready", Value: "false",
			Note: "the instance counts as ready once the app listens, as PM2 marked it online"})
	}
	return nil
}

func (b *builder) timeouts() error {
	if ms, ok, err := b.millisOf("listen_timeout", 1, 3600000); err != nil {
		return err
	} else if ok {
		b.p.Mapped = append(b.p.Mapped, Setting{Field: "listen_timeout", Value: itoa(ms),
			Lines: []string{"TimeoutStartSec=" + duration(ms)},
			Note:  "an instance not ready by then has failed to start and is restarted (PM2 carried on as if it were ready)"})
	}
	if ms, ok, err := b.millisOf("kill_timeout", 1, 3600000); err != nil {
		return err
	} else if ok {
		b.p.Mapped = append(b.p.Mapped, Setting{Field: "kill_timeout", Value: itoa(ms),
			Lines: []string{envLine("DRAIN_TIMEOUT", duration(ms)), "TimeoutStopSec=" + duration(ms+stopMargin)},
			Note:  "the drain waits this long for requests in flight; systemd kills what is left 10 s later"})
	}
	return nil
}

func (b *builder) memory() error {
	v, ok := b.fields["max_memory_restart"]
	if !ok {
		return nil
	}
	form, bytes, err := size("max_memory_restart", v)
	if err != nil {
		return err
	}
	note := "a hard limit: at it the kernel kills the instance, as PM2 restarted it, but without a drain, so the requests it holds fail; systemd starts it again and the others keep serving"
	if b.p.Node && bytes < 64<<20 {
		note += "; Node.js alone needs about 50 MB, so this instance may never start"
	}
	b.p.Mapped = append(b.p.Mapped, Setting{Field: "max_memory_restart", Value: shorten(v),
		Lines: []string{"MemoryMax=" + form}, Note: note})
	return nil
}

func (b *builder) restart() error {
	if v, ok := b.fields["autorestart"]; ok {
		on, err := boolean("autorestart", v)
		if err != nil {
			return err
		}
		s := Setting{Field: "autorestart", Value: strconv.FormatBool(on), Note: "instances restart after any exit (Restart=always, as shipped)"}
		if !on {
			s.Lines = []string{"Restart=no"}
			s.Note = "an instance that exits stays down until started again; appctl status shows it"
		}
		b.p.Mapped = append(b.p.Mapped, s)
	}
	ms, ok, err := b.millisOf("restart_delay", 0, 3600000)
	switch {
	case err != nil:
		return err
	case ok && ms > 0:
		b.p.Mapped = append(b.p.Mapped, Setting{Field: "restart_delay", Value: itoa(ms),
			Lines: []string{"RestartSec=" + duration(ms)}, Note: "a fixed wait before every restart, the first one included, on top of the crash back-off"})
	}
	return b.mapBackoff()
}

// mapBackoff maps PM2's min_uptime and exp_backoff_restart_delay onto the
// crash back-off's settings (package backoff): a run this long resets it,
// and its first wait.
func (b *builder) mapBackoff() error {
	for _, f := range []struct{ field, env, note string }{
		{"min_uptime", "RESTART_MIN_UPTIME", "a run this long resets the crash back-off"},
		{"exp_backoff_restart_delay", "RESTART_BACKOFF_FIRST", "the crash back-off's first wait; it doubles up to RESTART_BACKOFF_MAX (30s)"},
	} {
		ms, ok, err := b.timeOf(f.field)
		switch {
		case err != nil:
			return err
		case ok:
			b.p.Mapped = append(b.p.Mapped, Setting{Field: f.field, Value: itoa(ms),
				Lines: []string{"Environment=" + f.env + "=" + duration(ms)}, Note: f.note})
		}
	}
	return nil
}

// timeOf reads a time PM2 takes as milliseconds or as text such as "10s"
// or "1m".
func (b *builder) timeOf(name string) (int64, bool, error) {
	if v, isText := b.fields[name].(string); isText {
		if d, err := time.ParseDuration(v); err == nil && d >= time.Millisecond && d <= time.Hour {
			return d.Milliseconds(), true, nil
		}
	}
	return b.millisOf(name, 1, 3600000)
}
