//! The control plane's audit log (`hack/control-plane.sh` writes one for CSR and Event
//! writes): which process wrote what, and when, as the apiserver saw it. A process is told
//! apart by its ServiceAccount token: each bound token has its own `jti`, which the apiserver
//! records as the credential id.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::Cluster;

/// One write the apiserver received.
#[derive(Debug, Clone)]
pub struct Write {
    pub received: Timestamp,
    pub verb: String,
    /// `certificatesigningrequests/status`, `events`, ...
    pub resource: String,
    pub name: String,
    pub code: i64,
}

/// The credential id the apiserver records for a bound ServiceAccount token: `JTI=<jti>`.
pub fn credential_id(token: &str) -> String {
    let payload = token.split('.').nth(1).expect("a JWT");
    let json = URL_SAFE_NO_PAD.decode(payload).expect("base64url claims");
    let claims: Value = serde_json::from_slice(&json).expect("JWT claims");
    format!("JTI={}", claims["jti"].as_str().expect("jti claim"))
}

/// Every audited write made with `token`, in the order the apiserver logged them.
pub fn writes_with(cluster: &Cluster, token: &str) -> Vec<Write> {
    let id = credential_id(token);
    let path = cluster.state_dir.join("logs/audit.log");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| {
            event["user"]["extra"]["authentication.kubernetes.io/credential-id"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|v| v.as_str() == Some(&id)))
        })
        .map(|event| {
            let object = &event["objectRef"];
            let resource = match object["subresource"].as_str() {
                Some(sub) => format!("{}/{sub}", object["resource"].as_str().unwrap_or("")),
                None => object["resource"].as_str().unwrap_or("").to_owned(),
            };
            Write {
                received: event["requestReceivedTimestamp"]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .expect("requestReceivedTimestamp"),
                verb: event["verb"].as_str().unwrap_or("").to_owned(),
                resource,
                name: object["name"].as_str().unwrap_or("").to_owned(),
                code: event["responseStatus"]["code"].as_i64().unwrap_or(0),
            }
        })
        .collect()
}
