//! Talking to the connector: trust (a CA pinned by hash, as `kubeadm join` does, or a CA
//! file), TLS 1.2+ with or without the pairing's client certificate, and the calls of both
//! APIs (Kyma's REST, Compass's GraphQL) behind one set of functions.

use std::{path::Path, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use openssl::{
    pkey::{PKey, Private},
    ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion},
    x509::X509,
};
use reqwest::Url;
use serde_json::{Value, json};

use super::{error::ClientError, store::Api};
use crate::pki::spki_pin;

/// How long one call may take (a pairing waits for its CSR to be signed: 10 s by default).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle connection is kept for reuse: well inside the connector's keep-alive
/// (15 s), so it is always the client that drops an idle connection.
const POOL_IDLE_TIMEOUT: Duration =
    Duration::from_secs(crate::limits::CONNECTOR.keep_alive.as_secs() * 2 / 3);
/// The whole pin probe (connect and handshake).
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read from the connector (its answers are a few KiB).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

const CONFIGURATION: &str = "query { result: configuration { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { directorURL certificateSecuredConnectorURL } } }";
const SIGN: &str = "mutation($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { certificateChain caCertificate clientCertificate } }";
const REVOKE: &str = "mutation { result: revokeCertificate }";

/// The connector's CA: PEM, and a line saying how it was trusted.
pub struct Trust {
    pub pem: Vec<u8>,
    pub described: String,
}

