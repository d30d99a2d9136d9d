//! Pairing as an external application does it, for benchmarks and soaks: TokenRequests made
//! as an admin, then Kyma's REST flow with an HTTP client.

use std::time::{Duration, Instant};

use certpair::api::TokenRequest;
use kube::{
    Api, Client,
    api::{ListParams, PostParams},
};

use super::unique;

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
