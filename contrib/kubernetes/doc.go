// Package kubernetes validates the Kubernetes manifests in this folder,
// which run the unitkit app binary as a Deployment with the same drain and
// health semantics as its socket-activated systemd units.
//
// Load reads every manifest strictly into the real Kubernetes API types
// (unknown, duplicate and wrongly cased fields are errors, as are kinds it
// does not know), and Checks lists the semantic checks that tie the objects
// together: selectors, ports, probes, drain timing, resources and the
// security context. The package's tests run them, and also start the real
// app to prove that the probe paths answer.
package kubernetes
