package ecosystem

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// The Express example's ecosystem file, as contrib/express has it.
const expressApp = `{"apps": [{
	"name": "express-app", "script": "./server.js", "instances": 2, "exec_mode": "cluster",
	"wait_ready": true, "listen_timeout": 5000, "kill_timeout": 5000, "max_memory_restart": "300M",
	"max_restarts": 10, "min_uptime": "5s", "out_file": "/var/log/out.log", "watch": true,
	"env": {"NODE_ENV": "production", "PORT": 3000},
	"env_staging": {"NODE_ENV": "staging"}
}]}`

func TestBuildExpressApp(t *testing.T) {
	p := mustBuild(t, expressApp, nil)
	if p.App != "express-app" || p.Instances != 2 || p.Port != 3000 || !p.Node {
		t.Errorf("app %q, %d instances, port %d, node %v", p.App, p.Instances, p.Port, p.Node)
	}
	if p.Files[0].Path != "/etc/systemd/system/app@.service.d/50-import.conf" ||
		p.Files[1].Path != "/etc/systemd/system/app.socket.d/50-import.conf" {
		t.Errorf("files %q, %q", p.Files[0].Path, p.Files[1].Path)
	}
	svc := p.service()
	for _, line := range []string{
		"[Service]",
		"ExecStart=",
		"ExecStart=/usr/bin/node /srv/app/server.js",
		"WorkingDirectory=/srv/app",
		"Environment=NODE_ENV=production",
		"Environment=PORT=3000",
		`Environment="NODE_OPTIONS=--require /usr/lib/app/node/preload.js"`,
		"Environment=NODE_APP_INSTANCE=%i",
		"NotifyAccess=all",
		"MemoryDenyWriteExecute=no",
		"Environment=UNITKIT_WAIT_READY=1",
		"TimeoutStartSec=5s",
		"Environment=DRAIN_TIMEOUT=5s",
		"TimeoutStopSec=15s",
		"MemoryMax=300M",
	} {
		if !hasLine(svc, line) {
			t.Errorf("service drop-in lacks %q:\n%s", line, svc)
		}
	}
	for _, bad := range []string{"StartLimit", "ListenStream", "ProtectHome", "Restart="} {
		if strings.Contains(svc, bad) {
			t.Errorf("service drop-in has %s:\n%s", bad, svc)
		}
	}
	if sock := p.socketFile(); !strings.Contains(sock, "[Socket]\n# env.PORT") || !strings.HasSuffix(sock, "ListenStream=\nListenStream=3000\n") {
		t.Errorf("socket drop-in:\n%s", sock)
	}
	for field, reason := range map[string]string{
		"max_restarts": "fails the shared socket",
		"out_file":     "appctl logs", "watch": "appctl reload", "env_staging": "--env staging",
	} {
		if got := p.unmapped(field); !strings.Contains(got, reason) {
			t.Errorf("%s: reason %q, want it to say %q", field, got, reason)
		}
	}
	var out bytes.Buffer
	if err := p.Report(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kill_timeout", "→ Environment=DRAIN_TIMEOUT=5s; TimeoutStopSec=15s",
		"instances", "→ appctl scale 2", "requests it holds fail",
		"Not mapped:", "max_restarts", "PM2's from 0", "MemoryDenyWriteExecute=no: V8",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestBuildMappings(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		change     func(*Options)
		lines      []string // in the service drop-in
		absent     []string // substrings the service drop-in must not have
		check      func(*testing.T, *Plan)
	}{
		{name: "bin/www is run by node", data: `{"script": "bin/www"}`,
			lines: []string{"ExecStart=/usr/bin/node /srv/app/bin/www"}},
		{name: "args and node_args as strings", data: `{"script": "server.js", "node_args": "--max-old-space-size=512 --enable-source-maps", "args": "--title=\"a b\" 'c d' e"}`,
			lines: []string{`ExecStart=/usr/bin/node --max-old-space-size=512 --enable-source-maps /srv/app/server.js "--title=\"a b\"" "c d" e`}},
		{name: "args as array, with systemd's specials", data: `{"script": "server.js", "args": ["50%", "$HOME", "", "a\"b", ";", 7, true]}`,
			lines: []string{`ExecStart=/usr/bin/node /srv/app/server.js 50%% $$HOME "" "a\"b" ";" 7 true`}},
		{name: "interpreter none", data: `{"script": "server", "interpreter": "none", "node_args": "--x"}`,
			lines: []string{"ExecStart=/srv/app/server"}, absent: []string{"NODE_OPTIONS", "NotifyAccess", "MemoryDenyWriteExecute"},
			check: func(t *testing.T, p *Plan) {
				if p.Node || p.unmapped("node_args") == "" {
					t.Errorf("node %v, node_args %q", p.Node, p.unmapped("node_args"))
				}
			}},
		{name: "a binary needs no interpreter", data: `{"script": "./server"}`,
			lines: []string{"ExecStart=/srv/app/server"}, absent: []string{"NODE_OPTIONS"}},
		{name: "python by extension, python3 found", data: `{"script": "script.py", "interpreter_args": "-u", "wait_ready": true}`,
			lines: []string{"ExecStart=/usr/bin/python3 -u /srv/app/script.py"}, absent: []string{"NODE_OPTIONS", "UNITKIT_WAIT_READY"},
			check: func(t *testing.T, p *Plan) {
				if p.unmapped("wait_ready") == "" || !strings.Contains(strings.Join(p.Notes, "\n"), "LISTEN_FDS") {
					t.Errorf("a non-Node app is not told it must serve the socket itself: %q, %q", p.unmapped("wait_ready"), p.Notes)
				}
			}},
		{name: "interpreter by absolute path", data: `{"script": "tool.sh", "interpreter": "/usr/bin/bash"}`,
			lines: []string{"ExecStart=/usr/bin/bash /srv/app/tool.sh"}},
		{name: "script found in PATH", data: `{"script": "npm", "args": "start"}`,
			lines: []string{"ExecStart=/usr/bin/node /usr/bin/npm start", "WorkingDirectory=/srv/app"}},
		{name: "aliases and camelCase", data: `{"exec": "server.js", "interpreterArgs": ["--x"], "killTimeout": 1600, "maxMemoryRestart": 1048576, "execMode": "fork_mode"}`,
			lines: []string{"ExecStart=/usr/bin/node --x /srv/app/server.js", "Environment=DRAIN_TIMEOUT=1600ms", "TimeoutStopSec=11600ms", "MemoryMax=1048576"}},
		{name: "the canonical spelling wins", data: `{"script": "server.js", "exec": "other.js"}`,
			lines: []string{"ExecStart=/usr/bin/node /srv/app/server.js"},
			check: func(t *testing.T, p *Plan) {
				if !strings.Contains(p.unmapped("exec"), "another spelling of script") {
					t.Errorf("exec: %q", p.unmapped("exec"))
				}
			}},
		{name: "relative cwd", data: `{"script": "server.js", "cwd": "../app"}`, change: func(o *Options) { o.Source = "/srv/private/eco.json" },
			lines: []string{"WorkingDirectory=/srv/app", "ExecStart=/usr/bin/node /srv/app/server.js"}},
		{name: "env merged with --env, port field wins", change: func(o *Options) { o.Env = "production" },
			data:  `{"script": "server.js", "port": 4000, "env": {"NODE_ENV": "development", "DEBUG": "x"}, "env_production": {"NODE_ENV": "production", "PORT": 80}}`,
			lines: []string{"Environment=NODE_ENV=production", "Environment=DEBUG=x", "Environment=PORT=4000"},
			check: func(t *testing.T, p *Plan) {
				if p.Port != 4000 || !strings.HasSuffix(p.socketFile(), "ListenStream=4000\n") {
					t.Errorf("port %d:\n%s", p.Port, p.socketFile())
				}
			}},
		{name: "environment values escaped", data: `{"script": "server.js", "env": {"A": "x y", "B": "50%", "C": "say \"hi\"\\n", "D": "l1\nl2\ttab", "E": "$HOME", "F": ""}}`,
			lines: []string{`Environment="A=x y"`, "Environment=B=50%%", `Environment="C=say \"hi\"\\n"`, `Environment="D=l1\nl2\ttab"`, "Environment=E=$HOME", "Environment=F="}},
		{name: "user NODE_OPTIONS follow the preload", data: `{"script": "server.js", "env": {"NODE_OPTIONS": "--max-old-space-size=256", "NODE_APP_INSTANCE": "9"}}`,
			lines:  []string{`Environment="NODE_OPTIONS=--require /usr/lib/app/node/preload.js --max-old-space-size=256"`, "Environment=NODE_APP_INSTANCE=%i"},
			absent: []string{"NODE_APP_INSTANCE=9"}},
		{name: "instance_var", data: `{"script": "server.js", "instance_var": "INSTANCE_ID"}`,
			lines: []string{"Environment=INSTANCE_ID=%i"}, absent: []string{"NODE_APP_INSTANCE"}},
		{name: "no port keeps the socket", data: `{"script": "server.js"}`,
			check: func(t *testing.T, p *Plan) {
				if p.Port != 0 || len(p.Files) != 1 || p.Instances != 1 {
					t.Errorf("port %d, %d files, %d instances", p.Port, len(p.Files), p.Instances)
				}
			}},
		{name: "autorestart false, restart_delay", data: `{"script": "server.js", "autorestart": false, "restart_delay": 2000}`,
			lines: []string{"Restart=no", "RestartSec=2s"}},
		{name: "no restart_delay keeps the shipped one", data: `{"script": "server.js", "restart_delay": 0, "autorestart": true}`,
			absent: []string{"Restart"}},
		{name: "min_uptime and exp_backoff_restart_delay", data: `{"script": "server.js", "min_uptime": "5s", "exp_backoff_restart_delay": 250}`,
			lines: []string{"Environment=RESTART_MIN_UPTIME=5s", "Environment=RESTART_BACKOFF_FIRST=250ms"}},
		{name: "wait_ready false", data: `{"script": "server.js", "wait_ready": false}`, absent: []string{"UNITKIT_WAIT_READY"}},
		{name: "app under /home", data: `{"script": "server.js", "cwd": "/home/deploy/app"}`,
			lines: []string{"ProtectHome=tmpfs", "BindReadOnlyPaths=/home/deploy/app"}},
		{name: "node from nvm under /home", data: `{"script": "server.js", "interpreter": "/home/deploy/.nvm/v20/bin/node"}`,
			lines:  []string{"ProtectHome=tmpfs", "BindReadOnlyPaths=/home/deploy/.nvm/v20", "ExecStart=/home/deploy/.nvm/v20/bin/node /srv/app/server.js"},
			absent: []string{"BindReadOnlyPaths=/srv"}},
		{name: "app under /tmp", data: `{"script": "app.js"}`, change: func(o *Options) { o.Source = "/tmp/t/eco.json" },
			lines: []string{"BindReadOnlyPaths=/tmp/t"}, absent: []string{"ProtectHome"}},
		{name: "writable directories", data: `{"script": "server.js"}`, change: func(o *Options) { o.Writable = []string{"uploads", "./logs", "/srv/app/uploads"} },
			lines: []string{"StateDirectory=app/uploads", "BindPaths=/var/lib/app/uploads:/srv/app/uploads",
				"LogsDirectory=app/logs", "BindPaths=/var/log/app/logs:/srv/app/logs"}},
		{name: "writable under /home", data: `{"script": "server.js", "cwd": "/home/deploy/app"}`, change: func(o *Options) { o.Writable = []string{"uploads"} },
			lines: []string{"ProtectHome=tmpfs", "BindReadOnlyPaths=/home/deploy/app", "BindPaths=/var/lib/app/uploads:/home/deploy/app/uploads"}},
		{name: "another service name", data: `{"script": "server.js", "env": {"PORT": 80}}`, change: func(o *Options) { o.Service = "shop"; o.Writable = []string{"uploads"} },
			lines: []string{"StateDirectory=shop/uploads", `Environment="NODE_OPTIONS=--require /usr/lib/shop/node/preload.js"`},
			check: func(t *testing.T, p *Plan) {
				if p.Files[0].Path != "/etc/systemd/system/shop@.service.d/50-import.conf" || p.Files[1].Path != "/etc/systemd/system/shop.socket.d/50-import.conf" {
					t.Errorf("files %q %q", p.Files[0].Path, p.Files[1].Path)
				}
			}},
		{name: "unreadable files are noted", data: `{"script": "server.js"}`,
			check: func(t *testing.T, p *Plan) {
				if !strings.Contains(strings.Join(p.Notes, "\n"), "/srv/app/.env") {
					t.Errorf("notes do not name /srv/app/.env: %q", p.Notes)
				}
			}},
		{name: "unknown and PM2-only fields", data: `{"script": "server.js", "colour": "red", "cron_restart": "0 * * * *", "uid": "www", "increment_var": "PORT", "log_date_format": "YYYY"}`,
			check: func(t *testing.T, p *Plan) {
				for field, want := range map[string]string{"colour": "not a PM2 app field", "cron_restart": "timer", "uid": "dynamic user", "increment_var": "shared socket", "log_date_format": "journal"} {
					if !strings.Contains(p.unmapped(field), want) {
						t.Errorf("%s: %q, want %q", field, p.unmapped(field), want)
					}
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustBuild(t, tc.data, tc.change)
			svc := p.service()
			for _, l := range tc.lines {
				if !hasLine(svc, l) {
					t.Errorf("no line %q in:\n%s", l, svc)
				}
			}
			for _, a := range tc.absent {
				if strings.Contains(svc, a) {
					t.Errorf("%q in:\n%s", a, svc)
				}
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func TestInstances(t *testing.T) {
	for in, want := range map[string]int{
		`1`: 1, `3`: 3, `"3"`: 3, `"max"`: 4, `0`: 4, `-1`: 3, `null`: 1,
	} {
		p := mustBuild(t, `{"script": "server.js", "instances": `+in+`}`, nil)
		if p.Instances != want {
			t.Errorf("instances %s: %d, want %d", in, p.Instances, want)
		}
	}
	p := mustBuild(t, `{"script": "server.js", "instances": -1}`, func(o *Options) { o.CPUs = 1 })
	if p.Instances != 1 {
		t.Errorf("instances -1 on one CPU: %d, want 1", p.Instances)
	}
}

// withDir adds a directory others may read to the machine.
func withDir(name string) func(*Options) {
	return func(o *Options) {
		fs := machine()
		fs[name] = &fstest.MapFile{Mode: fs["srv/app"].Mode}
		o.FS = fs
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		change     func(*Options)
		field      string
		want       string
	}{
		{"script missing", `{"name": "x"}`, nil, "script", "missing"},
		{"script empty", `{"script": " "}`, nil, "script", "empty"},
		{"script not a string", `{"script": 5}`, nil, "script", "want a string"},
		{"script not found", `{"script": "nope.js"}`, nil, "script", "/srv/app/nope.js"},
		{"script a directory", `{"script": "uploads"}`, nil, "script", "not a file"},
		{"script a command line", `{"script": "npm start"}`, nil, "script", "args"},
		{"script unreadable", `{"script": "server.js", "cwd": "/srv/secret"}`, nil, "script", "chmod o+r /srv/secret/server.js"},
		{"script not executable", `{"script": "server.js", "interpreter": "none"}`, nil, "script", "chmod o+rx"},
		{"interpreter missing", `{"script": "server.js", "interpreter": "deno"}`, nil, "interpreter", "not installed"},
		{"interpreter version", `{"script": "server.js", "interpreter": "node@18"}`, nil, "interpreter", "absolute path"},
		{"cwd missing", `{"script": "server.js", "cwd": "/srv/none"}`, nil, "cwd", "does not exist"},
		{"cwd a file", `{"script": "server.js", "cwd": "/srv/app/README"}`, nil, "cwd", "not a directory"},
		{"cwd closed to others", `{"script": "server.js", "cwd": "/srv/private"}`, nil, "cwd", "chmod o+rx /srv/private"},
		{"home closed to others", `{"script": "server.js", "cwd": "/home/closed/app"}`, nil, "cwd", "chmod o+x /home/closed"},
		{"--writable is cwd, written another way", `{"script": "app.js"}`, func(o *Options) { o.Source = "/tmp/t/eco.json"; o.Writable = []string{"../t"} }, "--writable", "inside the app's cwd"},
		{"exec_mode", `{"script": "server.js", "exec_mode": "forks"}`, nil, "exec_mode", "want cluster"},
		{"instances negative", `{"script": "server.js", "instances": -2}`, nil, "instances", "-2"},
		{"instances text", `{"script": "server.js", "instances": "many"}`, nil, "instances", "whole number"},
		{"instances fraction", `{"script": "server.js", "instances": 2.5}`, nil, "instances", "whole number"},
		{"instances boolean", `{"script": "server.js", "instances": true}`, nil, "instances", "whole number"},
		{"instances too many", `{"script": "server.js", "instances": 100000}`, nil, "instances", "at most"},
		{"size lower case", `{"script": "server.js", "max_memory_restart": "512mb"}`, nil, "max_memory_restart", "512M"},
		{"size zero", `{"script": "server.js", "max_memory_restart": "0"}`, nil, "max_memory_restart", "more than 0"},
		{"size negative", `{"script": "server.js", "max_memory_restart": -1}`, nil, "max_memory_restart", "number of bytes"},
		{"size fraction", `{"script": "server.js", "max_memory_restart": "1.5G"}`, nil, "max_memory_restart", "number of bytes"},
		{"size huge", `{"script": "server.js", "max_memory_restart": "5000G"}`, nil, "max_memory_restart", "at most 1T"},
		{"size object", `{"script": "server.js", "max_memory_restart": {}}`, nil, "max_memory_restart", "want bytes"},
		{"kill_timeout with unit", `{"script": "server.js", "kill_timeout": "5s"}`, nil, "kill_timeout", "milliseconds"},
		{"kill_timeout zero", `{"script": "server.js", "kill_timeout": 0}`, nil, "kill_timeout", "want 1 to 3600000"},
		{"kill_timeout too long", `{"script": "server.js", "kill_timeout": 3600001}`, nil, "kill_timeout", "want 1 to 3600000"},
		{"listen_timeout negative", `{"script": "server.js", "listen_timeout": -5}`, nil, "listen_timeout", "want 1 to"},
		{"restart_delay text", `{"script": "server.js", "restart_delay": "soon"}`, nil, "restart_delay", "milliseconds"},
		{"autorestart text", `{"script": "server.js", "autorestart": "no"}`, nil, "autorestart", "true or false"},
		{"wait_ready text", `{"script": "server.js", "wait_ready": "yes"}`, nil, "wait_ready", "true or false"},
		{"env not an object", `{"script": "server.js", "env": "A=1"}`, nil, "env", "object"},
		{"env bad name", `{"script": "server.js", "env": {"A-B": "1"}}`, nil, "env.A-B", "variable name"},
		{"env object value", `{"script": "server.js", "env": {"A": {"b": 1}}}`, nil, "env.A", "string, number or boolean"},
		{"env NUL", `{"script": "server.js", "env": {"A": "x\u0000y"}}`, nil, "env.A", "NUL"},
		{"port text", `{"script": "server.js", "env": {"PORT": "http"}}`, nil, "env.PORT", "1 to 65535"},
		{"port zero", `{"script": "server.js", "port": 0}`, nil, "port.PORT", "1 to 65535"},
		{"port too high", `{"script": "server.js", "env_production": {"PORT": 70000}}`, func(o *Options) { o.Env = "production" }, "env_production.PORT", "1 to 65535"},
		{"--env unknown", `{"script": "server.js", "env_production": {}}`, func(o *Options) { o.Env = "staging" }, "--env", "it has: production"},
		{"--env none at all", `{"script": "server.js"}`, func(o *Options) { o.Env = "staging" }, "--env", "none at all"},
		{"args a number", `{"script": "server.js", "args": 5}`, nil, "args", "string or an array"},
		{"args element", `{"script": "server.js", "args": [{}]}`, nil, "args[0]", "string, number or boolean"},
		{"args NUL", `{"script": "server.js", "args": ["a\u0000"]}`, nil, "args", "NUL"},
		{"instance_var", `{"script": "server.js", "instance_var": "1X"}`, nil, "instance_var", "variable name"},
		{"--writable outside", `{"script": "server.js"}`, func(o *Options) { o.Writable = []string{"../other"} }, "--writable", "inside the app's cwd"},
		{"--writable cwd", `{"script": "server.js"}`, func(o *Options) { o.Writable = []string{"."} }, "--writable", "hide the code"},
		{"--writable absolute elsewhere", `{"script": "server.js"}`, func(o *Options) { o.Writable = []string{"/var/data"} }, "--writable", "not under the app's cwd"},
		{"--writable missing", `{"script": "server.js"}`, func(o *Options) { o.Writable = []string{"cache"} }, "--writable", "mkdir -p /srv/app/cache"},
		{"--writable a file", `{"script": "server.js"}`, func(o *Options) { o.Writable = []string{"README"} }, "--writable", "not a directory"},
		{"--writable odd name", `{"script": "server.js"}`, func(o *Options) { o.Writable = []string{"a:b"} }, "--writable", "cannot be bound"},
		// Found by FuzzImportDropIns: systemd would have read these otherwise.
		{"cwd ending in a backslash", `{"script": "/srv/app/server.js", "cwd": "/srv/app\\"}`, withDir("srv/app\\"), "cwd", "ends with a backslash"},
		{"cwd ending in a space", `{"script": "/srv/app/server.js", "cwd": "/srv/app "}`, withDir("srv/app "), "cwd", "ends with a space"},
		{"cwd not UTF-8", `{"script": "server.js"}`, func(o *Options) { o.Source = "/srv/caf\xe9/eco.json" }, "cwd", "not UTF-8"},
		{"cwd too long", `{"script": "server.js"}`, func(o *Options) { o.Source = "/srv/" + strings.Repeat("x", 256) + "/eco.json" }, "cwd", "longer than systemd takes"},
		{"--writable with a colon in the service", `{"script": "server.js"}`, func(o *Options) { o.Service, o.Writable = "a:b", []string{"uploads"} }, "--writable", "service name"},
		{"env value above what the kernel passes", `{"script": "server.js", "env": {"A": "` + strings.Repeat("x", maxArg) + `"}}`, nil, "env.A", "at most 131071"},
		{"argument above what the kernel passes", `{"script": "server.js", "args": ["` + strings.Repeat("x", maxArg+1) + `"]}`, nil, "args", "at most 131071"},
		{"line above what systemd reads", `{"script": "server.js", "args": ["` + strings.Repeat(strings.Repeat("x", maxArg)+`", "`, 8) + `"]}`, nil, "script, args", "at most 1048575"},
		{"hidden path that cannot be bound", `{"script": "server.js"}`, func(o *Options) {
			fs := machine()
			fs["home/deploy/my app/server.js"] = fs["home/deploy/app/server.js"]
			o.FS, o.Source = fs, "/home/deploy/my app/eco.json"
		}, "cwd", "move the app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := build(t, tc.data, "", tc.change)
			if err == nil {
				t.Fatal("no error")
			}
			ie := inputError(t, err)
			if ie.Field != tc.field || !strings.Contains(ie.Msg, tc.want) {
				t.Errorf("error %q (field %q), want field %q and %q", err, ie.Field, tc.field, tc.want)
			}
		})
	}
}

func TestBuildRubyWithoutRuby(t *testing.T) {
	f := machine()
	f["srv/app/x.rb"] = f["srv/app/server.js"]
	_, err := build(t, `{"script": "x.rb"}`, "", func(o *Options) { o.FS = f })
	if ie := inputError(t, err); ie.Field != "interpreter" || !strings.Contains(ie.Msg, "ruby is not installed") {
		t.Errorf("error %v", err)
	}
}

func TestDurationAndReportOrder(t *testing.T) {
	for ms, want := range map[int64]string{1: "1ms", 1000: "1s", 1500: "1500ms", 60000: "60s"} {
		if got := duration(ms); got != want {
			t.Errorf("duration(%d) = %q, want %q", ms, got, want)
		}
	}
	p := mustBuild(t, expressApp, nil)
	var fields []string
	for _, s := range p.Mapped {
		fields = append(fields, s.Field)
	}
	if !slices.Contains(fields, "script") || !slices.Contains(fields, "instances") {
		t.Errorf("mapped fields %q", fields)
	}
}
