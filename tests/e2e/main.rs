//! End-to-end tests against the real kube-apiserver named by `KUBECONFIG`
//! (`hack/control-plane.sh up`; `hack/test.sh` runs them).

#[path = "../support/mod.rs"]
mod support;

mod applications;
mod controller;
mod csr_rbac;
mod version;
