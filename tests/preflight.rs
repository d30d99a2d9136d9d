//! `certpair controller` refuses to start, with one clear line and a non-zero exit, when the
//! cluster cannot be used. The CRD case removes the CRD for a moment and puts it back, so this
//! file is its own test binary: cargo runs test binaries one after another, never beside e2e.

mod support;

use std::{process::Command, time::Duration};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, api::DeleteParams};

use support::{Cluster, wait_deleted};

fn controller(kubeconfig: &std::path::Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_certpair"))
        .args(["controller", "--http-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run certpair");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unreachable_apiserver_is_one_clear_line() {
    // A port that nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n"
        ),
    )
    .expect("write kubeconfig");
    let (code, stderr) = controller(&kubeconfig);
    assert_eq!(code, 1, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one line, got:\n{stderr}");
    assert!(
        lines[0].starts_with(
            "certpair: error: cannot reach the Kubernetes API server at https://127.0.0.1:"
        ) && lines[0].contains("Connection refused"),
        "{stderr}"
    );
}

#[test]
fn missing_kubeconfig_is_one_clear_line() {
    let (code, stderr) = controller(std::path::Path::new("/nonexistent/kubeconfig"));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot load a Kubernetes client configuration"),
        "{stderr}"
    );
}

#[tokio::test]
async fn missing_crd_is_one_clear_line() {
    let cluster = Cluster::connect().await;
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.client.clone());
    const CRD: &str = "applications.certpair.dev";
    if let Ok(crd) = crds.get(CRD).await {
        let uid = crd.metadata.uid.expect("uid");
        crds.delete(CRD, &DeleteParams::default())
            .await
            .expect("delete CRD");
        wait_deleted(&crds, CRD, &uid, Duration::from_secs(60)).await;
    }

    let kubeconfig = cluster.kubeconfig.clone();
    let (code, stderr) = tokio::task::spawn_blocking(move || controller(&kubeconfig))
        .await
        .expect("join");

    // Put the cluster back as the other tests expect it before asserting.
    cluster.ensure_crd().await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the Application CRD (applications.certpair.dev) is not installed")
            && stderr.contains("certpair crd | kubectl apply -f -"),
        "{stderr}"
    );
}
