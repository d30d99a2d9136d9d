//! Tokens: missing, unknown, used, expired, for another Application, and 50 concurrent
//! redemptions of one token across two replicas.

use std::time::Duration;

use kube::api::{Patch, PatchParams};

use super::*;

#[tokio::test]
async fn token_refusals_use_kymas_messages_and_the_token_request_shows_why() {
    let s = setup();
    let admin = admin().await;
    let app = unique("tokens");
    application(&admin, &app).await;
    let info = format!("{}/v1/applications/signingRequests/info", s.urls[0]);

    let reply = curl(&[&info]);
    assert_eq!(
        (reply.code, reply.error()),
        (403, "Token not provided.".to_owned())
    );
    let reply = curl(&[&format!("{info}?token=")]);
    assert_eq!(
        (reply.code, reply.error()),
        (403, "Token not provided.".to_owned())
    );
    let forged = "A".repeat(86) + "==";
    let reply = curl(&[&format!("{info}?token={forged}")]);
    assert_eq!(
        (reply.code, reply.error()),
        (403, "Invalid token.".to_owned())
    );

    // Expired: the connector checks expireAfter itself, and the controller marks it.
    let (tr, status) = token_request(&admin, &app).await;
    let url = status["url"].as_str().expect("url").to_owned();
    let api: Api<TokenRequest> = Api::namespaced(admin.clone(), "default");
    api.patch_status(
        &tr,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"expireAfter": "2020-01-01T00:00:00Z"}})),
    )
    .await
    .expect("backdate the token");
    let reply = curl(&[&url]);
    assert_eq!(reply.code, 403, "{}", reply.body);
    let message = reply.error();
    assert!(
        message.starts_with("Invalid token. It expired at"),
        "{message}"
    );
    let status = token_status(&admin, &tr, |s| s["state"] == "Expired").await;
    assert!(
        status.get("token").is_none() && status.get("url").is_none(),
        "{status}"
    );
    // A late use is told why.
    let reply = curl(&[&url]);
    assert!(
        reply.error().starts_with("Invalid token. It expired at"),
        "{}",
        reply.body
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("expired"),
        "{status}"
    );

    // A certificate token used for a CSR of another Application: Kyma's 403 and words.
    let (tr, status) = token_request(&admin, &app).await;
    let reply = curl(&[status["url"].as_str().expect("url")]);
    assert_eq!(reply.code, 200, "{}", reply.body);
    let csr_url = reply.json()["csrUrl"].as_str().expect("csrUrl").to_owned();
    let dir = s.dir.join(&app);
    std::fs::create_dir_all(&dir).expect("dir");
    let (_, csr) = key_and_csr(
        &dir,
        "other",
        "/O=Acme/OU=Payments/C=DE/CN=someone-else",
        2048,
    );
    let reply = curl(&["-d", &csr_body(&csr), &csr_url]);
    assert_eq!(reply.code, 403, "{}", reply.body);
    assert!(
        reply
            .error()
            .starts_with("CSR: Invalid common name provided."),
        "{}",
        reply.body
    );
    // Not spent by a refused request: the right CSR still gets its certificate.
    let (_, csr) = key_and_csr(
        &dir,
        "right",
        &format!("/O=Acme/OU=Payments/C=DE/CN={app}"),
        2048,
    );
    let reply = curl(&["-d", &csr_body(&csr), &csr_url]);
    let (_, first) = save_certificates(&dir, "first", &reply);
    token_status(&admin, &tr, |s| s["state"] == "Used").await;
    // A response lost on the way: the same key fetches the same certificate again...
    let reply = curl(&["-d", &csr_body(&csr), &csr_url]);
    let (_, again) = save_certificates(&dir, "again", &reply);
    assert_eq!(serial_of(&first), serial_of(&again));
    // ...and any other key is refused: the token is spent.
    let (_, other) = key_and_csr(
        &dir,
        "late",
        &format!("/O=Acme/OU=Payments/C=DE/CN={app}"),
        2048,
    );
    let reply = curl(&["-d", &csr_body(&other), &csr_url]);
    assert_eq!(reply.code, 403, "{}", reply.body);
    assert!(
        reply.error().starts_with(
            "Invalid token. It has been used to request a certificate for another key"
        ),
        "{}",
        reply.body
    );
}

