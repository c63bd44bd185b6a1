package kubernetes

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	// AppContainer is the name of the container that runs the app binary.
	AppContainer = "app"
	// ReadinessPath is the activation package's readiness endpoint: 503
	// while the app is starting or draining.
	ReadinessPath = "/readyz"
	// LivenessPath is the activation package's liveness endpoint: 503 when
	// the canary request through the handler fails.
	LivenessPath = "/healthz"
	// DefaultDrainTimeout is the app's drain timeout when DRAIN_TIMEOUT is
	// unset.
	DefaultDrainTimeout = 30 * time.Second
	// MaxDrainTimeout is the longest DRAIN_TIMEOUT the app accepts.
	MaxDrainTimeout = time.Hour
	// MinStopMargin is the least time the grace period must leave after
	// the preStop sleep and the drain timeout: the margin the app itself
	// asks systemd for (EXTEND_TIMEOUT_USEC=) on top of its drain.
	MinStopMargin = 5 * time.Second
)

// Check is one semantic check of a Bundle.
type Check struct {
	// Name says what the check asserts.
	Name string
	// Run returns nil when the bundle passes, else every problem found.
	Run func(b *Bundle) error
}

// Checks returns the semantic checks that tie the manifests together.
func Checks() []Check {
	return []Check{
		{"one object of each kind", checkCounts},
		{"kustomization lists every manifest", checkKustomization},
		{"selectors match the pod labels", checkSelectors},
		{"autoscaler targets the deployment", checkAutoscaler},
		{"disruption budget lets a node drain", checkDisruptionBudget},
		{"service reaches the app's port", checkServicePorts},
		{"probes use the app's endpoints", checkProbes},
		{"grace period covers preStop and drain", checkGracePeriod},
		{"containers request cpu and memory", checkResources},
		{"pod is sandboxed like the systemd unit", checkSecurity},
	}
}

// checkCounts wants exactly one object of each kind.
func checkCounts(b *Bundle) error {
	var errs []error
	for _, c := range []struct {
		kind string
		n    int
	}{
		{"Deployment", len(b.Deployments)},
		{"Service", len(b.Services)},
		{"PodDisruptionBudget", len(b.PDBs)},
		{"HorizontalPodAutoscaler", len(b.HPAs)},
	} {
		if c.n != 1 {
			errs = append(errs, fmt.Errorf("want exactly one %s, found %d", c.kind, c.n))
		}
	}
	if b.Kustomization == nil {
		errs = append(errs, fmt.Errorf("no %s", KustomizationFile))
	}
	return errors.Join(errs...)
}

// checkKustomization wants the Kustomization to list exactly the files
// holding API objects.
func checkKustomization(b *Bundle) error {
	if b.Kustomization == nil {
		return fmt.Errorf("no %s", KustomizationFile)
	}
	var errs []error
	listed := b.Kustomization.Resources
	for _, f := range b.ResourceFiles {
		if !slices.Contains(listed, f) {
			errs = append(errs, fmt.Errorf("%s does not list %s", KustomizationFile, f))
		}
	}
	for _, r := range listed {
		if !slices.Contains(b.ResourceFiles, r) {
			errs = append(errs, fmt.Errorf("%s lists %s, which is not a manifest in the folder", KustomizationFile, r))
		}
	}
	if n := len(listed) - len(slices.Compact(slices.Sorted(slices.Values(listed)))); n > 0 {
		errs = append(errs, fmt.Errorf("%s lists %d resources twice", KustomizationFile, n))
	}
	return errors.Join(errs...)
}

// deployment returns the bundle's only Deployment.
func (b *Bundle) deployment() (*appsv1.Deployment, error) {
	if len(b.Deployments) != 1 {
		return nil, fmt.Errorf("want exactly one Deployment, found %d", len(b.Deployments))
	}
	return b.Deployments[0], nil
}

// appContainer returns the Deployment's container named AppContainer.
func appContainer(d *appsv1.Deployment) (*corev1.Container, error) {
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == AppContainer {
			return c, nil
		}
	}
	return nil, fmt.Errorf("deployment %s has no container named %q", d.Name, AppContainer)
}

