// Package ecosystem reads a PM2 ecosystem file and says what it means for
// a unitkit herd: the drop-ins for NAME@.service and NAME.socket, the
// sandbox grants the app needs, the instance count, and a report of every
// PM2 field that was mapped, and of every one that was not, with the
// reason. It only reads: writing the files and telling systemd is
// appctl import's job.
//
// A JavaScript ecosystem file (ecosystem.config.js) is code; the caller
// evaluates it with node and passes the JSON it printed. JSON and YAML
// files are parsed here. PM2's three forms are accepted: {apps: [...]}, a
// single app object, or an array of apps.
package ecosystem

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Format is how an ecosystem file's data is written.
type Format int

// The formats Parse reads.
const (
	// JSON is a .json file, or what node printed for a .js file.
	JSON Format = iota
	// YAML is a .yaml or .yml file.
	YAML
)

// File is a parsed ecosystem file.
type File struct {
	// Apps are the app definitions, in the file's order.
	Apps []App
	// Unmapped are the top-level keys besides apps (e.g. deploy).
	Unmapped []Unmapped
}

// App is one app definition, as written: its name and its fields.
type App struct {
	// Name is the app's name field, or what PM2 derives from its
	// script when it has none (the file name without its extension).
	Name   string
	fields map[string]any // JSON-like values: string, json.Number, bool, nil, []any, map[string]any
}

// Unmapped is a PM2 field that has no meaning for unitkit, and why.
type Unmapped struct {
	Field  string // e.g. "watch", "env_staging", "deploy"
	Value  string // the value as written, shortened
	Reason string
}

// InputError is a mistake in the ecosystem file or in what was asked of
// it; nothing should be written. It names the field when there is one.
type InputError struct {
	Field string // e.g. "instances"; empty for the file as a whole
	Msg   string // what is wrong and what to do
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Msg
	}
	return e.Field + ": " + e.Msg
}

func inputErr(field, format string, args ...any) error {
	return &InputError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// maxSize bounds the data Parse accepts: an ecosystem file is small.
const maxSize = 4 << 20

// Parse reads an ecosystem file's data in one of PM2's forms.
func Parse(data []byte, format Format) (File, error) {
	if len(data) > maxSize {
		return File{}, inputErr("", "the file is larger than %d MiB: not an ecosystem file", maxSize>>20)
	}
	var (
		top any
		err error
	)
	switch format {
	case JSON:
		top, err = decodeJSON(data)
	case YAML:
		top, err = decodeYAML(data)
	default:
		return File{}, fmt.Errorf("ecosystem: unknown format %d", format)
	}
	if err != nil {
		return File{}, err
	}
	return fromTop(top)
}

func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, inputErr("", "not valid JSON: %v (PM2 reads .json files as JSON5: if this one has comments or trailing commas, remove them, or rename it to ecosystem.config.js with module.exports = {...})", err)
	}
	if dec.More() {
		return nil, inputErr("", "not valid JSON: more than one value in the file")
	}
	return v, nil
}

func decodeYAML(data []byte) (any, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, inputErr("", "not valid YAML: %v", err)
	}
	timestampsAsText(&doc)
	var v any
	if err := doc.Decode(&v); err != nil {
		return nil, inputErr("", "not valid YAML: %v", err)
	}
	return normalizeYAML(v, 0)
}

// timestampsAsText makes a date (2024-01-02) a string as written, as a
// JavaScript YAML reader would not give a process anything else.
func timestampsAsText(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!timestamp" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		timestampsAsText(c)
	}
}

