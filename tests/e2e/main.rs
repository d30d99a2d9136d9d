//! End-to-end tests of what the apiserver itself enforces (CRD schema, RBAC, CSR admission),
//! with no certpair controller running, against the real kube-apiserver named by `KUBECONFIG`
//! (`hack/control-plane.sh up`; `hack/test.sh` runs them).

#[path = "../support/mod.rs"]
mod support;

mod applications;
mod csr_rbac;
mod version;
