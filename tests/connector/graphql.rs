//! Compass's tutorial ("establish a secure connection") with curl and openssl against
//! `/graphql`: the `configuration` query with `Connector-Token`, `openssl genrsa 4096` and
//! `openssl req` with the returned subject, `signCertificateSigningRequest` with the new token;
//! then renewal and revocation through GraphQL over mTLS. And GraphQL's bad input, each a
//! specific error with nothing issued; and Compass's internal token mutation.

use std::path::Path;

use certpair::api::CONNECTOR_CSR_LABEL;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use kube::{Api, api::ListParams};

use super::*;

/// Compass's client query, verbatim (empty parentheses and the `result` alias included).
const CONFIGURATION: &str = "{ result: configuration() { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { directorURL certificateSecuredConnectorURL } } }";

fn sign_mutation(csr_base64: &str) -> String {
    format!(
        "mutation {{ result: signCertificateSigningRequest(csr: \"{csr_base64}\") {{ certificateChain caCertificate clientCertificate }} }}"
    )
}

/// POSTs `{"query": query}` to `url` with curl, `args` (headers, client certificate) first.
fn graphql(url: &str, query: &str, args: &[&str]) -> Reply {
    let body = serde_json::json!({ "query": query }).to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["-H", "Content-Type: application/json", "-d", &body, url]);
    curl(&all)
}

