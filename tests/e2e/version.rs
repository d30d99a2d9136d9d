use crate::support::{Cluster, repo_root};

/// The control plane runs exactly the release pinned in hack/tools/kubernetes/go.mod.
#[tokio::test]
async fn kubectl_reports_the_pinned_server_version() {
    let cluster = Cluster::connect().await;
    let go_mod =
        std::fs::read_to_string(repo_root().join("hack/tools/kubernetes/go.mod")).expect("go.mod");
    let pinned = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("require k8s.io/kubernetes "))
        .expect("go.mod pins k8s.io/kubernetes")
        .trim()
        .to_owned();
    assert_eq!(cluster.server_version(), pinned);
}
