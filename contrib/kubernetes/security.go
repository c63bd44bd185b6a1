package kubernetes

import (
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// checkSecurity wants the pod to run like the systemd unit's sandbox: no
// root, no privilege escalation, no capabilities, a read-only root file
// system, the runtime's default seccomp filter, no host namespaces and no
// API credentials.
func checkSecurity(b *Bundle) error {
	d, err := b.deployment()
	if err != nil {
		return err
	}
	spec := d.Spec.Template.Spec
	errs := []error{checkPodSecurity(spec)}
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		errs = append(errs, checkContainerSecurity(spec.SecurityContext, c))
	}
	return errors.Join(errs...)
}

// checkPodSecurity checks what only the pod spec can set.
func checkPodSecurity(spec corev1.PodSpec) error {
	var errs []error
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		errs = append(errs, errors.New("pod shares a host namespace (hostNetwork, hostPID or hostIPC)"))
	}
	if a := spec.AutomountServiceAccountToken; a == nil || *a {
		errs = append(errs, errors.New("pod mounts a service account token; set automountServiceAccountToken: false, the app needs no API access"))
	}
	return errors.Join(errs...)
}

// checkContainerSecurity checks one container's effective security
// context: its own fields, falling back to the pod's where the pod's apply.
func checkContainerSecurity(pod *corev1.PodSecurityContext, c corev1.Container) error {
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("container %s: "+format, append([]any{c.Name}, args...)...))
	}
	if !isTrue(firstSet(sc.RunAsNonRoot, pod.RunAsNonRoot)) {
		fail("runAsNonRoot is not true")
	}
	if u := firstSet(sc.RunAsUser, pod.RunAsUser); u != nil && *u == 0 {
		fail("runAsUser is 0 (root)")
	}
	if p := sc.AllowPrivilegeEscalation; p == nil || *p {
		fail("allowPrivilegeEscalation is not false")
	}
	if isTrue(sc.Privileged) {
		fail("is privileged")
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		fail("readOnlyRootFilesystem is not true")
	}
	if caps := sc.Capabilities; caps == nil || !slices.Contains(caps.Drop, "ALL") {
		fail("capabilities do not drop ALL")
	} else if len(caps.Add) > 0 {
		fail("adds capabilities %v", caps.Add)
	}
	seccomp := firstSet(sc.SeccompProfile, pod.SeccompProfile)
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		fail("seccompProfile is not RuntimeDefault")
	}
	return errors.Join(errs...)
}

// firstSet returns the first non-nil pointer, the container's setting
// before the pod's.
func firstSet[T any](ps ...*T) *T {
	for _, p := range ps {
		if p != nil {
			return p
		}
	}
	return nil
}

// isTrue reports whether b is set and true.
func isTrue(b *bool) bool { return b != nil && *b }