/// The CA to trust for `url`: from `ca_file`, or the certificate in the connector's own chain
/// whose public key hashes to `pin`. With a pin, nothing but a TLS handshake happens before
/// the CA is found, so a token is never sent to a connector that does not hold the pinned CA.
pub async fn trust(
    url: &Url,
    pin: Option<&str>,
    ca_file: Option<&Path>,
) -> Result<Trust, ClientError> {
    const STEP: &str = "connector CA";
    if let Some(file) = ca_file {
        let pem = std::fs::read(file).map_err(|e| {
            ClientError::local(STEP, format!("reading --ca-file {}: {e}", file.display()))
        })?;
        let certs = X509::stack_from_pem(&pem).map_err(|e| {
            ClientError::local(
                STEP,
                format!("--ca-file {} is not PEM: {e}", file.display()),
            )
        })?;
        if certs.is_empty() {
            return Err(ClientError::local(
                STEP,
                format!("--ca-file {} holds no certificate", file.display()),
            ));
        }
        return Ok(Trust {
            pem,
            described: format!("trusted from {}", file.display()),
        });
    }
    let Some(pin) = pin else {
        return Err(ClientError::local(
            STEP,
            "the connector's CA is not known: pass --ca-cert-hash (the TokenRequest's status.caCertHash, printed by certpair token create) or --ca-file",
        ));
    };
    let wanted = normalize_pin(pin).ok_or_else(|| {
        ClientError::local(
            STEP,
            format!("--ca-cert-hash {pin:?} is not sha256:<64 hex digits>"),
        )
    })?;
    let host = url
        .host_str()
        .ok_or_else(|| ClientError::local(STEP, format!("{url} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(443);
    let probe = tokio::task::spawn_blocking({
        let host = host.clone();
        move || served_chain(&host, port)
    });
    // Each socket operation has its own timeout; this bounds a server that drips bytes.
    let chain = tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .map_err(|_| {
            ClientError::unavailable(
                STEP,
                format!(
                    "TLS handshake with {host}:{port} took longer than {} s",
                    PROBE_TIMEOUT.as_secs()
                ),
            )
        })?
        .map_err(|e| ClientError::local(STEP, e))??;
    for cert in &chain {
        if spki_pin(cert).ok().as_deref() == Some(wanted.as_str()) {
            let pem = cert
                .to_pem()
                .map_err(|e| ClientError::local(STEP, format!("encoding the CA: {e}")))?;
            return Ok(Trust {
                pem,
                described: format!("pinned {wanted} ({})", subject_line(cert)),
            });
        }
    }
    Err(ClientError::local(
        STEP,
        format!(
            "no certificate in the chain {} serves has the public key pinned ({wanted}); the token was not sent",
            url.origin().ascii_serialization()
        ),
    )
    .with_hint("check that the URL is the connector's and the pin is the TokenRequest's status.caCertHash from the same cluster"))
}

/// `sha256:<hex>` in lower case, or `None`.
fn normalize_pin(pin: &str) -> Option<String> {
    let hex = pin.trim().strip_prefix("sha256:").unwrap_or(pin.trim());
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn subject_line(cert: &X509) -> String {
    cert.subject_name()
        .entries()
        .filter_map(|e| {
            Some(format!(
                "{}={}",
                e.object().nid().short_name().ok()?,
                e.data().to_string().ok()?
            ))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The certificates the server at `host:port` sends in its handshake, unverified (the pin
/// decides).
fn served_chain(host: &str, port: u16) -> Result<Vec<X509>, ClientError> {
    const STEP: &str = "connector CA";
    let unavailable = |e: &dyn std::fmt::Display| {
        ClientError::unavailable(STEP, format!("TLS handshake with {host}:{port}: {e}"))
    };
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| unavailable(&e))?
        .next()
        .ok_or_else(|| unavailable(&"the name resolves to no address"))?;
    let stream = std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|e| unavailable(&e))?;
    stream
        .set_read_timeout(Some(CONNECT_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(CONNECT_TIMEOUT)))
        .map_err(|e| unavailable(&e))?;
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| unavailable(&e))?;
    builder
        .set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| unavailable(&e))?;
    builder.set_verify(SslVerifyMode::NONE);
    let mut config = builder.build().configure().map_err(|e| unavailable(&e))?;
    config.set_verify_hostname(false);
    let tls = config.connect(host, stream).map_err(|e| unavailable(&e))?;
    Ok(tls
        .ssl()
        .peer_cert_chain()
        .map(|chain| chain.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default())
}

/// An HTTP client trusting only `ca_pem`, presenting `identity` (certificate chain and key)
/// when given.
pub fn http(
    ca_pem: &[u8],
    identity: Option<(&[u8], &PKey<Private>)>,
) -> Result<reqwest::Client, ClientError> {
    const STEP: &str = "TLS set-up";
    let mut builder = reqwest::Client::builder()
        .use_native_tls()
        // Tokens travel in URLs and headers: never to another place than asked, never in
        // clear, whatever the connector's answers say.
        .redirect(reqwest::redirect::Policy::none())
        .https_only(true)
        .tls_built_in_root_certs(false)
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        // The connector closes a connection idle for 15 s; reusing one it is just closing can
        // lose a call that is not retried (a POST), so drop idle ones sooner than it does.
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .user_agent(concat!("certpair/", env!("CARGO_PKG_VERSION")));
    for cert in X509::stack_from_pem(ca_pem).map_err(|e| ClientError::local(STEP, e))? {
        let pem = cert.to_pem().map_err(|e| ClientError::local(STEP, e))?;
        builder = builder.add_root_certificate(
            reqwest::Certificate::from_pem(&pem).map_err(|e| ClientError::local(STEP, e))?,
        );
    }
    if let Some((chain, key)) = identity {
        let key = key
            .private_key_to_pem_pkcs8()
            .map_err(|e| ClientError::local(STEP, e))?;
        builder = builder.identity(
            reqwest::Identity::from_pkcs8_pem(chain, &key)
                .map_err(|e| ClientError::local(STEP, format!("the client certificate: {e}")))?,
        );
    }
    builder.build().map_err(|e| ClientError::local(STEP, e))
}

/// A reqwest error and its causes on one line (its own message hides the TLS reason), without
/// the URL: URLs carry tokens, and errors end up in logs.
fn chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A failed call: a certificate that did not verify is this side's problem (exit 1, no
/// retry); anything else the network's or the connector's (retry).
fn transport(step: &'static str, e: reqwest::Error) -> ClientError {
    let text = chain(e);
    if text.contains("certificate verify failed") || text.contains("certificate signature failure")
    {
        ClientError::local(step, format!("the connector's certificate did not verify: {text}")).with_hint(
            "the URL's host must be in the connector's certificate, and the CA pinned or given must be the one that issued it",
        )
    } else if text.contains("URL scheme is not allowed") {
        ClientError::local(
            step,
            format!("the connector pointed to a URL that is not https: {text}"),
        )
    } else {
        ClientError::unavailable(step, text)
    }
}

/// Sends `request`; a 2xx's JSON body (or null when empty), else the connector's error.
async fn send(step: &'static str, request: reqwest::RequestBuilder) -> Result<Value, ClientError> {
    let mut response = request.send().await.map_err(|e| transport(step, e))?;
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport(step, e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ClientError::local(
                step,
                format!("the connector's answer is larger than {MAX_ANSWER_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let json: Option<Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        return Ok(json.unwrap_or(Value::Null));
    }
    let message = json
        .as_ref()
        .and_then(|j| j["error"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect());
    Err(ClientError::refused(step, status.as_u16(), None, message))
}

/// Posts a GraphQL request; `data.result`, or the first GraphQL error.
async fn graphql(
    step: &'static str,
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Result<Value, ClientError> {
    let mut request = http
        .post(url)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.header("Connector-Token", token);
    }
    let answer = send(step, request).await?;
    if let Some(error) = answer["errors"].get(0) {
        let ext = &error["extensions"];
        return Err(ClientError::refused(
            step,
            ext["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(400),
            ext["code"].as_str().map(str::to_owned),
            error["message"]
                .as_str()
                .unwrap_or("a GraphQL error without a message"),
        ));
    }
    Ok(answer["data"]["result"].clone())
}

fn field(step: &'static str, value: &Value, pointer: &str) -> Result<String, ClientError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            // Not the answer itself: it may hold a token.
            ClientError::local(step, format!("the connector's answer has no {pointer}"))
        })
}

/// What the first step tells a client to request, and where.
pub struct CsrInfo {
    pub subject: String,
    pub key_algorithm: String,
    /// The certificate token.
    pub token: String,
    /// REST: the certificates URL (with the token); GraphQL: the endpoint.
    pub sign_url: String,
    pub management_url: String,
}

pub const INFO_STEP: &str = "CSR info";
pub const SIGN_STEP: &str = "certificate";
pub const MANAGEMENT_STEP: &str = "management info";
pub const RENEW_STEP: &str = "renewal";
pub const REVOKE_STEP: &str = "revocation";

/// Redeems the one-time `token` for the CSR info and the certificate token.
pub async fn csr_info(
    http: &reqwest::Client,
    api: Api,
    url: &Url,
    token: &str,
) -> Result<CsrInfo, ClientError> {
    match api {
        Api::Rest => {
            let mut url = url.clone();
            let others: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "token")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            url.query_pairs_mut()
                .clear()
                .extend_pairs(others)
                .append_pair("token", token);
            let info = send(INFO_STEP, http.get(url)).await?;
            let sign_url = field(INFO_STEP, &info, "/csrUrl")?;
            let token = Url::parse(&sign_url)
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "token")
                        .map(|(_, v)| v.into_owned())
                })
                .unwrap_or_default();
            Ok(CsrInfo {
                subject: field(INFO_STEP, &info, "/certificate/subject")?,
                key_algorithm: field(INFO_STEP, &info, "/certificate/key-algorithm")?,
                token,
                sign_url,
                management_url: field(INFO_STEP, &info, "/api/infoUrl")?,
            })
        }
        Api::Graphql => {
            let endpoint = url.as_str().to_owned();
            let config = graphql(
                INFO_STEP,
                http,
                &endpoint,
                Some(token),
                CONFIGURATION,
                json!({}),
            )
            .await?;
            Ok(CsrInfo {
                subject: field(INFO_STEP, &config, "/certificateSigningRequestInfo/subject")?,
                key_algorithm: field(
                    INFO_STEP,
                    &config,
                    "/certificateSigningRequestInfo/keyAlgorithm",
                )?,
                token: field(INFO_STEP, &config, "/token/token")?,
                sign_url: endpoint.clone(),
                management_url: config
                    .pointer("/managementPlaneInfo/certificateSecuredConnectorURL")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or(endpoint),
            })
        }
    }
}

/// A certificate as the connector returned it.
pub struct Issued {
    pub client_pem: Vec<u8>,
    pub ca_pem: Vec<u8>,
}

fn decode(step: &'static str, answer: &Value, pointer: &str) -> Result<Vec<u8>, ClientError> {
    STANDARD
        .decode(field(step, answer, pointer)?)
        .map_err(|e| ClientError::local(step, format!("{pointer} is not base64: {e}")))
}

fn issued(step: &'static str, api: Api, answer: &Value) -> Result<Issued, ClientError> {
    let (client, ca) = match api {
        Api::Rest => ("/clientCrt", "/caCrt"),
        Api::Graphql => ("/clientCertificate", "/caCertificate"),
    };
    Ok(Issued {
        client_pem: decode(step, answer, client)?,
        ca_pem: decode(step, answer, ca)?,
    })
}

/// Sends the CSR with the certificate token.
pub async fn sign(
    http: &reqwest::Client,
    api: Api,
    sign_url: &str,
    token: &str,
    csr_pem: &[u8],
) -> Result<Issued, ClientError> {
    let csr = STANDARD.encode(csr_pem);
    let answer = match api {
        Api::Rest => send(SIGN_STEP, http.post(sign_url).json(&json!({ "csr": csr }))).await?,
        Api::Graphql => {
            graphql(
                SIGN_STEP,
                http,
                sign_url,
                Some(token),
                SIGN,
                json!({ "csr": csr }),
            )
            .await?
        }
    };
    issued(SIGN_STEP, api, &answer)
}

/// What the connector says about the presented certificate.
pub struct Management {
    pub subject: String,
    pub key_algorithm: String,
    /// REST: `management/info` as answered; GraphQL: `configuration`.
    pub raw: Value,
    renew_url: String,
    revoke_url: String,
}

pub async fn management(
    http: &reqwest::Client,
    api: Api,
    url: &str,
) -> Result<Management, ClientError> {
    match api {
        Api::Rest => {
            let info = send(MANAGEMENT_STEP, http.get(url)).await?;
            Ok(Management {
                subject: field(MANAGEMENT_STEP, &info, "/certificate/subject")?,
                key_algorithm: field(MANAGEMENT_STEP, &info, "/certificate/key-algorithm")?,
                renew_url: field(MANAGEMENT_STEP, &info, "/urls/renewCertUrl")?,
                revoke_url: field(MANAGEMENT_STEP, &info, "/urls/revokeCertUrl")?,
                raw: info,
            })
        }
        Api::Graphql => {
            let config =
                graphql(MANAGEMENT_STEP, http, url, None, CONFIGURATION, json!({})).await?;
            Ok(Management {
                subject: field(
                    MANAGEMENT_STEP,
                    &config,
                    "/certificateSigningRequestInfo/subject",
                )?,
                key_algorithm: field(
                    MANAGEMENT_STEP,
                    &config,
                    "/certificateSigningRequestInfo/keyAlgorithm",
                )?,
                renew_url: url.to_owned(),
                revoke_url: url.to_owned(),
                raw: config,
            })
        }
    }
}

pub async fn renew(
    http: &reqwest::Client,
    api: Api,
    management: &Management,
    csr_pem: &[u8],
) -> Result<Issued, ClientError> {
    let csr = STANDARD.encode(csr_pem);
    let answer = match api {
        Api::Rest => {
            send(
                RENEW_STEP,
                http.post(&management.renew_url)
                    .json(&json!({ "csr": csr })),
            )
            .await?
        }
        Api::Graphql => {
            graphql(
                RENEW_STEP,
                http,
                &management.renew_url,
                None,
                SIGN,
                json!({ "csr": csr }),
            )
            .await?
        }
    };
    issued(RENEW_STEP, api, &answer)
}

pub async fn revoke(
    http: &reqwest::Client,
    api: Api,
    management: &Management,
) -> Result<(), ClientError> {
    match api {
        Api::Rest => send(REVOKE_STEP, http.post(&management.revoke_url))
            .await
            .map(drop),
        Api::Graphql => graphql(
            REVOKE_STEP,
            http,
            &management.revoke_url,
            None,
            REVOKE,
            json!({}),
        )
        .await
        .map(drop),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_normalized() {
        let hex = "AB".repeat(32);
        assert_eq!(
            normalize_pin(&format!("sha256:{hex}")),
            Some(format!("sha256:{}", hex.to_lowercase()))
        );
        assert_eq!(
            normalize_pin(&hex),
            Some(format!("sha256:{}", hex.to_lowercase()))
        );
        assert_eq!(normalize_pin("sha256:abc"), None);
        assert_eq!(normalize_pin(&"zz".repeat(32)), None);
    }
}
