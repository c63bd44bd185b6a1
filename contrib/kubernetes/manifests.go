package kubernetes

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// KustomizationFile is the name kubectl apply -k looks for.
const KustomizationFile = "kustomization.yaml"

// Kustomization is the part of a kustomize.config.k8s.io/v1beta1
// Kustomization that this folder uses. Decoding is strict, so a field added
// to kustomization.yaml has to be added here too.
type Kustomization struct {
	metav1.TypeMeta `json:",inline"`
	// Resources are the manifest files kustomize reads, relative to it.
	Resources []string `json:"resources,omitempty"`
	// Images rewrites image references in the resources.
	Images []KustomizeImage `json:"images,omitempty"`
}

// KustomizeImage is one entry of a Kustomization's images list.
type KustomizeImage struct {
	// Name is the image name to match in the resources.
	Name string `json:"name"`
	// NewName replaces the name, if set.
	NewName string `json:"newName,omitempty"`
	// NewTag replaces the tag, if set.
	NewTag string `json:"newTag,omitempty"`
	// Digest replaces the tag with a digest, if set.
	Digest string `json:"digest,omitempty"`
}

// Bundle is every object decoded from one folder of manifests.
type Bundle struct {
	// Deployments are the apps/v1 Deployments.
	Deployments []*appsv1.Deployment
	// Services are the v1 Services.
	Services []*corev1.Service
	// PDBs are the policy/v1 PodDisruptionBudgets.
	PDBs []*policyv1.PodDisruptionBudget
	// HPAs are the autoscaling/v2 HorizontalPodAutoscalers.
	HPAs []*autoscalingv2.HorizontalPodAutoscaler
	// Kustomization is the decoded kustomization.yaml, nil if absent.
	Kustomization *Kustomization
	// ResourceFiles are the base names of the YAML files holding API
	// objects, sorted: what the Kustomization should list.
	ResourceFiles []string
}

// Load decodes every *.yaml and *.yml file directly in dir with Decode and
// sorts the objects into a Bundle. A Kustomization is accepted only in
// kustomization.yaml, and that file may hold nothing else.
func Load(dir string) (*Bundle, error) {
	var files []string
	for _, pattern := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return nil, fmt.Errorf("list manifests in %s: %w", dir, err)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.yaml or *.yml files in %s", dir)
	}
	b := &Bundle{}
	for _, f := range files {
		if err := b.addFile(f); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// addFile decodes one file and adds its objects to b.
func (b *Bundle) addFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	objs, err := DecodeAll(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	name := filepath.Base(path)
	if len(objs) == 0 {
		return fmt.Errorf("%s: no YAML documents", path)
	}
	for _, obj := range objs {
		if err := b.add(name, obj); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// add files one decoded object of the file named name under its kind.
func (b *Bundle) add(name string, obj any) error {
	if k, ok := obj.(*Kustomization); ok {
		if name != KustomizationFile || b.Kustomization != nil {
			return fmt.Errorf("a Kustomization belongs alone in %s", KustomizationFile)
		}
		b.Kustomization = k
		return nil
	}
	if name == KustomizationFile {
		return fmt.Errorf("%s may hold only the Kustomization, found %T", KustomizationFile, obj)
	}
	switch o := obj.(type) {
	case *appsv1.Deployment:
		b.Deployments = append(b.Deployments, o)
	case *corev1.Service:
		b.Services = append(b.Services, o)
	case *policyv1.PodDisruptionBudget:
		b.PDBs = append(b.PDBs, o)
	case *autoscalingv2.HorizontalPodAutoscaler:
		b.HPAs = append(b.HPAs, o)
	default:
		return fmt.Errorf("no place for %T in a bundle", obj)
	}
	if !slices.Contains(b.ResourceFiles, name) {
		b.ResourceFiles = append(b.ResourceFiles, name)
		slices.Sort(b.ResourceFiles)
	}
	return nil
}

// DecodeAll splits a YAML stream into documents and decodes each as Decode
// does, skipping documents that hold only comments or white space.
func DecodeAll(data []byte) ([]any, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []any
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("split YAML documents: %w", err)
		}
		j, empty, err := toJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if empty {
			continue
		}
		obj, err := decodeJSON(j)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		objs = append(objs, obj)
	}
}

// Decode decodes one YAML document into the typed struct its apiVersion and
// kind name: *appsv1.Deployment, *corev1.Service,
// *policyv1.PodDisruptionBudget, *autoscalingv2.HorizontalPodAutoscaler or
// *Kustomization. Like the API server under strict field validation, it
// rejects duplicate keys, unknown fields and fields whose case differs from
// the API's; any other apiVersion or kind is an error too. It does not
// validate values: that is what Checks and the API server are for.
func Decode(doc []byte) (any, error) {
	j, empty, err := toJSON(doc)
	if err != nil {
		return nil, err
	}
	if empty {
		return nil, errors.New("empty YAML document")
	}
	return decodeJSON(j)
}

// toJSON converts a YAML document to JSON, rejecting duplicate keys, and
// reports whether it was empty (only comments or white space).
func toJSON(doc []byte) (j []byte, empty bool, err error) {
	j, err = yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, false, fmt.Errorf("convert YAML to JSON: %w", err)
	}
	t := bytes.TrimSpace(j)
	return j, len(t) == 0 || bytes.Equal(t, []byte("null")), nil
}

// decodeJSON reads apiVersion and kind from j, then decodes j strictly and
// case-sensitively into the matching type.
func decodeJSON(j []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return nil, fmt.Errorf("read apiVersion and kind: %w", err)
	}
	obj, err := newObject(tm)
	if err != nil {
		return nil, err
	}
	strictErrs, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("decode %s %s strictly: %w", tm.APIVersion, tm.Kind, errors.Join(strictErrs...))
	}
	return obj, nil
}

// newObject returns a pointer to a zero value of the type for tm.
func newObject(tm metav1.TypeMeta) (any, error) {
	switch tm.GroupVersionKind() {
	case appsv1.SchemeGroupVersion.WithKind("Deployment"):
		return &appsv1.Deployment{}, nil
	case corev1.SchemeGroupVersion.WithKind("Service"):
		return &corev1.Service{}, nil
	case policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"):
		return &policyv1.PodDisruptionBudget{}, nil
	case autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"):
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case schema.GroupVersionKind{Group: "kustomize.config.k8s.io", Version: "v1beta1", Kind: "Kustomization"}:
		return &Kustomization{}, nil
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, fmt.Errorf("apiVersion %q, kind %q: both are required", tm.APIVersion, tm.Kind)
	}
	return nil, fmt.Errorf("unsupported apiVersion %q kind %q: want one of %s",
		tm.APIVersion, tm.Kind, strings.Join(supportedKinds(), ", "))
}

// supportedKinds names what newObject accepts, for error messages.
func supportedKinds() []string {
	return []string{"apps/v1 Deployment", "v1 Service", "policy/v1 PodDisruptionBudget",
		"autoscaling/v2 HorizontalPodAutoscaler", "kustomize.config.k8s.io/v1beta1 Kustomization"}
}
