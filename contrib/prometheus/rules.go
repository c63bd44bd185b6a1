package prometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// newParser returns the PromQL parser Prometheus uses by default.
func newParser() parser.Parser { return parser.NewParser(parser.Options{}) }

// LoadRules reads a rule file as Prometheus does: strictly, with every
// expression and annotation template checked. All problems are returned
// together.
func LoadRules(path string) (*rulefmt.RuleGroups, error) {
	groups, errs := rulefmt.ParseFile(path, false, model.UTF8Validation, newParser(), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		return nil, fmt.Errorf("load rules: %w", errors.Join(errs...))
	}
	return groups, nil
}

// Selectors returns the series selectors of a PromQL expression, in the
// order they appear.
func Selectors(expr string) ([]*parser.VectorSelector, error) {
	e, err := newParser().ParseExpr(expr)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", expr, err)
	}
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out, nil
}

// MetricName returns the metric name a selector asks for, "" if it names
// none.
func MetricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// MatchedLabels returns the names of the labels a selector matches on,
// the metric name aside.
func MatchedLabels(vs *parser.VectorSelector) []string {
	var out []string
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel && !slices.Contains(out, m.Name) {
			out = append(out, m.Name)
		}
	}
	return out
}

// NewAlertingRules turns the alerting rules of groups into rules that can
// be evaluated, as Prometheus's rule manager does.
func NewAlertingRules(groups *rulefmt.RuleGroups) ([]*rules.AlertingRule, error) {
	p := newParser()
	var out []*rules.AlertingRule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				return nil, fmt.Errorf("alert %s: %w", r.Alert, err)
			}
			out = append(out, rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
				labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true,
				slog.New(slog.DiscardHandler)))
		}
	}
	return out, nil
}

// Firing evaluates every rule at each step from start to end, as the rule
// manager would every evaluation interval, and returns the alerts firing
// at end.
func Firing(ctx context.Context, rs []*rules.AlertingRule, engine promql.QueryEngine, q storage.Queryable,
	start, end time.Time, step time.Duration,
) ([]*rules.Alert, error) {
	query := rules.EngineQueryFunc(engine, q)
	external, _ := url.Parse("http://prometheus.example")
	for ts := start; !ts.After(end); ts = ts.Add(step) {
		for _, r := range rs {
			if _, err := r.Eval(ctx, 0, ts, query, external, 0); err != nil {
				return nil, fmt.Errorf("evaluate %s at %s: %w", r.Name(), ts.UTC().Format(time.TimeOnly), err)
			}
		}
	}
	var firing []*rules.Alert
	for _, r := range rs {
		for _, a := range r.ActiveAlerts() {
			if a.State == rules.StateFiring {
				firing = append(firing, a)
			}
		}
	}
	return firing, nil
}
