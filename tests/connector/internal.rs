//! Kyma's internal API: a token for an Application on behalf of an authenticated caller who
//! may request it, and revocation by the SHA-256 of a certificate.

use std::time::Duration;

use certpair::api::Revocation;

use super::*;

/// POST to the internal API with an optional bearer token; status and body.
pub fn post(url: &str, bearer: Option<&str>, headers: &[&str], body: Option<&str>) -> Reply {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "30",
        "-w",
        "\n%{http_code}",
        "-X",
        "POST",
    ]);
    if let Some(token) = bearer {
        cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(body) = body {
        cmd.args(["-d", body]);
    }
    let out = run(cmd.arg(url));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Reply {
        code: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}

#[tokio::test]
async fn internal_api_tokens_and_revocation_by_hash() {
    let s = setup();
    let admin = admin().await;
    let cluster = Cluster::connect().await;
    let app = unique("internal");
    application(&admin, &app).await;
    let tokens = format!("{}/v1/applications/tokens", s.internal[0]);
    let header = format!("Application: {app}");

    // No credentials, and credentials without the right.
    let reply = post(&tokens, None, &[&header], None);
    assert_eq!(reply.code, 401, "{}", reply.body);
    let caller = cluster
        .service_account("default", &unique("pipeline"))
        .await;
    let bearer = caller.token.clone().expect("a ServiceAccount token");
    let reply = post(&tokens, Some(&bearer), &[&header], None);
    assert_eq!(reply.code, 403, "{}", reply.body);
    assert!(
        reply.error().contains("may not request applications"),
        "{}",
        reply.body
    );

    support::csr::grant(
        &admin,
        &caller.username,
        vec![
            support::csr::may_request(&app),
            support::csr::rule(&["certpair.dev"], &["revocations"], &["create"], None),
        ],
    )
    .await;
    let reply = post(&tokens, Some(&bearer), &[&header], None);
    assert_eq!(reply.code, 201, "{}", reply.body);
    let json = reply.json();
    let url = json["url"].as_str().expect("url");
    let token = json["token"].as_str().expect("token");
    assert!(url.ends_with(&format!("token={token}")), "{url}");

    // The token pairs, and the certificate can be revoked by its hash.
    let info = curl(&[url]);
    assert_eq!(info.code, 200, "{}", info.body);
    let csr_url = info.json()["csrUrl"].as_str().expect("csrUrl").to_owned();
    let dir = s.dir.join(&app);
    std::fs::create_dir_all(&dir).expect("dir");
    let (key, csr) = key_and_csr(
        &dir,
        "app",
        &format!("/O=Acme/OU=Payments/C=DE/CN={app}"),
        2048,
    );
    let reply = curl(&["-d", &csr_body(&csr), &csr_url]);
    let (chain, client) = save_certificates(&dir, "app", &reply);
    let der = openssl::x509::X509::from_pem(&std::fs::read(&client).expect("read"))
        .expect("cert")
        .to_der()
        .expect("der");
    let hash = certpair::pki::sha256_hex(&der).to_uppercase();
    let revocations = format!("{}/v1/applications/certificates/revocations", s.internal[1]);
    let reply = post(
        &revocations,
        Some(&bearer),
        &[],
        Some(&format!(r#"{{"Hash": "{hash}"}}"#)),
    );
    assert_eq!(reply.code, 201, "{}", reply.body);
    let reply = post(
        &revocations,
        Some(&bearer),
        &[],
        Some(r#"{"hash": "nothex"}"#),
    );
    assert_eq!(reply.code, 400, "{}", reply.body);
    // Found among the CSRs: the Revocation carries the serial, so the CRL can list it.
    let serial = serial_of(&client);
    let api: Api<Revocation> = Api::all(admin.clone());
    let r = api
        .get(&format!("serial-{}", serial.to_lowercase()))
        .await
        .expect("Revocation named after the serial");
    assert_eq!(r.spec.application.as_deref(), Some(app.as_str()));
    assert!(r.spec.not_after.is_some());
    within(
        "the connector refuses the certificate",
        Duration::from_secs(2),
        || {
            let reply = curl_with(
                &chain,
                &key,
                &[&format!("{}/v1/applications/management/info", s.urls[0])],
            );
            (reply.code == 403).then_some(())
        },
    )
    .await;
}
