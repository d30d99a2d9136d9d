//! `certpair controller` as a process: probes, metrics, JSON logs, clean SIGTERM.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use certpair::api::{Application, ApplicationSpec};
use kube::{Api, api::PostParams};

use crate::support::{Cluster, http_get, poll, unique};

#[tokio::test]
async fn controller_becomes_ready_serves_metrics_and_stops_on_sigterm() {
    let cluster = Cluster::connect().await;
    cluster.install_manifests().await;
    let apps: Api<Application> = Api::all(cluster.client.clone());
    let name = unique("metrics-app");
    apps.create(
        &PostParams::default(),
        &Application::new(&name, ApplicationSpec::default()),
    )
    .await
    .expect("create Application");

    // As the ServiceAccount the manifests bind, with JSON logs, as its own process.
    let sa = cluster
        .service_account("certpair-system", "certpair-controller")
        .await;
    let addr = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    );
    let child = Command::new(env!("CARGO_BIN_EXE_certpair"))
        .args(["controller", "--http-addr", &addr, "--log-format", "json"])
        .env("KUBECONFIG", &sa.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start certpair controller");

    poll("/readyz to answer 200", Duration::from_secs(30), || {
        http_get(&addr, "/readyz").filter(|(code, _)| *code == 200)
    })
    .await;
    assert_eq!(http_get(&addr, "/healthz").map(|r| r.0), Some(200));
    // The cache holds at least the Application made above (other tests add their own).
    let (code, body) = http_get(&addr, "/metrics").expect("metrics");
    assert_eq!(code, 200);
    let count: i64 = body
        .lines()
        .find_map(|l| l.strip_prefix("certpair_applications "))
        .expect("certpair_applications in metrics")
        .trim()
        .parse()
        .expect("a number");
    assert!(count >= 1, "{body}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    let logs = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "controller exited with {}: {logs}",
        output.status
    );
    // JSON logs: every line parses as an object with a level.
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(logs.contains("SIGTERM received"), "{logs}");
}
