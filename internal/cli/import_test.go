package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// appDir makes a directory the instances' dynamic user could read, with
// files in it, and returns its path.
func appDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "appctl-import")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// node returns the machine's node, which evaluates ecosystem.config.js.
func node(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found in $PATH: install Node.js 18 or later (Debian: apt-get install nodejs); CI does")
	}
	return p
}

// runAppctl runs appctl with args and returns its exit code and output.
func runAppctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

const serverJS = "require('node:http').createServer((q, s) => s.end('hi')).listen(process.env.PORT);\n"

// A JavaScript ecosystem file is evaluated with node, from its directory,
// and --dry-run prints the plan and the files without writing them.
func TestImportDryRunEvaluatesJS(t *testing.T) {
	nodePath := node(t)
	for name, eco := range map[string]string{
		"ecosystem.config.js": `const path = require('node:path');
module.exports = { apps: [{ name: 'api', script: path.join(__dirname, 'server.js'), instances: 3,
  exec_mode: 'cluster', max_memory_restart: '256M', env: { PORT: 3100, FROM_CWD: process.cwd() } }] };`,
		"ecosystem.config.mjs": `export default { apps: [{ name: 'api', script: './server.js', instances: 3, max_memory_restart: '256M', env: { PORT: 3100, FROM_CWD: process.cwd() } }] };`,
		"ecosystem.config.cjs": `module.exports = Promise.resolve({ name: 'api', script: 'server.js', instances: 3, max_memory_restart: '256M', env: { PORT: 3100, FROM_CWD: process.cwd() } });`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := appDir(t, map[string]string{name: eco, "server.js": serverJS})
			code, out, errOut := runAppctl(t, "import", filepath.Join(dir, name), "--dry-run")
			if code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			for _, want := range []string{
				"App api from " + filepath.Join(dir, name),
				"ExecStart=" + nodePath + " " + filepath.Join(dir, "server.js"),
				"Environment=FROM_CWD=" + dir,
				"ListenStream=3100",
				"MemoryMax=256M",
				"appctl scale 3",
				"BindReadOnlyPaths=" + dir, // /tmp is private to the instances
				"==> /etc/systemd/system/app@.service.d/50-import.conf <==",
				"==> /etc/systemd/system/app.socket.d/50-import.conf <==",
				"dry run: nothing was written or changed",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// --app names the service, and with it the drop-ins; --only the app.
func TestImportDryRunNamesServiceAndApp(t *testing.T) {
	dir := appDir(t, map[string]string{"server.js": serverJS, "eco.json": `{"apps": [{"name": "a", "script": "server.js"}, {"name": "b", "script": "server.js", "env_production": {"PORT": 81}}]}`})
	code, out, errOut := runAppctl(t, "--app", "shop", "import", filepath.Join(dir, "eco.json"), "--only", "b", "--env", "production", "--dry-run")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"App b from", "/etc/systemd/system/shop@.service.d/50-import.conf", "/etc/systemd/system/shop.socket.d/50-import.conf", "ListenStream=81"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Whatever is wrong with the file, or what was asked of it, exits 2 with
// a message that names the field, and writes nothing.
func TestImportUsageErrors(t *testing.T) {
	node(t)
	dir := appDir(t, map[string]string{
		"server.js":        serverJS,
		"syntax.config.js": "module.exports = { apps: [ { script: 'server.js' ] };",
		"throws.config.js": "throw new Error('no DATABASE_URL in the environment');",
		"two.json":         `[{"name": "api", "script": "server.js"}, {"name": "worker", "script": "server.js"}]`,
		"mode.yaml":        "script: server.js\nexec_mode: threads\n",
		"inst.json":        `{"script": "server.js", "instances": -3}`,
		"size.json":        `{"script": "server.js", "max_memory_restart": "1 GB"}`,
		"gone.json":        `{"script": "missing.js"}`,
		"comments.json":    "{\n  // PM2 reads JSON5\n  \"script\": \"server.js\"\n}",
		"eco.toml":         "",
	})
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"import", filepath.Join(dir, "none.config.js")}, []string{"no such file"}},
		{[]string{"import", dir}, []string{"is a directory"}},
		{[]string{"import", filepath.Join(dir, "eco.toml")}, []string{".js, .cjs, .mjs, .json, .yaml or .yml"}},
		{[]string{"import", filepath.Join(dir, "syntax.config.js")}, []string{"does not evaluate", "SyntaxError"}},
		{[]string{"import", filepath.Join(dir, "throws.config.js")}, []string{"does not evaluate", "no DATABASE_URL in the environment"}},
		{[]string{"import", filepath.Join(dir, "two.json")}, []string{"defines 2 apps (api, worker)", "--only NAME"}},
		{[]string{"import", filepath.Join(dir, "two.json"), "--only", "web"}, []string{`no app named "web"`}},
		{[]string{"import", filepath.Join(dir, "mode.yaml")}, []string{"exec_mode", `"threads"`}},
		{[]string{"import", filepath.Join(dir, "inst.json")}, []string{"instances: -3"}},
		{[]string{"import", filepath.Join(dir, "size.json")}, []string{"max_memory_restart", "512M"}},
		{[]string{"import", filepath.Join(dir, "gone.json")}, []string{"script", "missing.js", "does not exist"}},
		{[]string{"import", filepath.Join(dir, "comments.json")}, []string{"not valid JSON", "JSON5"}},
		{[]string{"import", filepath.Join(dir, "gone.json"), "--env", "production"}, []string{"--env", "env_production"}},
		{[]string{"import", filepath.Join(dir, "two.json"), "--only", "api", "--writable", "../etc"}, []string{"--writable"}},
		{[]string{"import"}, []string{"give the ecosystem file"}},
	} {
		code, out, errOut := runAppctl(t, tc.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s%s", tc.args, code, exitUsage, out, errOut)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
		if out != "" {
			t.Errorf("%v: a usage error printed a report:\n%s", tc.args, out)
		}
	}
}

// More instances than the limit is a usage error before anything else.
func TestImportInstancesLimit(t *testing.T) {
	dir := appDir(t, map[string]string{"server.js": serverJS, "eco.json": `{"script": "server.js", "instances": 100}`})
	code, _, errOut := runAppctl(t, "import", filepath.Join(dir, "eco.json"), "--dry-run")
	if code != exitUsage || !strings.Contains(errOut, "exceeds the limit of 64") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestNodeMessage(t *testing.T) {
	stderr := "/srv/eco.js:1\nthrow new Error('x');\n^\n\nError: x\n    at Object.<anonymous> (/srv/eco.js:1:7)\n    at Module._compile (node:internal)\n\nNode.js v20.20.2\n"
	want := "/srv/eco.js:1\nthrow new Error('x');\n^\n\nError: x\n    at Object.<anonymous> (/srv/eco.js:1:7)"
	if got := nodeMessage(stderr); got != want {
		t.Errorf("nodeMessage = %q, want %q", got, want)
	}
}
