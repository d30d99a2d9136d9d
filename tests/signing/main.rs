//! End-to-end tests of approving and signing: `certpair controller` runs as the ServiceAccount
//! bound by `manifests/rbac.yaml` against the real kube-apiserver named by `KUBECONFIG`, and
//! users request certificates with kubectl.

#[path = "../support/mod.rs"]
mod support;

mod issuance;
mod process;