// normalizeYAML turns what yaml.v3 decodes into the JSON-like values the
// rest of the package reads: string keys, json.Number for numbers.
func normalizeYAML(v any, depth int) (any, error) {
	if depth > 100 {
		return nil, inputErr("", "YAML nested more than 100 levels deep")
	}
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			n, err := normalizeYAML(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[k] = n
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			n, err := normalizeYAML(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = n
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			n, err := normalizeYAML(e, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = n
		}
		return out, nil
	case int:
		return json.Number(strconv.Itoa(t)), nil
	case int64:
		return json.Number(strconv.FormatInt(t, 10)), nil
	case uint64:
		return json.Number(strconv.FormatUint(t, 10)), nil
	case float64:
		if math.IsInf(t, 0) || math.IsNaN(t) {
			return nil, nil // as JSON.stringify would have it
		}
		return json.Number(strconv.FormatFloat(t, 'f', -1, 64)), nil
	case string, bool, nil:
		return t, nil
	}
	return fmt.Sprint(v), nil
}

// fromTop recognizes PM2's three forms: {apps: [...]} (apps may also be
// a single object), one app object, or an array of apps.
func fromTop(top any) (File, error) {
	var f File
	var list []any
	switch t := top.(type) {
	case []any:
		list = t
	case map[string]any:
		apps, ok := t["apps"]
		if !ok {
			list = []any{t}
			break
		}
		switch a := apps.(type) {
		case []any:
			list = a
		case map[string]any:
			list = []any{a}
		default:
			return f, inputErr("apps", "want an array of apps, got %s", describe(apps))
		}
		for _, k := range sortedKeys(t) {
			if k != "apps" {
				f.Unmapped = append(f.Unmapped, Unmapped{Field: k, Value: shorten(t[k]), Reason: topLevelReason(k)})
			}
		}
	default:
		return f, inputErr("", "want {apps: [...]}, an app object or an array of apps, got %s", describe(top))
	}
	if len(list) == 0 {
		return f, inputErr("apps", "the file defines no app")
	}
	for i, a := range list {
		m, ok := a.(map[string]any)
		if !ok {
			return f, inputErr(fmt.Sprintf("apps[%d]", i), "want an app object with a script, got %s", describe(a))
		}
		f.Apps = append(f.Apps, App{Name: appName(m, i), fields: m})
	}
	return f, nil
}

func topLevelReason(key string) string {
	if key == "deploy" {
		return "pm2 deploy is not replaced: deploy with your own tool, then run appctl reload"
	}
	return "not part of an app definition"
}

// appName is the app's name, or PM2's default: the script's file name
// without its extension; apps[i] when neither is set.
func appName(m map[string]any, i int) string {
	if s, ok := m["name"].(string); ok && s != "" {
		return s
	}
	for _, k := range []string{"script", "exec"} {
		if s, ok := m[k].(string); ok && s != "" {
			base := path.Base(s)
			return strings.TrimSuffix(base, path.Ext(base))
		}
	}
	return fmt.Sprintf("apps[%d]", i)
}

// Names returns the apps' names, in the file's order.
func (f File) Names() []string {
	names := make([]string, len(f.Apps))
	for i, a := range f.Apps {
		names[i] = a.Name
	}
	return names
}

// Pick returns the app named only, or the file's one app when only is
// empty. A file with several apps needs a name: a herd runs one program.
func (f File) Pick(only string) (App, error) {
	if strings.Contains(only, ",") {
		return App{}, inputErr("--only", "%q: name one app; a herd runs one program (import each app as its own service with --app)", only)
	}
	if only == "" {
		if len(f.Apps) == 1 {
			return f.Apps[0], nil
		}
		return App{}, inputErr("", "the file defines %d apps (%s): pick one with --only NAME", len(f.Apps), strings.Join(f.Names(), ", "))
	}
	var found []App
	for _, a := range f.Apps {
		if a.Name == only {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return App{}, inputErr("--only", "no app named %q; the file defines: %s", only, strings.Join(f.Names(), ", "))
	case 1:
		return found[0], nil
	}
	return App{}, inputErr("--only", "%d apps are named %q: give them different names", len(found), only)
}

// describe names a JSON-like value's type for error messages.
func describe(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("the string %q", t)
	case json.Number:
		return "the number " + string(t)
	case bool:
		return "the boolean " + strconv.FormatBool(t)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// shorten renders a value for the report, at most 40 characters.
func shorten(v any) string {
	var s string
	switch t := v.(type) {
	case string:
		s = strconv.Quote(t)
	default:
		b, err := json.Marshal(t)
		if err != nil {
			s = fmt.Sprint(t)
		} else {
			s = string(b)
		}
	}
	if r := []rune(s); len(r) > 40 {
		s = string(r[:37]) + "..."
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