// checkSelectors wants every selector that should pick the app's pods to be
// non-empty and to match the pod template's labels.
func checkSelectors(b *Bundle) error {
	d, err := b.deployment()
	if err != nil {
		return err
	}
	pod := labels.Set(d.Spec.Template.Labels)
	errs := []error{matchLabelSelector("deployment "+d.Name+" selector", d.Spec.Selector, pod)}
	for _, s := range b.Services {
		what := "service " + s.Name + " selector"
		sel := labels.SelectorFromSet(s.Spec.Selector)
		switch {
		case sel.Empty():
			errs = append(errs, fmt.Errorf("%s is empty", what))
		case !sel.Matches(pod):
			errs = append(errs, fmt.Errorf("%s %s does not match pod labels %s", what, sel, pod))
		}
	}
	for _, p := range b.PDBs {
		errs = append(errs, matchLabelSelector("disruption budget "+p.Name+" selector", p.Spec.Selector, pod))
	}
	for _, t := range d.Spec.Template.Spec.TopologySpreadConstraints {
		errs = append(errs, matchLabelSelector("topology spread on "+t.TopologyKey, t.LabelSelector, pod))
	}
	return errors.Join(errs...)
}

// matchLabelSelector wants ls to be non-empty and to match pod.
func matchLabelSelector(what string, ls *metav1.LabelSelector, pod labels.Set) error {
	sel, err := metav1.LabelSelectorAsSelector(ls)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case sel.Empty():
		return fmt.Errorf("%s is empty", what)
	case !sel.Matches(pod):
		return fmt.Errorf("%s %s does not match pod labels %s", what, sel, pod)
	}
	return nil
}

// checkAutoscaler wants every HPA to target the Deployment, which then must
// not fix its own replica count, with at least two replicas, and with the
// resource requests its utilisation targets are measured against.
func checkAutoscaler(b *Bundle) error {
	d, err := b.deployment()
	if err != nil {
		return err
	}
	var errs []error
	if len(b.HPAs) > 0 && d.Spec.Replicas != nil {
		errs = append(errs, fmt.Errorf("deployment %s sets spec.replicas=%d although an autoscaler manages it: every apply would reset the count", d.Name, *d.Spec.Replicas))
	}
	for _, h := range b.HPAs {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
			errs = append(errs, fmt.Errorf("autoscaler %s targets %s %s %q, want apps/v1 Deployment %q", h.Name, ref.APIVersion, ref.Kind, ref.Name, d.Name))
		}
		if n := minReplicas(b); n < 2 {
			errs = append(errs, fmt.Errorf("autoscaler %s minReplicas is %d: a single pod cannot be drained without an outage", h.Name, n))
		}
		for _, m := range h.Spec.Metrics {
			if m.Resource != nil && m.Resource.Target.AverageUtilization != nil {
				errs = append(errs, requireRequest(d, m.Resource.Name, "autoscaler "+h.Name))
			}
		}
	}
	return errors.Join(errs...)
}

// minReplicas is the fewest pods the bundle runs: the HPA's minimum, else
// the Deployment's replicas, else Kubernetes' default of 1.
func minReplicas(b *Bundle) int32 {
	switch {
	case len(b.HPAs) > 0 && b.HPAs[0].Spec.MinReplicas != nil:
		return *b.HPAs[0].Spec.MinReplicas
	case len(b.Deployments) > 0 && b.Deployments[0].Spec.Replicas != nil:
		return *b.Deployments[0].Spec.Replicas
	}
	return 1
}

// requireRequest wants every container of d to request resource res.
func requireRequest(d *appsv1.Deployment, res corev1.ResourceName, why string) error {
	var errs []error
	for _, c := range d.Spec.Template.Spec.Containers {
		if q, ok := c.Resources.Requests[res]; !ok || q.IsZero() {
			errs = append(errs, fmt.Errorf("container %s requests no %s, which %s measures utilisation against", c.Name, res, why))
		}
	}
	return errors.Join(errs...)
}

