package ecosystem

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestParseForms(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		format     Format
		names      []string
		unmapped   []string
	}{
		{"apps array", `{"apps": [{"name": "api", "script": "server.js"}, {"script": "worker.js"}]}`, JSON, []string{"api", "worker"}, nil},
		{"apps object", `{"apps": {"name": "api", "script": "server.js"}}`, JSON, []string{"api"}, nil},
		{"single app", `{"name": "api", "script": "server.js"}`, JSON, []string{"api"}, nil},
		{"array", `[{"script": "a/b/server.mjs"}]`, JSON, []string{"server"}, nil},
		{"no name or script", `[{"cwd": "/srv"}]`, JSON, []string{"apps[0]"}, nil},
		{"deploy", `{"apps": [{"script": "s.js"}], "deploy": {"production": {}}}`, JSON, []string{"s"}, []string{"deploy"}},
		{"yaml apps", "apps:\n  - name: api\n    script: server.js\n    env: {PORT: 3000}\n", YAML, []string{"api"}, nil},
		{"yaml single", "script: server.js\n", YAML, []string{"server"}, nil},
		{"yaml anchors", "defaults: &d\n  script: server.js\napps:\n  - <<: *d\n    name: a\n", YAML, []string{"a"}, []string{"defaults"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse([]byte(tc.data), tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(f.Names(), tc.names) {
				t.Errorf("names %q, want %q", f.Names(), tc.names)
			}
			var got []string
			for _, u := range f.Unmapped {
				got = append(got, u.Field)
			}
			if !slices.Equal(got, tc.unmapped) {
				t.Errorf("unmapped %q, want %q", got, tc.unmapped)
			}
		})
	}
}

func TestParseYAMLValuesAsJSON(t *testing.T) {
	data := "script: server.js\ninstances: 2\nenv:\n  PORT: 3000\n  RATIO: 0.5\n  ON: true\n  DAY: 2024-01-02\n  EMPTY: null\n"
	f, err := Parse([]byte(data), YAML)
	if err != nil {
		t.Fatal(err)
	}
	env, err := environment("env", f.Apps[0].fields["env"])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PORT": "3000", "RATIO": "0.5", "ON": "true", "DAY": "2024-01-02"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["EMPTY"]; ok {
		t.Error("a null value became a variable")
	}
}

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		format     Format
		want       string
	}{
		{"not JSON", `{apps: []}`, JSON, "JSON5"},
		{"two values", `{} {}`, JSON, "more than one value"},
		{"not YAML", "apps: [\n", YAML, "not valid YAML"},
		{"string", `"server.js"`, JSON, "want {apps: [...]}"},
		{"apps not a list", `{"apps": 5}`, JSON, "apps: want an array"},
		{"no apps", `{"apps": []}`, JSON, "defines no app"},
		{"app not an object", `{"apps": ["server.js"]}`, JSON, "apps[0]: want an app object"},
		{"empty array", `[]`, JSON, "defines no app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data), tc.format)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			inputError(t, err)
		})
	}
}

func TestPick(t *testing.T) {
	f, err := Parse([]byte(`{"apps": [{"name": "api", "script": "a.js"}, {"name": "worker", "script": "w.js"}]}`), JSON)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := f.Pick("worker"); err != nil || a.Name != "worker" {
		t.Errorf("Pick(worker) = %v, %v", a.Name, err)
	}
	for only, want := range map[string]string{
		"":           "defines 2 apps (api, worker): pick one with --only NAME",
		"web":        `--only: no app named "web"; the file defines: api, worker`,
		"api,worker": "name one app",
	} {
		if _, err := f.Pick(only); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Pick(%q): %v, want %q", only, err, want)
		}
	}
	dup, _ := Parse([]byte(`[{"name": "a", "script": "x.js"}, {"name": "a", "script": "y.js"}]`), JSON)
	if _, err := dup.Pick("a"); err == nil || !strings.Contains(err.Error(), "2 apps are named") {
		t.Errorf("two apps with one name: %v", err)
	}
}

// dropInLine is what a line of a drop-in may be.
var dropInLine = regexp.MustCompile(`^(|#[^\n]*|\[Service\]|\[Socket\]|[A-Z][A-Za-z]+=[^\n]*)$`)

// FuzzParse feeds arbitrary files to Parse and Build: neither may panic,
// and every drop-in built is made of settings and comments only.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"apps": [{"name": "api", "script": "server.js", "instances": "max", "env": {"PORT": 3000, "A": "x y\n%i$Z"}, "args": "--a 'b c' --t=\"x y\""}]}`,
		`[{"script": "bin/www", "max_memory_restart": "1G", "kill_timeout": 1600, "node_args": ["--inspect"], "exec_mode": "cluster"}]`,
		`{"script": "npm", "args": ["start"], "cwd": "/srv/app", "env_production": {"NODE_ENV": "production"}}`,
		"apps:\n  - script: server.js\n    env: {PORT: 80}\n",
		`{"script": "server", "interpreter": "none", "autorestart": false, "wait_ready": true, "restart_delay": 1000}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		format := JSON
		if yaml {
			format = YAML
		}
		file, err := Parse(data, format)
		if err != nil {
			inputError(t, err)
			return
		}
		for _, app := range file.Apps {
			o := options()
			o.Env = "production"
			p, err := Build(file, app, o)
			if err != nil {
				inputError(t, err)
				continue
			}
			if p.Instances < 1 {
				t.Fatalf("instances %d", p.Instances)
			}
			for _, df := range p.Files {
				for _, line := range strings.Split(strings.TrimSuffix(df.Content, "\n"), "\n") {
					if !dropInLine.MatchString(line) {
						t.Fatalf("%s has a stray line %q:\n%s", df.Path, line, df.Content)
					}
				}
			}
		}
	})
}