/// 50 clients race with one token, alternating between the two replicas: the info answer is
/// idempotent, so all that get it get the same certificate token (it is derived from the info
/// token: a client whose answer was lost asks again); then 50 race with the certificate
/// token, each with its own key: exactly one gets a certificate.
#[tokio::test]
async fn fifty_concurrent_redemptions_over_two_replicas_give_one_success() {
    let s = setup();
    let admin = admin().await;
    let app = unique("race");
    application(&admin, &app).await;
    let (tr, status) = token_request(&admin, &app).await;
    let token = status["token"].as_str().expect("token").to_owned();
    let codes = race(50, |i| {
        let url = format!(
            "{}/v1/applications/signingRequests/info?token={token}",
            s.urls[i % 2]
        );
        let reply = curl(&[&url]);
        (reply.code, reply.body)
    });
    let winners: Vec<_> = codes.iter().filter(|(c, _)| *c == 200).collect();
    assert!(!winners.is_empty(), "{codes:?}");
    assert!(
        codes.iter().all(|(c, _)| *c == 200 || *c == 403),
        "{codes:?}"
    );
    let cert_tokens: std::collections::BTreeSet<String> = winners
        .iter()
        .map(|(_, body)| {
            let csr_url = serde_json::from_str::<Value>(body).expect("json")["csrUrl"]
                .as_str()
                .expect("csrUrl")
                .to_owned();
            csr_url.split("token=").nth(1).expect("token").to_owned()
        })
        .collect();
    assert_eq!(
        cert_tokens.len(),
        1,
        "one certificate token: {cert_tokens:?}"
    );
    let cert_token = cert_tokens.into_iter().next().expect("token");
    eprintln!(
        "{} of 50 info calls answered, all with one certificate token",
        winners.len()
    );

    let bodies: Vec<String> = (0..50)
        .map(|_| {
            let key = support::ec_key();
            let pem = certpair::pki::csr_builder::RequestBuilder::cn(&app)
                .with(openssl::nid::Nid::ORGANIZATIONNAME, "Acme")
                .with(openssl::nid::Nid::ORGANIZATIONALUNITNAME, "Payments")
                .with(openssl::nid::Nid::COUNTRYNAME, "DE")
                .to_pem(&key)
                .expect("CSR");
            serde_json::json!({"csr": openssl::base64::encode_block(&pem)}).to_string()
        })
        .collect();
    let codes = race(50, |i| {
        let url = format!(
            "{}/v1/applications/certificates?token={cert_token}",
            s.urls[i % 2]
        );
        let reply = curl(&["-d", &bodies[i], &url]);
        (reply.code, reply.body)
    });
    let issued = codes.iter().filter(|(c, _)| *c == 201).count();
    assert_eq!(issued, 1, "{codes:?}");
    assert!(
        codes.iter().all(|(c, _)| *c == 201 || *c == 403),
        "{codes:?}"
    );
    token_status(&admin, &tr, |s| s["state"] == "Used").await;
}

/// Runs `call(i)` for i in 0..n on n threads released at once.
fn race(n: usize, call: impl Fn(usize) -> (u16, String) + Sync) -> Vec<(u16, String)> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let barrier = &barrier;
                let call = &call;
                scope.spawn(move || {
                    barrier.wait();
                    call(i)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

#[tokio::test]
async fn creating_a_token_request_needs_the_right_to_request_the_application() {
    let admin = admin().await;
    let cluster = Cluster::connect().await;
    let app = unique("delegate");
    application(&admin, &app).await;
    let user = cluster.user(&unique("operator"), &["operators"]).await;
    support::csr::grant(
        &admin,
        &user.username,
        vec![support::csr::rule(
            &["certpair.dev"],
            &["tokenrequests"],
            &["create", "get", "update", "patch"],
            None,
        )],
    )
    .await;
    let manifest = s_manifest(&app);
    let file = setup().dir.join(format!("{app}-tr.yaml"));
    std::fs::write(&file, &manifest).expect("write");
    let out = run(user
        .kubectl()
        .args(["create", "-n", "default", "-f"])
        .arg(&file));
    assert!(!out.status.success(), "created without `request`");
    let err = stderr(&out);
    assert!(
        err.contains("may not request certificates for Application") && err.contains(&app),
        "{err}"
    );

    support::csr::grant(
        &admin,
        &user.username,
        vec![support::csr::may_request(&app)],
    )
    .await;
    // The policy's authorizer reads RBAC from a cache: allow it a moment.
    let name = within(
        "TokenRequest created once `request` is granted",
        Duration::from_secs(10),
        || {
            let out = run(user
                .kubectl()
                .args(["create", "-n", "default", "-o", "name", "-f"])
                .arg(&file));
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        },
    )
    .await;
    // The spec cannot change afterwards.
    let out = run(user.kubectl().args([
        "patch",
        "-n",
        "default",
        &name,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"application":"another"}}"#,
    ]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spec is immutable"),
        "{}",
        stderr(&out)
    );
}

fn s_manifest(app: &str) -> String {
    format!(
        "apiVersion: certpair.dev/v1alpha1\nkind: TokenRequest\nmetadata:\n  generateName: {app}-\nspec:\n  application: {app}\n"
    )
}