// checkDisruptionBudget wants every PDB to allow at least one eviction when
// the fewest pods run, or a node drain would block.
func checkDisruptionBudget(b *Bundle) error {
	pods := int(minReplicas(b))
	var errs []error
	for _, p := range b.PDBs {
		if err := disruptionsAllowed(p.Spec.MinAvailable, p.Spec.MaxUnavailable, pods); err != nil {
			errs = append(errs, fmt.Errorf("disruption budget %s: %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// disruptionsAllowed scales minAvailable or maxUnavailable (exactly one is
// set) to pods as the disruption controller does, rounding up, and wants
// one eviction to be allowed.
func disruptionsAllowed(minAvailable, maxUnavailable *intstr.IntOrString, pods int) error {
	switch {
	case (minAvailable == nil) == (maxUnavailable == nil):
		return errors.New("set exactly one of minAvailable and maxUnavailable")
	case maxUnavailable != nil:
		n, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, pods, true)
		if err != nil {
			return fmt.Errorf("maxUnavailable: %w", err)
		}
		if n < 1 {
			return fmt.Errorf("maxUnavailable %s allows no eviction of %d pods", maxUnavailable, pods)
		}
	default:
		n, err := intstr.GetScaledValueFromIntOrPercent(minAvailable, pods, true)
		if err != nil {
			return fmt.Errorf("minAvailable: %w", err)
		}
		if n >= pods {
			return fmt.Errorf("minAvailable %s allows no eviction of %d pods", minAvailable, pods)
		}
	}
	return nil
}

// envValue returns the literal value of the container's variable name.
func envValue(c *corev1.Container, name string) (value string, set bool, err error) {
	for _, e := range c.Env {
		if e.Name != name {
			continue
		}
		if e.ValueFrom != nil {
			return "", true, fmt.Errorf("container %s: %s must be a literal value, not valueFrom", c.Name, name)
		}
		return e.Value, true, nil
	}
	return "", false, nil
}

// appPort returns the port the app listens on, $PORT, after checking that
// the container declares it.
func appPort(c *corev1.Container) (int32, error) {
	v, set, err := envValue(c, "PORT")
	switch {
	case err != nil:
		return 0, err
	case !set:
		return 0, fmt.Errorf("container %s does not set PORT: the app would listen on its default, which the manifests should not rely on", c.Name)
	}
	p, err := strconv.ParseInt(v, 10, 32)
	if err != nil || p < 1 || p > math.MaxUint16 {
		return 0, fmt.Errorf("container %s: PORT=%q is not a port number", c.Name, v)
	}
	for _, cp := range c.Ports {
		if cp.ContainerPort == int32(p) {
			return int32(p), nil
		}
	}
	return 0, fmt.Errorf("container %s: PORT=%s is not among its containerPorts", c.Name, v)
}

// resolvePort turns a target port (number or container port name) into a
// container port number.
func resolvePort(c *corev1.Container, port intstr.IntOrString) (int32, error) {
	for _, cp := range c.Ports {
		if (port.Type == intstr.String && cp.Name == port.StrVal) ||
			(port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("port %s is not a port of container %s", port.String(), c.Name)
}

// checkServicePorts wants every Service port to reach $PORT of the app.
func checkServicePorts(b *Bundle) error {
	c, want, err := appContainerPort(b)
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range b.Services {
		for _, sp := range s.Spec.Ports {
			target := sp.TargetPort
			if target == (intstr.IntOrString{}) {
				target = intstr.FromInt32(sp.Port) // the API's default
			}
			got, err := resolvePort(c, target)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("service %s port %d: %w", s.Name, sp.Port, err))
			case got != want:
				errs = append(errs, fmt.Errorf("service %s port %d reaches container port %d, the app listens on PORT=%d", s.Name, sp.Port, got, want))
			}
		}
	}
	return errors.Join(errs...)
}

// appContainerPort returns the app container and the port it listens on.
func appContainerPort(b *Bundle) (*corev1.Container, int32, error) {
	d, err := b.deployment()
	if err != nil {
		return nil, 0, err
	}
	c, err := appContainer(d)
	if err != nil {
		return nil, 0, err
	}
	p, err := appPort(c)
	return c, p, err
}

// probeSpec is what one probe of the app container must look like.
type probeSpec struct {
	kind  string
	probe *corev1.Probe
	path  string
}

// checkProbes wants readiness on /readyz and liveness on /healthz, both
// HTTP GETs to $PORT, and liveness slower to give up than readiness.
func checkProbes(b *Bundle) error {
	c, port, err := appContainerPort(b)
	if err != nil {
		return err
	}
	var errs []error
	for _, ps := range []probeSpec{
		{"readiness", c.ReadinessProbe, ReadinessPath},
		{"liveness", c.LivenessProbe, LivenessPath},
	} {
		errs = append(errs, checkProbe(c, port, ps))
	}
	if c.ReadinessProbe != nil && c.LivenessProbe != nil &&
		failAfter(c.LivenessProbe) <= failAfter(c.ReadinessProbe) {
		errs = append(errs, fmt.Errorf("liveness gives up after %s, readiness after %s: liveness should be the slower, so that a struggling pod is first taken out of the Service, not restarted", failAfter(c.LivenessProbe), failAfter(c.ReadinessProbe)))
	}
	return errors.Join(errs...)
}

// checkProbe checks one probe against its spec.
func checkProbe(c *corev1.Container, port int32, ps probeSpec) error {
	if ps.probe == nil || ps.probe.HTTPGet == nil {
		return fmt.Errorf("container %s: want an httpGet %s probe on %s", c.Name, ps.kind, ps.path)
	}
	g := ps.probe.HTTPGet
	var errs []error
	if g.Path != ps.path {
		errs = append(errs, fmt.Errorf("%s probe path is %q, want %q", ps.kind, g.Path, ps.path))
	}
	if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
		errs = append(errs, fmt.Errorf("%s probe scheme is %s, the app serves HTTP", ps.kind, g.Scheme))
	}
	if got, err := resolvePort(c, g.Port); err != nil {
		errs = append(errs, fmt.Errorf("%s probe: %w", ps.kind, err))
	} else if got != port {
		errs = append(errs, fmt.Errorf("%s probe goes to port %d, the app listens on PORT=%d", ps.kind, got, port))
	}
	return errors.Join(errs...)
}

// failAfter is how long a probe fails before the kubelet acts, with the
// API's defaults for unset fields (period 10s, failure threshold 3).
func failAfter(p *corev1.Probe) time.Duration {
	period, threshold := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if threshold == 0 {
		threshold = 3
	}
	return time.Duration(period) * time.Duration(threshold) * time.Second
}

// drainTimeout reads the container's DRAIN_TIMEOUT as the app does, with
// the app's default when it is unset.
func drainTimeout(c *corev1.Container) (d time.Duration, set bool, err error) {
	v, set, err := envValue(c, "DRAIN_TIMEOUT")
	if err != nil || !set || v == "" {
		return DefaultDrainTimeout, false, err
	}
	d, err = time.ParseDuration(v)
	if err != nil {
		return 0, true, fmt.Errorf("container %s: DRAIN_TIMEOUT: %w", c.Name, err)
	}
	if d < time.Millisecond || d > MaxDrainTimeout {
		return 0, true, fmt.Errorf("container %s: DRAIN_TIMEOUT=%s is outside the app's 1ms to %s", c.Name, d, MaxDrainTimeout)
	}
	return d, true, nil
}

// checkGracePeriod wants a preStop sleep and an explicit DRAIN_TIMEOUT that
// together, plus MinStopMargin, fit in terminationGracePeriodSeconds.
func checkGracePeriod(b *Bundle) error {
	d, err := b.deployment()
	if err != nil {
		return err
	}
	c, err := appContainer(d)
	if err != nil {
		return err
	}
	sleep, err := preStopSleep(c)
	if err != nil {
		return err
	}
	drain, set, err := drainTimeout(c)
	if err != nil {
		return err
	}
	if !set {
		return fmt.Errorf("container %s does not set DRAIN_TIMEOUT: set it explicitly so that the grace period visibly matches it", c.Name)
	}
	grace := 30 * time.Second // the API's default
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	if need := sleep + drain + MinStopMargin; grace < need {
		return fmt.Errorf("terminationGracePeriodSeconds is %s, want at least %s = preStop sleep %s + DRAIN_TIMEOUT %s + margin %s: the kubelet would SIGKILL a pod still draining", grace, need, sleep, drain, MinStopMargin)
	}
	return nil
}

// preStopSleep returns the container's preStop sleep, which must be the
// built-in sleep action (the image has no shell) and at least a second.
func preStopSleep(c *corev1.Container) (time.Duration, error) {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil {
		return 0, fmt.Errorf("container %s has no preStop hook: SIGTERM would close the listener while endpoints still send traffic", c.Name)
	}
	h := c.Lifecycle.PreStop
	if h.Sleep == nil {
		return 0, fmt.Errorf("container %s: preStop must be a sleep action; the image has no shell for exec", c.Name)
	}
	if h.Sleep.Seconds < 1 {
		return 0, fmt.Errorf("container %s: preStop sleeps %ds, want at least 1s for endpoint removal to spread", c.Name, h.Sleep.Seconds)
	}
	return time.Duration(h.Sleep.Seconds) * time.Second, nil
}

// checkResources wants every container to request cpu and memory and to
// cap memory, with no limit below its request.
func checkResources(b *Bundle) error {
	d, err := b.deployment()
	if err != nil {
		return err
	}
	var errs []error
	spec := d.Spec.Template.Spec
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		errs = append(errs, checkContainerResources(c))
	}
	return errors.Join(errs...)
}

// checkContainerResources checks one container's requests and limits.
func checkContainerResources(c corev1.Container) error {
	var errs []error
	r := c.Resources
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, ok := r.Requests[name]
		if !ok || req.IsZero() {
			errs = append(errs, fmt.Errorf("container %s requests no %s", c.Name, name))
		}
		if lim, ok := r.Limits[name]; ok && lim.Cmp(req) < 0 {
			errs = append(errs, fmt.Errorf("container %s: %s limit %s is below its request %s", c.Name, name, lim.String(), req.String()))
		}
	}
	if _, ok := r.Limits[corev1.ResourceMemory]; !ok {
		errs = append(errs, fmt.Errorf("container %s has no memory limit", c.Name))
	}
	return errors.Join(errs...)
}
