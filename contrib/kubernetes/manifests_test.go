package kubernetes

import (
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// loadBundle loads the manifests of this folder, the test's directory.
func loadBundle(t *testing.T) *Bundle {
	t.Helper()
	b, err := Load(".")
	if err != nil {
		t.Fatalf("load manifests: %v", err)
	}
	return b
}

// findCheck returns the check called name.
func findCheck(t *testing.T, name string) Check {
	t.Helper()
	for _, c := range Checks() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no check named %q", name)
	return Check{}
}

// TestManifests decodes every manifest strictly and runs every check.
func TestManifests(t *testing.T) {
	b := loadBundle(t)
	for _, c := range Checks() {
		t.Run(c.Name, func(t *testing.T) {
			if err := c.Run(b); err != nil {
				t.Errorf("%s:\n%v", c.Name, err)
			}
		})
	}
}

// TestDecodeRejects proves that decoding is strict: each document is valid
// but for one mistake that a lenient decoder would let through.
func TestDecodeRejects(t *testing.T) {
	const service = `apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector:
    app.kubernetes.io/name: app
  ports:
    - port: 80
      targetPort: http
`
	if _, err := Decode([]byte(service)); err != nil {
		t.Fatalf("the unbroken Service does not decode: %v", err)
	}
	tests := []struct {
		name string
		doc  string
		want string // part of the error
	}{
		{"unknown field", strings.Replace(service, "  name: app\n", "  name: app\n  nmae: app\n", 1), `unknown field "metadata.nmae"`},
		{"unknown top-level field", service + "status2: {}\n", `unknown field "status2"`},
		{"field in the wrong case", strings.Replace(service, "targetPort:", "TargetPort:", 1), `unknown field "spec.ports[0].TargetPort"`},
		{"duplicate key", service + "kind: Service\n", `"kind" already set`},
		{"wrong value type", strings.Replace(service, "port: 80", `port: "80"`, 1), "cannot unmarshal string"},
		{"unknown kind", strings.Replace(service, "kind: Service", "kind: Servce", 1), `unsupported apiVersion "v1" kind "Servce"`},
		{"kind of another apiVersion", strings.Replace(service, "apiVersion: v1", "apiVersion: apps/v1", 1), `unsupported apiVersion "apps/v1" kind "Service"`},
		{"no kind", strings.Replace(service, "kind: Service\n", "", 1), "both are required"},
		{"not a mapping", "- just\n- a list\n", "read apiVersion and kind"},
		{"typo deep in deployment.yaml", injectAfter(t, "deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFileSystem: true"),
			`unknown field "spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := DecodeAll([]byte(tt.doc))
			if err == nil {
				t.Fatalf("decoded %d objects without error, want an error containing %q; document:\n%s", len(objs), tt.want, tt.doc)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}

// injectAfter returns the manifest file with line added after the first
// line containing anchor, at the same indentation.
func injectAfter(t *testing.T, file, anchor, line string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	for i, l := range lines {
		if strings.Contains(l, anchor) {
			indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
			lines[i] = l + indent + line + "\n"
			return strings.Join(lines, "")
		}
	}
	t.Fatalf("%s has no line containing %q", file, anchor)
	return ""
}

// TestChecksCatchMistakes proves that each check is not vacuous: one
// mistake made in the loaded manifests makes the check fail.
func TestChecksCatchMistakes(t *testing.T) {
	pod := func(b *Bundle) *corev1.PodSpec { return &b.Deployments[0].Spec.Template.Spec }
	app := func(b *Bundle) *corev1.Container { return &pod(b).Containers[0] }
	setEnv := func(b *Bundle, name, value string) {
		for i := range app(b).Env {
			if app(b).Env[i].Name == name {
				app(b).Env[i].Value = value
			}
		}
	}
	tests := []struct {
		check  string
		name   string
		mutate func(b *Bundle)
		want   string
	}{
		{"one object of each kind", "second service", func(b *Bundle) { b.Services = append(b.Services, b.Services[0]) }, "exactly one Service"},
		{"kustomization lists every manifest", "file not listed", func(b *Bundle) { b.Kustomization.Resources = b.Kustomization.Resources[1:] }, "does not list"},
		{"kustomization lists every manifest", "missing file listed", func(b *Bundle) {
			b.Kustomization.Resources = append(b.Kustomization.Resources, "gone.yaml")
		}, "lists gone.yaml"},
		{"selectors match the pod labels", "service selector", func(b *Bundle) { b.Services[0].Spec.Selector["app.kubernetes.io/name"] = "other" }, "service app selector"},
		{"selectors match the pod labels", "disruption budget selector", func(b *Bundle) {
			b.PDBs[0].Spec.Selector.MatchLabels = map[string]string{"tier": "web"}
		}, "disruption budget app selector"},
		{"autoscaler targets the deployment", "wrong target", func(b *Bundle) { b.HPAs[0].Spec.ScaleTargetRef.Name = "other" }, `"other"`},
		{"autoscaler targets the deployment", "fixed replicas", func(b *Bundle) { b.Deployments[0].Spec.Replicas = ptr.To[int32](3) }, "spec.replicas=3"},
		{"autoscaler targets the deployment", "one replica", func(b *Bundle) { b.HPAs[0].Spec.MinReplicas = ptr.To[int32](1) }, "minReplicas is 1"},
		{"autoscaler targets the deployment", "no cpu request", func(b *Bundle) { delete(app(b).Resources.Requests, corev1.ResourceCPU) }, "requests no cpu"},
		{"disruption budget lets a node drain", "no eviction", func(b *Bundle) {
			b.PDBs[0].Spec.MaxUnavailable, b.PDBs[0].Spec.MinAvailable = nil, ptr.To(intstr.FromString("100%"))
		}, "allows no eviction"},
		{"service reaches the app's port", "target port name", func(b *Bundle) { b.Services[0].Spec.Ports[0].TargetPort = intstr.FromString("web") }, "port web"},
		{"service reaches the app's port", "another container port", func(b *Bundle) {
			app(b).Ports = append(app(b).Ports, corev1.ContainerPort{Name: "metrics", ContainerPort: 9090})
			b.Services[0].Spec.Ports[0].TargetPort = intstr.FromString("metrics")
		}, "reaches container port 9090, the app listens on PORT=8080"},
		{"service reaches the app's port", "PORT differs", func(b *Bundle) { setEnv(b, "PORT", "9090") }, "PORT=9090"},
		{"probes use the app's endpoints", "readiness path", func(b *Bundle) { app(b).ReadinessProbe.HTTPGet.Path = "/ready" }, `"/ready"`},
		{"probes use the app's endpoints", "liveness port", func(b *Bundle) { app(b).LivenessProbe.HTTPGet.Port = intstr.FromInt32(9090) }, "port 9090"},
		{"probes use the app's endpoints", "liveness too eager", func(b *Bundle) { app(b).LivenessProbe.FailureThreshold = 1 }, "liveness gives up"},
		{"grace period covers preStop and drain", "grace too short", func(b *Bundle) { pod(b).TerminationGracePeriodSeconds = ptr.To[int64](35) }, "want at least 40s"},
		{"grace period covers preStop and drain", "longer drain", func(b *Bundle) { setEnv(b, "DRAIN_TIMEOUT", "1m") }, "DRAIN_TIMEOUT 1m0s"},
		{"grace period covers preStop and drain", "bad drain timeout", func(b *Bundle) { setEnv(b, "DRAIN_TIMEOUT", "30") }, "DRAIN_TIMEOUT"},
		{"grace period covers preStop and drain", "no preStop", func(b *Bundle) { app(b).Lifecycle = nil }, "no preStop hook"},
		{"containers request cpu and memory", "no memory request", func(b *Bundle) { delete(app(b).Resources.Requests, corev1.ResourceMemory) }, "requests no memory"},
		{"containers request cpu and memory", "limit below request", func(b *Bundle) {
			app(b).Resources.Limits[corev1.ResourceCPU] = resource.MustParse("10m")
		}, "cpu limit 10m is below"},
		{"pod is sandboxed like the systemd unit", "writable root", func(b *Bundle) { app(b).SecurityContext.ReadOnlyRootFilesystem = ptr.To(false) }, "readOnlyRootFilesystem"},
		{"pod is sandboxed like the systemd unit", "root user", func(b *Bundle) {
			pod(b).SecurityContext.RunAsNonRoot, app(b).SecurityContext.RunAsNonRoot = nil, nil
		}, "runAsNonRoot"},
		{"pod is sandboxed like the systemd unit", "capabilities kept", func(b *Bundle) { app(b).SecurityContext.Capabilities = nil }, "drop ALL"},
		{"pod is sandboxed like the systemd unit", "no seccomp", func(b *Bundle) { pod(b).SecurityContext.SeccompProfile = nil }, "seccompProfile"},
		{"pod is sandboxed like the systemd unit", "escalation", func(b *Bundle) { app(b).SecurityContext.AllowPrivilegeEscalation = nil }, "allowPrivilegeEscalation"},
	}
	for _, tt := range tests {
		t.Run(tt.check+"/"+tt.name, func(t *testing.T) {
			check := findCheck(t, tt.check)
			b := loadBundle(t)
			tt.mutate(b)
			err := check.Run(b)
			if err == nil {
				t.Fatalf("check passed, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			t.Logf("rejected as expected: %v", err)
		})
	}
}
