//! `certpair controller` as a process against the real apiserver.

use std::{
    io::{Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::Duration,
};

use certpair::api::{Application, ApplicationSpec};
use kube::{Api, api::PostParams};

use crate::support::{Cluster, poll, unique};

/// Status code and body of `GET http://<addr><path>`, or None while nothing listens.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[tokio::test]
async fn controller_becomes_ready_serves_metrics_and_stops_on_sigterm() {
    let cluster = Cluster::connect().await;
    cluster.ensure_crd().await;
    let apps: Api<Application> = Api::all(cluster.client.clone());
    let name = unique("metrics-app");
    apps.create(
        &PostParams::default(),
        &Application::new(&name, ApplicationSpec::default()),
    )
    .await
    .expect("create Application");

    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_certpair"))
        .args(["controller", "--http-addr", &addr, "--log-format", "json"])
        .env("KUBECONFIG", &cluster.kubeconfig)
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
    let exit = poll(
        "controller to exit after SIGTERM",
        Duration::from_secs(15),
        || child.try_wait().expect("wait"),
    )
    .await;
    let mut logs = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut logs)
        .expect("read logs");
    assert!(exit.success(), "controller exited with {exit}: {logs}");
    // JSON logs: every line parses as an object.
    for line in logs.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
    assert!(logs.contains("SIGTERM received"), "{logs}");
}