/// The first GraphQL error: its message and `extensions.code`. Asserts the HTTP 200 and that
/// no data came with it.
fn error_of(reply: &Reply) -> (String, String) {
    assert_eq!(
        reply.code, 200,
        "GraphQL errors come with 200: {}",
        reply.body
    );
    let json = reply.json();
    let error = &json["errors"][0];
    assert!(error.is_object(), "an error: {}", reply.body);
    (
        error["message"].as_str().unwrap_or_default().to_owned(),
        error["extensions"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// `data.result` of a successful answer.
fn result_of(reply: &Reply) -> Value {
    assert_eq!(reply.code, 200, "{}", reply.body);
    let json = reply.json();
    assert!(json.get("errors").is_none(), "no errors: {}", reply.body);
    json["data"]["result"].clone()
}

fn token_header(token: &str) -> String {
    format!("Connector-Token: {token}")
}

/// `openssl genrsa <bits>` and `openssl req -new -sha256` for `subject` (Compass's form
/// `O=..,CN=..` turned into openssl's `/O=../CN=..`), and `openssl base64 -A` of the CSR.
fn compass_key_and_csr(dir: &Path, name: &str, subject: &str, bits: u32) -> String {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let (ok, out) = openssl(dir, &["genrsa", "-out", &key, &bits.to_string()]);
    assert!(ok, "{out}");
    let subj = format!("/{}", subject.replace(',', "/"));
    let (ok, out) = openssl(
        dir,
        &[
            "req", "-new", "-sha256", "-out", &csr, "-key", &key, "-subj", &subj,
        ],
    );
    assert!(ok, "{out}");
    let (ok, b64) = openssl(dir, &["base64", "-A", "-in", &csr]);
    assert!(ok, "{b64}");
    b64.trim().to_owned()
}

/// Decodes a CertificationResult into `<name>.chain.crt`, `<name>.crt`, `<name>.ca.crt`,
/// checks the chain is the client certificate then the CA chain, and that the client
/// certificate verifies against certpair's signing CA bundle.
fn save_result(dir: &Path, name: &str, result: &Value) -> PathBuf {
    let decode = |field: &str| {
        openssl::base64::decode_block(result[field].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("{field} is not base64: {e}: {result}"))
    };
    let (chain, ca, client) = (
        decode("certificateChain"),
        decode("caCertificate"),
        decode("clientCertificate"),
    );
    assert_eq!(
        chain,
        [client.clone(), ca.clone()].concat(),
        "client then CA"
    );
    let chain_file = dir.join(format!("{name}.chain.crt"));
    std::fs::write(&chain_file, &chain).expect("write");
    std::fs::write(dir.join(format!("{name}.crt")), &client).expect("write");
    std::fs::write(dir.join(format!("{name}.ca.crt")), &ca).expect("write");
    let s = setup();
    let (ok, out) = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            &s.signing_ca.to_string_lossy(),
            &format!("{name}.crt"),
        ],
    );
    assert!(ok, "verifies against certpair-ca-bundle: {out}");
    let (ok, out) = openssl(
        dir,
        &[
            "verify",
            "-CAfile",
            &format!("{name}.ca.crt"),
            &format!("{name}.crt"),
        ],
    );
    assert!(ok, "and against the caCertificate returned: {out}");
    chain_file
}

/// The connector's CSRs for `app` (the audit log).
async fn connector_csrs(client: &Client, app: &str) -> Vec<String> {
    let mut names: Vec<String> = Api::<CertificateSigningRequest>::all(client.clone())
        .list(&ListParams::default().labels(&format!(
            "{}={}",
            CONNECTOR_CSR_LABEL.0, CONNECTOR_CSR_LABEL.1
        )))
        .await
        .expect("list CSRs")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n.contains(app))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn compass_tutorial_pairing_renewal_and_revocation() {
    let s = setup();
    let (admin, app, dir) = fresh_application("compass").await;
    let (_, status) = token_request(&admin, &app).await;
    let token = status["token"].as_str().expect("token").to_owned();
    // The second replica: tokens live in the API server, not in a replica.
    let endpoint = format!("{}/graphql", s.urls[1]);

    // 1. configuration with the one-time token.
    let config = result_of(&graphql(
        &endpoint,
        CONFIGURATION,
        &["-H", &token_header(&token)],
    ));
    let subject = config["certificateSigningRequestInfo"]["subject"]
        .as_str()
        .expect("subject")
        .to_owned();
    assert_eq!(subject, format!("O=Acme,OU=Payments,C=DE,CN={app}"));
    assert_eq!(
        config["certificateSigningRequestInfo"]["keyAlgorithm"],
        "rsa2048"
    );
    assert_eq!(
        config["managementPlaneInfo"]["certificateSecuredConnectorURL"],
        format!("{}/graphql", s.urls[1])
    );
    assert!(config["managementPlaneInfo"]["directorURL"].is_null());
    let signing_token = config["token"]["token"]
        .as_str()
        .expect("a new token")
        .to_owned();
    assert_ne!(signing_token, token);

    // 2. Key (4096 bits, as the tutorial) and CSR; 3. signCertificateSigningRequest.
    let csr = compass_key_and_csr(&dir, "generated", &subject, 4096);
    let reply = graphql(
        &endpoint,
        &sign_mutation(&csr),
        &["-H", &token_header(&signing_token)],
    );
    let chain = save_result(&dir, "generated", &result_of(&reply));
    let key = dir.join("generated.key");
    let (_, text) = openssl(
        &dir,
        &["x509", "-in", "generated.crt", "-noout", "-subject"],
    );
    assert!(
        text.contains(&format!("O = Acme, OU = Payments, C = DE, CN = {app}")),
        "{text}"
    );

    // 4. Over mTLS without a token: configuration for a renewal (no token in it).
    let cert_args = |chain: &Path, key: &Path| {
        vec![
            "--cert".to_owned(),
            chain.to_string_lossy().into_owned(),
            "--key".to_owned(),
            key.to_string_lossy().into_owned(),
        ]
    };
    let args = cert_args(&chain, &key);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let renewal_config = result_of(&graphql(&endpoint, CONFIGURATION, &args));
    assert!(renewal_config["token"].is_null(), "{renewal_config}");
    assert_eq!(
        renewal_config["certificateSigningRequestInfo"],
        config["certificateSigningRequestInfo"]
    );

    // 5. Renewal: a new key, the same subject, signCertificateSigningRequest over mTLS.
    let csr = compass_key_and_csr(&dir, "renewed", &subject, 2048);
    let reply = graphql(&endpoint, &sign_mutation(&csr), &args);
    let renewed_chain = save_result(&dir, "renewed", &result_of(&reply));
    assert_ne!(
        serial_of(&dir.join("generated.crt")),
        serial_of(&dir.join("renewed.crt"))
    );
    let renewed_key = dir.join("renewed.key");

    // 6. Revocation of the renewed certificate; then it is refused.
    let renewed_args = cert_args(&renewed_chain, &renewed_key);
    let renewed_args: Vec<&str> = renewed_args.iter().map(String::as_str).collect();
    let revoked = graphql(
        &endpoint,
        "mutation { result: revokeCertificate }",
        &renewed_args,
    );
    assert_eq!(result_of(&revoked), true);
    let (message, code) = within(
        "the revocation to reach the replica",
        Duration::from_secs(5),
        || {
            let reply = graphql(&endpoint, CONFIGURATION, &renewed_args);
            let json = reply.json();
            json.get("errors").is_some().then(|| error_of(&reply))
        },
    )
    .await;
    assert_eq!(
        (message.as_str(), code.as_str()),
        ("Certificate has been revoked.", "CERTIFICATE_REVOKED")
    );
    // Revoking twice is revoking once.
    assert_eq!(
        result_of(&graphql(
            &endpoint,
            "mutation { result: revokeCertificate }",
            &renewed_args
        )),
        true
    );

    // The audit log: one pairing CSR and one renewal CSR, both as the connector.
    let csrs = connector_csrs(&admin, &app).await;
    assert_eq!(csrs.len(), 2, "{csrs:?}");
    assert!(csrs.iter().any(|n| n.starts_with("pair-")), "{csrs:?}");
    assert!(csrs.iter().any(|n| n.starts_with("renew-")), "{csrs:?}");
}

#[tokio::test]
async fn graphql_bad_input_is_a_specific_error_and_issues_nothing() {
    let s = setup();
    let (admin, app, dir) = fresh_application("gqlbad").await;
    let (tr, status) = token_request(&admin, &app).await;
    let token = status["token"].as_str().expect("token").to_owned();
    let endpoint = format!("{}/graphql", s.urls[0]);
    let with_token = token_header(&token);
    let expect = |reply: Reply, code: &str, words: &str| {
        let (message, got) = error_of(&reply);
        assert_eq!(got, code, "{}", reply.body);
        assert!(message.contains(words), "{words:?} in {}", reply.body);
    };

    // Malformed, unknown field, no token, unknown token.
    expect(
        graphql(&endpoint, "{ configuration {", &["-H", &with_token]),
        "BAD_QUERY",
        "expected",
    );
    expect(
        graphql(
            &endpoint,
            "{ configuration { nonsense } }",
            &["-H", &with_token],
        ),
        "BAD_QUERY",
        "Unknown field \"nonsense\"",
    );
    expect(
        graphql(&endpoint, CONFIGURATION, &[]),
        "TOKEN_NOT_PROVIDED",
        "Token not provided.",
    );
    expect(
        graphql(&endpoint, CONFIGURATION, &["-H", "Connector-Token: nope"]),
        "INVALID_TOKEN",
        "Invalid token.",
    );
    // A query nested 100 deep, one of 1 MiB, a body that is not JSON, a mutation by GET.
    let deep = format!(
        "{{ {} token {} }}",
        "configuration {".repeat(100),
        "}".repeat(100)
    );
    expect(
        graphql(&endpoint, &deep, &["-H", &with_token]),
        "BAD_QUERY",
        "nests more than 32 levels",
    );
    let huge = format!(
        "{{ configuration {{ token {{ token }} }} }} #{}",
        "x".repeat(1 << 20)
    );
    let huge_file = dir.join("huge.json");
    std::fs::write(&huge_file, serde_json::json!({ "query": huge }).to_string()).expect("write");
    expect(
        curl(&[
            "-H",
            &with_token,
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            &format!("@{}", huge_file.display()),
            &endpoint,
        ]),
        "TOO_LARGE",
        "larger than 16384 bytes",
    );
    expect(
        curl(&["-H", &with_token, "-d", "query=nope", &endpoint]),
        "BAD_REQUEST",
        "must be Content-Type: application/json",
    );
    expect(
        curl(&[
            "-H",
            &with_token,
            "-H",
            "Content-Type: application/json",
            "-d",
            "query=nope",
            &endpoint,
        ]),
        "BAD_REQUEST",
        "must be JSON",
    );
    expect(
        curl(&[
            "-G",
            "--data-urlencode",
            "query=mutation { revokeCertificate }",
            &endpoint,
        ]),
        "METHOD_NOT_ALLOWED",
        "POST",
    );
    // None of that used the token: configuration works with it now, by GET.
    let reply = curl(&[
        "-G",
        "--data-urlencode",
        &format!("query={CONFIGURATION}"),
        "--data-urlencode",
        &format!("token={token}"),
        &endpoint,
    ]);
    let signing_token = result_of(&reply)["token"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    // Asked again before any CSR is claimed (an answer lost on the way): the same signing
    // token, nothing new.
    let reply = graphql(&endpoint, CONFIGURATION, &["-H", &with_token]);
    assert_eq!(
        result_of(&reply)["token"]["token"].as_str(),
        Some(signing_token.as_str()),
        "the configuration is answered again with the same signing token"
    );
    let with_signing = token_header(&signing_token);

    // CSR junk: not base64, base64 of nonsense, another Application's CN, a weak key.
    expect(
        graphql(&endpoint, &sign_mutation("@@@"), &["-H", &with_signing]),
        "INVALID_BASE64",
        "There was an error while parsing the base64 content.",
    );
    expect(
        graphql(
            &endpoint,
            &sign_mutation(&openssl::base64::encode_block(b"hello")),
            &["-H", &with_signing],
        ),
        "REFUSED",
        "InvalidRequest",
    );
    let other = compass_key_and_csr(
        &dir,
        "other",
        "O=Acme,OU=Payments,C=DE,CN=someone-else",
        2048,
    );
    expect(
        graphql(&endpoint, &sign_mutation(&other), &["-H", &with_signing]),
        "FORBIDDEN",
        "CSR: Invalid common name provided.",
    );
    let subject = format!("O=Acme,OU=Payments,C=DE,CN={app}");
    let weak = compass_key_and_csr(&dir, "weak", &subject, 1024);
    expect(
        graphql(&endpoint, &sign_mutation(&weak), &["-H", &with_signing]),
        "REFUSED",
        "KeyTooWeak",
    );
    assert!(
        connector_csrs(&admin, &app).await.is_empty(),
        "nothing was issued"
    );

    // The signing token survived all of that.
    let good = compass_key_and_csr(&dir, "good", &subject, 2048);
    let reply = graphql(&endpoint, &sign_mutation(&good), &["-H", &with_signing]);
    save_result(&dir, "good", &result_of(&reply));
    // And is used now, and so is the one-time token that led to it.
    expect(
        graphql(&endpoint, CONFIGURATION, &["-H", &with_token]),
        "INVALID_TOKEN",
        "Invalid token.",
    );
    let again = compass_key_and_csr(&dir, "again", &subject, 2048);
    expect(
        graphql(&endpoint, &sign_mutation(&again), &["-H", &with_signing]),
        "INVALID_TOKEN",
        "Invalid token.",
    );
    assert_eq!(connector_csrs(&admin, &app).await.len(), 1);
    token_status(&admin, &tr, |s| s["state"] == "Used").await;
}

#[tokio::test]
async fn compass_internal_token_mutation() {
    let s = setup();
    let admin = admin().await;
    let cluster = Cluster::connect().await;
    let app = unique("gqlinternal");
    application(&admin, &app).await;
    let endpoint = format!("{}/graphql", s.internal[0]);
    let mutation =
        format!("mutation {{ result: generateApplicationToken(authID: \"{app}\") {{ token }} }}");
    let internal = |bearer: Option<&str>, query: &str| {
        let body = serde_json::json!({ "query": query }).to_string();
        super::internal::post(
            &endpoint,
            bearer,
            &["Content-Type: application/json"],
            Some(&body),
        )
    };

    let (_, code) = error_of(&internal(None, &mutation));
    assert_eq!(code, "UNAUTHENTICATED");
    let caller = cluster
        .service_account("default", &unique("director"))
        .await;
    let bearer = caller.token.clone().expect("a ServiceAccount token");
    let (message, code) = error_of(&internal(Some(&bearer), &mutation));
    assert_eq!(code, "FORBIDDEN", "{message}");
    support::csr::grant(
        &admin,
        &caller.username,
        vec![support::csr::may_request(&app)],
    )
    .await;
    let reply = within("the grant to take effect", Duration::from_secs(10), || {
        let reply = internal(Some(&bearer), &mutation);
        reply.json().get("errors").is_none().then_some(reply)
    })
    .await;
    let token = result_of(&reply)["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(token.len(), 88);
    // The token pairs through the public API.
    let config = result_of(&graphql(
        &format!("{}/graphql", s.urls[0]),
        CONFIGURATION,
        &["-H", &token_header(&token)],
    ));
    assert!(config["token"]["token"].is_string(), "{config}");

    let (message, code) = error_of(&internal(
        Some(&bearer),
        "mutation { generateRuntimeToken(authID: \"rt\") { token } }",
    ));
    assert_eq!(code, "BAD_REQUEST");
    assert!(
        message.contains("runtime tokens are not supported"),
        "{message}"
    );
    assert_eq!(
        result_of(&internal(None, "{ result: isHealthy }")),
        true,
        "isHealthy needs no credentials"
    );
}
