package ecosystem

import (
	"slices"
	"strings"
)

// field describes a PM2 app field: its other spellings, and, when it has
// no equivalent in a unitkit herd, why.
type field struct {
	aliases []string
	reason  string // empty: mapped by Build
}

// Reasons shared by several fields.
const (
	logsReason       = "logs go to the journal: appctl logs (-f, -i N, --since)"
	startLimitReason = "not mapped to StartLimitBurst=/StartLimitIntervalSec=: in systemd 252 a start limit hit by one instance fails the shared socket (NOTES.md); instances never give up: one that keeps failing backs off, 100 ms doubling up to 30 s, shows as backing off in appctl status, and recovers by itself"
	watchReason      = "no file watching: after a deploy, appctl reload replaces the instances one by one without losing a request"
	monitorReason    = "PM2's own tooling (PM2.io, keymetrics, versioning): appctl status, appctl metrics and /metrics instead"
	cliReason        = "a PM2 command-line behaviour with no equivalent"
	userReason       = "instances run as a dynamic user (DynamicUser=yes), never as a login user"
	killReason       = "systemd stops the whole cgroup: SIGTERM to the main process, SIGKILL to whatever is left after TimeoutStopSec= (KillMode=mixed)"
)

// fields lists PM2's app fields (PM2's lib/API/schema.json) under the
// spelling Build reads. It is never modified.
var fields = map[string]field{
	"script":                     {aliases: []string{"exec"}},
	"name":                       {},
	"cwd":                        {},
	"args":                       {},
	"interpreter":                {aliases: []string{"exec_interpreter"}},
	"node_args":                  {aliases: []string{"interpreter_args", "interpreterArgs"}},
	"env":                        {},
	"port":                       {},
	"instances":                  {},
	"exec_mode":                  {},
	"wait_ready":                 {},
	"listen_timeout":             {},
	"kill_timeout":               {},
	"max_memory_restart":         {},
	"autorestart":                {},
	"restart_delay":              {},
	"instance_var":               {},
	"max_restarts":               {reason: startLimitReason},
	"min_uptime":                 {},
	"exp_backoff_restart_delay":  {},
	"stop_exit_codes":            {reason: "instances restart whatever their exit status; add RestartPreventExitStatus= in a drop-in (systemctl edit app@.service) if needed"},
	"out_file":                   {aliases: []string{"out", "output", "out_log"}, reason: logsReason},
	"error_file":                 {aliases: []string{"error", "err", "err_file", "err_log"}, reason: logsReason},
	"log_file":                   {aliases: []string{"log"}, reason: logsReason},
	"merge_logs":                 {aliases: []string{"combine_logs"}, reason: logsReason + "; every instance's lines are interleaved there"},
	"log_date_format":            {reason: "the journal stamps every line: appctl logs -o short-iso, or journalctl -o"},
	"log_type":                   {reason: logsReason + "; appctl logs -o json for JSON"},
	"disable_logs":               {reason: logsReason},
	"time":                       {reason: "the journal stamps every line"},
	"pid_file":                   {aliases: []string{"pid"}, reason: "systemd tracks the process: appctl status shows each instance's PID"},
	"watch":                      {reason: watchReason},
	"ignore_watch":               {reason: watchReason},
	"watch_options":              {reason: watchReason},
	"watch_delay":                {reason: watchReason},
	"cron_restart":               {aliases: []string{"cron"}, reason: "use a systemd timer (OnCalendar=) that runs appctl reload"},
	"increment_var":              {reason: "every instance serves the one shared socket, so none needs a port of its own; NODE_APP_INSTANCE tells them apart"},
	"uid":                        {aliases: []string{"user"}, reason: userReason},
	"gid":                        {reason: userReason},
	"username":                   {reason: userReason},
	"namespace":                  {reason: "the service's name (appctl --app) groups its instances"},
	"name_prefix":                {reason: "the service's name (appctl --app) groups its instances"},
	"filter_env":                 {reason: "instances never inherit the environment of the shell that runs appctl: only what the unit sets"},
	"shutdown_with_message":      {reason: "instances are stopped with SIGTERM and drain"},
	"treekill":                   {reason: killReason},
	"kill_retry_time":            {reason: killReason},
	"source_map_support":         {reason: "pass --enable-source-maps in node_args"},
	"disable_source_map_support": {reason: "source maps are off unless node_args has --enable-source-maps"},
	"vizion":                     {reason: monitorReason},
	"pmx":                        {reason: monitorReason},
	"automation":                 {reason: monitorReason},
	"trace":                      {reason: monitorReason},
	"disable_trace":              {reason: monitorReason},
	"v8":                         {reason: monitorReason},
	"event_loop_inspector":       {reason: monitorReason},
	"deep_monitoring":            {reason: monitorReason},
	"io":                         {reason: monitorReason},
	"post_update":                {reason: monitorReason},
	"install_url":                {reason: cliReason},
	"force":                      {reason: cliReason},
	"append_env_to_name":         {reason: cliReason},
	"execute_command":            {reason: cliReason},
	"write":                      {reason: cliReason},
	"windowsHide":                {reason: cliReason},
}

// camel is PM2's camelCase alias of a field name: node_args → nodeArgs.
func camel(name string) string {
	parts := strings.Split(name, "_")
	for i := 1; i < len(parts); i++ {
		if len(parts[i]) > 1 {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// canonical returns the spelling Build reads for a field name as written,
// and whether it is a PM2 field at all.
func canonical(key string) (string, bool) {
	if _, ok := fields[key]; ok {
		return key, true
	}
	for name, f := range fields {
		if key == camel(name) || slices.Contains(f.aliases, key) {
			return name, true
		}
	}
	return "", false
}

// normalize renames the app's fields to their canonical spelling. As in
// PM2, the canonical spelling wins over an alias; the loser, unknown
// fields and the env_NAME blocks not chosen are reported.
func normalize(raw map[string]any, envName string) (map[string]any, []Unmapped) {
	out := map[string]any{}
	var unmapped []Unmapped
	keys := sortedKeys(raw)
	// Canonical spellings first, so that they win.
	slices.SortStableFunc(keys, func(a, b string) int {
		_, ca := fields[a]
		_, cb := fields[b]
		switch {
		case ca && !cb:
			return -1
		case cb && !ca:
			return 1
		}
		return 0
	})
	for _, k := range keys {
		v := raw[k]
		if rest, ok := strings.CutPrefix(k, "env_"); ok && rest != "" {
			if rest == envName {
				out[k] = v
			} else {
				unmapped = append(unmapped, Unmapped{Field: k, Value: shorten(v), Reason: "used only with --env " + rest})
			}
			continue
		}
		name, ok := canonical(k)
		switch {
		case !ok:
			unmapped = append(unmapped, Unmapped{Field: k, Value: shorten(v), Reason: "not a PM2 app field"})
		case out[name] != nil:
			unmapped = append(unmapped, Unmapped{Field: k, Value: shorten(v), Reason: "another spelling of " + name + ", which is also set and wins"})
		case fields[name].reason != "":
			unmapped = append(unmapped, Unmapped{Field: k, Value: shorten(v), Reason: fields[name].reason})
		case v != nil:
			out[name] = v
		}
	}
	return out, unmapped
}
