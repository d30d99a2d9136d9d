//! Pairing as an external application does it: TokenRequests made as an admin, then Kyma's
//! REST flow with an HTTP client (benchmarks and soaks) or with curl (end-to-end tests).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use certpair::api::TokenRequest;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};
use openssl::{
    nid::Nid,
    pkey::{PKey, Private},
};
use serde_json::Value;

use super::unique;

/// What curl did: its exit code, the HTTP status (0 when none came), the JSON body
/// (`Null` when it was not JSON), and stderr.
pub struct Curled {
    pub exit: Option<i32>,
    pub code: u16,
    pub body: Value,
    pub stderr: String,
}

/// curl trusting `ca`, giving up after 40 s, printing the status code after the body; the
/// caller may spawn it to cut it off mid-request.
pub fn curl_command(ca: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "40",
        "-w",
        "\n%{http_code}",
        "--cacert",
    ])
    .arg(ca)
    .args(args);
    cmd
}

/// Reads what `curl_command` printed.
pub fn curled(out: std::process::Output) -> Curled {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Curled {
        exit: out.status.code(),
        code: code.trim().parse().unwrap_or(0),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `curl_command` to its end.
pub fn curl(ca: &Path, args: &[&str]) -> Curled {
    curled(super::run(&mut curl_command(ca, args)))
}

/// The REST certificates call's body: a CSR for `app` (CN=app, O=Acme) with `key`.
pub fn csr_body(app: &str, key: &PKey<Private>) -> String {
    let pem = certpair::pki::csr_builder::RequestBuilder::cn(app)
        .with(Nid::ORGANIZATIONNAME, "Acme")
        .to_pem(key)
        .expect("CSR");
    serde_json::json!({ "csr": openssl::base64::encode_block(&pem) }).to_string()
}

/// Creates TokenRequest `name` in `default` for Application `app` and waits (20 s at most)
/// for the controller to write its URL, which it returns.
pub async fn token_request(client: &Client, app: &str, name: &str) -> String {
    let api: Api<TokenRequest> = Api::namespaced(client.clone(), "default");
    let tr: TokenRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "certpair.dev/v1alpha1", "kind": "TokenRequest",
        "metadata": {"name": name}, "spec": {"application": app},
    }))
    .expect("TokenRequest");
    api.create(&PostParams::default(), &tr)
        .await
        .expect("create TokenRequest");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(url) = api.get(name).await.ok().and_then(|t| t.status?.url) {
            return url;
        }
        assert!(tokio::time::Instant::now() < deadline, "no token issued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `n` TokenRequests for Application `app` in `default`, and their tokens once the controller
/// has written them.
pub async fn token_requests(client: &Client, app: &str, n: usize) -> Vec<String> {
    let api: Api<TokenRequest> = Api::namespaced(client.clone(), "default");
    let batch = unique("bench");
    for i in 0..n {
        let tr: TokenRequest = serde_json::from_value(serde_json::json!({
            "apiVersion": "certpair.dev/v1alpha1",
            "kind": "TokenRequest",
            "metadata": {"name": format!("{batch}-{i}"), "labels": {"bench": batch}},
            "spec": {"application": app, "ttlSeconds": 3600},
        }))
        .expect("TokenRequest");
        api.create(&PostParams::default(), &tr)
            .await
            .expect("create");
    }
    loop {
        let listed = api
            .list(&ListParams::default().labels(&format!("bench={batch}")))
            .await
            .expect("list");
        let ready: Vec<String> = listed
            .items
            .iter()
            .filter_map(|t| t.status.as_ref()?.token.clone())
            .collect();
        if ready.len() == n {
            return ready;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One pairing through Kyma's REST API: (info latency, certificate latency), and the
/// certificate chain PEM.
pub async fn rest_pair(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &str,
) -> Result<(Duration, Duration, Vec<u8>), String> {
    let started = Instant::now();
    let info: serde_json::Value = http
        .get(format!(
            "{base}/v1/applications/signingRequests/info?token={token}"
        ))
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let info_took = started.elapsed();
    let csr_url = info["csrUrl"]
        .as_str()
        .ok_or(format!("no csrUrl: {info}"))?;
    let started = Instant::now();
    let reply = http
        .post(csr_url)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = reply.status();
    let json: serde_json::Value = reply.json().await.map_err(|e| e.to_string())?;
    if status.as_u16() != 201 {
        return Err(format!("{status}: {json}"));
    }
    let crt = openssl::base64::decode_block(json["crt"].as_str().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    Ok((info_took, started.elapsed(), crt))
}
